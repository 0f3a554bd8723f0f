"""The kernels for this CPU.  A build compiles the kernels once per
instruction set its architecture has (variants.py: _avx512, _avx2 and
_scalar on x86-64; _neon_dot, _neon and _scalar on aarch64), each an
extension module with the same names; this module picks the best one the
CPU runs, or the one the environment variable ENGINE_ISA names (avx512,
avx2, neon_dot, neon, scalar: for tests, benchmarks and a CPU the detection
gets wrong), and every name of it is a name of this module (Program,
scatter_planes, TILE_ROWS, ...).  The fp16 modules (_neon_fp16, and
_scalar_fp16 as their reference) are the same kernels on fp16 tensors:
kernels('fp16') gives the one a model loaded with precision 'fp16' runs on.

The choice is made once, at import: a process runs one ISA's kernels per
precision."""
import importlib
import importlib.util
import os

from engine.kernels._cpu import supports
from engine.kernels.variants import FP16_PREFERENCE, PREFERENCE


def built():
    """The ISAs this build compiled."""
    return [isa for isa in PREFERENCE + FP16_PREFERENCE
            if importlib.util.find_spec(f'engine.kernels._{isa}') is not None]


def _choose():
    forced = os.environ.get('ENGINE_ISA', '').strip().lower()
    available = built()
    if forced:
        if forced not in PREFERENCE:
            raise ImportError(f'ENGINE_ISA={forced!r}: choose one of {", ".join(PREFERENCE)}')
        if forced not in available:
            raise ImportError(f'ENGINE_ISA={forced!r}, but this build has only {", ".join(available)}')
        if not supports(forced):
            raise ImportError(f'ENGINE_ISA={forced!r}, but this CPU cannot run it')
        return forced
    for isa in available:
        if isa in PREFERENCE and supports(isa):
            return isa
    raise ImportError(f'no kernel module this CPU can run among {available} (a broken build?)')


CHOSEN = _choose()
_module = importlib.import_module(f'engine.kernels._{CHOSEN}')
globals().update({k: v for k, v in vars(_module).items() if not k.startswith('__')})


PRECISIONS = ('fp32', 'fp16')


def kernels(precision='fp32', allow_scalar=False):
    """The kernel module that computes in `precision`, the one the planner
    lays out and packs a model for.  'fp32': the module chosen at import.
    'fp16' (fp16 tensors and weights): the best FP16_PREFERENCE module this
    CPU runs with fp16 arithmetic; scalar_fp16 (fp16 storage, float
    arithmetic, slow) when ENGINE_ISA=scalar, or when allow_scalar and the
    CPU has no fp16 arithmetic (tests); else ValueError."""
    if precision == 'fp32':
        return _module
    if precision != 'fp16':
        raise ValueError(f'precision {precision!r}: one of {", ".join(PRECISIONS)}')
    candidates = [isa for isa in FP16_PREFERENCE if (isa == 'scalar_fp16') == (CHOSEN == 'scalar')]
    if allow_scalar and 'scalar_fp16' not in candidates:
        candidates.append('scalar_fp16')
    available = built()
    for isa in candidates:
        if isa in available and supports(isa):
            return importlib.import_module(f'engine.kernels._{isa}')
    raise ValueError("precision 'fp16' needs a CPU with fp16 arithmetic (aarch64 ARMv8.2-A FP16: "
                     f"Cortex-A55/A76, Raspberry Pi 5) and a build with its kernels; this one runs "
                     f"{CHOSEN} (built: {', '.join(available)}): use precision 'fp32'")


def build_info():
    """What this build compiled and which ISA this process runs: the chosen
    module's vector width, tiles and flags, the ISAs built, and whether
    ENGINE_ISA forced the choice."""
    info = _module.build_info()
    info.update(isa=CHOSEN, built=built(), forced=bool(os.environ.get('ENGINE_ISA', '').strip()))
    return info
