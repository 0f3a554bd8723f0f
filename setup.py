"""Build of the Cython kernels.

The kernels are compiled once per instruction set the machine's architecture
has, each into an extension module of its own, and the engine picks the best
one the CPU runs when it is imported (engine/kernels/isa.py; the environment
variable ENGINE_ISA forces one).  So one build, or one wheel, serves every CPU
of its architecture.  Which modules, with which flags: engine/kernels/variants.py
  x86-64    _avx512, _avx2, _scalar
  aarch64   _neon_dot (ARMv8.2-A dotprod + fp16), _neon, _scalar
  armv7     _neon, _scalar
  other     _scalar
_scalar is the plain C path: the fallback, and what the vector paths are
tested against.

ENGINE_BUILD_ISAS=avx2,scalar builds only those (a quicker build while
developing); ENGINE_CFLAGS adds compiler flags (e.g. a cross-compiler's -mcpu),
ENGINE_LDFLAGS linker flags (tools/sanitize.sh passes -fsanitize=... in both).
Threads come from the engine's own pool (engine/kernels/pool.h, pthreads).
"""
import os
import platform
import runpy
import shlex

from setuptools import Extension, setup
from Cython.Build import cythonize

# the ISA table (engine/kernels/variants.py), read before the package is built
VARIANTS_PY = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          'engine', 'kernels', 'variants.py'))
# a cross-build (tools/build_wheels.sh) names its target as the wheel's platform: linux-aarch64
ARCH = VARIANTS_PY['architecture'](os.environ.get('_PYTHON_HOST_PLATFORM', '').partition('-')[2] or platform.machine())
VARIANTS = {isa: VARIANTS_PY['flags'](isa, ARCH) for isa in VARIANTS_PY['VARIANTS'][ARCH]}

wanted = [v.strip() for v in os.environ.get('ENGINE_BUILD_ISAS', '').split(',') if v.strip()]
unknown = sorted(set(wanted) - set(VARIANTS))
if unknown:
    raise SystemExit(f'ENGINE_BUILD_ISAS: {", ".join(unknown)} cannot be built on {ARCH} '
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


def build_jobs():
    """Modules compiled side by side: one per core (a minute or more each
    at -O3), as many as the free memory holds (gcc peaks at ~360 MB on one:
    a 1 GB Pi must not swap)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    try:
        with open('/proc/meminfo') as f:
            free_kb = next(int(line.split()[1]) for line in f if line.startswith('MemAvailable:'))
    except (OSError, StopIteration, ValueError):
        return cores
    return max(1, min(cores, free_kb // (512 << 10)))


jobs = build_jobs()
setup(ext_modules=cythonize(extensions, language_level=3, nthreads=jobs,
                            compiler_directives={'boundscheck': False, 'wraparound': False}),
      options={'build_ext': {'parallel': jobs}})
