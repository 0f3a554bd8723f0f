"""ONNX -> graph IR, the same IR and passes as the PyTorch path
(engine/convert.py).  The `onnx` package is imported here only: like torch,
a converter-side dependency, never a runtime one.

Every node is one of three kinds:
- arithmetic on constants (initializers, Constant nodes, and the sizes that
  Shape reads from activations at the example's size: the Shape / Gather /
  Unsqueeze / Concat chains exporters write to compute reshape targets):
  evaluated with NumPy (_FOLD), so no shape inference is needed;
- a shape op on an activation (Reshape, Transpose, Flatten, Split, Slice,
  Gather, Squeeze, Unsqueeze, Identity, Dropout): evaluated on an array of
  element indices and become a channel view or refused (engine/importing.py),
  so every spelling of a channel shuffle moves zero bytes;
- a real op (_REAL): restated as the ATen call that means the same, which
  the op modules' handlers make into graph nodes (engine/ops/aten.py), one
  place per op for both importers.

Sizes computed from Shape hold at the example's size: the graph is
converted again at other batches, heights and widths (_size_domain), and a
dimension at which it converts differently (a reshape to constant sizes, an
average pool as wide as the example's last plane) is pinned to the example's.
"""
import os
from types import SimpleNamespace

import numpy as np

from engine.errors import ModelFileError, UnsupportedModelError
from engine.graph import Node, infer_shapes, to_dict, validate
from engine.importing import INPUT, MAX_INDEX_ELEMENTS, GraphBuilder, Index, Tensor, Unsupported, \
    channel_order
from engine.ops import REGISTRY
from engine.ops.aten import ATEN
from engine.ops.elementwise import affine_node
from engine.optimize import optimize
from engine.sizes import SizeDomain

