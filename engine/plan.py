"""Planning: a graph and an input size in, a compiled Program out.

1. Shapes are inferred for the input size, and the graph rewritten for it
   (engine/optimize.py: optimize_for_size, with the PlanOptions).
2. View ops (gather, concat, flatten) are resolved into channel references:
   every value becomes a list of (region, channel) pairs, so a channel
   shuffle, split or concat is a reordering of that list and no kernel ever
   runs for it.
3. Each compute op writes a new region (one padded plane per channel, its
   size in bytes from the tensor's dtype).  A region lives until the last
   op that reads any of its planes; regions are placed in one arena per
   image by first-fit over those lifetimes.  Offsets are in bytes.
4. Each compute op gets its kernel record (its op's `lower`: prepacked
   weights and offset tables).
"""
from dataclasses import dataclass

import numpy as np

from engine.graph import infer_shapes, is_view, validate, value_dtypes, value_quants
from engine.kernels import isa
from engine.lowering import Lowering, PlanOptions, plane_bytes, whole_lines
from engine.memory import check_memory
from engine.ops import REGISTRY
from engine.optimize import optimize_for_size


@dataclass
class Layer:
    name: str       # the node (module path) it runs
    kind: str       # what runs, e.g. 'conv1x1', 'dwconv3x3s2', 'maxpool3x3s2'
    shape: tuple    # output shape of one image


@dataclass
class Output:
    """How one output is copied out of the arena: the planes of each piece
    (offsets in bytes, pixels per plane) as (N, C, pixels), the pieces end
    to end along the pixels, transposed to (N, pixels, C) if `transpose`
    (a spatial_concat layout; one piece, not transposed, for the others)."""
    pieces: list
    transpose: bool
    shape: tuple                    # one image's

    def gather(self, kernels, arena, image_bytes, n):
        parts = [kernels.gather_planes(arena, image_bytes, n, off, pixels) for off, pixels in self.pieces]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
        if self.transpose:
            out = np.ascontiguousarray(out.transpose(0, 2, 1))
        return out.reshape((n,) + self.shape)


@dataclass
class CompiledPlan:
    kernels: object                 # the kernel module it runs on (engine.kernels.isa.kernels)
    program: object                 # that module's Program
    image_bytes: int                # arena bytes per image
    scratch_bytes: int              # scratch bytes per thread
    input_offsets: np.ndarray       # bytes
    outputs: list                   # Output per graph output
    layers: list                    # Layer per op of the program

    def scatter(self, x, arena, threads=1):
        """The float32 batch x into its arena's input planes."""
        self.kernels.scatter_planes(x, arena, self.image_bytes, self.input_offsets, threads)

    def gather(self, arena, n):
        """The outputs of n images from the arena, float32."""
        return [out.gather(self.kernels, arena, self.image_bytes, n) for out in self.outputs]


class _Arena:
    """First-fit placement of regions in one image's arena."""

    def __init__(self):
        self.free = []      # sorted (offset, size)
        self.top = 0        # end of the highest placed region
        self.peak = 0

    def alloc(self, size):
        for i, (off, sz) in enumerate(self.free):
            if sz >= size:
                self.free[i:i + 1] = [(off + size, sz - size)] if sz > size else []
                return off
        off, self.top = self.top, self.top + size
        self.peak = max(self.peak, self.top)
        return off

    def release(self, off, size):
        self.free.append((off, size))
        self.free.sort()
        merged = []
        for o, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        if merged and merged[-1][0] + merged[-1][1] == self.top:
            self.top = merged.pop()[0]
        self.free = merged


