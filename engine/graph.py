"""The engine's graph IR: what the converter produces, the optimiser rewrites,
the file stores and the planner compiles.

A graph has one NCHW float32 input and a list of nodes in execution order;
every node produces one value named after the node (its module path in the
source model).  Channel counts are fixed; spatial sizes are not, so a graph
runs at any input size its layers accept (and its input_sizes allow).

What each op is (its attributes, its output's shape, its NumPy reference,
its kernel) is defined in one module per op in engine/ops/; validate and
infer_shapes walk the graph and ask those definitions.  View ops (gather,
concat, flatten) move no data.  Activations are fused into the op that
produces their input (engine/ops/activations.py).
"""
from dataclasses import dataclass, field, replace

import numpy as np

from engine.errors import ModelFileError
from engine.ops import REGISTRY
from engine.ops.quant import FLOAT_OUTPUT_OPS, WEIGHT_RANGE, check_quant
from engine.sizes import SizeDomain

FORMAT_VERSION = 2          # 2: input_sizes; version 1 files (any size) still load
WEIGHT_STORAGE = ('float32', 'float16')     # how a file may store a float32 layer's kernels and matrices (stored_dtype)


@dataclass
class Node:
    name: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)   # name -> float32 ndarray
    storage: str = 'float32'    # the file's type for its kernels and matrices (stored_dtype); float32 in memory


@dataclass
class Graph:
    input_name: str
    input_shape: tuple          # example (N, C, H, W) the model was converted with
    nodes: list
    outputs: list
    meta: dict = field(default_factory=dict)
    input_sizes: SizeDomain = None   # the sizes the conversion holds for (engine/sizes.py); None: any
    input_dtype: str = 'float32'     # the input's element type (kernels/abi.h ENGINE_DTYPES)

    @property
    def input_channels(self):
        return self.input_shape[1]


# ---------------------------------------------------------------------------
# Validation: everything a planner relies on, checked before it runs.  Used on
# graphs from files (raising ModelFileError) and on converter output.

def validate(graph):
    """Check the graph is well formed; return {value: (channels, rank)}.

    Raises ModelFileError naming the first problem."""
    if not isinstance(graph.input_shape, tuple) or len(graph.input_shape) != 4 or not all(
            isinstance(d, int) and 1 <= d <= 1 << 20 for d in graph.input_shape):
        raise ModelFileError(f'input shape must be 4 positive integers (N, C, H, W), got {graph.input_shape!r}')
    if graph.input_sizes is not None and not isinstance(graph.input_sizes, SizeDomain):
        raise ModelFileError(f'input_sizes must be a SizeDomain, got {type(graph.input_sizes).__name__}')
    if graph.input_dtype != 'float32':
        raise ModelFileError(f'input dtype {graph.input_dtype!r}: this version runs float32 models only')
    if not isinstance(graph.input_name, str):
        raise ModelFileError(f'input name must be a string, got {graph.input_name!r}')
    info = {graph.input_name: (graph.input_channels, 4)}
    quants = {graph.input_name: None}     # value -> (scale, zero point) of an int8 value, None for float32
    layouts = set()         # output-only values (OpDef.output_only): no node may read them
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
            if i in layouts:
                raise ModelFileError(f'node {name!r} reads {i!r}, the layout of an output (only the model '
                                     'returns it)')
        definition = REGISTRY.get(node.op)
        if definition is None or definition.plan_only:
            raise ModelFileError(f'node {name!r}: unknown op {node.op!r}')
        info[name] = definition.check(node, [info[i] for i in node.inputs])
        quants[name] = _check_int8(node, definition, [quants[i] for i in node.inputs])
        if definition.output_only:
            layouts.add(name)
    if not graph.outputs or not isinstance(graph.outputs, list) or not all(isinstance(o, str) for o in graph.outputs):
        raise ModelFileError('the graph has no outputs (a list of value names)')
    for o in graph.outputs:
        if o not in info:
            raise ModelFileError(f'output {o!r} is not a value of the graph')
        if quants[o] is not None:
            raise ModelFileError(f'output {o!r} is int8: a model returns float32 (dequantize it)')
    return info


