"""Element-wise ops over whole planes: add (residuals), mul (gating: two
tensors of one shape, or a tensor by one value per channel as
squeeze-excitation does) and act (a standalone clamp or activation, where
there is no producer to fuse it into)."""
from engine.errors import ModelFileError
from engine.kernels.abi import EltwiseMode
from engine.kernels.descriptors import Eltwise
from engine.lowering import channel_runs
from engine.ops import OpDef, per_channel_shape, register
from engine.ops.activations import check_epilogue
from engine.ops.checks import one_input


class _Binary(OpDef):
    def check(self, node, ins):
        """Two inputs of equal channels and rank (mul's second may be one
        value per channel; shape() checks the spatial sizes)."""
        if len(ins) != 2 or ins[0] != ins[1]:
            raise ModelFileError(f'node {node.name!r}: {node.op} takes two inputs of equal channels and rank, '
                                 f'got {ins}')
        check_epilogue(node.attrs, node.name)
        return ins[0]

    def record(self, node, ctx, mode):
        return Eltwise(**ctx.step(node), **channel_runs(ctx.shapes[node.name][0], ctx.options), mode=mode,
                       in2_off=ctx.offsets(node.inputs[1]))


@register
class Add(_Binary):
    name = 'add'

    def shape(self, node, ins):
        if ins[0] != ins[1]:
            raise ValueError(f'layer {node.name!r}: add of shapes {ins[0]} and {ins[1]}')
        return ins[0]

    def reference(self, node, ins):
        return ins[0] + ins[1]

    def lower(self, node, ctx):
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
        check_epilogue(node.attrs, node.name)
        if node.attrs.get('clamp') is None and node.attrs.get('act') is None:
            raise ModelFileError(f'node {node.name!r}: act needs a clamp or an act')
        return c, rank

    def reference(self, node, ins):
        return ins[0]           # all of it is the epilogue

    def lower(self, node, ctx):
        record = Eltwise(**ctx.step(node), **channel_runs(ctx.shapes[node.name][0], ctx.options),
                         mode=EltwiseMode.ELTWISE_CLAMP)
        return record, node.op, 0
