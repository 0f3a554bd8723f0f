"""Graph rewrites, as named passes over the IR.

optimize(graph), between conversion and the file: fold BatchNorm (and
scalar arithmetic) into the convolution or linear layer before it, fuse
residual adds, x * hardsigmoid(x) and activations into their producer (through concats),
simplify channel views, drop what does not reach an output.

optimize_for_size(graph, shapes, options), in the planner for one input
size (the choices depend on it and on PlanOptions): split_quantizing_layers
(int8 models), fuse_expand_depthwise and split_reductions (float32 layers),
into the plan-only ops of engine/ops/fused.py."""
from dataclasses import replace

import numpy as np

from engine.graph import Node, infer_shapes, is_view, validate, value_dtypes
from engine.ops import REGISTRY
from engine.ops.activations import ACT_PARAM
from engine.ops.conv import is_depthwise, is_pointwise
from engine.ops.norm import scale_shift


def optimize(graph):
    nodes = [replace(n, inputs=list(n.inputs), attrs=dict(n.attrs), params=dict(n.params)) for n in graph.nodes]
    g = replace(graph, nodes=nodes, outputs=list(graph.outputs), meta=dict(graph.meta))
    _fold_batchnorm(g)
    _fuse_residual_adds(g)
    _fuse_hardswish(g)
    _fuse_activations(g)
    _simplify_views(g)
    _drop_dead(g)
    return g


def _only_consumer(g, value, node):
    """True when node is the one reader of value and value is no output."""
    users = [n for n in g.nodes if value in n.inputs]
    return users == [node] and node.inputs.count(value) == 1 and value not in g.outputs


def _merge_into(g, kept, removed):
    """Drop node `removed` (which read kept); its readers now read `kept`."""
    g.nodes.remove(removed)
    for n in g.nodes:
        n.inputs = [kept.name if i == removed.name else i for i in n.inputs]
    g.outputs = [kept.name if o == removed.name else o for o in g.outputs]


def _no_activation(node):
    return node.attrs.get('clamp') is None and node.attrs.get('act') is None


def _fold_batchnorm(g):
    """BatchNorm and affine nodes after a convolution or linear layer become
    its weights and bias; other BatchNorms become affine nodes."""
    by_name = {n.name: n for n in g.nodes}
    for bn in [n for n in g.nodes if n.op in ('batchnorm', 'affine')]:
        prev = by_name.get(bn.inputs[0])
        if bn.op == 'affine' and not _no_activation(bn):
            continue
        scale, shift = scale_shift(bn)
        folded = None
        if (prev is not None and prev.op in ('conv', 'linear') and _no_activation(prev)
                and _only_consumer(g, prev.name, bn)):
            folded = _folded(prev, scale, shift)
        if folded is not None:
            prev.params['weight'], prev.params['bias'] = folded
            _merge_into(g, prev, bn)
        else:   # nothing to fold into: a per-channel affine op
            bn.op, bn.attrs = 'affine', {'clamp': None}
            bn.params = {'scale': scale.astype(np.float32), 'shift': shift.astype(np.float32)}


def _folded(layer, scale, shift):
    """(weight, bias) of a convolution or linear layer followed by
    x * scale + shift, or None when that would not be finite: a division by
    zero must give PyTorch's +-inf (an affine op's x * inf), not the NaN of
    inf times a zero weight summed with the others."""
    w = layer.params['weight'].astype(np.float64)
    b = layer.params.get('bias', np.zeros(len(scale), np.float32)).astype(np.float64)
    with np.errstate(over='ignore', invalid='ignore'):
        weight = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        bias = (b * scale + shift).astype(np.float32)
    if not (np.isfinite(scale).all() and np.isfinite(shift).all()
            and np.isfinite(weight).all() and np.isfinite(bias).all()):
        return None
    return weight, bias


def _fuse_residual_adds(g):
    """add(conv(x), r) -> conv(x) with residual r, added in the convolution's
    output tile before its activation: one pass over memory fewer.  The
    convolution moves to where the add was, after r is computed."""
    by_name = {n.name: n for n in g.nodes}
    for add in [n for n in g.nodes if n.op == 'add' and n.attrs.get('act') is None]:
        for mine, other in ((0, 1), (1, 0)):
            conv = by_name.get(add.inputs[mine])
            if (conv is None or conv.op != 'conv' or len(conv.inputs) != 1 or not _no_activation(conv)
                    or conv.attrs['in_channels'] // conv.attrs['groups'] == 1
                    or add.inputs[other] == conv.name or not _only_consumer(g, conv.name, add)):
                continue
            conv.inputs.append(add.inputs[other])
            conv.attrs['clamp'] = add.attrs.get('clamp')
            g.nodes.remove(conv)
            g.nodes[g.nodes.index(add)] = conv
            for n in g.nodes:
                n.inputs = [conv.name if i == add.name else i for i in n.inputs]
            g.outputs = [conv.name if o == add.name else o for o in g.outputs]
            break