def _check_int8(node, definition, ins):
    """The quantization of the node's output (value_quants), its inputs'
    being `ins`; ModelFileError where int8 values reach an op that cannot
    read them, a concat joins different ones, or an int8 layer's weights are
    not int8 with a scale per output channel."""
    reads_int8 = any(q is not None for q in ins)
    if reads_int8 and not definition.int8:
        raise ModelFileError(f'node {node.name!r}: op {node.op!r} cannot read int8 values')
    if definition.view:
        if 'quant' in node.attrs or len(set(ins)) > 1:
            raise ModelFileError(f'node {node.name!r}: the values of a view share one quantization '
                                 f'(got {sorted(set(map(str, ins)))}), and it has none of its own')
        return ins[0]
    if node.op == 'dequantize' and not reads_int8:
        raise ModelFileError(f'node {node.name!r}: dequantize of a value that is already float32')
    if reads_int8 and node.op not in FLOAT_OUTPUT_OPS and 'quant' not in node.attrs:
        raise ModelFileError(f'node {node.name!r}: an int8 {node.op} writes int8: it needs its quant')
    if 'weight' in node.params:
        w, scale = node.params['weight'], node.params.get('weight_scale')
        if not (scale is not None) == reads_int8 == (node.storage == 'int8'):
            raise ModelFileError(f'node {node.name!r}: a layer reading int8 values has int8 weights with a '
                                 'weight_scale, and only such a layer')
        if scale is not None:
            if scale.shape != w.shape[:1] or not np.all(np.isfinite(scale) & (scale > 0)):
                raise ModelFileError(f'node {node.name!r}: weight_scale must be {w.shape[0]} positive numbers')
            if not np.all((w == np.round(w)) & (w >= WEIGHT_RANGE[0]) & (w <= WEIGHT_RANGE[1])):
                raise ModelFileError(f'node {node.name!r}: int8 weights must be integers in {list(WEIGHT_RANGE)}')
    return check_quant(node)


def value_quants(graph):
    """value -> (scale, zero_point) of each int8 value (engine/int8.py), None
    for float32 ones; views share their input's."""
    quants = {graph.input_name: None}
    for node in graph.nodes:
        quants[node.name] = (quants[node.inputs[0]] if is_view(node) else check_quant(node))
    return quants


def is_view(node):
    """A view op: the planner turns it into offset tables, no kernel runs."""
    return REGISTRY[node.op].view


def value_dtypes(graph):
    """value -> its element type (a name of kernels/abi.h's ENGINE_DTYPES):
    the input's, then each op's for the types of its inputs (OpDef.dtype)."""
    dtypes = {graph.input_name: graph.input_dtype}
    for node in graph.nodes:
        dtypes[node.name] = REGISTRY[node.op].dtype(node, [dtypes[i] for i in node.inputs])
    return dtypes


def infer_shapes(graph, height, width):
    """value -> (C, H, W) for an input of height x width; (C, 1, 1) for rank 2.
    ValueError names the first layer the size does not fit."""
    shapes = {graph.input_name: (graph.input_channels, height, width)}
    for node in graph.nodes:
        out = REGISTRY[node.op].shape(node, [shapes[i] for i in node.inputs])
        if out[1] < 1 or out[2] < 1:
            raise ValueError(f'input {height}x{width} is too small for layer {node.name!r} '
                             f'({node.op}): its output would be {out[1]}x{out[2]}')
        shapes[node.name] = out
    return shapes


# ---------------------------------------------------------------------------
# JSON form, for the model file.

def stored_dtype(node, array):
    """The type a parameter is stored in: kernels and matrices (2 or more
    dimensions: nearly all the bytes) in the node's storage; vectors
    (biases, scales, slopes, whose rounding would shift every output) in
    float32."""
    return np.dtype(node.storage if np.ndim(array) >= 2 else 'float32')


def kernel_weights(node):
    """How many of the node's weights are in kernels and matrices (the
    parameters its storage applies to: stored_dtype)."""
    return sum(int(np.size(v)) for v in node.params.values() if np.ndim(v) >= 2)


