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


class Joined:
    """Tensors laid end to end in one flat index space: the source of an
    Index made by concatenating along pixels or images (GraphBuilder.join),
    which only a model's output may be (GraphBuilder.spatial_layout)."""

    def __init__(self, parts):
        self.parts = parts
        self.bases = np.cumsum([0] + [int(np.prod(t.shape)) for t in parts[:-1]]).astype(np.int64)

    def locate(self, idx):
        """(part, flat index within the part) of each element of idx."""
        k = np.searchsorted(self.bases, idx, side='right') - 1
        return k, idx - self.bases[k]


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

    def concatenation(self, values, dim):
        """values (Tensors, Indexes) concatenated along dim: None when that
        is the channels of NCHW or NC tensors (a concat node's job), else
        join's Index, for an output's layout."""
        rank = len(values[0].shape) if isinstance(values[0], Tensor) else values[0].idx.ndim
        dim %= rank
        return None if dim == 1 and rank != 3 else self.join(values, dim)

    def join(self, values, dim):
        """values (Tensors, Indexes) concatenated along dim, which is not the
        channels: an Index over a Joined source of every tensor they read."""
        indexes = [self.index(v) for v in values]
        if any(isinstance(v, Unsupported) for v in indexes):
            return Unsupported()
        size = sum(v.idx.size for v in indexes)
        if size > MAX_INDEX_ELEMENTS:
            return self.record_failure(f'a concatenation of {size} elements at the example size: convert at a '
                                       'smaller input size')
        leaves = {}
        for v in indexes:
            for t in (v.src.parts if isinstance(v.src, Joined) else [v.src]):
                leaves.setdefault(t.name, t)
        joined = Joined(list(leaves.values()))
        base = dict(zip(leaves, joined.bases))

        def rebased(v):
            if not isinstance(v.src, Joined):
                return base[v.src.name] + v.idx
            k, local = v.src.locate(v.idx)
            return np.array([base[t.name] for t in v.src.parts])[k] + local
        return Index(joined, np.concatenate([rebased(v) for v in indexes], axis=dim))

    def spatial_layout(self, v, tag):
        """The Tensor of an output Index that lays its sources' planes end to
        end, (N, C, pixels) or transposed (N, pixels, C), as a detection
        head's flatten, cat and permute do: a spatial_concat node; None if
        it is not that."""
        joined = v.src if isinstance(v.src, Joined) else Joined([v.src])
        parts = joined.parts
        if v.idx.ndim != 3 or any(len(t.shape) != 4 or t.shape[:2] != parts[0].shape[:2] for t in parts):
            return None
        n, c = parts[0].shape[:2]
        for transpose in (False, True):
            idx = v.idx.transpose(0, 2, 1) if transpose else v.idx
            if idx.shape[:2] != (n, c):
                continue
            k, _ = joined.locate(idx[0, 0])
            order = [int(p) for i, p in enumerate(k) if i == 0 or p != k[i - 1]]    # the pieces' order
            if len(set(order)) != len(order):
                continue
            expect = np.concatenate([joined.bases[p] + np.arange(int(np.prod(parts[p].shape))).reshape(n, c, -1)
                                     for p in order], axis=2)
            if expect.shape == idx.shape and np.array_equal(expect, idx):
                t = Tensor(self.unique_name(tag, 'points'), v.idx.shape)
                self.nodes.append(Node(t.name, 'spatial_concat', [parts[p].name for p in order],
                                       {'transpose': transpose}))
                return t
        return None

    def laid_out(self, v, tag, output):
        """For an Index read by a layer (output False) or returned by the
        model: its spatial_concat Tensor, or why it cannot be (a str), or
        None for an Index to take as a channel view."""
        t = self.spatial_layout(v, tag) if output else None
        if t is not None or not isinstance(v.src, Joined):
            return t
        if output:
            return ('a concatenation along pixels or images gives an output laid out other than planes end to '
                    'end, (N, C, pixels) or (N, pixels, C)')
        return "a concatenation along pixels or images feeds a layer (only a model's outputs may be planes " \
               'laid end to end)'

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
