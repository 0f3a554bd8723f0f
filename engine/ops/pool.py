"""Pooling: maxpool (padding, dilation, ceil_mode), avgpool (padding,
ceil_mode, count_include_pad) and global_avgpool (the mean of each plane,
keepdims or flattened).  Max and average pooling run on the window kernels;
an average pool whose one window is the whole unpadded plane (ShuffleNet
V1's 7x7) runs as a global one."""
import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import WindowMode
from engine.kernels import descriptors
from engine.kernels.isa import PLANE_ALIGN
from engine.lowering import channel_runs, kernel_fields, name_kernel, window_op
from engine.ops import OpDef, register
from engine.ops.activations import check_epilogue
from engine.ops.aten import arg, converts, pair as pair_of
from engine.ops.checks import flag, one_input, pair
from engine.ops.conv import windows
from engine.ops.quant import int8_step, pool_multipliers


def pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    """PyTorch's rule: with ceil_mode the last window must start inside the
    input or its left padding."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def avgpool_divisors(in_h, in_w, out_h, out_w, kernel, stride, padding, count_include_pad):
    """1 / (number of pixels averaged) for every output pixel, as PyTorch counts."""
    def counts(size, out, k, s, p):
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        padded = end - start
        real = np.minimum(end, size) - np.maximum(start, 0)
        return padded, real
    ph_, rh = counts(in_h, out_h, kernel[0], stride[0], padding[0])
    pw_, rw = counts(in_w, out_w, kernel[1], stride[1], padding[1])
    n = np.outer(ph_, pw_) if count_include_pad else np.outer(rh, rw)
    return (1.0 / n).astype(np.float32)


def global_divisor(h, w):
    """Global average pooling's divisor, as average pooling's (float32 1 / count)."""
    return avgpool_divisors(h, w, 1, 1, (h, w), (1, 1), (0, 0), True)


def padded(x, kernel, stride, padding, dilation, ceil_mode, value):
    """((out_h, out_w), x padded by `value` enough for ceil_mode's partial windows)."""
    n, c, h, w = x.shape
    oh = pool_out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    need_h = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    extra_h = max(0, need_h - h - 2 * padding[0])
    extra_w = max(0, need_w - w - 2 * padding[1])
    pads = ((0, 0), (0, 0), (padding[0], padding[0] + extra_h), (padding[1], padding[1] + extra_w))
    return (oh, ow), np.pad(x, pads, constant_values=value)


class _Window(OpDef):
    int8 = True

    def check(self, node, ins):
        c, _ = one_input(node, ins, 4)
        a = node.attrs
        kh, kw = pair(a, 'kernel', node.name, 1)
        pair(a, 'stride', node.name, 1)
        ph, pw = pair(a, 'padding', node.name, 0)
        if node.op == 'maxpool':
            pair(a, 'dilation', node.name, 1)
        else:
            flag(a, 'count_include_pad', node.name)
        if 2 * ph > kh or 2 * pw > kw:
            raise ModelFileError(f'node {node.name!r}: padding must be at most half the kernel')
        flag(a, 'ceil_mode', node.name)
        check_epilogue(node, c)
        return c, 4

    def shape(self, node, ins):
        (c, h, w), a = ins[0], node.attrs
        (kh, kw), (sh, sw), (ph, pw) = a['kernel'], a['stride'], a['padding']
        dh, dw = a.get('dilation', (1, 1))
        return (c, pool_out_size(h, kh, sh, ph, dh, a['ceil_mode']),
                pool_out_size(w, kw, sw, pw, dw, a['ceil_mode']))


@register
class MaxPool(_Window):
    name = 'maxpool'

    def reference(self, node, ins):
        a = node.attrs
        x = np.asarray(ins[0], np.float64)
        out_hw, xp = padded(x, a['kernel'], a['stride'], a['padding'], a['dilation'], a['ceil_mode'], -np.inf)
        out = np.full(x.shape[:2] + out_hw, -np.inf)
        for _, _, patch in windows(xp, a['kernel'], a['stride'], a['dilation'], out_hw):
            out = np.maximum(out, patch)
        return out

    def lower(self, node, ctx):
        a = node.attrs
        if ctx.quants[node.inputs[0]] is not None:
            return _int8_window(node, ctx, WindowMode.WINDOW_MAX, kernel_fields(a, a['kernel']),
                                name_kernel(node.op, a['kernel'], a['stride']))
        record, need = window_op(ctx.kernels, ctx.step(node), ctx.spatial(node), a, a['kernel'],
                                 WindowMode.WINDOW_MAX, ctx.options, fill=-np.inf)
        return record, name_kernel(node.op, a['kernel'], a['stride']), need


@register
class AvgPool(_Window):
    name = 'avgpool'

    def reference(self, node, ins):
        a = node.attrs
        x = np.asarray(ins[0], np.float64)
        out_hw, xp = padded(x, a['kernel'], a['stride'], a['padding'], (1, 1), a['ceil_mode'], 0.0)
        out = np.zeros(x.shape[:2] + out_hw)
        for _, _, patch in windows(xp, a['kernel'], a['stride'], (1, 1), out_hw):
            out += patch
        return out * avgpool_divisors(x.shape[2], x.shape[3], *out_hw, a['kernel'], a['stride'],
                                      a['padding'], a['count_include_pad'])

    def lower(self, node, ctx):
        a, spatial = node.attrs, ctx.spatial(node)
        div = avgpool_divisors(spatial['in_h'], spatial['in_w'], spatial['out_h'], spatial['out_w'],
                               a['kernel'], a['stride'], a['padding'], a['count_include_pad'])
        if ctx.quants[node.inputs[0]] is not None:
            return _int8_window(node, ctx, WindowMode.WINDOW_AVG, kernel_fields(a, a['kernel']),
                                name_kernel(node.op, a['kernel'], a['stride']), div)
        if (tuple(a['kernel']) == (spatial['in_h'], spatial['in_w']) and not any(a['padding'])
                and (spatial['out_h'], spatial['out_w']) == (1, 1)):
            return _global_record(node, ctx)     # one window, the whole plane
        record, need = window_op(ctx.kernels, ctx.step(node), spatial, a, a['kernel'], WindowMode.WINDOW_AVG,
                                 ctx.options, fill=0.0,
                                 aux=np.concatenate([div.ravel(), np.zeros(PLANE_ALIGN, np.float32)]))
        return record, name_kernel(node.op, a['kernel'], a['stride']), need


def _int8_window(node, ctx, mode, kernel, kind, divisors=None):
    """(record, kind, scratch) of int8 max or average pooling (divisors:
    average's, 1 / count per output pixel; kernel: Kernel's fields)."""
    spatial, fields = ctx.spatial(node), {}
    if divisors is not None:
        fields = dict(qw=np.ones(kernel['kh'] * kernel['kw'], np.int8),
                      mult=pool_multipliers(divisors.ravel(), ctx.quants[node.inputs[0]], node.attrs['quant']))
    record = descriptors.Int8Window(**int8_step(node, ctx), **spatial, **kernel, mode=mode, **fields)
    return record, 'i8_' + kind, ctx.kernels.int8_window_scratch(record)


def _global_record(node, ctx):
    spatial = ctx.spatial(node)
    if ctx.quants[node.inputs[0]] is not None:      # int8: average pooling of one window, the plane
        h, w = spatial['in_h'], spatial['in_w']
        whole = dict(kh=h, kw=w, sh=1, sw=1, ph=0, pw=0, dh=1, dw=1)
        return _int8_window(node, ctx, WindowMode.WINDOW_AVG, whole, 'global_avgpool', global_divisor(h, w))
    record = descriptors.GlobalAvgPool(**ctx.step(node), in_h=spatial['in_h'], in_w=spatial['in_w'],
                                       **channel_runs(ctx.shapes[node.name][0], ctx.options))
    return record, 'global_avgpool', 0


@register
class GlobalAvgPool(OpDef):
    name = 'global_avgpool'
    int8 = True
    epilogue = False

    def check(self, node, ins):
        c, _ = one_input(node, ins, 4)
        return c, 4 if flag(node.attrs, 'keepdims', node.name) else 2

    def shape(self, node, ins):
        return ins[0][0], 1, 1

    def reference(self, node, ins):
        return ins[0].mean(axis=(2, 3), keepdims=node.attrs['keepdims'])

    def lower(self, node, ctx):
        return _global_record(node, ctx)


@converts('max_pool2d', 'max_pool2d_with_indices')
def maxpool_from_aten(cv, fx, args, kw):
    kernel = pair_of(args[1])
    stride = pair_of(arg(args, kw, 2, 'stride', []) or kernel)
    attrs = dict(kernel=kernel, stride=stride, padding=pair_of(arg(args, kw, 3, 'padding', 0)),
                 dilation=pair_of(arg(args, kw, 4, 'dilation', 1)),
                 ceil_mode=bool(arg(args, kw, 5, 'ceil_mode', False)))
    t = cv.add(fx, 'maxpool', [args[0]], attrs)
    return (t, None) if 'indices' in getattr(fx.target, '_opname', '') else t


@converts('avg_pool2d')
def avgpool_from_aten(cv, fx, args, kw):
    kernel = pair_of(args[1])
    stride = pair_of(arg(args, kw, 2, 'stride', []) or kernel)
    if arg(args, kw, 6, 'divisor_override', None) is not None:
        return cv.fail(fx, 'avg_pool2d with divisor_override')
    attrs = dict(kernel=kernel, stride=stride, padding=pair_of(arg(args, kw, 3, 'padding', 0)),
                 ceil_mode=bool(arg(args, kw, 4, 'ceil_mode', False)),
                 count_include_pad=bool(arg(args, kw, 5, 'count_include_pad', True)))
    return cv.add(fx, 'avgpool', [args[0]], attrs)


@converts('adaptive_avg_pool2d')
def adaptive_avgpool_from_aten(cv, fx, args, kw):
    size = pair_of(args[1])
    if size != [1, 1]:
        return cv.fail(fx, f'adaptive_avg_pool2d to {size} (only to 1x1)')
    return cv.add(fx, 'global_avgpool', [args[0]], dict(keepdims=True))


@converts('mean')
def mean_from_aten(cv, fx, args, kw):
    x = args[0]
    dims = arg(args, kw, 1, 'dim', None)
    keep = bool(arg(args, kw, 2, 'keepdim', False))
    if len(x.shape) != 4 or dims is None or sorted(d % 4 for d in dims) != [2, 3]:
        return cv.fail(fx, f'mean over dims {dims} (only over H and W of NCHW)')
    return cv.add(fx, 'global_avgpool', [x], dict(keepdims=keep))
