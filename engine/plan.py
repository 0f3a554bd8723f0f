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

from engine.graph import VIEW_OPS, avgpool_divisors, clamp_bounds, infer_shapes, validate
from engine.kernels import gemm as _gemm
from engine.kernels import window as _window
from engine.kernels.abi import Act, EltwiseMode, WindowMode, WindowPath
from engine.kernels.descriptors import (ConvDirect, ConvIm2col, Eltwise, ExpandDepthwise, Gemm,
                                        GlobalAvgPool, Linear, Window)
from engine.kernels.program import PLANE_ALIGN, Program
from engine.memory import check_memory

TILE_ROWS, NR, LINEAR_NO = _gemm.TILE_ROWS, _gemm.TILE_PIXELS, _gemm.LINEAR_OUTPUTS


@dataclass(frozen=True)
class PlanOptions:
    """How the planner splits work and picks kernels, tiles and fusions.
    The defaults are what measured fastest (README); tests and benchmarks
    pass others (Model(..., options=PlanOptions(direct_conv=False)))."""
    min_jobs: int = 8            # split a GEMM's row tiles until an image gives this many jobs
    channel_jobs: int = 16       # per-channel ops, convolutions: jobs per image, each a run of
                                 # channels, pixel tiles or output rows
    direct_conv: bool = True     # dense stride-1/2 convolutions read framed rows in place (else im2col)
    # 1x1 convolutions, pixels per tile (_pixel_tiles):
    tail_tiles: bool = True      # a plane of TAIL_PIXELS pixels (7x7 on AVX-512) as one tile, and a
                                 # remainder of up to EXTRA_PIXELS past whole tiles in the last one
                                 # (the rows as lanes, not a vector mostly empty)
    wide_tiles: bool = True      # narrow row tiles three vectors wide from wide_min_k input channels
    wide_min_k: int = 64         # (at 16-32 the wider tile's B reloads cost more)
    fuse_expand_dw: bool = True  # run a 1x1 convolution and the depthwise one reading it as one op
    fuse_min_bytes: int = 1 << 20   # ... when the 1x1's output is at least this large (else it
                                    # stays in cache)
    fuse_band_bytes: int = 512 << 10  # scratch for one band of the 1x1's output
    fuse_min_bands: int = 4      # bands per image at least (jobs for the threads)
    k_split: bool = True         # a 1x1 convolution reading a depthwise one reduces in two halves
    k_split_min_k: int = 192     # (with two threads, each the channels its core wrote), then an op
    k_split_pixels: tuple = (196, 784)  # sums them; from this many channels, on planes of these
                                 # sizes (MobileNetV2: at 7x7 and below 192 channels the sum costs
                                 # what the split saves)
    flat_max_pixels: int = 16384   # window ops: stride-1 output planes up to this size run flat,
    flat_s2_max_pixels: int = 64   # and stride-2 ones up to this size (through phase planes;
                                   # beyond it, building them costs more than they save)


