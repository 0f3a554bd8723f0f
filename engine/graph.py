"""The engine's graph IR: what the converter produces, the optimiser rewrites,
the file stores and the planner compiles.

A graph has one NCHW float32 input and a list of nodes in execution order;
every node produces one value named after the node (its module path in the
source model).  Channel counts are fixed; spatial sizes are not, so a graph
runs at any input size its layers accept.

Compute ops: conv, linear, batchnorm, affine, maxpool, avgpool,
global_avgpool, add, act.  View ops, which the planner turns into channel
offset tables and which therefore move no data: gather (pick channels in any
order: shuffle, split, select), concat (along channels), flatten (N,C,1,1 ->
N,C).

Activations are fused into the op that produces their input: a `clamp`
attribute [lo, hi] with None for an open end (ReLU = [0, None], ReLU6 =
[0, 6]), then an `act` attribute naming a nonlinearity (hardswish,
hardsigmoid, sigmoid, silu).  `mul` multiplies two tensors of one shape, or
a tensor by one value per channel (an N,C,1,1 gate, as squeeze-excitation
does).
"""
from dataclasses import dataclass, field

import numpy as np

from engine.errors import ModelFileError
from engine.sizes import SizeDomain

FORMAT_VERSION = 2          # 2: input_sizes; version 1 files (any size) still load


@dataclass
class Node:
    name: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)   # name -> float32 ndarray


@dataclass
class Graph:
    input_name: str
    input_shape: tuple          # example (N, C, H, W) the model was converted with
    nodes: list
    outputs: list
    meta: dict = field(default_factory=dict)
    input_sizes: SizeDomain = None   # the sizes the conversion holds for (engine/sizes.py); None: any

    @property
    def input_channels(self):
        return self.input_shape[1]


ACTIVATIONS = {'relu': [0.0, None], 'relu6': [0.0, 6.0]}
NONLINEAR = ('hardswish', 'hardsigmoid', 'sigmoid', 'silu')   # kernels: Act (kernels/abi.h)
MAX_WINDOW = 4096       # kernel sizes, strides, paddings and dilations above this are refused


def clamp_bounds(clamp):
    """(lo, hi) floats of a node's clamp attribute; infinite where open."""
    if clamp is None:
        return -np.inf, np.inf
    lo, hi = clamp
    return (-np.inf if lo is None else float(lo)), (np.inf if hi is None else float(hi))


# ---------------------------------------------------------------------------
# Validation: everything a planner relies on, checked before it runs.  Used on
# graphs from files (raising ModelFileError) and on converter output.

def _pair(attrs, key, node, minimum):
    v = attrs.get(key)
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(e, int) and not isinstance(e, bool) for e in v)):
        raise ModelFileError(f'node {node!r}: attribute {key!r} must be two integers, got {v!r}')
    if min(v) < minimum or max(v) > MAX_WINDOW:
        raise ModelFileError(f'node {node!r}: attribute {key!r} = {list(v)} out of range')
    return tuple(v)


def _int(attrs, key, node, minimum=1):
    v = attrs.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum or v > 1 << 24:
        raise ModelFileError(f'node {node!r}: attribute {key!r} must be an integer >= {minimum}, got {v!r}')
    return v


def _clamp(attrs, node):
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


def _param(node, key, shape):
    p = node.params.get(key)
    if p is None:
        raise ModelFileError(f'node {node.name!r}: parameter {key!r} is missing')
    if tuple(p.shape) != tuple(shape):
        raise ModelFileError(f'node {node.name!r}: parameter {key!r} has shape {tuple(p.shape)}, '
                             f'expected {tuple(shape)}')


