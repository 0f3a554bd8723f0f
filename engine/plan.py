"""Planning: a graph and an input size in, a compiled Program out.

1. Shapes are inferred for the input size.
2. View ops (gather, concat, flatten) are resolved into channel references:
   every value becomes a list of (region, channel) pairs, so a channel
   shuffle, split or concat is a reordering of that list and no kernel ever
   runs for it.
3. Each compute op writes a new region (one padded plane per channel).  A
   region lives until the last op that reads any of its planes; regions are
   placed in one arena per image by first-fit over those lifetimes.
4. Each compute op gets its kernel, prepacked weights and offset tables.
"""
from dataclasses import dataclass, fields, replace

import numpy as np

from engine.graph import infer_shapes, is_view, validate
from engine.kernels import isa
from engine.kernels.abi import EltwiseMode, WindowPath
from engine.kernels.descriptors import Eltwise, ExpandDepthwise
from engine.kernels.isa import Program
from engine.lowering import Lowering, PlanOptions, padded_plane, runs
from engine.memory import check_memory
from engine.ops import REGISTRY
from engine.ops.conv import is_depthwise, is_pointwise


@dataclass
class Layer:
    name: str       # the node (module path) it runs
    kind: str       # what runs, e.g. 'conv1x1', 'dwconv3x3s2', 'maxpool3x3s2'
    shape: tuple    # output shape of one image


@dataclass
class CompiledPlan:
    program: Program
    image_stride: int               # arena floats per image
    scratch_stride: int             # scratch floats per thread
    input_offsets: np.ndarray
    outputs: list                   # (offsets, per-image output shape)
    layers: list                    # Layer per op of the program


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


def compile_graph(graph, height, width, options=PlanOptions()):
    info = validate(graph)
    shapes = infer_shapes(graph, height, width)

    # -- 2. channel references; regions with their lifetimes in compute steps
    region_shape = []       # (channels, plane stride)
    first, last = [], []
    refs = {}

    def new_region(value, step, chw):
        """A region for value (a node's name, or a key of the planner's own
        buffers) written at `step`."""
        c, h, w = chw
        region_shape.append((c, padded_plane(h * w)))
        first.append(step)
        last.append(step)
        r = len(region_shape) - 1
        refs[value] = (np.full(c, r), np.arange(c))

    new_region(graph.input_name, -1, shapes[graph.input_name])
    fused = _expand_dw_pairs(graph, shapes, options) if options.fuse_expand_dw else {}
    k_split = _k_split_convs(graph, shapes, fused, options) if options.k_split else set()
    expands = {a.name: a for a in fused.values()}
    computes = []           # nodes, or (1x1, depthwise) pairs run as one op
    for node in graph.nodes:
        if node.name in expands:
            continue        # runs inside its depthwise consumer: no region of its own
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
        expand = fused.get(node.name)
        for i in (expand or node).inputs:
            for r in np.unique(refs[i][0]):
                last[r] = step
        new_region(node.name, step, shapes[node.name])
        if node.name in k_split:        # the second half's partial sums, used within the step
            new_region(_k_half(node), step, shapes[node.name])
        computes.append((expand, node) if expand else node)
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
    slack = isa.ARENA_SLACK
    image_stride = padded_plane(slack + arena.peak + slack)
    check_memory(4 * image_stride, f'an image of {height}x{width}')

    region_offset = np.array(offset, np.int64) + slack
    region_stride = np.array([stride for _, stride in region_shape], np.int64)

    def offsets(value):
        r, ch = refs[value]
        return region_offset[r] + ch * region_stride[r]

    # -- 4. kernels
    ctx = Lowering(shapes, offsets, options)
    records, layers, scratch = [], [], [1]
    for step in computes:
        if isinstance(step, tuple):
            record, kind, need = _compile_expand_dw(*step, ctx)
            node, name = step[1], f'{step[0].name}+{step[1].name}'
        else:
            record, kind, need = REGISTRY[step.op].lower(step, ctx)
            node, name = step, step.name
        shape = _per_image_shape(shapes[node.name], info[node.name][1])
        layers.append(Layer(name, kind, shape))
        scratch.append(need)
        if node.name in k_split:
            record = replace(record, k_splits=2, part_off=offsets(_k_half(node)),
                             jobs_per_image=2 * record.jobs_per_image)
            records.append(record)
            records.append(_k_halves_sum(record, options))
            layers.append(Layer(name, 'k_halves_sum', shape))
        else:
            records.append(record)
    scratch_stride = padded_plane(max(scratch))
    program = Program(records, image_stride, scratch_stride)
    outputs = [(offsets(o), _per_image_shape(shapes[o], info[o][1])) for o in graph.outputs]
    return CompiledPlan(program, image_stride, scratch_stride, offsets(graph.input_name),
                        outputs, layers)


