"""What an op does to its output after computing it: clamp it to [lo, hi]
(the `clamp` attribute, None for an open end: ReLU is [0, None], ReLU6
[0, 6]), then a nonlinearity (the `act` attribute).  Both are fused into the
op that produces the values (engine/optimize.py), and the kernels apply them
to the output tile while it is in cache (ukernels.h f32_activation, by the
code kernels/abi.h gives each name).

Adding a nonlinearity: its NumPy reference here (and the ATen ops that mean
it, for the converter), its code and C in kernels/abi.h and ukernels.h."""
import numpy as np

from engine.errors import ModelFileError
from engine.ops.aten import arg, converts

CLAMPS = {'relu': [0.0, None], 'relu6': [0.0, 6.0]}


def _hard(x):
    return np.clip(x + 3, 0, 6) / 6


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> NumPy reference (float64 in, float64 out)
NONLINEAR = {
    'hardswish': lambda x: x * _hard(x),
    'hardsigmoid': _hard,
    'sigmoid': _sigmoid,
    'silu': lambda x: x * _sigmoid(x),
}


def clamp_bounds(clamp):
    """(lo, hi) floats of a node's clamp attribute; infinite where open."""
    if clamp is None:
        return -np.inf, np.inf
    lo, hi = clamp
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


def check_epilogue(attrs, node):
    """The clamp and act attributes of a node, checked."""
    act = attrs.get('act')
    if act is not None and (not isinstance(act, str) or act not in NONLINEAR):
        raise ModelFileError(f'node {node!r}: unknown activation {act!r}')
    c = attrs.get('clamp')
    if c is None:
        return
    ok = isinstance(c, (list, tuple)) and len(c) == 2 and all(
        e is None or (isinstance(e, (int, float)) and not isinstance(e, bool) and -3e38 < e < 3e38) for e in c)
    if not ok:
        raise ModelFileError(f'node {node!r}: clamp must be [lo, hi] numbers or null, got {c!r}')


def apply(x, attrs):
    """The reference epilogue: clamp, then the nonlinearity."""
    clamp = attrs.get('clamp')
    if clamp is not None:
        lo, hi = clamp_bounds(clamp)
        x = np.minimum(np.maximum(x, lo), hi)
    act = attrs.get('act')
    return x if act is None else NONLINEAR[act](x)


@converts('relu', 'relu6')
def clamp_from_relu(cv, fx, args, kw):
    return cv.add(fx, 'act', [args[0]], dict(clamp=list(CLAMPS[fx.target._opname.rstrip('_')])))


@converts('hardtanh')
def clamp_from_hardtanh(cv, fx, args, kw):
    lo, hi = arg(args, kw, 1, 'min_val', -1.0), arg(args, kw, 2, 'max_val', 1.0)
    return cv.add(fx, 'act', [args[0]], dict(clamp=[float(lo), float(hi)]))


@converts('clamp', 'clamp_min')
def clamp_from_aten(cv, fx, args, kw):
    lo, hi = arg(args, kw, 1, 'min', None), arg(args, kw, 2, 'max', None)
    if fx.target._opname.rstrip('_') == 'clamp_min':
        hi = None
    if not all(v is None or isinstance(v, (int, float)) for v in (lo, hi)):
        return cv.fail(fx, 'clamp with tensor bounds')
    return cv.add(fx, 'act', [args[0]],
                  dict(clamp=[None if lo is None else float(lo), None if hi is None else float(hi)]))


@converts(*NONLINEAR)
def nonlinear_from_aten(cv, fx, args, kw):
    return cv.add(fx, 'act', [args[0]], dict(clamp=None, act=fx.target._opname.rstrip('_')))