def validate(graph):
    """Check the graph is well formed; return {value: (channels, rank)}.

    Raises ModelFileError naming the first problem."""
    if not isinstance(graph.input_shape, tuple) or len(graph.input_shape) != 4 or not all(
            isinstance(d, int) and 1 <= d <= 1 << 20 for d in graph.input_shape):
        raise ModelFileError(f'input shape must be 4 positive integers (N, C, H, W), got {graph.input_shape!r}')
    if graph.input_sizes is not None and not isinstance(graph.input_sizes, SizeDomain):
        raise ModelFileError(f'input_sizes must be a SizeDomain, got {type(graph.input_sizes).__name__}')
    if not isinstance(graph.input_name, str):
        raise ModelFileError(f'input name must be a string, got {graph.input_name!r}')
    info = {graph.input_name: (graph.input_channels, 4)}
    for node in graph.nodes:
        name = node.name
        if not isinstance(name, str) or not name:
            raise ModelFileError(f'node name must be a non-empty string, got {name!r}')
        if name in info:
            raise ModelFileError(f'node name {name!r} is used twice')
        if not isinstance(node.inputs, list) or not node.inputs or not all(isinstance(i, str) for i in node.inputs):
            raise ModelFileError(f'node {name!r}: inputs must be a non-empty list of value names')
        if not isinstance(node.op, str):
            raise ModelFileError(f'node {name!r}: op must be a string, got {node.op!r}')
        for i in node.inputs:
            if i not in info:
                raise ModelFileError(f'node {name!r} reads {i!r}, which is not defined before it')
        check = _CHECKS.get(node.op)
        if check is None:
            raise ModelFileError(f'node {name!r}: unknown op {node.op!r}')
        ins = [info[i] for i in node.inputs]
        info[name] = check(node, ins)
    if not graph.outputs or not isinstance(graph.outputs, list) or not all(isinstance(o, str) for o in graph.outputs):
        raise ModelFileError('the graph has no outputs (a list of value names)')
    for o in graph.outputs:
        if o not in info:
            raise ModelFileError(f'output {o!r} is not a value of the graph')
    return info


def _one_input(node, ins, rank=None):
    if len(ins) != 1:
        raise ModelFileError(f'node {node.name!r} ({node.op}) takes one input, got {len(ins)}')
    if rank is not None and ins[0][1] != rank:
        raise ModelFileError(f'node {node.name!r} ({node.op}) needs a rank-{rank} input, got rank {ins[0][1]}')
    return ins[0]


