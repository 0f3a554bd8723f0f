"""Build of the Cython kernels.

The kernels are compiled once per instruction set the machine's architecture
has, each into an extension module of its own, and the engine picks the best
one the CPU runs when it is imported (engine/kernels/isa.py; the environment
variable ENGINE_ISA forces one).  So one build, or one wheel, serves every CPU
of its architecture:
  x86-64    _avx512 (-mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma),
            _avx2 (-mavx2 -mfma), _scalar
  aarch64   _neon (the baseline), _scalar
  armv7     _neon (-mfpu=neon-vfpv4), _scalar
  other     _scalar
_scalar is the plain C path (ENGINE_FORCE_SCALAR): the fallback, and what the
vector paths are tested against.

ENGINE_BUILD_ISAS=avx2,scalar builds only those (a quicker build while
developing); ENGINE_CFLAGS adds compiler flags (e.g. a cross-compiler's -mcpu),
ENGINE_LDFLAGS linker flags (tools/sanitize.sh passes -fsanitize=... in both).
Threads come from the engine's own pool (engine/kernels/pool.h, pthreads).
"""
import os
import platform
import shlex

from setuptools import Extension, setup
from Cython.Build import cythonize

MACHINE = platform.machine().lower()
SCALAR = ['-DENGINE_FORCE_SCALAR']
if MACHINE in ('x86_64', 'amd64', 'i686', 'i386'):
    VARIANTS = {'avx512': ['-mavx512f', '-mavx512vl', '-mavx512bw', '-mavx512dq', '-mavx2', '-mfma'],
                'avx2': ['-mavx2', '-mfma'], 'scalar': SCALAR}
elif MACHINE.startswith('armv7'):     # 32-bit Pi OS: its gcc leaves NEON off unless asked
    VARIANTS = {'neon': ['-mfpu=neon-vfpv4'], 'scalar': SCALAR}
elif MACHINE.startswith(('aarch64', 'arm64')):
    VARIANTS = {'neon': [], 'scalar': SCALAR}
else:
    VARIANTS = {'scalar': SCALAR}

wanted = [v.strip() for v in os.environ.get('ENGINE_BUILD_ISAS', '').split(',') if v.strip()]
unknown = sorted(set(wanted) - set(VARIANTS))
if unknown:
    raise SystemExit(f'ENGINE_BUILD_ISAS: {", ".join(unknown)} cannot be built on {MACHINE} '
                     f'(it has {", ".join(VARIANTS)})')
if wanted and 'scalar' not in wanted:
    wanted.append('scalar')         # the fallback every build has

extra = shlex.split(os.environ.get('ENGINE_CFLAGS', ''))
ldflags = ['-pthread'] + shlex.split(os.environ.get('ENGINE_LDFLAGS', ''))
common = ['-O3', '-std=c11', '-pthread']
macros = [('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')]


def extension(name, source, flags):
    cflags = common + flags + extra
    return Extension(f'engine.kernels.{name}', [f'engine/kernels/{source}'], include_dirs=['engine/kernels'],
                     define_macros=macros + [('ENGINE_CFLAGS', '"%s"' % ' '.join(cflags))],
                     extra_compile_args=cflags, extra_link_args=ldflags)


extensions = [extension(f'_{isa}', f'_{isa}.pyx', flags) for isa, flags in VARIANTS.items()
              if not wanted or isa in wanted]
# what does not depend on the instruction set: built once, with the baseline flags
extensions += [extension(name, f'{name}.pyx', []) for name in ('abi', 'shuffle', '_cpu')]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={'boundscheck': False, 'wraparound': False}))