def round_weights(graph, storage, keep=()):
    """A copy of graph whose layers store their kernels and matrices as
    `storage` (WEIGHT_STORAGE), but those named in `keep` as float32; rounded
    now, so that the graph computes what its file will.  ValueError naming a
    layer whose weights do not fit."""
    if storage not in WEIGHT_STORAGE:
        raise ValueError(f'weight storage must be one of {", ".join(WEIGHT_STORAGE)}, got {storage!r}')
    unknown = set(keep) - {n.name for n in graph.nodes}
    if unknown:
        raise ValueError(f'no layers named {", ".join(map(repr, sorted(unknown)))} in the model')
    out = replace(graph, nodes=[], meta=dict(graph.meta))
    for n in graph.nodes:
        node = Node(n.name, n.op, list(n.inputs), dict(n.attrs), {},
                    storage if kernel_weights(n) and n.name not in keep else 'float32')
        for k, v in n.params.items():
            dtype = stored_dtype(node, v)
            with np.errstate(over='ignore'):
                narrow = np.asarray(v).astype(dtype)
            if not np.array_equal(np.isfinite(narrow), np.isfinite(v)):
                raise ValueError(f'layer {n.name!r}: {k} has values beyond {dtype.name}\'s range '
                                 f'(largest |{k}| {float(np.abs(v).max()):.3g})')
            node.params[k] = narrow.astype(np.float32)
        out.nodes.append(node)
    return out


def storage_counts(graph):
    """How the parameters are stored: type -> count, e.g. {'float16': 2236000, 'float32': 17000}."""
    counts = {}
    for node in graph.nodes:
        for p in node.params.values():
            dtype = stored_dtype(node, p).name
            counts[dtype] = counts.get(dtype, 0) + int(p.size)
    return counts


def to_dict(graph):
    """(dict for JSON, {tensor key: array in its stored type})"""
    tensors = {}
    nodes = []
    for n in graph.nodes:
        params = {}
        for k, v in n.params.items():
            key = f'{n.name}.{k}'
            tensors[key] = np.ascontiguousarray(v, dtype=stored_dtype(n, v))
            params[k] = key
        nodes.append({'name': n.name, 'op': n.op, 'inputs': list(n.inputs),
                      'attrs': n.attrs, 'params': params})
    inp = {'name': graph.input_name, 'shape': list(graph.input_shape)}
    if graph.input_sizes is not None:
        inp['sizes'] = graph.input_sizes.to_dict()
    if graph.input_dtype != 'float32':
        inp['dtype'] = graph.input_dtype
    d = {'version': FORMAT_VERSION, 'input': inp, 'nodes': nodes, 'outputs': list(graph.outputs),
         'meta': graph.meta}
    return d, tensors


def from_dict(d, tensors, stored=None):
    """Graph from its JSON form, its tensors (float32) and the types they were
    stored in ({key: dtype name}; float32 where absent); ModelFileError on any
    structural problem."""
    stored = stored or {}
    try:
        if d.get('version') not in (1, FORMAT_VERSION):
            raise ModelFileError(f'graph version {d.get("version")!r} is not supported (this engine reads '
                                 f'1 to {FORMAT_VERSION}): a file from a newer engine?')
        inp = d['input']
        nodes = []
        for nd in d['nodes']:
            params, storage = {}, set()
            for k, key in nd.get('params', {}).items():
                if key not in tensors:
                    raise ModelFileError(f'node {nd.get("name")!r}: tensor {key!r} is not in the file')
                params[k] = tensors[key]
                if params[k].ndim >= 2:
                    storage.add(stored.get(key, 'float32'))
            if len(storage) > 1:
                raise ModelFileError(f'node {nd.get("name")!r}: its kernels and matrices are stored in '
                                     f'different types ({", ".join(sorted(storage))})')
            attrs = nd.get('attrs', {})
            if not isinstance(attrs, dict):
                raise ModelFileError(f'node {nd.get("name")!r}: attrs must be an object')
            nodes.append(Node(nd['name'], nd['op'], list(nd['inputs']), attrs, params,
                              storage.pop() if storage else 'float32'))
        meta = d.get('meta', {})
        sizes = inp.get('sizes')
        graph = Graph(inp['name'], tuple(inp['shape']), nodes, list(d['outputs']),
                      meta if isinstance(meta, dict) else {},
                      None if sizes is None else SizeDomain.from_dict(sizes), inp.get('dtype', 'float32'))
    except ModelFileError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ModelFileError(f'malformed graph description: {type(e).__name__}: {e}') from None
    return graph
