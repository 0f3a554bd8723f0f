"""int8 models: what a quantized graph computes, how calibration picks its
scales, and the kernels' exact oracle (integer_node, integer_values).
engine.quantize (engine/quantization.py) makes int8 models with these; the
int8 kinds of the kernel modules (kernels/int8.pxi) run them.

The scheme (TFLite's and XNNPACK's signed one):
- An int8 value holds q in [-128, 127], meaning scale * (q - zero_point),
  one (scale, zero_point) per tensor: the `quant` attribute of the node that
  writes it.  Zero is exactly one q, so padding and ReLU lose nothing.
- An int8 layer's weights are int8 in [-127, 127], one scale per output
  channel (its `weight` and `weight_scale` parameters; symmetric, so sums
  need no weight zero point).  It sums (q - zero_point) * w in int32, adds
  its bias rounded to the sum's scale (input scale * weight scale), and
  writes round(sum * input scale * weight scale / output scale) + output
  zero point (half to even), clamped to int8 and to its epilogue's clamp;
  or, with no `quant` of its own, the sum as float32 (the classifier).  A
  float32 layer with a `quant` rounds its output so (a quantizing epilogue:
  the first convolution).
- Views move no data, so the values they join share one quantization: a
  concat's inputs and output, a shuffle's or a split's input and outputs
  (scale_groups).  A ShuffleNetV2 stage is one group: each unit's concat
  holds half of the previous one's.  Max pooling keeps its input's too.
- Where a value is read by float32 and int8 layers both, `quantize` and
  `dequantize` nodes convert it (engine/ops/quant.py).

The reference computes this in real numbers: each layer on its inputs' and
weights' real values (q times scales, exact in float64), its output rounded
to its grid.  Kernels computing in int32 and requantizing in float32 may
differ from it by one step where a value falls near a rounding boundary
(KERNEL_STEPS); integer_node is their arithmetic exactly (the numbers it
uses are engine/ops/quant.py's, which the planner gives the kernels)."""
from dataclasses import replace

import numpy as np

from engine.graph import Node, is_view, value_dtypes, value_quants
from engine.ops import REGISTRY
from engine.ops.activations import clamp_bounds
from engine.ops.conv import conv2d, windows
from engine.ops.pool import avgpool_divisors, global_divisor, padded
from engine.ops.quant import (FLOAT_OUTPUT_OPS, INT8_RANGE, WEIGHT_RANGE, fma32, layer_arithmetic, pool_multipliers, q_bounds,
                              quantize_multiplier, ratio, requantize, sums_fit)

KERNEL_STEPS = 1        # a kernel's int8 outputs against the reference's, in steps of q at most
SHARES_INPUT_SCALE = ('maxpool',)      # int8 layers whose output keeps their input's quantization
METHODS = ('minmax', 'percentile', 'entropy', 'mse')
PERCENTILE = 99.99      # the percentile method's range: this share of the calibration values
HISTOGRAM_BINS = 2048   # of |x|, for the methods other than minmax
SIGNED_LEVELS = 128     # steps of int8 on one side of zero: what |x| of a signed range gets (256 if one-signed)


# -- the grid ------------------------------------------------------------------

def to_int8(x, quant):
    """The q an int8 tensor of quantization (scale, zero_point) holds for real x."""
    scale, zero = quant
    return np.clip(np.rint(np.asarray(x, np.float64) / scale) + zero, *INT8_RANGE).astype(np.int8)


def on_grid(x, quant):
    """x rounded to the nearest values an int8 tensor of that quantization holds."""
    scale, zero = quant
    return scale * (to_int8(x, quant).astype(np.float64) - zero)


def real_weights(node):
    """The node with its int8 weights as the real numbers they mean (times
    their channel's scale), for the reference; other nodes as they are."""
    scale = node.params.get('weight_scale')
    if scale is None:
        return node
    w = node.params['weight']
    real = w.astype(np.float64) * scale.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    return replace(node, params={**node.params, 'weight': real})