def _fuse_hardswish(g):
    """mul(x, hardsigmoid(x)), hard-swish as ONNX files before opset 14
    spell it, -> a hardswish act node, which the next pass fuses into x's
    producer: one pass over memory instead of two."""
    by_name = {n.name: n for n in g.nodes}
    for mul in [n for n in g.nodes if n.op == 'mul' and _no_activation(n)]:
        for mine, other in ((0, 1), (1, 0)):
            gate = by_name.get(mul.inputs[mine])
            if (gate is not None and gate.op == 'act' and gate.attrs.get('act') == 'hardsigmoid'
                    and gate.attrs.get('clamp') is None and gate.inputs == [mul.inputs[other]]
                    and _only_consumer(g, gate.name, mul)):
                g.nodes.remove(gate)
                mul.op, mul.inputs, mul.attrs = 'act', [mul.inputs[other]], {'clamp': None, 'act': 'hardswish'}
                break


def _fuse_activations(g):
    """An act node joins its producer (clamp and act both travel); over a
    concat whose inputs all can take it, it joins each of them."""
    by_name = {n.name: n for n in g.nodes}
    for act in [n for n in g.nodes if n.op == 'act']:
        prev = by_name.get(act.inputs[0])
        if prev is None or not _only_consumer(g, prev.name, act):
            continue
        if REGISTRY[prev.op].epilogue and _can_take(prev, act):
            _take(prev, act)
            _merge_into(g, prev, act)
        elif prev.op == 'concat':
            parts = [by_name.get(i) for i in prev.inputs]
            if all(p is not None and REGISTRY[p.op].epilogue and _can_take(p, act) and
                   _only_consumer(g, p.name, prev) for p in parts):
                start, channels = 0, _channels(g)
                for p in parts:     # each part takes its channels' numbers of a parametric one
                    _take(p, act, slice(start, start + channels[p.name]))
                    start += channels[p.name]
                _merge_into(g, prev, act)


def _can_take(node, act):
    """node computes act(clamp(x)): a later clamp intersects its clamp, a later
    nonlinearity fits if it has none yet."""
    return node.attrs.get('act') is None


def _take(node, act, channels=slice(None)):
    """node takes act's epilogue (channels: which of act's channels it makes)."""
    lo, hi = act.attrs.get('clamp') or (None, None)
    if node.attrs.get('clamp') is not None:        # clamp of a clamp: compose them
        lo, hi = compose_clamps(node.attrs['clamp'], [lo, hi])
    node.attrs['clamp'] = None if (lo, hi) == (None, None) else [lo, hi]
    if act.attrs.get('act') is not None:
        node.attrs['act'] = act.attrs['act']
        if ACT_PARAM in act.params:
            node.params[ACT_PARAM] = act.params[ACT_PARAM][channels]


def compose_clamps(first, then):
    """[lo, hi] of clamp(clamp(x, *first), *then) as one clamp (None: open).
    Each end of the first is clamped by the second, so disjoint ranges give
    a constant, as PyTorch's two clamps do: clamp(clamp(y, 0, 6), 10, 20) = 10."""
    def bound(v):
        if v is None:
            return None
        lo, hi = then
        v = v if lo is None else max(v, lo)
        return v if hi is None else min(v, hi)
    lo, hi = bound(first[0]), bound(first[1])
    return [then[0] if first[0] is None else lo, then[1] if first[1] is None else hi]


def _simplify_views(g):
    """gather of gather -> one gather; a concat of gathers of one value -> one
    gather; identity gathers disappear."""
    by_name = {n.name: n for n in g.nodes}
    channels = _channels(g)
    for node in list(g.nodes):
        if node.op == 'concat':
            _concat_to_gather(node, by_name, channels)
        if node.op != 'gather':
            continue
        src = by_name.get(node.inputs[0])
        if src is not None and src.op == 'gather':
            node.attrs['indices'] = [src.attrs['indices'][i] for i in node.attrs['indices']]
            node.inputs = list(src.inputs)
        if node.attrs['indices'] == list(range(channels[node.inputs[0]])):
            kept = by_name.get(node.inputs[0])
            if kept is None:        # the graph input itself
                continue
            _merge_into(g, kept, node)


def _concat_to_gather(node, by_name, channels):
    sources, indices = set(), []
    for i in node.inputs:
        src = by_name.get(i)
        if src is not None and src.op == 'gather':
            sources.add(src.inputs[0])
            indices += src.attrs['indices']
        else:
            sources.add(i)
            indices += list(range(channels[i]))
    if len(sources) == 1:
        node.op, node.inputs, node.attrs = 'gather', [sources.pop()], {'indices': indices}


def _channels(g):
    return {k: c for k, (c, _) in validate(g).items()}


def _drop_dead(g):
    live = set(g.outputs)
    for n in reversed(g.nodes):
        if n.name in live:
            live.update(n.inputs)
    g.nodes = [n for n in g.nodes if n.name in live]