MIN_OPSET = 11
DEFAULT_PLANE = 224     # height and width of the example where the file leaves them open
# sizes tried beside the example's: odd and even, smaller and larger, a
# pool's window fitting once or twice
VARIATIONS = {'batch': lambda n: (n + 1, n + 2),
              'height': lambda h: (h - 1, h + 1, h + 32, 2 * h, h // 2),
              'width': lambda w: (w - 1, w + 1, w + 32, 2 * w, w // 2)}
DIM_INDEX = {'batch': 0, 'height': 2, 'width': 3}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('converting ONNX models needs onnx (pip install onnx); '
                          'running converted model files does not') from None
    return onnx


# ---------------------------------------------------------------------------
# Reading the file: a stranger's file, so every problem is a clear error.

def load_onnx(source):
    """ModelProto from a path or bytes, its external data read (only from
    files inside the model's folder) and checked by onnx.checker."""
    onnx = _onnx()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, folder, label = bytes(source), None, 'the ONNX bytes'
    else:
        path = os.fspath(source)
        with open(path, 'rb') as f:
            data = f.read()
        folder, label = os.path.dirname(os.path.abspath(path)), path
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:      # protobuf's DecodeError, or anything else its parser raises
        raise ModelFileError(f'{label} is not an ONNX model: {type(e).__name__}: {e}') from None
    if not model.HasField('graph'):
        raise ModelFileError(f'{label} is not an ONNX model: it has no graph')
    _read_external_data(onnx, model, folder, label)
    try:
        onnx.checker.check_model(model)
    except Exception as e:      # onnx.checker.ValidationError and the C++ checker's others
        raise ModelFileError(f'{label} fails onnx.checker: {_first_line(e)}') from None
    return model


def _first_line(e):
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _read_external_data(onnx, model, folder, label):
    """Tensors stored outside the file: read from `location` relative to the
    model's folder, never from a path that leaves it (an absolute path,
    '..', a link pointing out)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        where = f'{label}: tensor {tensor.name!r} stored in external data'
        if folder is None:
            raise ModelFileError(f'{where}: give the file\'s path (not its bytes) so that it can be read')
        location = info.get('location', '')
        root = os.path.realpath(folder)
        target = os.path.realpath(os.path.join(root, location))
        if not location or os.path.isabs(location) or '..' in location.replace('\\', '/').split('/') \
                or os.path.commonpath([root, target]) != root:
            raise ModelFileError(f'{where} at {location!r}: only files inside the model\'s folder are read')
        try:
            offset, length = int(info.get('offset', 0)), int(info.get('length', -1))
            size = os.path.getsize(target)
            if offset < 0 or offset > size or length < -1 or (length >= 0 and offset + length > size):
                raise ValueError(f'bytes {offset}..{offset + length} of a {size}-byte file')
            with open(target, 'rb') as f:
                f.seek(offset)
                tensor.raw_data = f.read(length if length >= 0 else size - offset)
        except (OSError, ValueError) as e:
            raise ModelFileError(f'{where} at {location!r}: {e}') from None
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _array(onnx, tensor, what):
    try:
        a = onnx.numpy_helper.to_array(tensor)
    except Exception as e:      # a size that does not match its data, an unknown type, ...
        raise ModelFileError(f'{what} {tensor.name!r}: {type(e).__name__}: {_first_line(e)}') from None
    return a


def _check_opset(model):
    """The file's opset is one the converter reads: the spellings of each
    op (inputs or attributes) are told apart by what the node has."""
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get('', versions.get('ai.onnx'))
    newest = _onnx().defs.onnx_opset_version()
    if version is None or not MIN_OPSET <= version <= newest:
        raise UnsupportedModelError(f'ONNX opset {version}: the converter reads opsets {MIN_OPSET} to {newest}')


def _input(model, input_shape):
    """(the image input's name, the example's N, C, H, W)."""
    graph = model.graph
    stored = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in stored]
    if len(inputs) != 1:
        raise UnsupportedModelError(f'the model has {len(inputs)} inputs '
                                    f'({", ".join(i.name for i in inputs)}); the engine runs models of one '
                                    'image input')
    x = inputs[0]
    tensor_type = x.type.tensor_type
    if tensor_type.elem_type != _onnx().TensorProto.FLOAT:
        raise UnsupportedModelError(f'input {x.name!r} is not float32 (ONNX type {tensor_type.elem_type})')
    dims = [d.dim_value if d.HasField('dim_value') else None for d in tensor_type.shape.dim]
    if len(dims) != 4:
        raise UnsupportedModelError(f'input {x.name!r} has rank {len(dims)}; the engine takes NCHW images')
    if any(d is not None and not 1 <= d <= 1 << 20 for d in dims):
        raise ModelFileError(f'input {x.name!r} has dimensions {dims}: each must be from 1 to {1 << 20}')
    if input_shape is None:
        if dims[1] is None:
            raise ValueError(f'input {x.name!r} leaves its channels open: give input_shape (N, C, H, W)')
        shape = (dims[0] or 1, dims[1], dims[2] or DEFAULT_PLANE, dims[3] or DEFAULT_PLANE)
    else:
        shape = tuple(input_shape)
        if len(shape) != 4 or not all(isinstance(d, (int, np.integer)) and 1 <= d <= 1 << 20 for d in shape):
            raise ValueError(f'input_shape must be four integers (N, C, H, W) from 1 to {1 << 20}, '
                             f'got {input_shape!r}')
        if dims[1] is not None and shape[1] != dims[1]:
            raise ValueError(f'input_shape {shape} has {shape[1]} channels; the model takes {dims[1]}')
    return x.name, tuple(int(d) for d in shape)


# ---------------------------------------------------------------------------
# The conversion.

def convert_onnx(source, input_shape=None, *, optimize_graph=True):
    """Graph of an ONNX model (a path or bytes) for inputs shaped like
    input_shape (default: the file's, 1 and 224 where it leaves them open)."""
    onnx = _onnx()
    model = load_onnx(source)
    _check_opset(model)
    name, shape = _input(model, input_shape)
    consts = {t.name: _array(onnx, t, 'initializer') for t in model.graph.initializer}
    graph = _Converter(model.graph, consts, name, shape).run()
    validate(graph)
    graph.input_sizes = _size_domain(model.graph, consts, name, shape, graph)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        graph.meta['source'] = os.path.basename(os.fspath(source))
    return optimize(graph) if optimize_graph else graph


def _signature(graph):
    d, tensors = to_dict(graph)
    return d['nodes'], d['outputs'], {k: v.tobytes() for k, v in tensors.items()}


def _size_domain(graph_proto, consts, name, shape, graph):
    """The sizes at which the ONNX graph converts to this same graph: each
    dimension free if it does at the VARIATIONS beside the example's,
    else pinned to the example's."""
    reference = _signature(graph)
    ranges, notes = {}, []
    for dim, sizes in VARIATIONS.items():
        i = DIM_INDEX[dim]
        same = True
        for size in sizes(shape[i]):
            if size < 1 or size > 1 << 20:
                continue
            other = list(shape)
            other[i] = size
            if size < shape[i]:
                try:
                    infer_shapes(graph, other[2], other[3])
                except ValueError:      # too small for a layer: refused at run time in any case
                    continue
            try:
                same = _signature(_Converter(graph_proto, consts, name, tuple(other)).run()) == reference
            except ValueError:      # UnsupportedModelError, ModelFileError: it does not convert there
                same = False
            if not same:
                break
        ranges[dim] = (1, None) if same else (shape[i], shape[i])
        if not same:
            notes.append(f'its {dim} is pinned: at another {dim} the ONNX graph does not convert to the same '
                         'graph (sizes fixed in constants, or a layer that needs this size)')
    return SizeDomain(ranges, [], '; '.join(notes))


def _call(name, aten):
    """An ONNX node as the ATen call an op module's handler takes."""
    return SimpleNamespace(name=name, target=SimpleNamespace(_opname=aten))


class _Converter(GraphBuilder):
    def __init__(self, graph, consts, input_name, shape):
        super().__init__()
        self.graph, self.consts = graph, consts
        self.input_name, self.shape = input_name, shape

    # -- what the op modules' handlers call (engine/ops/aten.py)
    def add(self, call, op, inputs, attrs=None, params=None):
        """A node; its output's shape from the op's own definition."""
        name = self.unique_name(call.name, call.target._opname)
        node = Node(name, op, [t.name for t in inputs], attrs or {}, params or {})
        definition = REGISTRY[op]
        try:
            c, rank = definition.check(node, [(t.shape[1], len(t.shape)) for t in inputs])
            _, h, w = definition.shape(node, [tuple(t.shape[1:]) + (1, 1) * (len(t.shape) == 2)
                                              for t in inputs])
        except ValueError as e:     # ModelFileError: attributes or weights that do not fit
            return self.fail(call, str(e))
        self.nodes.append(node)
        n = inputs[0].shape[0]
        return Tensor(name, (n, c, h, w) if rank == 4 else (n, c))

    def fail(self, call, why):
        return self.record_failure(f'{why} (node {call.name!r})')

    def param(self, v):
        return None if v is None else np.ascontiguousarray(v, np.float32)

    # -- walk
    def run(self):
        env = dict(self.consts)
        env[self.input_name] = Tensor(INPUT, self.shape)
        for node in self.graph.node:
            name = node.name or (node.output[0] if node.output else node.op_type)
            try:
                outs = self._node(node, name.lstrip('/') or node.op_type, env)
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:     # malformed attributes
                outs = self.record_failure(f'{node.op_type} {type(e).__name__}: {_first_line(e)} '
                                           f'(node {name!r})')
            if isinstance(outs, Unsupported):
                outs = [outs] * len(node.output)
            elif not isinstance(outs, (list, tuple)):
                outs = [outs]       # (a second output, MaxPool's indices, Dropout's mask: not made)
            for out_name, v in zip(node.output, outs):
                if out_name:
                    env[out_name] = v
        results = []
        for out in self.graph.output:
            v = env.get(out.name)
            v = self._tensor(v, _call(out.name, 'output'), output=True) if isinstance(v, (Index, Tensor)) else v
            if not isinstance(v, (Tensor, Unsupported)):
                v = self.record_failure(f'output {out.name!r} is not computed from the input')
            results.append(v)
        return self.finish(results, self.shape)

    def _tensor(self, v, call, output=False):
        """An activation for a real op (or a model output): an index chain as
        a channel view (or an output's spatial layout)."""
        if not isinstance(v, Index):
            return v
        laid_out = self.laid_out(v, call.name, output)
        if laid_out is not None:
            return self.fail(call, laid_out) if isinstance(laid_out, str) else laid_out
        chan = channel_order(v.src.shape, v.idx.shape, v.idx)
        if isinstance(chan, str):
            return self.fail(call, chan)
        return self.channel_view(v.src, chan, v.idx.ndim, call.name)

    def _node(self, node, name, env):
        op = node.op_type
        call = _call(name, op)
        if node.domain not in ('', 'ai.onnx'):
            return self.fail(call, f'operator {node.domain}.{op} (only the default ONNX domain)')
        missing = [i for i in node.input if i and i not in env]
        if missing:
            return self.fail(call, f'{op} reads {", ".join(missing)}, which nothing computes before it')
        ins = [env[i] if i else None for i in node.input]
        attrs = {a.name: _onnx().helper.get_attribute_value(a) for a in node.attribute}
        if op not in _FOLD and op not in _VIEW and op not in _REAL and op != 'Shape':
            return self.fail(call, f'unsupported operator {op}')     # (listed even after another failure)
        if any(isinstance(v, Unsupported) for v in ins):
            return Unsupported()
        activations = [v for v in ins if isinstance(v, (Tensor, Index))]
        if op == 'Shape':
            return _shape_of(ins[0], attrs)
        if not activations and op in _FOLD:
            grows = _GROWS.get(op)
            if grows is not None:
                _capped(grows(ins, attrs))      # before the result is made
            return _FOLD[op](self, ins, attrs)
        if activations and op in _VIEW and isinstance(ins[0], (Tensor, Index)):
            v = self.index(ins[0])
            return v if isinstance(v, Unsupported) else _VIEW[op](self, call, v, ins[1:], attrs, len(node.output))
        if op == 'Concat' and all(isinstance(v, (Tensor, Index)) for v in ins):
            joined = self.concatenation(ins, attrs['axis'])
            if joined is not None:
                return joined
        if op in _REAL:
            if not isinstance(ins[0], (Tensor, Index)) and op not in ('Add', 'Sub', 'Mul', 'Div', 'Concat'):
                return self.fail(call, f'{op} of a constant (only of activations)')
            ins = [self._tensor(v, call) for v in ins]
            if any(isinstance(v, Unsupported) for v in ins):
                return Unsupported()
            return _REAL[op](self, call, ins, attrs)
        return self.fail(call, f'{op} on {"activations" if activations else "constants"} in this position')

    def constant(self, v, call, what):
        """A constant input as an array, or fail: the engine takes weights,
        bounds and sizes fixed at conversion, not computed at run time."""
        if isinstance(v, np.ndarray):
            return v
        return self.fail(call, f'{what} computed from the input (only constants are supported)')

    def aten(self, call, aten, args):
        """The handler of ATen op `aten` on these arguments."""
        return ATEN[aten](self, _call(call.name, aten), args, {})


# ---------------------------------------------------------------------------
# Arithmetic on constants: (converter, inputs, attributes) -> value(s)

def _capped(shape):
    size = int(np.prod([int(d) for d in shape], dtype=np.int64)) if len(shape) else 1
    if not 0 <= size <= MAX_INDEX_ELEMENTS or any(int(d) < 0 for d in shape):
        raise ValueError(f'a constant of shape {[int(d) for d in shape]} (at most {MAX_INDEX_ELEMENTS} elements)')
    return tuple(int(d) for d in shape)


def _shape_of(v, attrs):
    """Shape: of an activation, at the example's size."""
    shape = np.array(v.idx.shape if isinstance(v, Index) else np.shape(v) if v is not None else (), np.int64)
    return shape[attrs.get('start', 0):attrs.get('end', len(shape))]


def _constant(cv, ins, attrs):
    onnx = _onnx()
    (key, value), = attrs.items()
    if key == 'value':
        return _array(onnx, value, 'Constant')
    if key in ('value_float', 'value_int'):
        return np.array(value, np.float32 if key == 'value_float' else np.int64)
    if key in ('value_floats', 'value_ints'):
        return np.array(value, np.float32 if key == 'value_floats' else np.int64)
    raise ValueError(f'Constant with {key} (only tensors and numbers)')


def _axes(ins, attrs, i=1):
    """Axes from attribute `axes` (older opsets) or input i (newer)."""
    if len(ins) > i and ins[i] is not None:
        return [int(a) for a in np.asarray(ins[i]).ravel()]
    return attrs.get('axes')


def _unsqueeze_shape(shape, axes):
    rank = len(shape) + len(axes)
    out = list(shape)
    for a in sorted(a % rank for a in axes):
        out.insert(a, 1)
    return out


def _squeeze_shape(shape, axes):
    rank = len(shape)
    drop = {a % rank for a in axes} if axes is not None else {i for i, d in enumerate(shape) if d == 1}
    if any(shape[a] != 1 for a in drop):
        raise ValueError(f'Squeeze of axes {sorted(drop)} of shape {tuple(shape)}: not all of size 1')
    return [d for i, d in enumerate(shape) if i not in drop]


def _flatten_shape(shape, axis):
    axis %= len(shape) + 1
    return [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))]


def _reshape_shape(shape, target, allowzero):
    target = [int(t) for t in np.asarray(target).ravel()]
    if not allowzero:
        target = [shape[i] if t == 0 and i < len(shape) else t for i, t in enumerate(target)]
    return target


def _slices(shape, ins, attrs):
    """The index tuple of a Slice (inputs data, starts, ends, axes, steps)."""
    starts, ends = (np.asarray(ins[1]).ravel(), np.asarray(ins[2]).ravel())
    axes = np.asarray(ins[3]).ravel() if len(ins) > 3 and ins[3] is not None else range(len(starts))
    steps = np.asarray(ins[4]).ravel() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if int(step) == 0:
            raise ValueError('Slice with step 0')
        clip = np.iinfo(np.int64).max // 2     # INT64_MAX means "to the end"
        index[int(axis) % len(shape)] = slice(int(np.clip(start, -clip, clip)), int(np.clip(end, -clip, clip)),
                                              int(step))
    return tuple(index)


def _split_sizes(length, split_input, attrs, outputs):
    """The part sizes of a Split: its input (opset 13+), its attribute, or
    num_outputs (opset 18) / the outputs' count, the last part smaller."""
    split = attrs.get('split')
    if split_input is not None:
        split = [int(s) for s in np.asarray(split_input).ravel()]
    if split is None:
        parts = attrs.get('num_outputs', outputs)
        size = -(-length // parts)
        split = [min(size, length - i * size) for i in range(parts)]
    if sum(split) != length or any(s < 0 for s in split):
        raise ValueError(f'Split of {length} into {split}')
    return split


def _binary(fn):
    return lambda cv, ins, attrs: fn(ins[0], ins[1])


def _divide(a, b):
    if np.issubdtype(np.asarray(a).dtype, np.integer) and np.issubdtype(np.asarray(b).dtype, np.integer):
        if np.any(np.asarray(b) == 0):
            raise ZeroDivisionError('integer Div by zero')
        return (np.trunc(np.asarray(a) / b)).astype(np.result_type(a, b))
    return np.asarray(a) / b


def _cast(cv, ins, attrs):
    dtype = _onnx().helper.tensor_dtype_to_np_dtype(attrs['to'])
    return np.asarray(ins[0]).astype(dtype)


def _constant_of_shape(cv, ins, attrs):
    value = _array(_onnx(), attrs['value'], 'ConstantOfShape') if 'value' in attrs else np.zeros(1, np.float32)
    return np.full(_capped(np.asarray(ins[0]).ravel()), value.ravel()[0], value.dtype)


def _range(cv, ins, attrs):
    start, limit, delta = (np.asarray(v).item() for v in ins)
    if delta == 0:
        raise ValueError('Range with delta 0')
    _capped([max(0, int(np.ceil((limit - start) / delta)))])
    return np.arange(start, limit, delta, dtype=np.asarray(ins[0]).dtype)


def _expand(cv, ins, attrs):
    a = np.asarray(ins[0])
    shape = np.broadcast_shapes(a.shape, tuple(int(d) for d in np.asarray(ins[1]).ravel()))
    return np.broadcast_to(a, _capped(shape)).copy()


# the shapes of folded results that can outgrow their inputs, checked first
_GROWS = {
    'Concat': lambda ins, attrs: [sum(np.size(v) for v in ins)],
    'Gather': lambda ins, attrs: [np.size(ins[1]) * np.size(ins[0]) // max(1, np.shape(ins[0])[attrs.get('axis', 0)])],
    **{op: lambda ins, attrs: np.broadcast_shapes(*(np.shape(v) for v in ins))
       for op in ('Add', 'Sub', 'Mul', 'Div', 'Equal', 'Where')},
}

_FOLD = {
    'Constant': _constant,
    'Identity': lambda cv, ins, attrs: ins[0],
    'Dropout': lambda cv, ins, attrs: ins[0],       # inference: the identity
    'Flatten': lambda cv, ins, attrs: np.reshape(ins[0], _flatten_shape(np.shape(ins[0]), attrs.get('axis', 1))),
    'Cast': _cast,
    'Gather': lambda cv, ins, attrs: np.take(ins[0], np.asarray(ins[1]), axis=attrs.get('axis', 0)),
    'Unsqueeze': lambda cv, ins, attrs: np.reshape(ins[0], _unsqueeze_shape(np.shape(ins[0]), _axes(ins, attrs))),
    'Squeeze': lambda cv, ins, attrs: np.reshape(ins[0], _squeeze_shape(np.shape(ins[0]), _axes(ins, attrs))),
    'Concat': lambda cv, ins, attrs: np.concatenate([np.asarray(v) for v in ins], axis=attrs['axis']),
    'Reshape': lambda cv, ins, attrs: np.reshape(
        ins[0], _reshape_shape(np.shape(ins[0]), ins[1], attrs.get('allowzero', 0))),
    'Transpose': lambda cv, ins, attrs: np.transpose(ins[0], attrs.get('perm')),
    'Slice': lambda cv, ins, attrs: np.asarray(ins[0])[_slices(np.shape(ins[0]), ins, attrs)],
    'Add': _binary(np.add), 'Sub': _binary(np.subtract), 'Mul': _binary(np.multiply), 'Div': _binary(_divide),
    'Equal': _binary(np.equal),
    'Where': lambda cv, ins, attrs: np.where(ins[0], ins[1], ins[2]),
    'ConstantOfShape': _constant_of_shape,
    'Range': _range,
    'Expand': _expand,
}


# ---------------------------------------------------------------------------
# Shape ops on an activation's index array: (converter, Index, other inputs,
# attributes, number of outputs) -> Index or list of them

def _view_split(cv, call, v, ins, attrs, outputs):
    axis = attrs.get('axis', 0) % v.idx.ndim
    split = cv.constant(ins[0], call, 'split sizes') if ins and ins[0] is not None else None
    if isinstance(split, Unsupported):
        return split
    sizes = _split_sizes(v.idx.shape[axis], split, attrs, outputs)
    return [Index(v.src, p) for p in np.split(v.idx, np.cumsum(sizes)[:-1], axis=axis)]


def _view_by_folding(op):
    """A shape op as its constant folding (_FOLD) applied to the index
    array; its other inputs (targets, axes, indices) must be constants."""
    def view(cv, call, v, ins, attrs, outputs):
        if any(isinstance(i, (Tensor, Index)) for i in ins):
            return cv.fail(call, 'a shape op whose target, axes or indices are computed from the input')
        return Index(v.src, _FOLD[op](cv, [v.idx] + list(ins), attrs))
    return view


_VIEW = {op: _view_by_folding(op) for op in ('Reshape', 'Flatten', 'Transpose', 'Squeeze', 'Unsqueeze', 'Slice',
                                             'Gather', 'Identity', 'Dropout')}
_VIEW['Split'] = _view_split


# ---------------------------------------------------------------------------
# Real ops, restated as ATen calls: (converter, call, inputs, attributes) -> value(s)

def _pads(cv, call, x, attrs, kernel, strides, dilations):
    """Symmetric padding (top, left) from pads or auto_pad at the example's
    size, or a failure naming the uneven padding."""
    auto = attrs.get('auto_pad', b'NOTSET')
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ('SAME_UPPER', 'SAME_LOWER'):
        pads = []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2) if auto == 'SAME_UPPER' else (total - total // 2, total // 2))
        begin, end = [p[0] for p in pads], [p[1] for p in pads]
    elif auto == 'VALID':
        begin = end = [0, 0]
    else:
        pads = list(attrs.get('pads', [0] * 2 * len(kernel)))
        begin, end = pads[:len(pads) // 2], pads[len(pads) // 2:]
    if begin != end:
        return cv.fail(call, f'{call.target._opname} with uneven padding (begin {begin}, end {end})')
    return begin


def _conv(cv, call, ins, attrs):
    x, w = ins[0], cv.constant(ins[1], call, 'convolution weights')
    b = cv.constant(ins[2], call, 'a convolution bias') if len(ins) > 2 and ins[2] is not None else None
    if any(isinstance(v, Unsupported) for v in (w, b)):
        return Unsupported()
    kernel = list(attrs.get('kernel_shape', w.shape[2:]))
    if kernel != list(w.shape[2:]):
        return cv.fail(call, f'Conv with kernel_shape {kernel} and weights of shape {list(w.shape)}')
    strides = list(attrs.get('strides', [1] * len(kernel)))
    dilations = list(attrs.get('dilations', [1] * len(kernel)))
    pads = _pads(cv, call, x, attrs, kernel, strides, dilations)
    if isinstance(pads, Unsupported):
        return pads
    return cv.aten(call, 'conv2d', [x, w, b, strides, pads, dilations, attrs.get('group', 1)])


def _batchnorm(cv, call, ins, attrs):
    if attrs.get('training_mode', 0):
        return cv.fail(call, 'BatchNormalization in training mode')
    params = [cv.constant(v, call, 'BatchNormalization statistics') for v in ins[1:5]]
    if any(isinstance(v, Unsupported) for v in params):
        return Unsupported()
    return cv.aten(call, 'batch_norm', [ins[0], *params, False, 0.1, attrs.get('epsilon', 1e-5)])


def _clip(cv, call, ins, attrs):
    bounds = [None, None]       # (inputs from opset 11, the first the converter reads)
    for i in (1, 2):
        if len(ins) > i and ins[i] is not None:
            v = cv.constant(ins[i], call, 'Clip bounds')
            if isinstance(v, Unsupported):
                return v
            bounds[i - 1] = float(np.asarray(v).item())
    # float32's extremes, as exporters write an open end, are no bound
    bounds = [b if b is not None and abs(b) < 3e38 else None for b in bounds]
    return cv.aten(call, 'clamp', [ins[0], *bounds])


def _hardsigmoid(cv, call, ins, attrs):
    """max(0, min(1, alpha x + beta)): PyTorch's hardsigmoid at its alpha and
    beta, else an affine node clamped to [0, 1]."""
    alpha, beta = attrs.get('alpha', 0.2), attrs.get('beta', 0.5)
    if np.float32(alpha) == np.float32(1 / 6) and beta == 0.5:
        return cv.aten(call, 'hardsigmoid', [ins[0]])
    return cv.aten(call, 'clamp', [affine_node(cv, call, ins[0], alpha, beta), 0.0, 1.0])


def _per_channel(cv, call, x, c):
    """A constant broadcast against activation x as one number per channel
    (or one for all), or None when it varies along other axes too."""
    c = np.asarray(c, np.float32)
    rank = len(x.shape)
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1) or full.shape[1] not in (1, x.shape[1]):
        return None
    return full.ravel()


def _arithmetic(kind):
    """Add, Sub, Mul, Div: of two activations (ATen's handler), or of an
    activation and a number or one number per channel (an affine node)."""
    def convert(cv, call, ins, attrs):
        a, b = ins
        if cv.is_tensor(a) and cv.is_tensor(b):
            return cv.aten(call, kind, [a, b])
        x, c, first = (a, b, False) if cv.is_tensor(a) else (b, a, True)
        values = _per_channel(cv, call, x, c)
        if values is None:
            return cv.fail(call, f'{kind} of an activation {x.shape} and a constant {np.shape(c)} '
                                 '(only a number, or one per channel)')
        if kind == 'div' and first:
            return cv.fail(call, 'division of a constant by an activation')
        with np.errstate(divide='ignore'):
            scale, shift = {'add': (1.0, values), 'mul': (values, 0.0), 'div': (1.0 / values, 0.0),
                            'sub': ((-1.0, values) if first else (1.0, -values))}[kind]
        return affine_node(cv, call, x, scale, shift)
    return convert


def _pool_attrs(cv, call, x, attrs):
    kernel = list(attrs['kernel_shape'])
    strides = list(attrs.get('strides', [1] * len(kernel)))
    dilations = list(attrs.get('dilations', [1] * len(kernel)))
    pads = _pads(cv, call, x, attrs, kernel, strides, dilations)
    return kernel, strides, pads, dilations


def _maxpool(cv, call, ins, attrs):
    kernel, strides, pads, dilations = _pool_attrs(cv, call, ins[0], attrs)
    if isinstance(pads, Unsupported):
        return pads
    return cv.aten(call, 'max_pool2d', [ins[0], kernel, strides, pads, dilations, attrs.get('ceil_mode', 0)])


def _avgpool(cv, call, ins, attrs):
    kernel, strides, pads, dilations = _pool_attrs(cv, call, ins[0], attrs)
    if isinstance(pads, Unsupported):
        return pads
    if any(d != 1 for d in dilations):
        return cv.fail(call, 'AveragePool with dilations')
    return cv.aten(call, 'avg_pool2d', [ins[0], kernel, strides, pads, attrs.get('ceil_mode', 0),
                                        bool(attrs.get('count_include_pad', 0))])


def _reduce_mean(cv, call, ins, attrs):
    axes = _axes(ins, attrs)
    return cv.aten(call, 'mean', [ins[0], axes, attrs.get('keepdims', 1)])


def _gemm(cv, call, ins, attrs):
    """alpha A B' + beta C, A the activation: a linear layer."""
    x, b = ins[0], cv.constant(ins[1], call, 'Gemm weights')
    c = cv.constant(ins[2], call, 'a Gemm bias') if len(ins) > 2 and ins[2] is not None else None
    if any(isinstance(v, Unsupported) for v in (b, c)):
        return Unsupported()
    if attrs.get('transA', 0):
        return cv.fail(call, 'Gemm with transA')
    weight = (b if attrs.get('transB', 0) else b.T) * np.float32(attrs.get('alpha', 1.0))
    bias = None
    if c is not None:
        bias = np.broadcast_to(np.asarray(c, np.float32).ravel() * np.float32(attrs.get('beta', 1.0)),
                               (weight.shape[0],))
    return cv.aten(call, 'linear', [x, weight, bias])


def _matmul(cv, call, ins, attrs):
    x, b = ins
    if not cv.is_tensor(x) or not isinstance(b, np.ndarray) or b.ndim != 2:
        return cv.fail(call, 'MatMul other than activation x constant matrix')
    return cv.aten(call, 'linear', [x, b.T, None])


def _concat(cv, call, ins, attrs):
    if not all(cv.is_tensor(v) for v in ins):
        return cv.fail(call, 'Concat of activations and constants')
    return cv.aten(call, 'cat', [list(ins), attrs['axis']])


# Resize's modes that mean what PyTorch's interpolate does (engine/ops/resize.py):
# (mode, coordinate_transformation_mode, nearest_mode) -> (the ATen op, align_corners)
_RESIZE_MODES = {
    ('linear', 'half_pixel', None): ('upsample_bilinear2d', False),
    ('linear', 'pytorch_half_pixel', None): ('upsample_bilinear2d', False),     # but on 1-pixel outputs
    ('linear', 'align_corners', None): ('upsample_bilinear2d', True),
    ('nearest', 'asymmetric', 'floor'): ('upsample_nearest2d', False),
    ('nearest', 'half_pixel', 'round_prefer_ceil'): ('_upsample_nearest_exact2d', False),
}


def _resize(cv, call, ins, attrs):
    """Resize of H and W by constant scales or sizes (inputs X, roi, scales,
    sizes), in the modes of _RESIZE_MODES."""
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    mode = text.get('mode', 'nearest')
    coordinates = text.get('coordinate_transformation_mode', 'half_pixel')
    key = (mode, coordinates, text.get('nearest_mode', 'round_prefer_floor') if mode == 'nearest' else None)
    if key not in _RESIZE_MODES:
        return cv.fail(call, 'Resize with mode {}, coordinate_transformation_mode {}{} (supported: {})'.format(
            mode, coordinates, f', nearest_mode {key[2]}' if key[2] else '',
            '; '.join(' '.join(filter(None, k)) for k in _RESIZE_MODES)))
    if text.get('antialias', 0) or text.get('axes') is not None or \
            text.get('keep_aspect_ratio_policy', 'stretch') != 'stretch':
        return cv.fail(call, 'Resize with antialias, axes or keep_aspect_ratio_policy')
    x = ins[0]
    scales, sizes = (ins[2] if len(ins) > 2 else None), (ins[3] if len(ins) > 3 else None)
    given = [(what, cv.constant(v, call, f'Resize {what}')) for what, v in (('scales', scales), ('sizes', sizes))
             if v is not None and not (isinstance(v, np.ndarray) and v.size == 0)]
    if any(isinstance(v, Unsupported) for _, v in given):
        return Unsupported()
    if len(given) != 1 or np.size(given[0][1]) != 4:
        return cv.fail(call, 'Resize needs scales or sizes for the four dimensions of NCHW')
    what, values = given[0][0], np.asarray(given[0][1]).ravel().tolist()
    if values[:2] != ([1.0, 1.0] if what == 'scales' else list(x.shape[:2])):
        return cv.fail(call, f'Resize of the batch or channels ({what} {values})')
    if coordinates == 'pytorch_half_pixel' and (min(values[2:]) < 1 if what == 'scales' else 1 in values[2:]):
        # ONNX samples a 1-pixel output at the first pixel, PyTorch's interpolate (and
        # half_pixel) in the middle; scales >= 1 give one only from one, where they agree
        return cv.fail(call, f'Resize linear pytorch_half_pixel with {what} {values} (its outputs of one '
                             'pixel differ from PyTorch\'s interpolate: only scales >= 1 or sizes > 1)')
    aten, align = _RESIZE_MODES[key]
    size, factors = (None, values[2:]) if what == 'scales' else ([int(v) for v in values[2:]], None)
    return cv.aten(call, aten, [x, size] + ([align] if aten == 'upsample_bilinear2d' else []) + [factors])


def _same_as(aten, *extra):
    return lambda cv, call, ins, attrs: cv.aten(call, aten, [ins[0], *extra])


_REAL = {
    'Conv': _conv,
    'BatchNormalization': _batchnorm,
    'Relu': _same_as('relu'),
    'Clip': _clip,
    'Sigmoid': _same_as('sigmoid'),
    'Tanh': _same_as('tanh'),
    'HardSwish': _same_as('hardswish'),
    'HardSigmoid': _hardsigmoid,
    'LeakyRelu': lambda cv, call, ins, attrs: cv.aten(call, 'leaky_relu', [ins[0], attrs.get('alpha', 0.01)]),
    'PRelu': lambda cv, call, ins, attrs: cv.aten(call, 'prelu', [ins[0], cv.constant(ins[1], call, 'PRelu slopes')]),
    'Add': _arithmetic('add'), 'Sub': _arithmetic('sub'), 'Mul': _arithmetic('mul'), 'Div': _arithmetic('div'),
    'MaxPool': _maxpool,
    'AveragePool': _avgpool,
    'GlobalAveragePool': _same_as('adaptive_avg_pool2d', [1, 1]),
    'ReduceMean': _reduce_mean,
    'Gemm': _gemm,
    'MatMul': _matmul,
    'Concat': _concat,
    'Resize': _resize,
}
