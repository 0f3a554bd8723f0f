"""Resizing planes (upsampling, as detection necks do): nearest,
nearest_exact and bilinear (align_corners either way), to a size or by a
scale factor, with PyTorch's meaning (interpolate, nn.Upsample; ONNX's
Resize where it means the same: engine/convert_onnx.py).

Attributes: mode (MODES), align_corners (bilinear only), and either size
[out_h, out_w] or scale [sh, sw] (the output is floor(input * scale), and
the scale itself, not the sizes' ratio, places the samples, as in PyTorch).
source_taps computes every output row's and column's two source pixels and
weights once per plan; the kernel (kernels/resize.pxi) and the reference
both read them, and PyTorch's results test them (tests/test_convert.py)."""
import math

import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import ResizeMode
from engine.kernels.descriptors import Resize as ResizeRecord
from engine.lowering import channel_runs
from engine.ops import OpDef, register
from engine.ops.aten import arg, converts
from engine.ops.checks import flag, one_input

MODES = {'nearest': ResizeMode.RESIZE_NEAREST, 'nearest_exact': ResizeMode.RESIZE_NEAREST,
         'bilinear': ResizeMode.RESIZE_BILINEAR}
MAX_SIZE = 1 << 16      # output heights and widths above this are refused
MAX_SCALE = 1024.0


def output_size(n_in, size, scale):
    """One dimension's output size: `size`, or floor(n_in * scale)."""
    return size if size is not None else int(math.floor(n_in * scale))


def source_taps(mode, align_corners, n_in, n_out, scale):
    """(i0, i1, w0, w1) for the n_out output positions of one dimension:
    the two input positions each reads and their weights (nearest: i0 with
    weight 1), computed as PyTorch's CPU kernels compute them, in float32
    (ATen's UpSample.h), since the rounding of the index decides which pixel
    nearest picks.  scale: the user's scale factor, or None (then the sizes'
    ratio)."""
    f32 = np.float32
    dst = np.arange(n_out)
    ratio = f32(1.0 / scale) if scale else f32(n_in) / f32(n_out)
    ones, zeros = np.ones(n_out, f32), np.zeros(n_out, f32)
    if mode == 'nearest':
        if n_out == n_in:
            i0 = dst
        elif n_out == 2 * n_in:
            i0 = dst >> 1
        else:
            i0 = np.minimum(np.floor(dst.astype(f32) * ratio).astype(np.int64), n_in - 1)
        return i0, i0, ones, zeros
    if mode == 'nearest_exact':     # (dst + 0.5) * scale in double, floored as a float
        i0 = np.minimum(np.floor(((dst + 0.5) * np.float64(ratio)).astype(f32)).astype(np.int64), n_in - 1)
        return i0, i0, ones, zeros
    if align_corners:
        ratio = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0)
        src = ratio * dst.astype(f32)
    else:
        src = np.maximum(ratio * (dst.astype(f32) + f32(0.5)) - f32(0.5), f32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(f32), f32(0), f32(1)).astype(f32)
    return i0, i0 + (i0 < n_in - 1), (f32(1) - w1).astype(f32), w1


def _taps(attrs, in_hw, out_hw):
    """source_taps of the rows, then of the columns."""
    scale = attrs.get('scale') or (None, None)
    return [source_taps(attrs['mode'], attrs['align_corners'], n, m, s)
            for n, m, s in zip(in_hw, out_hw, scale)]