def _expand_dw_pairs(graph, shapes, options):
    """{depthwise node name: the 1x1 convolution it alone reads} for the
    pairs to fuse: MobileNetV2's expansion and depthwise layers at the large
    planes, where the expanded tensor would not stay in cache."""
    readers = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    for o in graph.outputs:
        readers[o] = readers.get(o, 0) + 1
    producer = {n.name: n for n in graph.nodes}
    pairs = {}
    for dw in graph.nodes:
        a = dw.attrs
        if not (is_depthwise(dw) and len(dw.inputs) == 1
                and tuple(a['stride']) in ((1, 1), (2, 2)) and tuple(a['dilation']) == (1, 1)):
            continue
        pw = producer.get(dw.inputs[0])
        if pw is None or not is_pointwise(pw) or len(pw.inputs) != 1 or readers[pw.name] != 1:
            continue
        c, h, w = shapes[pw.name]
        if h * w > 1 and 4 * c * h * w >= options.fuse_min_bytes:
            pairs[dw.name] = pw
    return pairs


def _k_split_convs(graph, shapes, fused, options):
    """Names of the 1x1 convolutions to split in halves of the reduction
    (kernels/gemm.pyx gemm_job): those reading a depthwise convolution.  That
    op gives each thread a contiguous run of channels, so with two threads a
    thread reducing its half of them reads planes its own core wrote, where
    a split by pixels or output channels reads half of its input from the
    other core (measured: 25-30 % slower).  Not after a fused expansion:
    that one splits by rows."""
    producer = {n.name: n for n in graph.nodes}
    names = set()
    for n in graph.nodes:
        src = producer.get(n.inputs[0])
        pixels = shapes[n.name][1] * shapes[n.name][2]
        if (is_pointwise(n) and n.attrs['in_channels'] >= options.k_split_min_k
                and options.k_split_pixels[0] <= pixels <= options.k_split_pixels[1]
                and src is not None and is_depthwise(src) and src.name not in fused):
            names.add(n.name)
    return names


def _k_half(node):
    """The key of a K-split convolution's second half's partial sums (a
    region of the planner's own, beside the graph's values)."""
    return ('k-split second half', node.name)


def _k_halves_sum(conv, options):
    """The op after a K-split 1x1 convolution: its output (the first half,
    with bias and residual) plus the second half, clamped and activated.
    Split by pixels, as the 1x1 convolutions reading it are."""
    return Eltwise(mode=EltwiseMode.ELTWISE_ADD_SPLIT, n_out=conv.n_out, plane=conv.plane,
                   lo=conv.lo, hi=conv.hi, act=conv.act, act_w=conv.act_w, in_off=conv.out_off,
                   in2_off=conv.part_off,
                   out_off=conv.out_off, **runs(conv.plane // isa.VECTOR, options.channel_jobs))


def _compile_expand_dw(pw, dw, ctx):
    """One op: the 1x1 convolution pw writes bands of rows to scratch, the
    depthwise dw reads them there (kernels/fused.pyx)."""
    shapes, options = ctx.shapes, ctx.options
    e, h, w = shapes[pw.name]
    out_h = shapes[dw.name][1]
    (sh, _), (kh, _), (dh, _) = dw.attrs['stride'], dw.attrs['kernel'], dw.attrs['dilation']

    def band_plane(rows):       # floats per channel of a band of `rows` output rows
        return padded_plane(((rows - 1) * sh + (kh - 1) * dh + 1) * w)

    rows = -(-out_h // options.fuse_min_bands)
    while rows > 1 and 4 * e * band_plane(rows) > options.fuse_band_bytes:
        rows -= 1
    # at stride 1 the depthwise runs flat, if bands can be whole vectors:
    # rows a multiple of `step`
    step = isa.VECTOR // np.gcd(w, isa.VECTOR)
    flat = sh == 1 and shapes[dw.name][2] == w and rows >= step
    if flat:
        rows -= rows % step
    plane = band_plane(rows)
    # channel c's band at head + c * plane of the scratch: the depthwise's
    # border vectors read up to pw floats before a row, the flat path up to
    # ARENA_SLACK floats around the bands
    head = isa.ARENA_SLACK if flat else padded_plane(dw.attrs['padding'][1])
    band_off = head + np.arange(e, dtype=np.int64) * plane
    conv = REGISTRY['conv']
    gemm, kind, _ = conv.lower(pw, replace(ctx, out_off=band_off))
    then, dw_kind, dw_need = conv.lower(dw, replace(ctx, direct_only=not flat, in_off=band_off))
    if flat and then.path != WindowPath.WINDOW_FLAT:     # no flat tables: the direct path
        flat = False
        then, dw_kind, dw_need = conv.lower(dw, replace(ctx, direct_only=True, in_off=band_off))
    record = ExpandDepthwise(**_fields(gemm, plane=plane, jobs_per_image=-(-out_h // rows)),
                             then=then, per_job=rows)
    after = isa.ARENA_SLACK if flat else dw_need      # the flat reads, or the direct path's scratch
    return record, f'{kind}+{dw_kind}', int(band_off[-1]) + plane + after


def _fields(record, **changes):
    """A record's fields as keyword arguments, some changed."""
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values.update(changes)
    return values


def _per_image_shape(chw, rank):
    return tuple(chw) if rank == 4 else (chw[0],)
