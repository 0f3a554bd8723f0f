# cython: language_level=3
"""What instruction sets this CPU (and its operating system) can run: the
question engine/kernels/isa.py asks before it picks a kernel module.  Built
with the architecture's baseline flags, so it runs everywhere."""

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__i386__)
    /* the CPU has it, and the OS saves its registers (GCC checks XGETBV) */
    static int engine_cpu_has(int which) {
        __builtin_cpu_init();
        switch (which) {
        case 0: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                       && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                       && __builtin_cpu_supports("avx512vnni");     /* the int8 tile's vpdpbusd */
        case 1: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        default: return 0;
        }
    }
    #elif defined(__aarch64__) && defined(__linux__)
    #include <sys/auxv.h>
    #include <asm/hwcap.h>
    static int engine_cpu_has(int which) {
        const unsigned long fp16 = HWCAP_ASIMDHP | HWCAP_FPHP, dot = HWCAP_ASIMDDP | fp16;
        if (which == 3) return (getauxval(AT_HWCAP) & dot) == dot;
        if (which == 4) return (getauxval(AT_HWCAP) & fp16) == fp16;
        return which == 2;          /* NEON is the aarch64 baseline */
    }
    #elif defined(__aarch64__)
    static int engine_cpu_has(int which) { return which == 2; }
    #elif defined(__arm__) && defined(__linux__)
    #include <sys/auxv.h>
    #include <asm/hwcap.h>
    static int engine_cpu_has(int which) { return which == 2 && (getauxval(AT_HWCAP) & HWCAP_NEON) != 0; }
    #else
    static int engine_cpu_has(int which) { return 0; }
    #endif
    """
    int engine_cpu_has(int which) nogil

_CODES = {'avx512': 0, 'avx2': 1, 'neon': 2, 'neon_dot': 3, 'neon_fp16': 4}


def supports(str isa):
    """Whether this CPU runs the kernels built for `isa` ('scalar' and
    'scalar_fp16': always)."""
    if isa in ('scalar', 'scalar_fp16'):
        return True
    return isa in _CODES and engine_cpu_has(_CODES[isa]) != 0