def compile_graph(graph, height, width, options=PlanOptions(), info=None, kernels=None):
    """The plan of `graph` for inputs of height x width, on the kernel module
    `kernels` (None: isa.kernels(), float32).  info: what graph.validate
    returned for it (Model validates once for all its plans), or None to
    validate it here."""
    if info is None:
        info = validate(graph)
    if kernels is None:
        kernels = isa.kernels()
    graph, shapes = optimize_for_size(graph, infer_shapes(graph, height, width), options)
    # what the graph computes in float32 the kernels hold as their element type
    dtypes = {value: kernels.ELEMENT if dtype == 'float32' else dtype
              for value, dtype in value_dtypes(graph).items()}

    # -- 2. channel references; regions with their lifetimes in compute steps
    region_shape = []       # (channels, plane stride in bytes)
    first, last = [], []
    refs = {}

    def new_region(value, step, chw):
        """A region for value written at `step`."""
        c, h, w = chw
        region_shape.append((c, plane_bytes(h * w, dtypes[value])))
        first.append(step)
        last.append(step)
        r = len(region_shape) - 1
        refs[value] = (np.full(c, r), np.arange(c))

    new_region(graph.input_name, -1, shapes[graph.input_name])
    computes = []
    for node in graph.nodes:
        if is_view(node):
            parts = [refs[i] for i in node.inputs]
            r = np.concatenate([p[0] for p in parts])
            ch = np.concatenate([p[1] for p in parts])
            if node.op == 'gather':
                idx = np.asarray(node.attrs['indices'])
                r, ch = r[idx], ch[idx]
            refs[node.name] = (r, ch)
            continue
        step = len(computes)
        for i in node.inputs:
            for r in np.unique(refs[i][0]):
                last[r] = step
        new_region(node.name, step, shapes[node.name])
        computes.append(node)
    for o in graph.outputs:
        for r in np.unique(refs[o][0]):
            last[r] = len(computes)

    # -- 3. placement
    arena = _Arena()
    offset = [0] * len(region_shape)
    by_first = sorted(range(len(region_shape)), key=lambda r: first[r])
    by_last = sorted(range(len(region_shape)), key=lambda r: last[r])
    freed = 0
    for r in by_first:
        while freed < len(by_last) and last[by_last[freed]] < first[r]:
            q = by_last[freed]
            arena.release(offset[q], region_shape[q][0] * region_shape[q][1])
            freed += 1
        offset[r] = arena.alloc(region_shape[r][0] * region_shape[r][1])
    # slack before the first plane and after the last: window kernels read a
    # little outside planes
    slack = kernels.ELEMENT_BYTES * kernels.ARENA_SLACK
    image_bytes = whole_lines(slack + arena.peak + slack)
    check_memory(image_bytes, f'an image of {height}x{width}')

    region_offset = np.array(offset, np.int64) + slack
    region_stride = np.array([stride for _, stride in region_shape], np.int64)

    def offsets(value):
        r, ch = refs[value]
        return region_offset[r] + ch * region_stride[r]

    # -- 4. kernels
    ctx = Lowering(shapes, dtypes, value_quants(graph), offsets, options, kernels)
    records, layers, scratch = [], [], [1]
    for node in computes:
        definition = REGISTRY[node.op]
        record, kind, need = definition.lower(node, ctx)
        records.append(record)
        scratch.append(need)
        name = node.attrs.get('label', node.name)     # (the graph's layer a pass's node came from)
        rank = 4 if definition.plan_only else info[name][1]
        layers.append(Layer(name, kind, definition.image_shape(node, shapes[node.name], rank)))
    scratch_bytes = whole_lines(kernels.ELEMENT_BYTES * max(scratch))     # scratch: elements
    program = kernels.Program(records, image_bytes, scratch_bytes)
    pixels = {value: h * w for value, (_, h, w) in shapes.items()}
    by_name = {node.name: node for node in graph.nodes}
    outputs = []
    for o in graph.outputs:
        node = by_name.get(o)
        if node is not None and REGISTRY[node.op].output_only:
            pieces, transpose = [(offsets(i), pixels[i]) for i in node.inputs], node.attrs['transpose']
        else:
            pieces, transpose = [(offsets(o), pixels[o])], False
        shape = REGISTRY[node.op].image_shape(node, shapes[o], info[o][1]) if node is not None else shapes[o]
        outputs.append(Output(pieces, transpose, shape))
    # the planes copied in and out on every call
    for off, n in [(offsets(graph.input_name), pixels[graph.input_name])] + [p for o in outputs for p in o.pieces]:
        kernels.check_planes(image_bytes, off, n)
    return CompiledPlan(kernels, program, image_bytes, scratch_bytes, offsets(graph.input_name),
                        outputs, layers)
