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
from engine.ops.checks import param

CLAMPS = {'relu': [0.0, None], 'relu6': [0.0, 6.0]}
ACT_PARAM = 'act_slope'     # the node parameter of a parametric activation: one number per channel


def _hard(x):
    return np.clip(x + 3, 0, 6) / 6


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> NumPy reference: f(x, param), param the activation's numbers
# broadcast over the channels (None for the activations without one)
NONLINEAR = {
    'hardswish': lambda x, _: x * _hard(x),
    'hardsigmoid': lambda x, _: _hard(x),
    'sigmoid': lambda x, _: _sigmoid(x),
    'silu': lambda x, _: x * _sigmoid(x),
    'leaky_relu': lambda x, slope: np.where(x >= 0, x, x * slope),     # PReLU too
    'tanh': lambda x, _: np.tanh(x),
}
PARAMETRIC = {'leaky_relu'}     # the activations that read a number per channel (node.params[ACT_PARAM])


def clamp_bounds(clamp):
    """(lo, hi) floats of a node's clamp attribute; infinite where open."""
    if clamp is None:
        return -np.inf, np.inf
    lo, hi = clamp
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


def check_epilogue(node, channels):
    """The clamp and act attributes of a node with `channels` output
    channels, and a parametric activation's numbers, checked."""
    attrs = node.attrs
    act = attrs.get('act')
    if act is not None and (not isinstance(act, str) or act not in NONLINEAR):
        raise ModelFileError(f'node {node.name!r}: unknown activation {act!r}')
    if act in PARAMETRIC:
        param(node, ACT_PARAM, (channels,))
    elif ACT_PARAM in node.params:
        raise ModelFileError(f'node {node.name!r}: parameter {ACT_PARAM!r} without a parametric activation')
    c = attrs.get('clamp')
    if c is None:
        return
    ok = isinstance(c, (list, tuple)) and len(c) == 2 and all(
        e is None or (isinstance(e, (int, float)) and not isinstance(e, bool) and -3e38 < e < 3e38) for e in c)
    if not ok:
        raise ModelFileError(f'node {node.name!r}: clamp must be [lo, hi] numbers or null, got {c!r}')


def apply(x, node):
    """The reference epilogue of a node's output x: clamp, then the nonlinearity."""
    clamp = node.attrs.get('clamp')
    if clamp is not None:
        lo, hi = clamp_bounds(clamp)
        x = np.minimum(np.maximum(x, lo), hi)
    act = node.attrs.get('act')
    if act is None:
        return x
    p = node.params.get(ACT_PARAM)
    if p is not None:
        p = np.asarray(p, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return NONLINEAR[act](x, p)


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


@converts('leaky_relu')
def leaky_relu_from_aten(cv, fx, args, kw):
    slope = float(arg(args, kw, 1, 'negative_slope', 0.01))
    return cv.add(fx, 'act', [args[0]], dict(clamp=None, act='leaky_relu'),
                  {ACT_PARAM: np.full(args[0].shape[1], slope, np.float32)})


@converts('prelu', '_prelu_kernel')
def prelu_from_aten(cv, fx, args, kw):
    """PReLU: leaky_relu with a learned slope, one for every channel or one for all."""
    x, slope = args[0], cv.param(args[1]).ravel()
    if slope.size not in (1, x.shape[1]):
        return cv.fail(fx, f'prelu with {slope.size} slopes for {x.shape[1]} channels')
    return cv.add(fx, 'act', [x], dict(clamp=None, act='leaky_relu'),
                  {ACT_PARAM: np.broadcast_to(slope, (x.shape[1],)).astype(np.float32)})