def padded_plane(pixels):
    return -(-pixels // PLANE_ALIGN) * PLANE_ALIGN


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
        if node.op in VIEW_OPS:
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
    slack = _window.ARENA_SLACK
    image_stride = padded_plane(slack + arena.peak + slack)
    check_memory(4 * image_stride, f'an image of {height}x{width}')

    region_offset = np.array(offset, np.int64) + slack
    region_stride = np.array([stride for _, stride in region_shape], np.int64)

    def offsets(value):
        r, ch = refs[value]
        return region_offset[r] + ch * region_stride[r]

    # -- 4. kernels
    records, layers, scratch = [], [], [1]
    for step in computes:
        if isinstance(step, tuple):
            record, kind, need = _compile_expand_dw(*step, shapes, offsets, options)
            node, name = step[1], f'{step[0].name}+{step[1].name}'
        else:
            record, kind, need = _compile_node(step, shapes, offsets, options)
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


def _is_pointwise(node):
    """A 1x1 stride-1 unpadded convolution without groups: a plain GEMM."""
    a = node.attrs
    return (node.op == 'conv' and a['groups'] == 1 and tuple(a['kernel']) == (1, 1)
            and tuple(a['stride']) == (1, 1) and tuple(a['padding']) == (0, 0))


def _is_depthwise(node):
    """A convolution with one input and one output channel per group."""
    a = node.attrs
    return node.op == 'conv' and a['groups'] == a['in_channels'] == a['out_channels']


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
        if not (_is_depthwise(dw) and len(dw.inputs) == 1
                and tuple(a['stride']) in ((1, 1), (2, 2)) and tuple(a['dilation']) == (1, 1)):
            continue
        pw = producer.get(dw.inputs[0])
        if pw is None or not _is_pointwise(pw) or len(pw.inputs) != 1 or readers[pw.name] != 1:
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
        if (_is_pointwise(n) and n.attrs['in_channels'] >= options.k_split_min_k
                and options.k_split_pixels[0] <= pixels <= options.k_split_pixels[1]
                and src is not None and _is_depthwise(src) and src.name not in fused):
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
                   lo=conv.lo, hi=conv.hi, act=conv.act, in_off=conv.out_off, in2_off=conv.part_off,
                   out_off=conv.out_off, **_runs(conv.plane // _window.VECTOR, options.channel_jobs))


def _compile_expand_dw(pw, dw, shapes, offsets, options):
    """One op: the 1x1 convolution pw writes bands of rows to scratch, the
    depthwise dw reads them there (kernels/fused.pyx)."""
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
    step = _window.VECTOR // np.gcd(w, _window.VECTOR)
    flat = sh == 1 and shapes[dw.name][2] == w and rows >= step
    if flat:
        rows -= rows % step
    plane = band_plane(rows)
    # channel c's band at head + c * plane of the scratch: the depthwise's
    # border vectors read up to pw floats before a row, the flat path up to
    # ARENA_SLACK floats around the bands
    head = _window.ARENA_SLACK if flat else padded_plane(dw.attrs['padding'][1])
    band_off = head + np.arange(e, dtype=np.int64) * plane
    gemm, kind, _ = _compile_node(pw, shapes, offsets, options, out_off=band_off)
    then, dw_kind, dw_need = _compile_node(dw, shapes, offsets, options, direct_only=not flat,
                                           in_off=band_off)
    if flat and then.path != WindowPath.WINDOW_FLAT:     # no flat tables: the direct path
        flat = False
        then, dw_kind, dw_need = _compile_node(dw, shapes, offsets, options, direct_only=True,
                                               in_off=band_off)
    record = ExpandDepthwise(**_fields(gemm, plane=plane, jobs_per_image=-(-out_h // rows)),
                             then=then, per_job=rows)
    after = _window.ARENA_SLACK if flat else dw_need      # the flat reads, or the direct path's scratch
    return record, f'{kind}+{dw_kind}', int(band_off[-1]) + plane + after


def _fields(record, **changes):
    """A record's fields as keyword arguments, some changed."""
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values.update(changes)
    return values


def _per_image_shape(chw, rank):
    return tuple(chw) if rank == 4 else (chw[0],)


def _act(name):
    """The Act code of a graph's activation name (None: none)."""
    return Act.ACT_NONE if name is None else Act['ACT_' + name.upper()]


def _compile_node(node, shapes, offsets, options, in_off=None, out_off=None, direct_only=False):
    """(record for Program (kernels/descriptors.py), layer kind, scratch
    floats per thread).  in_off and out_off replace the node's arena planes
    (a fused op's scratch); direct_only keeps window ops on the direct path
    (they read bands)."""
    a, p = node.attrs, node.params
    c, h, w = shapes[node.inputs[0]]
    oc, oh, ow = shapes[node.name]
    lo, hi = clamp_bounds(a.get('clamp'))
    step = dict(n_out=oc, plane=padded_plane(oh * ow), lo=lo, hi=hi, act=_act(a.get('act')),
                in_off=offsets(node.inputs[0]) if in_off is None else in_off,
                out_off=offsets(node.name) if out_off is None else out_off)
    spatial = dict(in_h=h, in_w=w, out_h=oh, out_w=ow)
    if node.op == 'conv':
        residual = offsets(node.inputs[1]) if len(node.inputs) == 2 else None   # a fused add
        return _compile_conv(node, step, spatial, residual, options, direct_only)
    if node.op == 'linear':
        return _compile_linear(p['weight'], p.get('bias'), step, None), 'linear', LINEAR_NO
    if node.op in ('maxpool', 'avgpool') and not _covers_whole_plane(node, spatial):
        return _compile_pool(node, step, spatial, options)
    if node.op in ('global_avgpool', 'avgpool'):
        record = GlobalAvgPool(**step, in_h=h, in_w=w, **_channel_runs(oc, options))
        return record, 'global_avgpool', 0
    runs = _channel_runs(oc, options)
    if node.op == 'add':
        record = Eltwise(**step, **runs, mode=EltwiseMode.ELTWISE_ADD, in2_off=offsets(node.inputs[1]))
    elif node.op == 'mul':
        per_channel = shapes[node.inputs[1]] != shapes[node.inputs[0]]
        record = Eltwise(**step, **runs, in2_off=offsets(node.inputs[1]),
                         mode=EltwiseMode.ELTWISE_MUL_CHANNEL if per_channel else EltwiseMode.ELTWISE_MUL)
    elif node.op in ('affine', 'batchnorm'):
        scale, shift = _affine_params(node)
        record = Eltwise(**step, **runs, mode=EltwiseMode.ELTWISE_AFFINE, w=scale, b=shift)
    elif node.op == 'act':
        record = Eltwise(**step, **runs, mode=EltwiseMode.ELTWISE_CLAMP)
    else:
        raise ValueError(f'layer {node.name!r}: no kernel for op {node.op!r}')
    return record, node.op, 0


def _covers_whole_plane(node, spatial):
    """An average pool whose one window is the whole unpadded input (ShuffleNet
    V1's 7x7 pool): the global average pool's kernel does it."""
    a = node.attrs
    return (node.op == 'avgpool' and tuple(a['kernel']) == (spatial['in_h'], spatial['in_w'])
            and not any(a['padding']) and (spatial['out_h'], spatial['out_w']) == (1, 1))


def _runs(items, jobs, multiple=1):
    """About `jobs` jobs over `items` (channels, pixel tiles): runs of
    per_job items (a multiple of `multiple`), so that per-job set-up is paid
    per run, not per item."""
    per_job = -(-items // jobs)
    per_job = -(-per_job // multiple) * multiple
    return dict(per_job=per_job, jobs_per_image=-(-items // per_job))


def _channel_runs(channels, options, multiple=1):
    return _runs(channels, options.channel_jobs, multiple)


def _affine_params(node):
    p = node.params
    if node.op == 'affine':
        return p['scale'], p['shift']
    scale = p['weight'] / np.sqrt(p['running_var'].astype(np.float64) + node.attrs['eps'])
    return scale.astype(np.float32), (p['bias'] - p['running_mean'] * scale).astype(np.float32)


def _kernel(attrs, kernel):
    (kh, kw), (sh, sw), (ph, pw) = kernel, attrs['stride'], attrs['padding']
    dh, dw = attrs.get('dilation', (1, 1))
    return dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)


def _window_op(step, spatial, attrs, kernel, mode, options, direct_only=False, **tables):
    """(Window record, scratch floats): flat where the plane is small enough
    and the tables fit, else row by row."""
    k = _kernel(attrs, kernel)
    in_h, in_w, out_h, out_w = spatial['in_h'], spatial['in_w'], spatial['out_h'], spatial['out_w']
    flat = None
    flat_max = {1: options.flat_max_pixels, 2: options.flat_s2_max_pixels}.get(k['sh'], 0)
    if not direct_only and k['sh'] == k['sw'] and out_h * out_w <= flat_max:
        flat = _window.flat_tables(in_h, in_w, out_h, out_w, k['kh'], k['kw'], k['ph'], k['pw'],
                                   k['dh'], k['dw'], k['sh'])
    if flat is not None:
        path = WindowPath.WINDOW_FLAT
        tables.update(tap_off=flat[0], lanes=flat[1])
    else:
        path = WindowPath.WINDOW_DIRECT
        if k['sw'] <= 2:
            tables.update(lanes=_window.row_tables(in_w, out_w, k['kw'], k['sw'], k['pw'], k['dw']))
    # the flat path takes FLAT_PLANES planes at a time: runs of whole groups
    runs = _channel_runs(step['n_out'], options, _window.FLAT_PLANES if flat is not None else 1)
    record = Window(**step, **spatial, **k, mode=mode, path=path, **runs, **tables)
    return record, _window.scratch_floats(in_w, out_h, out_w, k['kh'], k['pw'], k['sh'], path)


def _name_kernel(prefix, kernel, stride):
    return f'{prefix}{kernel[0]}x{kernel[1]}' + ('' if tuple(stride) == (1, 1) else f's{stride[0]}')


def _compile_pool(node, step, spatial, options):
    a = node.attrs
    if node.op == 'maxpool':
        record, need = _window_op(step, spatial, a, a['kernel'], WindowMode.WINDOW_MAX, options,
                                  fill=-np.inf)
    else:
        div = avgpool_divisors(spatial['in_h'], spatial['in_w'], spatial['out_h'], spatial['out_w'],
                               a['kernel'], a['stride'], a['padding'], a['count_include_pad'])
        record, need = _window_op(step, spatial, a, a['kernel'], WindowMode.WINDOW_AVG, options,
                                  fill=0.0, aux=np.concatenate([div.ravel(), np.zeros(PLANE_ALIGN, np.float32)]))
    return record, _name_kernel(node.op, a['kernel'], a['stride']), need


def _compile_conv(node, step, spatial, residual, options, direct_only=False):
    a, p = node.attrs, node.params
    groups, cin, cout = a['groups'], a['in_channels'], a['out_channels']
    cin_g, cout_g = cin // groups, cout // groups
    weight = np.asarray(p['weight'], np.float32)
    bias = p.get('bias')
    bias = np.zeros(cout, np.float32) if bias is None else np.asarray(bias, np.float32)
    kernel, stride, padding = tuple(a['kernel']), tuple(a['stride']), tuple(a['padding'])

    if cin_g == 1:      # depthwise, possibly with a channel multiplier
        step = dict(step, in_off=step['in_off'][np.arange(cout) // cout_g])
        record, need = _window_op(step, spatial, a, kernel, WindowMode.WINDOW_CONV, options, direct_only,
                                  fill=0.0, w=weight.reshape(cout, -1), b=bias)
        return record, _name_kernel('dwconv', kernel, stride), need

    pixels = spatial['out_h'] * spatial['out_w']
    pointwise = kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)
    if pointwise and groups == 1 and pixels == 1:
        return _compile_linear(weight.reshape(cout, cin), bias, step, residual), 'conv1x1', LINEAR_NO

    K = cin_g * kernel[0] * kernel[1]
    tail = pointwise and options.tail_tiles and pixels == _gemm.TAIL_PIXELS
    w_packed, b_packed, rows, m_tiles = _pack_gemm(weight.reshape(groups, cout_g, K),
                                                   bias.reshape(groups, cout_g),
                                                   _gemm.NARROW_ROWS if tail else None)
    tile_pixels, n_tiles = (_pixel_tiles(pixels, step['plane'], rows, K, tail, options) if pointwise
                            else (NR, -(-step['plane'] // NR)))
    gemm = dict(step, **spatial, groups=groups, cin_g=cin_g, cout_g=cout_g, K=K, tile_rows=rows,
                m_tiles=m_tiles, n_tiles=n_tiles, tile_pixels=tile_pixels, w=w_packed, b=b_packed,
                res_off=residual)
    if pointwise:
        m_chunks = min(m_tiles, max(1, -(-options.min_jobs // (groups * n_tiles))))
        m_per_job = -(-m_tiles // m_chunks)
        m_chunks = -(-m_tiles // m_per_job)
        record = Gemm(**gemm, m_per_job=m_per_job, jobs_per_image=groups * n_tiles * m_chunks)
        return record, 'conv1x1' + ('' if groups == 1 else f'g{groups}'), 0
    k = _kernel(a, kernel)
    name = _name_kernel('conv', kernel, stride) + ('' if groups == 1 else f'g{groups}')
    if (options.direct_conv and groups == 1 and k['sh'] == k['sw'] and k['sh'] in (1, 2)
            and (k['dh'], k['dw']) == (1, 1)):
        runs = _runs(spatial['out_h'], options.channel_jobs)
        taps = _gemm.direct_tap_offsets(cin, spatial['in_w'], k['pw'], k['kh'], k['kw'], k['sw'],
                                        runs['per_job'])
        record = ConvDirect(**gemm, **k, **runs, m_per_job=m_tiles, in2_off=taps)
        return record, name, _gemm.direct_scratch_floats(cin, spatial['in_w'], k['pw'], k['kh'], k['sh'],
                                                         runs['per_job'])
    runs = _runs(n_tiles, max(1, -(-options.channel_jobs // groups)))
    record = ConvIm2col(**gemm, **k, m_per_job=m_tiles, per_job=runs['per_job'],
                        jobs_per_image=groups * runs['jobs_per_image'],
                        in2_off=np.arange(K, dtype=np.int64) * NR)
    return record, name + '_im2col', _gemm.im2col_scratch_floats(K, k['kw'])


def _pixel_tiles(pixels, plane, rows, K, tail, options):
    """(pixels per tile, tiles) of a 1x1 convolution's plane (gemm_job): the
    whole plane for a tail tile; else tiles of TILE_PIXELS, or WIDE_PIXELS
    for narrow rows and a long reduction, to the padded plane's end, except
    that a remainder of 1 to EXTRA_PIXELS past whole tiles joins the last."""
    if tail:
        return pixels, 1
    if options.wide_tiles and rows == _gemm.NARROW_ROWS and K >= options.wide_min_k and _gemm.WIDE_PIXELS:
        return _gemm.WIDE_PIXELS, -(-plane // _gemm.WIDE_PIXELS)
    if options.tail_tiles and pixels > NR and 0 < pixels % NR <= _gemm.EXTRA_PIXELS:
        return NR, pixels // NR
    return NR, -(-plane // NR)


def _pack_gemm(w, b, mr=None):
    """w (G, M, K) -> [G][M/MR][K][MR] row tiles zero-padded; b -> [G][M/MR][MR],
    each followed by the floats the tiles may read past it.  MR: the tile
    height of TILE_ROWS whose rows, empty ones included, cost least (the
    taller one on a tie), unless given.  Returns (w, b, MR, M/MR)."""
    g, m, k = w.shape
    if mr is None:
        mr = min(TILE_ROWS, key=lambda rows: (-(-m // rows) * rows * TILE_ROWS[rows], -rows))
    m_tiles = -(-m // mr)
    wp = np.zeros((g, m_tiles * mr, k), np.float32)
    wp[:, :m] = w
    bp = np.zeros((g, m_tiles * mr), np.float32)
    bp[:, :m] = b
    wp = wp.reshape(g, m_tiles, mr, k).transpose(0, 1, 3, 2)
    slack = np.zeros(_gemm.WEIGHT_OVERREAD, np.float32)
    return np.concatenate([wp.ravel(), slack]), np.concatenate([bp.ravel(), slack]), mr, m_tiles


def _compile_linear(weight, bias, step, residual):
    """weight (O, K) -> [O/NO][K][NO] tiles zero-padded."""
    o, k = weight.shape
    tiles = -(-o // LINEAR_NO)
    wp = np.zeros((tiles * LINEAR_NO, k), np.float32)
    wp[:o] = weight
    bp = np.zeros(tiles * LINEAR_NO, np.float32)
    if bias is not None:
        bp[:o] = bias
    wp = np.ascontiguousarray(wp.reshape(tiles, LINEAR_NO, k).transpose(0, 2, 1)).ravel()
    return Linear(**step, K=k, w=wp, b=bp, res_off=residual, jobs_per_image=tiles)