def quant_of(lo, hi):
    """The (scale, zero_point) whose 256 steps span [lo, hi] widened to hold
    zero (ReLU's outputs, [0, hi], get zero point -128)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not np.isfinite(hi - lo):
        raise ValueError(f'cannot quantize values in [{lo}, {hi}]')
    if hi == lo:            # all zeros
        return 1.0, 0
    qmin, qmax = INT8_RANGE
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(np.clip(np.rint(qmin - lo / scale), qmin, qmax))


def weight_scales(weight):
    """Per output channel: the scale that maps its largest |w| to 127 (1 for
    a channel of zeros)."""
    amax = np.abs(np.asarray(weight, np.float64)).reshape(len(weight), -1).max(axis=1)
    return np.where(amax > 0, amax / WEIGHT_RANGE[1], 1.0).astype(np.float32)


def int8_weights(weight, scale):
    """weight rounded to q = round(w / scale) per output channel (as float32)."""
    s = np.asarray(scale, np.float64).reshape((-1,) + (1,) * (np.ndim(weight) - 1))
    return np.clip(np.rint(np.asarray(weight, np.float64) / s), *WEIGHT_RANGE).astype(np.float32)


def integer_layer(node, q, in_quant, residual=None):
    """What an int8 convolution or fully connected layer's kernel computes
    from the q of its input (and of its residual: (q, quant)), in integer
    arithmetic: int32 sums of (q - zero point) * w plus the bias rounded to
    the sums' scale, then float32(sum) * float32(multiplier) (plus the
    residual's (q - zero point) * its ratio, fused), rounded half to even,
    plus the zero point, clamped (or, with no quant, float32(sum) *
    float32(scale) plus the residual's real value, fused, clamped).  The kernels' exact oracle; the reference's
    real arithmetic is within KERNEL_STEPS of it."""
    a, p = node.attrs, node.params
    x = np.asarray(q, np.float64) - in_quant[1]
    if node.op == 'conv':
        acc = conv2d(x, p['weight'], None, a['stride'], a['padding'], a['dilation'], a['groups'])
    else:
        acc = x @ p['weight'].astype(np.float64).T
    qb, mult = layer_arithmetic(node, in_quant)
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    acc = (acc + qb.reshape(shape)).astype(np.int64)
    assert np.abs(acc).max(initial=0) < 1 << 31, 'int32 sums overflow'
    y = acc.astype(np.float32) * mult.reshape(shape)
    quant = a.get('quant')
    if residual is not None:
        rq, r_quant = residual
        y = fma32(np.asarray(rq, np.int32) - r_quant[1], ratio(r_quant, quant), y)
    if quant is None:
        return np.clip(y, *clamp_bounds(a.get('clamp'))).astype(np.float32)
    return requantize(y, quant, q_bounds(a.get('clamp'), quant))


def integer_node(node, ins, quants):
    """What the kernels compute for one node of an int8 graph: ins are its
    inputs as the kernels hold them (int8 values as q, float32 ones as
    float32), quants {value: (scale, zero point) or None}.  int8 layers
    exactly (their oracle); float32 layers by their reference."""
    from engine.reference import run_node
    definition, a = REGISTRY[node.op], node.attrs
    in_quant, quant = quants[node.inputs[0]], a.get('quant')
    if is_view(node):
        return definition.reference(node, ins)
    if node.op == 'quantize':
        y = np.asarray(ins[0], np.float32) * quantize_multiplier(quant)
        return requantize(y, quant, INT8_RANGE)
    if node.op == 'dequantize':
        return (np.asarray(ins[0], np.int32) - in_quant[1]).astype(np.float32) * np.float32(in_quant[0])
    if in_quant is None:        # a float32 layer
        return np.asarray(run_node(node, [np.asarray(x, np.float64) for x in ins]), np.float32)
    if node.op in ('conv', 'linear'):
        residual = (ins[1], quants[node.inputs[1]]) if len(ins) == 2 else None
        return integer_layer(node, ins[0], in_quant, residual)
    bounds = q_bounds(a.get('clamp'), quant)
    x = np.asarray(ins[0], np.int64)
    if node.op == 'maxpool':
        return np.clip(definition.reference(node, [x.astype(np.float64)]), *bounds).astype(np.int8)
    if node.op == 'add':
        y = (x - in_quant[1]).astype(np.float32) * ratio(in_quant, quant)
        b_quant = quants[node.inputs[1]]
        return requantize(fma32(np.asarray(ins[1], np.int64) - b_quant[1], ratio(b_quant, quant), y), quant, bounds)
    x = x - in_quant[1]
    if node.op == 'global_avgpool':
        div = global_divisor(*x.shape[2:])
        y = requantize(x.sum(axis=(2, 3), keepdims=True).astype(np.float32) * pool_multipliers(div, in_quant, quant),
                       quant, bounds)
        return y if a['keepdims'] else y.reshape(y.shape[:2])
    if node.op == 'avgpool':
        out_hw, xp = padded(x, a['kernel'], a['stride'], a['padding'], (1, 1), a['ceil_mode'], 0)
        sums = sum(patch for _, _, patch in windows(xp, a['kernel'], a['stride'], (1, 1), out_hw))
        div = avgpool_divisors(x.shape[2], x.shape[3], *out_hw, a['kernel'], a['stride'], a['padding'],
                               a['count_include_pad'])
        return requantize(sums.astype(np.float32) * pool_multipliers(div, in_quant, quant), quant, bounds)
    raise ValueError(f'node {node.name!r}: op {node.op} has no int8 form')


def integer_values(graph, x):
    """Every value of an int8 graph on float32 input x as its kernels hold
    it (integer_node): exact where every layer from the input on is int8."""
    quants = value_quants(graph)
    out = {graph.input_name: np.asarray(x, np.float32)}
    for node in graph.nodes:
        out[node.name] = integer_node(node, [out[i] for i in node.inputs], quants)
    return out


# -- which values share a quantization -----------------------------------------

def scale_groups(graph):
    """value -> the name of its group (one of its members): values joined by
    views, and max pooling's input and output, must share one quantization."""
    parent = {}

    def root(v):
        while parent.get(v, v) != v:
            v = parent[v]
        return v

    for node in graph.nodes:
        if is_view(node) or node.op in SHARES_INPUT_SCALE:
            for i in node.inputs:
                parent[root(i)] = root(node.name)
    return {v: root(v) for v in [graph.input_name] + [n.name for n in graph.nodes]}


# -- calibration -----------------------------------------------------------------

def _batches(inputs, batch_size):
    for start in range(0, len(inputs), batch_size):
        yield np.asarray(inputs[start:start + batch_size], np.float64)


def calibrate(graph, inputs, method='mse', batch_size=8, progress=None):
    """group -> (lo, hi): the range each scale group's quantization should
    span, from the float32 graph's values on `inputs` (N, C, H, W),
    computed by the reference.  method: 'minmax' (the extremes),
    'percentile' (PERCENTILE % of the nonzero |values|), 'entropy' (the
    clipping whose quantized histogram has the least KL divergence from the
    full one: TensorRT's), 'mse' (the least squared error, rounding and
    clipping together: the best or near it on every model
    tools/int8_accuracy.py measures).  progress(done, total) is called after
    each batch of each pass."""
    from engine.reference import values
    if method not in METHODS:
        raise ValueError(f'calibration method must be one of {", ".join(METHODS)}, got {method!r}')
    inputs = np.asarray(inputs)
    if inputs.ndim != 4 or len(inputs) == 0:
        raise ValueError(f'calibration inputs must be a non-empty N x C x H x W array, got shape {inputs.shape}')
    groups = scale_groups(graph)
    passes = 1 if method == 'minmax' else 2
    total, done = passes * -(-len(inputs) // batch_size), 0
    lo, hi = {}, {}
    for x in _batches(inputs, batch_size):
        for v, y in values(graph, x).items():
            g = groups[v]
            lo[g], hi[g] = min(lo.get(g, np.inf), float(y.min())), max(hi.get(g, -np.inf), float(y.max()))
        done += 1
        if progress:
            progress(done, total)
    if method == 'minmax':
        return {g: (lo[g], hi[g]) for g in lo}
    top = {g: max(-lo[g], hi[g]) for g in lo}
    hist = {g: np.zeros(HISTOGRAM_BINS) for g in lo}
    for x in _batches(inputs, batch_size):
        for v, y in values(graph, x).items():
            g = groups[v]
            if top[g] > 0:      # (exact zeros left out: they lose nothing, and ReLU makes many)
                hist[g] += np.histogram(np.abs(y[y != 0]), HISTOGRAM_BINS, (0, top[g]))[0]
        done += 1
        if progress:
            progress(done, total)
    ranges = {}
    for g in lo:
        levels = SIGNED_LEVELS * (2 if lo[g] >= 0 else 1)
        if method == 'percentile':
            clip = _percentile_clip(hist[g])
        elif method == 'entropy':
            clip = _entropy_clip(hist[g], levels)
        else:
            clip = _mse_clip(hist[g], levels)
        t = clip * top[g] / HISTOGRAM_BINS if top[g] > 0 else 0.0
        ranges[g] = (max(lo[g], -t), min(hi[g], t))
    return ranges


def _percentile_clip(hist):
    """The bin edge (in bins) below which PERCENTILE % of the histogram lies."""
    cum = np.cumsum(hist)
    return int(np.searchsorted(cum, cum[-1] * PERCENTILE / 100)) + 1


def _mse_clip(hist, levels):
    """The bin edge (in bins) whose clipping makes the least squared error:
    rounding (a step^2 / 12 per value below it, steps of edge / levels) plus
    clipping (the distance past it of each value above)."""
    centers = np.arange(len(hist)) + 0.5
    edges = np.arange(1, len(hist) + 1)
    below = np.cumsum(hist)
    # sum over bins past each edge of count * (center - edge)^2, expanded in powers of edge
    c0, c1, c2 = (np.cumsum((hist * centers ** k)[::-1])[::-1] for k in (0, 1, 2))
    past = np.append(c2[1:], 0) - 2 * edges * np.append(c1[1:], 0) + edges ** 2 * np.append(c0[1:], 0)
    return int(edges[np.argmin(below * (edges / levels) ** 2 / 12 + past)])


def _entropy_clip(hist, levels):
    """The bin edge (in bins) whose clipping loses the least information:
    the KL divergence of the clipped histogram (the outliers in its last
    bin) from the histogram below the edge quantized to `levels` levels."""
    best, best_kl = len(hist), np.inf
    for t in range(levels, len(hist) + 1, 16):
        p = hist[:t].astype(np.float64).copy()
        p[-1] += hist[t:].sum()
        # each level takes an equal span of bins, its count spread back over its nonzero bins
        edges = np.linspace(0, t, levels + 1).astype(int)
        q = np.zeros(t)
        for a, b in zip(edges[:-1], edges[1:]):
            nonzero = hist[a:b] > 0
            if nonzero.any():
                q[a:b][nonzero] = hist[a:b].sum() / nonzero.sum()
        mask = p > 0
        pn, qn = p[mask] / p.sum(), q[mask] / q.sum()
        kl = float(np.sum(pn * np.log(pn / np.maximum(qn, 1e-12))))
        if kl < best_kl:
            best, best_kl = t, kl
    return best


def calibration_inputs(path, spec, channels, limit=None):
    """Calibration inputs (N, C, H, W float32) from `path`: a folder of
    images (found as `classify` finds them) or an .npz / .npy of uint8 images
    (N x H x W, or N x H x W x C), each preprocessed by `spec` (a model's
    preprocessing); or an .npy / .npz of float inputs (N x C x H x W), as
    they are.  An .npz gives its 'inputs' or 'images' array, or its only
    one.  At most `limit` of them."""
    import os
    from engine.classify import collect
    from engine.preprocess import to_array
    if os.path.isdir(path):
        files, _ = collect([path])
        if not files:
            raise ValueError(f'{path}: no image files in this folder')
        return np.stack([to_array(f, spec, channels) for f in files[:limit]])
    if not path.endswith(('.npy', '.npz')):
        raise ValueError(f'{path}: calibration data is a folder of images or an .npy / .npz file')
    data = np.load(path, allow_pickle=False)
    if path.endswith('.npz'):
        names = [k for k in ('inputs', 'images') if k in data] or list(data)
        if len(names) != 1:
            raise ValueError(f'{path}: which array? it has {", ".join(data)} (name one inputs or images)')
        data = data[names[0]]
    data = data[:limit]
    if data.dtype == np.uint8 and data.ndim in (3, 4):
        return np.stack([to_array(im, spec, channels) for im in data])
    if data.ndim == 4 and data.shape[1] == channels and np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32)
    raise ValueError(f'{path}: expected uint8 images (N x H x W[ x C]) or float inputs (N x {channels} x H x W), '
                     f'got {data.dtype} {data.shape}')


def layer_errors(graph, quantized, inputs):
    """Each layer of the int8 graph beside the float32 one on `inputs`: dicts
    with name, op, dtype (of its output), quant ((scale, zero point) or
    None) and sqnr_db (its output against float32's, in dB), in graph order."""
    from engine.reference import values
    exact, approx = values(graph, inputs), values(quantized, inputs)
    quants = value_quants(quantized)
    return [dict(name=n.name, op=n.op, dtype='int8' if quants[n.name] else 'float32', quant=quants[n.name],
                 sqnr_db=sqnr_db(exact[n.name], approx[n.name]))
            for n in quantized.nodes if n.name in exact and not is_view(n)]


# -- the int8 graph ---------------------------------------------------------------

def keep_reasons(graph, keep=None):
    """layer -> why it stays float32: the names in `keep` (None: the
    defaults, a first convolution on at most 4 channels), and the layers no
    int8 kernel can run (ops whose OpDef.int8 is False, nonlinear activations)."""
    reasons = {}
    for node in graph.nodes:
        if is_view(node):
            continue
        if not REGISTRY[node.op].int8:
            reasons[node.name] = f'op {node.op} has no int8 form'
        elif node.attrs.get('act') is not None:
            reasons[node.name] = f'activation {node.attrs["act"]} has no int8 form'
    names = {n.name for n in graph.nodes}
    if keep is None:
        first = [n for n in graph.nodes if graph.input_name in n.inputs and n.op == 'conv']
        for n in first:
            if n.attrs['in_channels'] <= 4:
                reasons.setdefault(n.name, f'reads the image ({n.attrs["in_channels"]} channels): its int8 '
                                           'sums would be mostly padding, and its error reaches every layer')
    else:
        unknown = set(keep) - names
        if unknown:
            raise ValueError(f'no layers named {", ".join(map(repr, sorted(unknown)))} in the model')
        for name in keep:
            reasons.setdefault(name, 'kept float32 as asked')
    return reasons


def quantize_graph(graph, ranges, keep=None):
    """(int8 graph, {layer: why it stays float32}) of a float32 graph:
    ranges from calibrate() (per scale group); keep as keep_reasons takes it.

    Each layer that can runs in int8.  A value is int8 where int8 layers
    read it and its writer can write int8 (an int8 layer, or a float32 one
    whose readers are all int8), and where an int8 layer that cannot write
    float32 (not of FLOAT_OUTPUT_OPS: pooling, add) writes it; a float32
    layer or a model output reading an int8 value reads it through a
    dequantize node, an int8 layer reading a float32 value through a
    quantize one."""
    if 'int8' in value_dtypes(graph).values():
        raise ValueError('the graph is int8 already')
    reasons = keep_reasons(graph, keep)
    groups = scale_groups(graph)

    def quant(v):
        return list(quant_of(*ranges[groups[v]]))

    for n in graph.nodes:
        if n.name not in reasons and not is_view(n) and 'bias' in n.params and not _sums_fit(n, quant(n.inputs[0])):
            reasons[n.name] = ('its bias in the scale of its int8 sums would overflow int32 (its input\'s range '
                               'is tiny beside the bias)')
    writers = {graph.input_name: ()}     # value -> the layers whose outputs it holds (views: several)
    for node in graph.nodes:
        writers[node.name] = sum((writers[i] for i in node.inputs), ()) if is_view(node) else (node.name,)
    int8_layer = {n.name: not is_view(n) and n.name not in reasons for n in graph.nodes}
    readers = {}        # layer -> 'int8' / 'float32' of each reader of its output (through views)
    for node in graph.nodes:
        if not is_view(node):
            for i in node.inputs:
                for w in writers[i]:
                    readers.setdefault(w, []).append('int8' if int8_layer[node.name] else 'float32')
    for o in graph.outputs:
        for w in writers[o]:
            readers.setdefault(w, []).append('float32')

    op = {n.name: n.op for n in graph.nodes}

    def int8_output(layer):
        r = readers.get(layer, [])
        if int8_layer[layer] and op[layer] not in FLOAT_OUTPUT_OPS:
            return True         # (float32 readers read it through a dequantize node)
        return 'int8' in r and (int8_layer[layer] or all(t == 'int8' for t in r))

    is_int8 = {v: any(map(int8_output, w)) for v, w in writers.items()}   # a view: if any part is

    nodes, converted = [], {}

    def read(value, as_int8):
        """The name of `value` as an int8 layer (as_int8) or a float32 one reads it."""
        if is_int8[value] == as_int8:
            return value
        key = (value, as_int8)
        if key not in converted:
            op = 'quantize' if as_int8 else 'dequantize'
            attrs = {'quant': quant(value)} if as_int8 else {}
            converted[key] = f'{value}.{op}'
            nodes.append(Node(converted[key], op, [value], attrs))
        return converted[key]

    for n in graph.nodes:
        attrs, params, storage = dict(n.attrs), dict(n.params), n.storage
        if is_view(n):
            inputs = [read(i, is_int8[n.name]) for i in n.inputs]
        else:
            inputs = [read(i, int8_layer[n.name]) for i in n.inputs]
            if int8_layer[n.name] and 'weight' in params:
                scale = weight_scales(params['weight'])
                params['weight'], params['weight_scale'], storage = int8_weights(params['weight'], scale), scale, 'int8'
            if is_int8[n.name]:
                attrs['quant'] = quant(n.name)
        nodes.append(Node(n.name, n.op, inputs, attrs, params, storage))
    outputs = [read(o, False) for o in graph.outputs]
    meta = dict(graph.meta, int8={'kept_float32': reasons})
    return replace(graph, nodes=nodes, outputs=outputs, meta=meta), reasons


def _sums_fit(node, in_quant):
    """Whether a float32 layer's int32 sums would hold its bias at in_quant's
    scale and its largest products (ops/quant.py: sums_fit, the planner's rule)."""
    w = node.params['weight']
    sw = weight_scales(w).astype(np.float64)
    return sums_fit(np.rint(np.asarray(node.params['bias'], np.float64) / (in_quant[0] * sw)), w[0].size)


def sqnr_db(reference, test):
    """Signal-to-quantization-noise ratio of test against reference, in dB."""
    reference, test = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    noise = np.sum((test - reference) ** 2)
    return float('inf') if noise == 0 else float(10 * np.log10(np.sum(reference ** 2) / noise))
