"""Plain NumPy implementations of every op: the oracle the kernels are tested
against, and a slow interpreter of whole graphs.  Computed in float64."""
import numpy as np

from engine.graph import (avgpool_divisors, clamp_bounds, conv_out_size,
                          pool_out_size)


def clamp(x, bounds):
    lo, hi = clamp_bounds(bounds)
    return np.minimum(np.maximum(x, lo), hi) if bounds is not None else x


def activation(x, name):
    if name is None:
        return x
    if name in ('hardswish', 'hardsigmoid'):
        r = np.clip(x + 3, 0, 6) / 6
        return x * r if name == 'hardswish' else r
    s = 1 / (1 + np.exp(-x))
    return x * s if name == 'silu' else s


def _windows(xp, kernel, stride, dilation, out_hw):
    """Yield (i, j, view) of the padded input under each kernel tap."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_out_size(w, kw, stride[1], padding[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = np.asarray(weight[g * og:(g + 1) * og], np.float64)
        for i, j, patch in _windows(xs, (kh, kw), stride, dilation, (oh, ow)):
            out[:, g * og:(g + 1) * og] += np.einsum('nchw,oc->nohw', patch, ws[:, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode):
    n, c, h, w = x.shape
    oh = pool_out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    # enough padding on the far side for ceil_mode's partial windows
    need_h = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    extra_h = max(0, need_h - h - 2 * padding[0])
    extra_w = max(0, need_w - w - 2 * padding[1])
    pads = ((0, 0), (0, 0), (padding[0], padding[0] + extra_h), (padding[1], padding[1] + extra_w))
    return (oh, ow), pads


def max_pool2d(x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    x = np.asarray(x, np.float64)
    (oh, ow), pads = _pool_geometry(x, kernel, stride, padding, dilation, ceil_mode)
    xp = np.pad(x, pads, constant_values=-np.inf)
    out = np.full(x.shape[:2] + (oh, ow), -np.inf)
    for _, _, patch in _windows(xp, kernel, stride, dilation, (oh, ow)):
        out = np.maximum(out, patch)
    return out


def avg_pool2d(x, kernel, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True):
    x = np.asarray(x, np.float64)
    (oh, ow), pads = _pool_geometry(x, kernel, stride, padding, (1, 1), ceil_mode)
    xp = np.pad(x, pads)
    out = np.zeros(x.shape[:2] + (oh, ow))
    for _, _, patch in _windows(xp, kernel, stride, (1, 1), (oh, ow)):
        out += patch
    return out * avgpool_divisors(x.shape[2], x.shape[3], oh, ow, kernel, stride, padding,
                                  count_include_pad)


def linear(x, weight, bias=None):
    out = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        out += bias
    return out


def channel_shuffle(x, groups):
    """torchvision's channel_shuffle: view (N, g, C/g, H, W), swap 1 and 2."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


def run_node(node, ins):
    """clamp, then activation, of the op's result"""
    out = _run_op(node, ins)
    if node.op in ('batchnorm', 'gather', 'concat', 'flatten', 'global_avgpool'):
        return out
    return activation(clamp(out, node.attrs.get('clamp')), node.attrs.get('act'))


def _run_op(node, ins):
    a, p = node.attrs, node.params
    x = ins[0]
    if node.op == 'conv':
        out = conv2d(x, p['weight'], p.get('bias'), a['stride'], a['padding'], a['dilation'],
                     a['groups'])
        return out + ins[1] if len(ins) == 2 else out
    if node.op == 'linear':
        return linear(x, p['weight'], p.get('bias'))
    if node.op == 'batchnorm':
        scale = p['weight'] / np.sqrt(p['running_var'].astype(np.float64) + a['eps'])
        shift = p['bias'] - p['running_mean'] * scale
        return _per_channel(x, scale, shift)
    if node.op == 'affine':
        return _per_channel(x, p['scale'], p['shift'])
    if node.op == 'maxpool':
        return max_pool2d(x, a['kernel'], a['stride'], a['padding'], a['dilation'], a['ceil_mode'])
    if node.op == 'avgpool':
        return avg_pool2d(x, a['kernel'], a['stride'], a['padding'], a['ceil_mode'],
                          a['count_include_pad'])
    if node.op == 'global_avgpool':
        return x.mean(axis=(2, 3), keepdims=a['keepdims'])
    if node.op == 'add':
        return ins[0] + ins[1]
    if node.op == 'mul':
        return ins[0] * ins[1]
    if node.op == 'act':
        return x
    if node.op == 'gather':
        return x[:, a['indices']]
    if node.op == 'concat':
        return np.concatenate(ins, axis=1)
    if node.op == 'flatten':
        return x.reshape(x.shape[0], -1)
    raise ValueError(f'no reference for op {node.op!r}')


def _per_channel(x, scale, shift):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * np.reshape(scale, shape) + np.reshape(shift, shape)


def run_graph(graph, x):
    """Evaluate the graph with the NumPy reference ops; list of outputs."""
    values = {graph.input_name: np.asarray(x, np.float64)}
    for node in graph.nodes:
        values[node.name] = run_node(node, [values[i] for i in node.inputs])
    return [values[o] for o in graph.outputs]
