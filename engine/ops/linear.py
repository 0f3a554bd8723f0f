"""linear: fully connected, on N x features (after a global pool and a
flatten).  Lowered to the fully connected tile (weights packed in tiles of
LINEAR_OUTPUTS outputs)."""
import numpy as np

from engine.errors import ModelFileError
from engine.lowering import linear_record
from engine.ops import OpDef, register
from engine.ops.activations import check_epilogue
from engine.ops.aten import arg, converts
from engine.ops.checks import integer, one_input, param
from engine.ops.quant import int8_layer_record


@register
class Linear(OpDef):
    name = 'linear'
    int8 = True

    def check(self, node, ins):
        c, _ = one_input(node, ins, 2)
        a = node.attrs
        cin, cout = integer(a, 'in_features', node.name), integer(a, 'out_features', node.name)
        check_epilogue(node, cout)
        if cin != c:
            raise ModelFileError(f'node {node.name!r}: in_features {cin} but its input has {c} features')
        param(node, 'weight', (cout, cin))
        if 'bias' in node.params:
            param(node, 'bias', (cout,))
        return cout, 2

    def shape(self, node, ins):
        return node.attrs['out_features'], 1, 1

    def reference(self, node, ins):
        out = np.asarray(ins[0], np.float64) @ np.asarray(node.params['weight'], np.float64).T
        bias = node.params.get('bias')
        return out if bias is None else out + bias

    def macs(self, node, shapes):
        return int(node.params['weight'].size)

    def lower(self, node, ctx):
        p = node.params
        if 'weight_scale' in p:         # an int8 layer: a 1x1 convolution of 1x1 planes
            one = dict(in_h=1, in_w=1, out_h=1, out_w=1, kh=1, kw=1, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1)
            return int8_layer_record(node, ctx, one, 1, 'linear')
        return (linear_record(ctx.kernels, p['weight'], p.get('bias'), ctx.step(node), None), 'linear',
                ctx.kernels.LINEAR_OUTPUTS)


@converts('linear')
def from_aten(cv, fx, args, kw):
    x = args[0]
    if cv.is_tensor(x) and len(x.shape) != 2:
        return cv.fail(fx, f'linear on a rank-{len(x.shape)} input (only N x features)')
    weight, bias = cv.param(args[1]), cv.param(arg(args, kw, 2, 'bias', None))
    params = {'weight': weight}
    if bias is not None:
        params['bias'] = bias
    return cv.add(fx, 'linear', [x], dict(in_features=int(weight.shape[1]),
                                          out_features=int(weight.shape[0]), clamp=None), params)
