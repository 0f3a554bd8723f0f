"""The kernels for this CPU.  A build compiles the kernels once per
instruction set its architecture has (variants.py: _avx512, _avx2 and
_scalar on x86-64; _neon_dot, _neon and _scalar on aarch64), each an
extension module with the same names; this module picks the best one the
CPU runs, or the one the environment variable ENGINE_ISA names (avx512,
avx2, neon_dot, neon, scalar: for tests, benchmarks and a CPU the detection
gets wrong), and every name of it is a name of this module (Program,
scatter_planes, TILE_ROWS, ...).

The choice is made once, at import: a process runs one ISA's kernels."""
import importlib
import importlib.util
import os

from engine.kernels._cpu import supports
from engine.kernels.variants import PREFERENCE


def built():
    """The ISAs this build compiled."""
    return [isa for isa in PREFERENCE if importlib.util.find_spec(f'engine.kernels._{isa}') is not None]


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
        if supports(isa):
            return isa
    raise ImportError(f'no kernel module this CPU can run among {available} (a broken build?)')


CHOSEN = _choose()
_module = importlib.import_module(f'engine.kernels._{CHOSEN}')
globals().update({k: v for k, v in vars(_module).items() if not k.startswith('__')})


def build_info():
    """What this build compiled and which ISA this process runs: the chosen
    module's vector width, tiles and flags, the ISAs built, and whether
    ENGINE_ISA forced the choice."""
    info = _module.build_info()
    info.update(isa=CHOSEN, built=built(), forced=bool(os.environ.get('ENGINE_ISA', '').strip()))
    return info