def _check_conv(node, ins):
    """A second input, when present, is a residual added before the activation
    (a fused add; not on depthwise convolutions)."""
    c, _ = _one_input(node, ins[:1], 4)
    a = node.attrs
    cin, cout, groups = _int(a, 'in_channels', node.name), _int(a, 'out_channels', node.name), _int(a, 'groups', node.name)
    kh, kw = _pair(a, 'kernel', node.name, 1)
    _pair(a, 'stride', node.name, 1)
    _pair(a, 'padding', node.name, 0)
    _pair(a, 'dilation', node.name, 1)
    _clamp(a, node.name)
    if cin != c:
        raise ModelFileError(f'node {node.name!r}: in_channels {cin} but its input has {c} channels')
    if cin % groups or cout % groups:
        raise ModelFileError(f'node {node.name!r}: groups {groups} does not divide channels {cin} -> {cout}')
    _param(node, 'weight', (cout, cin // groups, kh, kw))
    if 'bias' in node.params:
        _param(node, 'bias', (cout,))
    if len(ins) > 2 or (len(ins) == 2 and (ins[1] != (cout, 4) or cin // groups == 1)):
        raise ModelFileError(f'node {node.name!r}: a convolution takes its input and at most one residual '
                             f'of {cout} channels (not on depthwise convolutions), got {ins}')
    return cout, 4


def _check_linear(node, ins):
    c, _ = _one_input(node, ins, 2)
    a = node.attrs
    cin, cout = _int(a, 'in_features', node.name), _int(a, 'out_features', node.name)
    _clamp(a, node.name)
    if cin != c:
        raise ModelFileError(f'node {node.name!r}: in_features {cin} but its input has {c} features')
    _param(node, 'weight', (cout, cin))
    if 'bias' in node.params:
        _param(node, 'bias', (cout,))
    return cout, 2


def _check_batchnorm(node, ins):
    c, rank = _one_input(node, ins)
    for p in ('weight', 'bias', 'running_mean', 'running_var'):
        _param(node, p, (c,))
    eps = node.attrs.get('eps')
    if not isinstance(eps, float) or not eps >= 0:
        raise ModelFileError(f'node {node.name!r}: eps must be a non-negative float, got {eps!r}')
    return c, rank


def _check_affine(node, ins):
    c, rank = _one_input(node, ins)
    _param(node, 'scale', (c,))
    _param(node, 'shift', (c,))
    _clamp(node.attrs, node.name)
    return c, rank


def _check_pool(node, ins):
    c, _ = _one_input(node, ins, 4)
    a = node.attrs
    kh, kw = _pair(a, 'kernel', node.name, 1)
    _pair(a, 'stride', node.name, 1)
    ph, pw = _pair(a, 'padding', node.name, 0)
    if node.op == 'maxpool':
        _pair(a, 'dilation', node.name, 1)
    elif not isinstance(a.get('count_include_pad'), bool):
        raise ModelFileError(f'node {node.name!r}: count_include_pad must be true or false')
    if 2 * ph > kh or 2 * pw > kw:
        raise ModelFileError(f'node {node.name!r}: padding must be at most half the kernel')
    if not isinstance(a.get('ceil_mode'), bool):
        raise ModelFileError(f'node {node.name!r}: ceil_mode must be true or false')
    _clamp(a, node.name)
    return c, 4


def _check_global_avgpool(node, ins):
    c, _ = _one_input(node, ins, 4)
    if not isinstance(node.attrs.get('keepdims'), bool):
        raise ModelFileError(f'node {node.name!r}: keepdims must be true or false')
    return c, 4 if node.attrs['keepdims'] else 2


def _check_binary(node, ins):
    """add, mul: two inputs of equal channels and rank (mul's second may be
    one value per channel; the planner checks the spatial sizes)"""
    if len(ins) != 2 or ins[0] != ins[1]:
        raise ModelFileError(f'node {node.name!r}: {node.op} takes two inputs of equal channels and rank, '
                             f'got {ins}')
    _clamp(node.attrs, node.name)
    return ins[0]


def _check_act(node, ins):
    c, rank = _one_input(node, ins)
    _clamp(node.attrs, node.name)
    if node.attrs.get('clamp') is None and node.attrs.get('act') is None:
        raise ModelFileError(f'node {node.name!r}: act needs a clamp or an act')
    return c, rank


def _check_gather(node, ins):
    c, rank = _one_input(node, ins)
    idx = node.attrs.get('indices')
    if (not isinstance(idx, list) or not idx or
            not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < c for i in idx)):
        raise ModelFileError(f'node {node.name!r}: indices must be a non-empty list of channels below {c}')
    return len(idx), rank


def _check_concat(node, ins):
    ranks = {r for _, r in ins}
    if len(ranks) != 1:
        raise ModelFileError(f'node {node.name!r}: concat of inputs of different ranks')
    return sum(c for c, _ in ins), ranks.pop()


def _check_flatten(node, ins):
    c, _ = _one_input(node, ins, 4)
    return c, 2


_CHECKS = {
    'conv': _check_conv, 'linear': _check_linear, 'batchnorm': _check_batchnorm,
    'affine': _check_affine, 'maxpool': _check_pool, 'avgpool': _check_pool,
    'global_avgpool': _check_global_avgpool, 'add': _check_binary, 'act': _check_act,
    'mul': _check_binary,
    'gather': _check_gather, 'concat': _check_concat, 'flatten': _check_flatten,
}
VIEW_OPS = ('gather', 'concat', 'flatten')


# ---------------------------------------------------------------------------
# Spatial shapes, shared by the reference ops and the planner.

def conv_out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


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


def infer_shapes(graph, height, width):
    """value -> (C, H, W) for an input of height x width; (C, 1, 1) for rank 2.
    ValueError names the first layer the size does not fit."""
    shapes = {graph.input_name: (graph.input_channels, height, width)}
    for node in graph.nodes:
        ins = [shapes[i] for i in node.inputs]
        c, h, w = ins[0]
        a = node.attrs
        if node.op == 'conv':
            (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a['kernel'], a['stride'], a['padding'], a['dilation']
            out = (a['out_channels'], conv_out_size(h, kh, sh, ph, dh), conv_out_size(w, kw, sw, pw, dw))
            if len(ins) == 2 and ins[1] != out:
                raise ValueError(f'layer {node.name!r}: residual of shape {ins[1]} for an output of {out}')
        elif node.op in ('maxpool', 'avgpool'):
            (kh, kw), (sh, sw), (ph, pw) = a['kernel'], a['stride'], a['padding']
            dh, dw = a.get('dilation', (1, 1))
            out = (c, pool_out_size(h, kh, sh, ph, dh, a['ceil_mode']),
                   pool_out_size(w, kw, sw, pw, dw, a['ceil_mode']))
        elif node.op == 'linear':
            out = (a['out_features'], 1, 1)
        elif node.op == 'global_avgpool':
            out = (c, 1, 1)
        elif node.op == 'gather':
            out = (len(a['indices']), h, w)
        elif node.op == 'concat':
            if any(s[1:] != (h, w) for s in ins):
                raise ValueError(f'layer {node.name!r}: concat of different spatial sizes {ins}')
            out = (sum(s[0] for s in ins), h, w)
        elif node.op == 'flatten':
            if (h, w) != (1, 1):
                raise ValueError(f'layer {node.name!r}: flatten of {h}x{w} planes is not supported '
                                 '(only 1x1, as after global pooling)')
            out = (c, 1, 1)
        elif node.op == 'add':
            if ins[0] != ins[1]:
                raise ValueError(f'layer {node.name!r}: add of shapes {ins[0]} and {ins[1]}')
            out = ins[0]
        elif node.op == 'mul':
            if ins[1] != ins[0] and ins[1][1:] != (1, 1):
                raise ValueError(f'layer {node.name!r}: mul of shapes {ins[0]} and {ins[1]} '
                                 '(the second must match or be one value per channel)')
            out = ins[0]
        else:   # per-channel ops keep the shape
            out = ins[0]
        if out[1] < 1 or out[2] < 1:
            raise ValueError(f'input {height}x{width} is too small for layer {node.name!r} '
                             f'({node.op}): its output would be {out[1]}x{out[2]}')
        shapes[node.name] = out
    return shapes


# ---------------------------------------------------------------------------
# JSON form, for the model file.

def to_dict(graph):
    """(dict for JSON, {tensor key: array})"""
    tensors = {}
    nodes = []
    for n in graph.nodes:
        params = {}
        for k, v in n.params.items():
            key = f'{n.name}.{k}'
            tensors[key] = np.ascontiguousarray(v, dtype=np.float32)
            params[k] = key
        nodes.append({'name': n.name, 'op': n.op, 'inputs': list(n.inputs),
                      'attrs': n.attrs, 'params': params})
    inp = {'name': graph.input_name, 'shape': list(graph.input_shape)}
    if graph.input_sizes is not None:
        inp['sizes'] = graph.input_sizes.to_dict()
    d = {'version': FORMAT_VERSION, 'input': inp, 'nodes': nodes, 'outputs': list(graph.outputs),
         'meta': graph.meta}
    return d, tensors


def from_dict(d, tensors):
    """Graph from its JSON form; ModelFileError on any structural problem."""
    try:
        if d.get('version') not in (1, FORMAT_VERSION):
            raise ModelFileError(f'graph version {d.get("version")!r} is not supported (this engine reads '
                                 f'1 to {FORMAT_VERSION}): a file from a newer engine?')
        inp = d['input']
        nodes = []
        for nd in d['nodes']:
            params = {}
            for k, key in nd.get('params', {}).items():
                if key not in tensors:
                    raise ModelFileError(f'node {nd.get("name")!r}: tensor {key!r} is not in the file')
                params[k] = tensors[key]
            attrs = nd.get('attrs', {})
            if not isinstance(attrs, dict):
                raise ModelFileError(f'node {nd.get("name")!r}: attrs must be an object')
            nodes.append(Node(nd['name'], nd['op'], list(nd['inputs']), attrs, params))
        meta = d.get('meta', {})
        sizes = inp.get('sizes')
        graph = Graph(inp['name'], tuple(inp['shape']), nodes, list(d['outputs']),
                      meta if isinstance(meta, dict) else {},
                      None if sizes is None else SizeDomain.from_dict(sizes))
    except ModelFileError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ModelFileError(f'malformed graph description: {type(e).__name__}: {e}') from None
    validate(graph)
    return graph
