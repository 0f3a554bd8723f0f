"""The kernel modules a build makes: per architecture, the instruction sets
(fastest first) and the compiler flags of each.  The one table that setup.py
(what a pip install builds), isa.py (what the CPU may run) and
tools/check_aarch64.sh (the cross-builds) read; it imports nothing, so
setup.py can load it before the package is built.

Each ISA `x` is the module `engine.kernels._x`, compiled from `_x.pyx` with
these flags and -DENGINE_ISA_X (simd.h: which vector header it takes)."""

VARIANTS = {
    'x86': {
        # (and VNNI at run time, _cpu.supports: the int8 tile's vpdpbusd is inline asm)
        'avx512': ['-mavx512f', '-mavx512vl', '-mavx512bw', '-mavx512dq', '-mavx2', '-mfma'],
        'avx2': ['-mavx2', '-mfma'],
        'scalar': [],
        'scalar_fp16': [],                  # fp16 tensors, float arithmetic: the fp16 reference
    },
    'aarch64': {
        # ARMv8.2-A with the dot product and fp16 arithmetic (Cortex-A55/A76: Pi 5); the
        # home of the int8 kernels to come, today the fp32 ones built for it
        'neon_dot': ['-march=armv8.2-a+dotprod+fp16'],
        'neon': [],                         # the aarch64 baseline (Cortex-A53/A72: Pi 3, Pi 4)
        'scalar': [],
        'neon_fp16': ['-march=armv8.2-a+fp16'],     # fp16 tensors and arithmetic (Pi 5)
        'scalar_fp16': [],
    },
    'armv7': {
        'neon': ['-mfpu=neon-vfpv4'],       # 32-bit Pi OS's gcc leaves NEON off unless asked
        'scalar': [],
        'scalar_fp16': ['-mfp16-format=ieee'],      # (gcc's __fp16 is off by default there)
    },
    'other': {'scalar': []},
}
# every ISA of a precision, fastest first (fp16: the CPUs with fp16 arithmetic;
# scalar_fp16 only when asked for, as the reference: isa.py)
PREFERENCE = ('avx512', 'avx2', 'neon_dot', 'neon', 'scalar')
FP16_PREFERENCE = ('neon_fp16', 'scalar_fp16')


def architecture(machine):
    """The VARIANTS key of platform.machine()'s answer."""
    machine = machine.lower()
    if machine in ('x86_64', 'amd64', 'i686', 'i386'):
        return 'x86'
    if machine.startswith(('aarch64', 'arm64')):
        return 'aarch64'
    if machine.startswith('armv7'):
        return 'armv7'
    return 'other'


def flags(isa, arch):
    """The compiler flags of ISA `isa` on `arch`, its ENGINE_ISA_ macro included."""
    return VARIANTS[arch][isa] + [f'-DENGINE_ISA_{isa.upper()}']
