"""What the two importers share: engine/convert.py (PyTorch, through
torch.export) and engine/convert_onnx.py (ONNX files) both walk a source
graph, turn its real ops into graph IR nodes with the op modules' handlers
(engine/ops/aten.py) and evaluate its shape ops on arrays of element
indices.  Wherever such an index array feeds a real op, it must be a pure
reordering or selection of channels, which becomes a `gather` view: every
spelling of a channel shuffle converts the same way, with zero bytes moved,
and a chain that mixes channels with pixels or images is refused, never
converted wrongly."""
import numpy as np

from engine.errors import UnsupportedModelError
from engine.graph import Graph, Node

INPUT = 'input'                 # the graph input's value name
MAX_INDEX_ELEMENTS = 1 << 25    # shape ops on bigger tensors, bigger constants: refused


class Tensor:
    """A value of the graph being built: NCHW (rank 4) or NC (rank 2).
    shape is at the example's size; dims says how each dimension depends on
    the input's sizes (PyTorch: the export's symbolic expressions, as text)."""

    def __init__(self, name, shape, dims=None):
        self.name, self.shape = name, tuple(shape)
        self.dims = tuple(dims) if dims is not None else tuple(str(d) for d in shape)


class Index:
    """The result of shape ops on `src`: each element holds the flat index of
    the src element it is; dims as Tensor's."""

    def __init__(self, src, idx, dims=None):
        self.src, self.idx, self.dims = src, idx, dims


class Unsupported:
    """Stands in for the output of an op that could not be converted, so the
    rest of the model is still checked."""


def channel_order(src_shape, shape, idx):
    """The source channels that index array `idx` (of `shape`, over a
    source of `src_shape`) picks, in order, when it is a pure channel
    reorder or selection that keeps images and pixels; else a str: why not."""
    n, c = src_shape[:2]
    hw = src_shape[2:]
    pixels = int(np.prod(hw)) if hw else 1
    if len(shape) not in (2, 4) or shape[0] != n or (len(shape) == 4 and shape[2:] != hw) \
            or (len(shape) == 2 and pixels != 1):
        return (f'shape ops turning {src_shape} into {shape} are not a channel reordering, '
                'so they cannot run without moving data')
    per_image = idx.reshape(n, shape[1], pixels)
    chan = per_image[0, :, 0] // pixels
    expect = (np.arange(n)[:, None, None] * c * pixels + chan[None, :, None] * pixels
              + np.arange(pixels)[None, None, :])
    if not np.array_equal(per_image, expect):
        return (f'shape ops on {src_shape} mix channels with pixels or images; '
                'only pure channel reorders (shuffle, split, select) are supported')
    return chan


class GraphBuilder:
    """The graph being built, for an importer to subclass: unique node
    names, the list of what could not be converted, and the channel views."""

    def __init__(self):
        self.nodes = []
        self.names = {INPUT}
        self.unsupported = []

    def unique_name(self, base, tag):
        """base, or base.tag(.k) when base is taken."""
        name, k = base, 1
        while name in self.names:
            name = f'{base}.{tag}' + (f'.{k}' if k > 1 else '')
            k += 1
        self.names.add(name)
        return name

    def record_failure(self, why):
        self.unsupported.append(why)
        return Unsupported()

    def is_tensor(self, v):
        return isinstance(v, Tensor)

    def index(self, v):
        """v as an Index (a Tensor: the identity), or Unsupported when too big."""
        if isinstance(v, Index):
            return v
        size = int(np.prod(v.shape))
        if size > MAX_INDEX_ELEMENTS:
            return self.record_failure(f'shape ops on {v.name!r}, {size} elements at the example size: '
                                       'convert at a smaller input size')
        return Index(v, np.arange(size).reshape(v.shape), v.dims)

    def channel_view(self, src, chan, rank, tag):
        """The Tensor of source channels `chan` as a `gather` view (none if
        it is all of them in order), flattened when rank is 2."""
        t = src
        if not np.array_equal(chan, np.arange(src.shape[1])):
            t = Tensor(self.unique_name(f'{src.name}.gather', tag), (src.shape[0], len(chan)) + src.shape[2:])
            self.nodes.append(Node(t.name, 'gather', [src.name], {'indices': [int(i) for i in chan]}))
        if rank == 2 and len(t.shape) == 4:
            flat = Tensor(self.unique_name(f'{t.name}.flatten', tag), t.shape[:2])
            self.nodes.append(Node(flat.name, 'flatten', [t.name]))
            t = flat
        return t

    def finish(self, results, input_shape):
        """The Graph with these output values; UnsupportedModelError listing
        everything that could not be converted."""
        if self.unsupported:
            lines = '\n  '.join(self.unsupported)
            raise UnsupportedModelError(f'{len(self.unsupported)} unsupported operation(s):\n  {lines}')
        names = [r.name for r in results]
        if INPUT in names:
            raise UnsupportedModelError('the model returns its input unchanged')
        return Graph(INPUT, tuple(input_shape), self.nodes, names)
