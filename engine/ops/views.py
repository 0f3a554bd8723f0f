"""View ops, which move no data: gather (pick channels in any order:
shuffle, split, select), concat (along channels) and flatten (N, C, 1, 1 ->
N, C).  The planner turns them into offset tables: a channel shuffle is a
permutation of a tensor's table of plane offsets, a split a slice of it, a
concat two tables end to end.  And one layout of a model's outputs,
spatial_concat (a detection head's flatten, cat and permute), which the copy
out of the arena makes: no op reads it."""
import numpy as np

from engine.errors import ModelFileError
from engine.ops import OpDef, register
from engine.ops.aten import arg, converts
from engine.ops.checks import one_input


class _View(OpDef):
    view = True
    epilogue = False
    int8 = True

    def dtype(self, node, ins):
        """Its input's (graph.validate: a concat's inputs share one)."""
        return ins[0]


@register
class Gather(_View):
    name = 'gather'

    def check(self, node, ins):
        c, rank = one_input(node, ins)
        idx = node.attrs.get('indices')
        if (not isinstance(idx, list) or not idx or
                not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < c for i in idx)):
            raise ModelFileError(f'node {node.name!r}: indices must be a non-empty list of channels below {c}')
        return len(idx), rank

    def shape(self, node, ins):
        return (len(node.attrs['indices']),) + ins[0][1:]

    def reference(self, node, ins):
        return ins[0][:, node.attrs['indices']]


@register
class Concat(_View):
    name = 'concat'

    def check(self, node, ins):
        ranks = {r for _, r in ins}
        if len(ranks) != 1:
            raise ModelFileError(f'node {node.name!r}: concat of inputs of different ranks')
        return sum(c for c, _ in ins), ranks.pop()

    def shape(self, node, ins):
        if any(s[1:] != ins[0][1:] for s in ins):
            raise ValueError(f'layer {node.name!r}: concat of different spatial sizes {ins}')
        return (sum(s[0] for s in ins),) + ins[0][1:]

    def reference(self, node, ins):
        return np.concatenate(ins, axis=1)


@register
class Flatten(_View):
    name = 'flatten'

    def check(self, node, ins):
        c, _ = one_input(node, ins, 4)
        return c, 2

    def shape(self, node, ins):
        c, h, w = ins[0]
        if (h, w) != (1, 1):
            raise ValueError(f'layer {node.name!r}: flatten of {h}x{w} planes is not supported '
                             '(only 1x1, as after global pooling)')
        return c, 1, 1

    def reference(self, node, ins):
        return ins[0].reshape(ins[0].shape[0], -1)


@register
class SpatialConcat(_View):
    """Its inputs' planes flattened (N, C, H*W) and laid end to end, (N, C,
    pixels), or transposed to (N, pixels, C) (`transpose`): a detection
    head's points.  shape(): (C, pixels, 1)."""
    name = 'spatial_concat'
    output_only = True

    def check(self, node, ins):
        if len({c for c, _ in ins}) != 1 or any(r != 4 for _, r in ins):
            raise ModelFileError(f'node {node.name!r}: spatial_concat takes rank-4 inputs of equal channels, '
                                 f'got {ins}')
        if not isinstance(node.attrs.get('transpose'), bool):
            raise ModelFileError(f'node {node.name!r}: transpose must be true or false')
        return ins[0][0], 3

    def shape(self, node, ins):
        return ins[0][0], sum(h * w for _, h, w in ins), 1

    def reference(self, node, ins):
        out = np.concatenate([x.reshape(x.shape[0], x.shape[1], -1) for x in ins], axis=2)
        return out.transpose(0, 2, 1) if node.attrs['transpose'] else out

    def image_shape(self, node, chw, rank):
        return (chw[1], chw[0]) if node.attrs['transpose'] else (chw[0], chw[1])


@converts('cat')
def cat_from_aten(cv, fx, args, kw):
    parts = list(args[0])
    dim = arg(args, kw, 1, 'dim', 0)
    if dim % len(parts[0].shape) != 1:
        return cv.fail(fx, f'cat along dim {dim} (only along channels)')
    return cv.add(fx, 'concat', parts)
