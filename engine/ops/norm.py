"""Per-channel scale and shift: batchnorm (inference statistics) and affine
(x * scale + shift: a BatchNorm with nothing to fold into, or arithmetic
with Python numbers).  The optimiser folds both into a convolution or
linear layer before them where it can (engine/optimize.py); what is left
runs as the element-wise kernel."""
import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import EltwiseMode
from engine.kernels.descriptors import Eltwise
from engine.lowering import channel_runs
from engine.ops import OpDef, per_channel_shape, register
from engine.ops.activations import check_epilogue
from engine.ops.aten import converts
from engine.ops.checks import one_input, param


def scale_shift(node):
    """(scale, shift) float64 of a batchnorm or affine node: x * scale + shift."""
    p = node.params
    if node.op == 'affine':
        return p['scale'].astype(np.float64), p['shift'].astype(np.float64)
    scale = p['weight'].astype(np.float64) / np.sqrt(p['running_var'].astype(np.float64) + node.attrs['eps'])
    return scale, p['bias'] - p['running_mean'] * scale


def per_channel(x, scale, shift):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * np.reshape(scale, shape) + np.reshape(shift, shape)


class _PerChannel(OpDef):
    shape = staticmethod(per_channel_shape)

    def reference(self, node, ins):
        return per_channel(ins[0], *scale_shift(node))

    def lower(self, node, ctx):
        scale, shift = scale_shift(node)
        record = Eltwise(**ctx.step(node), **channel_runs(ctx.shapes[node.name][0], ctx.options),
                         mode=EltwiseMode.ELTWISE_AFFINE, w=scale.astype(np.float32),
                         b=shift.astype(np.float32))
        return record, node.op, 0


@register
class BatchNorm(_PerChannel):
    name = 'batchnorm'
    epilogue = False

    def check(self, node, ins):
        c, rank = one_input(node, ins)
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            param(node, p, (c,))
        eps = node.attrs.get('eps')
        if not isinstance(eps, float) or not eps >= 0:
            raise ModelFileError(f'node {node.name!r}: eps must be a non-negative float, got {eps!r}')
        return c, rank


@register
class Affine(_PerChannel):
    name = 'affine'

    def check(self, node, ins):
        c, rank = one_input(node, ins)
        param(node, 'scale', (c,))
        param(node, 'shift', (c,))
        check_epilogue(node, c)
        return c, rank


@converts('batch_norm', '_native_batch_norm_legit_no_training')
def from_aten(cv, fx, args, kw):
    x = args[0]
    w, b, mean, var = (cv.param(a) for a in args[1:5])
    c = x.shape[1]
    w = np.ones(c, np.float32) if w is None else w
    b = np.zeros(c, np.float32) if b is None else b
    legit = getattr(fx.target, '_opname', '') == '_native_batch_norm_legit_no_training'
    if legit:       # _native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)
        eps = args[6]
    else:           # batch_norm(x, w, b, mean, var, training, momentum, eps, cudnn)
        if args[5]:
            return cv.fail(fx, 'batch_norm in training mode')
        eps = args[7]
    t = cv.add(fx, 'batchnorm', [x], dict(eps=float(eps)),
               dict(weight=w, bias=b, running_mean=mean, running_var=var))
    return (t, None, None) if legit else t