@register
class Resize(OpDef):
    name = 'resize'
    epilogue = False

    def check(self, node, ins):
        c, _ = one_input(node, ins, 4)
        a, where = node.attrs, f'node {node.name!r}'
        if a.get('mode') not in MODES:
            raise ModelFileError(f'{where}: resize mode must be one of {sorted(MODES)}, got {a.get("mode")!r}')
        if flag(a, 'align_corners', node.name) and a['mode'] != 'bilinear':
            raise ModelFileError(f'{where}: align_corners is for bilinear resizing only')
        size, scale = a.get('size'), a.get('scale')
        if (size is None) == (scale is None):
            raise ModelFileError(f'{where}: resize takes a size or a scale, one of the two')
        if size is not None and not (
                isinstance(size, list) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE for v in size)):
            raise ModelFileError(f'{where}: size must be two integers in 1..{MAX_SIZE}, got {size!r}')
        if scale is not None and not (
                isinstance(scale, list) and len(scale) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= MAX_SCALE
                        for v in scale)):
            raise ModelFileError(f'{where}: scale must be two numbers in (0, {MAX_SCALE:g}], got {scale!r}')
        return c, 4

    def shape(self, node, ins):
        c, h, w = ins[0]
        size = node.attrs.get('size') or (None, None)
        scale = node.attrs.get('scale') or (None, None)
        out = tuple(output_size(n, m, s) for n, m, s in zip((h, w), size, scale))
        if not all(1 <= n <= MAX_SIZE for n in out):
            raise ValueError(f'layer {node.name!r}: resizing {h}x{w} gives {out[0]}x{out[1]} planes '
                             f'(each side must be 1..{MAX_SIZE})')
        return (c,) + out

    def reference(self, node, ins):
        x = np.asarray(ins[0], np.float64)
        (r0, r1, wy0, wy1), (c0, c1, wx0, wx1) = _taps(node.attrs, x.shape[2:], self._out(node, x.shape))
        if MODES[node.attrs['mode']] == ResizeMode.RESIZE_NEAREST:
            return x[:, :, r0][..., c0]     # a copy: inf stays inf (0 * inf would be NaN)
        rows = wy0[:, None] * x[:, :, r0] + wy1[:, None] * x[:, :, r1]
        return wx0 * rows[..., c0] + wx1 * rows[..., c1]

    def _out(self, node, shape):
        return self.shape(node, [tuple(shape[1:])])[1:]

    def lower(self, node, ctx):
        spatial = ctx.spatial(node)
        (r0, r1, wy0, wy1), (c0, c1, wx0, wx1) = _taps(
            node.attrs, (spatial['in_h'], spatial['in_w']), (spatial['out_h'], spatial['out_w']))
        in_w = spatial['in_w']
        record = ResizeRecord(**ctx.step(node), **spatial, **channel_runs(ctx.shapes[node.name][0], ctx.options),
                              mode=MODES[node.attrs['mode']],
                              tap_off=np.concatenate([r0 * in_w, r1 * in_w, c0, c1]),
                              aux=np.concatenate([wy0, wy1, wx0, wx1]))
        return record, f'resize_{node.attrs["mode"]}', ctx.kernels.resize_scratch_floats(spatial['out_w'])


def _resize(cv, fx, x, mode, size, align_corners, scales):
    """The node for an ATen upsample op: scales [sh, sw] when given (they
    set the output's size and, but for align_corners, the samples' places),
    else size [h, w]."""
    if len(x.shape) != 4:
        return cv.fail(fx, f'{mode} resizing of a rank-{len(x.shape)} tensor (only NCHW)')
    attrs = dict(mode=mode, align_corners=bool(align_corners))
    if scales is not None and all(s is not None for s in scales):
        attrs['scale'] = [float(s) for s in scales]
    else:
        attrs['size'] = [int(d) for d in size]
    return cv.add(fx, 'resize', [x], attrs)


def _scales(args, kw, i, names):
    """An upsample op's scale factors: a list at i (the .vec overloads), or
    one number per dimension at i, i + 1."""
    v = arg(args, kw, i, names[0], None)
    if isinstance(v, (list, tuple)) or v is None and len(names) == 1:
        return v
    return [v, arg(args, kw, i + 1, names[1], None)]


@converts('upsample_bilinear2d')
def bilinear_from_aten(cv, fx, args, kw):
    vec = getattr(fx.target, '_overloadname', '') == 'vec'
    names = ['scale_factors'] if vec else ['scales_h', 'scales_w']
    return _resize(cv, fx, args[0], 'bilinear', arg(args, kw, 1, 'output_size', None),
                   arg(args, kw, 2, 'align_corners', False), _scales(args, kw, 3, names))


@converts('upsample_nearest2d', '_upsample_nearest_exact2d')
def nearest_from_aten(cv, fx, args, kw):
    vec = getattr(fx.target, '_overloadname', '') == 'vec'
    names = ['scale_factors'] if vec else ['scales_h', 'scales_w']
    mode = 'nearest_exact' if 'exact' in getattr(fx.target, '_opname', '') else 'nearest'
    return _resize(cv, fx, args[0], mode, arg(args, kw, 1, 'output_size', None), False,
                   _scales(args, kw, 2, names))
