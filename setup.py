"""Build of the Cython kernels.

ENGINE_ISA picks the SIMD path compiled in (default: native):
  native    -march=native (x86) / -mcpu=native (ARM; plus -mfpu=neon-vfpv4 on armv7):
            the machine you build on
  avx512    -mavx512f -mfma ...   (x86)
  avx2      -mavx2 -mfma, AVX-512 off (x86)
  portable  the architecture's baseline: scalar on x86-64, NEON on aarch64
  scalar    plain C kernels on any machine (ENGINE_FORCE_SCALAR)
ENGINE_CFLAGS adds compiler flags (e.g. a cross-compiler's -mcpu), ENGINE_LDFLAGS
linker flags (tools/sanitize.sh passes -fsanitize=... in both).
Threads come from the engine's own pool (engine/kernels/pool.h, pthreads).
"""
import os
import platform
import shlex

from setuptools import Extension, setup
from Cython.Build import cythonize

MACHINE = platform.machine().lower()
if MACHINE.startswith('armv7'):       # 32-bit Pi OS: its gcc leaves NEON off unless asked
    NATIVE = ['-mcpu=native', '-mfpu=neon-vfpv4']
elif MACHINE.startswith(('arm', 'aarch64')):
    NATIVE = ['-mcpu=native']
else:
    NATIVE = ['-march=native']

ISA_FLAGS = {
    'native': NATIVE,
    'avx512': ['-mavx512f', '-mavx512vl', '-mavx512bw', '-mavx512dq', '-mavx2', '-mfma'],
    'avx2': ['-mavx2', '-mfma', '-mno-avx512f'],
    'portable': [],
    'scalar': ['-DENGINE_FORCE_SCALAR'],
}

isa = os.environ.get('ENGINE_ISA', 'native')
if isa not in ISA_FLAGS:
    raise SystemExit(f'ENGINE_ISA={isa!r}: choose one of {", ".join(ISA_FLAGS)}')
cflags = ['-O3', '-std=c11', '-pthread'] + ISA_FLAGS[isa] + shlex.split(os.environ.get('ENGINE_CFLAGS', ''))
macros = [('ENGINE_CFLAGS', '"%s"' % ' '.join(cflags)), ('ENGINE_BUILD_ISA', '"%s"' % isa),
          ('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')]

kernels = ['abi', 'program', 'gemm', 'window', 'fused', 'eltwise', 'shuffle']
ldflags = ['-pthread'] + shlex.split(os.environ.get('ENGINE_LDFLAGS', ''))
extensions = [
    Extension(f'engine.kernels.{name}', [f'engine/kernels/{name}.pyx'],
              include_dirs=['engine/kernels'], define_macros=macros,
              extra_compile_args=cflags, extra_link_args=ldflags)
    for name in kernels
]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={'boundscheck': False, 'wraparound': False}))
