"""Element-wise ops over whole planes: add (residuals), mul (gating: two
tensors of one shape, or a tensor by one value per channel as
squeeze-excitation does) and act (a standalone clamp or activation, where
there is no producer to fuse it into)."""
import math

import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import EltwiseMode, Int8Mode
from engine.kernels.descriptors import Eltwise
from engine.lowering import channel_runs
from engine.ops import OpDef, per_channel_shape, register
from engine.ops.activations import check_epilogue
from engine.ops.aten import arg, converts, is_number
from engine.ops.checks import one_input
from engine.ops.quant import int8_eltwise_record, ratio


class _Binary(OpDef):
    def check(self, node, ins):
        """Two inputs of equal channels and rank (mul's second may be one
        value per channel; shape() checks the spatial sizes)."""
        if len(ins) != 2 or ins[0] != ins[1]:
            raise ModelFileError(f'node {node.name!r}: {node.op} takes two inputs of equal channels and rank, '
                                 f'got {ins}')
        check_epilogue(node, ins[0][0])
        return ins[0]

    def record(self, node, ctx, mode):
        return Eltwise(**ctx.step(node), **channel_runs(ctx.shapes[node.name][0], ctx.options), mode=mode,
                       in2_off=ctx.offsets(node.inputs[1]))


@register
class Add(_Binary):
    name = 'add'
    int8 = True

    def shape(self, node, ins):
        if ins[0] != ins[1]:
            raise ValueError(f'layer {node.name!r}: add of shapes {ins[0]} and {ins[1]}')
        return ins[0]

    def reference(self, node, ins):
        return ins[0] + ins[1]

    def lower(self, node, ctx):
        quant, (a, b) = node.attrs.get('quant'), (ctx.quants[i] for i in node.inputs)
        if quant is not None:           # int8: each operand rescaled to the output's scale
            return int8_eltwise_record(node, ctx, Int8Mode.I8_ADD, in_scale=float(ratio(a, quant)),
                                       in2_off=ctx.offsets(node.inputs[1]), in2_zero=b[1],
                                       in2_scale=float(ratio(b, quant)))
        return self.record(node, ctx, EltwiseMode.ELTWISE_ADD), node.op, 0


@register
class Mul(_Binary):
    name = 'mul'

    def shape(self, node, ins):
        if ins[1] != ins[0] and ins[1][1:] != (1, 1):
            raise ValueError(f'layer {node.name!r}: mul of shapes {ins[0]} and {ins[1]} '
                             '(the second must match or be one value per channel)')
        return ins[0]

    def reference(self, node, ins):
        return ins[0] * ins[1]

    def lower(self, node, ctx):
        per_channel = ctx.shapes[node.inputs[1]] != ctx.shapes[node.inputs[0]]
        mode = EltwiseMode.ELTWISE_MUL_CHANNEL if per_channel else EltwiseMode.ELTWISE_MUL
        return self.record(node, ctx, mode), node.op, 0


@register
class Act(OpDef):
    name = 'act'
    shape = staticmethod(per_channel_shape)

    def check(self, node, ins):
        c, rank = one_input(node, ins)
        check_epilogue(node, c)
        if node.attrs.get('clamp') is None and node.attrs.get('act') is None:
            raise ModelFileError(f'node {node.name!r}: act needs a clamp or an act')
        return c, rank

    def reference(self, node, ins):
        return ins[0]           # all of it is the epilogue

    def lower(self, node, ctx):
        record = Eltwise(**ctx.step(node), **channel_runs(ctx.shapes[node.name][0], ctx.options),
                         mode=EltwiseMode.ELTWISE_CLAMP)
        return record, node.op, 0


def affine_node(cv, fx, x, scale, shift):
    """x * scale + shift, scale and shift numbers or one per channel: a
    per-channel affine node (which the optimiser folds into a convolution
    or linear layer before it where it can)."""
    c = x.shape[1]
    return cv.add(fx, 'affine', [x], dict(clamp=None), dict(
        scale=np.broadcast_to(np.asarray(scale, np.float32).ravel(), (c,)).copy(),
        shift=np.broadcast_to(np.asarray(shift, np.float32).ravel(), (c,)).copy()))


@converts('add', 'sub', 'mul', 'div')
def arithmetic_from_aten(cv, fx, args, kw):
    """add / sub / mul / div of a tensor and a number, or of two tensors."""
    kind = getattr(fx.target, '_opname', '').rstrip('_')
    a, b = args[0], args[1] if len(args) > 1 else kw.get('other')
    alpha = arg(args, kw, 2, 'alpha', 1)
    if kind in ('add', 'sub') and alpha != 1:
        return cv.fail(fx, f'{kind} with alpha != 1')
    if cv.is_tensor(a) and is_number(b):
        if kind == 'div':
            if b and abs(1.0 / b) > float(np.finfo(np.float32).max):
                return cv.fail(fx, f'division by {b!r}, whose reciprocal is not a float32')
            scale, shift = (1.0 / b if b else math.copysign(math.inf, b)), 0.0   # x / 0: +-inf
        else:
            scale, shift = {'add': (1.0, b), 'sub': (1.0, -b), 'mul': (b, 0.0)}[kind]
        return affine_node(cv, fx, a, scale, shift)
    if is_number(a) and cv.is_tensor(b) and kind in ('add', 'mul'):
        return affine_node(cv, fx, b, *((1.0, a) if kind == 'add' else (a, 0.0)))
    if not (cv.is_tensor(a) and cv.is_tensor(b)):
        return cv.fail(fx, f'{kind} of {type(a).__name__} and {type(b).__name__}')
    if kind == 'add' and a.shape == b.shape:
        return cv.add(fx, 'add', [a, b], dict(clamp=None))
    if kind == 'mul' and a.shape == b.shape:
        return cv.add(fx, 'mul', [a, b], dict(clamp=None))
    if kind == 'mul' and len(a.shape) == 4 and len(b.shape) == 4:
        if a.shape[2:] == (1, 1):
            a, b = b, a         # the per-channel gate goes second
        if b.shape[:2] == a.shape[:2] and b.shape[2:] == (1, 1):
            return cv.add(fx, 'mul', [a, b], dict(clamp=None))
    return cv.fail(fx, f'{kind} of shapes {a.shape} and {b.shape} (only equal shapes, '
                       'or multiplying by one value per channel)')