# ---------------------------------------------------------------------------
# Rewrites for one input size.  They replace nodes with new ones (the plan-only
# ops wrap the nodes they stand for) and never change a node of the graph given.

def optimize_for_size(graph, shapes, options):
    """(graph, shapes) for one input size (`shapes`: infer_shapes of graph)."""
    g = replace(graph, nodes=list(graph.nodes), outputs=list(graph.outputs))
    _, h, w = shapes[g.input_name]
    if split_quantizing_layers(g):
        shapes = infer_shapes(g, h, w)
    if options.fuse_expand_dw:
        fuse_expand_depthwise(g, shapes, options)
    if options.k_split:
        split_reductions(g, shapes, options)
    return g, infer_shapes(g, h, w)


def split_quantizing_layers(g):
    """A float32 layer writing int8 (a `quant` on a layer reading float32:
    the first convolution of an int8 model) writes float32, and a quantize
    node, with the layer's name, converts it: the float32 kernels have no
    int8 epilogue (yet).  Returns whether it split any."""
    dtypes = value_dtypes(g)
    split = False
    names = {g.input_name} | {n.name for n in g.nodes}
    for n in list(g.nodes):
        if (n.attrs.get('quant') is None or is_view(n) or n.op == 'quantize'
                or any(dtypes[i] == 'int8' for i in n.inputs)):
            continue
        float_name = f'{n.name}/float32'
        while float_name in names:
            float_name += "'"
        attrs = {k: v for k, v in n.attrs.items() if k != 'quant'}
        layer = replace(n, name=float_name, attrs=dict(attrs, label=n.name))
        i = g.nodes.index(n)
        g.nodes[i:i + 1] = [layer, Node(n.name, 'quantize', [float_name], {'quant': n.attrs['quant']})]
        split = True
    return split


def _float32_layer(node):
    """Neither int8 weights nor an int8 output: the float32 fusions apply."""
    return 'weight_scale' not in node.params and node.attrs.get('quant') is None


def fuse_expand_depthwise(g, shapes, options):
    """A 1x1 convolution and the depthwise one that alone reads it become one
    expand_depthwise node: MobileNetV2's expansion and depthwise layers at the
    large planes, where the expanded tensor (options.fuse_min_bytes and
    more) would not stay in cache."""
    readers = {}
    for n in g.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    for o in g.outputs:
        readers[o] = readers.get(o, 0) + 1
    producer = {n.name: n for n in g.nodes}
    for dw in list(g.nodes):
        a = dw.attrs
        if not (is_depthwise(dw) and _float32_layer(dw) and len(dw.inputs) == 1
                and tuple(a['stride']) in ((1, 1), (2, 2)) and tuple(a['dilation']) == (1, 1)):
            continue
        pw = producer.get(dw.inputs[0])
        if (pw is None or not is_pointwise(pw) or not _float32_layer(pw) or len(pw.inputs) != 1
                or readers[pw.name] != 1):
            continue
        c, h, w = shapes[pw.name]
        if h * w > 1 and 4 * c * h * w >= options.fuse_min_bytes:
            g.nodes[g.nodes.index(dw)] = Node(dw.name, 'expand_depthwise', list(pw.inputs),
                                              {'expand': pw, 'depthwise': dw, 'label': f'{pw.name}+{dw.name}'})
            g.nodes.remove(pw)


def split_reductions(g, shapes, options):
    """A 1x1 convolution reading a depthwise one becomes conv_k_halves (its
    reduction in two halves of the input channels) and add_halves.  The
    depthwise op gives each thread a contiguous run of channels, so with two
    threads a thread reducing its half of them reads planes its own core
    wrote, where a split by pixels or output channels reads half of its
    input from the other core (measured: 25-30 % slower).  From
    options.k_split_min_k input channels, on planes of
    options.k_split_pixels; not after a fused expansion (split by rows)."""
    producer = {n.name: n for n in g.nodes}
    names = {g.input_name} | set(producer)
    for n in list(g.nodes):
        src = producer.get(n.inputs[0])
        pixels = shapes[n.name][1] * shapes[n.name][2]
        if not (is_pointwise(n) and _float32_layer(n) and n.attrs['in_channels'] >= options.k_split_min_k
                and options.k_split_pixels[0] <= pixels <= options.k_split_pixels[1]
                and src is not None and is_depthwise(src)):
            continue
        halves_name = f'{n.name}/k-halves'
        while halves_name in names:
            halves_name += "'"
        halves = Node(halves_name, 'conv_k_halves', list(n.inputs), {'conv': n, 'label': n.name})
        total = Node(n.name, 'add_halves', [halves.name],
                     {'clamp': n.attrs.get('clamp'), 'act': n.attrs.get('act'), 'label': n.name},
                     {k: v for k, v in n.params.items() if k == ACT_PARAM})
        i = g.nodes.index(n)
        g.nodes[i:i + 1] = [halves, total]
