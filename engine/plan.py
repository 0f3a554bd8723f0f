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
from dataclasses import dataclass

import numpy as np

from engine.graph import (NONLINEAR, VIEW_OPS, avgpool_divisors, clamp_bounds,
                          infer_shapes, validate)
from engine.kernels import gemm as _gemm
from engine.kernels import window as _window
from engine.kernels.program import PLANE_ALIGN, Program
from engine.memory import check_memory

TILE_ROWS, NR, LINEAR_NO = _gemm.TILE_ROWS, _gemm.TILE_PIXELS, _gemm.LINEAR_OUTPUTS
MIN_JOBS = 8       # split a GEMM's row tiles until an image gives this many jobs
CHANNEL_JOBS = 16  # per-channel ops, convolutions: jobs per image, each a run of channels,
                   # pixel tiles or output rows
DIRECT_CONV = True # dense stride-1/2 convolutions read framed rows in place (else im2col)
# 1x1 convolutions, pixels per tile (_pixel_tiles):
TAIL_TILES = True          # a plane of TAIL_PIXELS pixels (7x7 on AVX-512) as one tile, and a
                           # remainder of up to EXTRA_PIXELS past whole tiles in the last one
                           # (the rows as lanes, not a vector mostly empty)
WIDE_TILES = True          # narrow row tiles three vectors wide from WIDE_MIN_K input channels
WIDE_MIN_K = 64            # (at 16-32 the wider tile's B reloads cost more)
FUSE_EXPAND_DW = True      # run a 1x1 convolution and the depthwise one reading it as one op
FUSE_MIN_BYTES = 1 << 20   # ... when the 1x1's output is at least this large (else it stays in cache)
FUSE_BAND_BYTES = 512 << 10  # scratch for one band of the 1x1's output
FUSE_MIN_BANDS = 4         # bands per image at least (jobs for the threads)
K_SPLIT = True             # a 1x1 convolution reading a depthwise one reduces in two halves (with
K_SPLIT_MIN_K = 192        # two threads, each the channels its core wrote), then an op sums them;
K_SPLIT_PIXELS = (196, 784)  # from this many channels, on planes of these sizes (MobileNetV2: at
                           # 7x7 and below 192 channels the sum costs what the split saves)


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


def compile_graph(graph, height, width):
    info = validate(graph)
    shapes = infer_shapes(graph, height, width)

    # -- 2. channel references; regions with their lifetimes in compute steps
    region_shape = []       # (channels, plane stride)
    first, last = [], []
    refs = {}

    def new_region(value, step):
        c, h, w = shapes[value]
        region_shape.append((c, padded_plane(h * w)))
        first.append(step)
        last.append(step)
        r = len(region_shape) - 1
        refs[value] = (np.full(c, r), np.arange(c))

    new_region(graph.input_name, -1)
    fused = _expand_dw_pairs(graph, shapes) if FUSE_EXPAND_DW else {}
    k_split = _k_split_convs(graph, shapes, fused) if K_SPLIT else set()
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
        new_region(node.name, step)
        if node.name in k_split:        # the second half's partial sums, used within the step
            shapes[_k_half(node)] = shapes[node.name]
            new_region(_k_half(node), step)
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
    specs, layers, scratch = [], [], [1]
    for step in computes:
        if isinstance(step, tuple):
            spec, kind, need = _compile_expand_dw(*step, shapes, offsets)
            node, name = step[1], f'{step[0].name}+{step[1].name}'
        else:
            spec, kind, need = _compile_node(step, shapes, offsets)
            node, name = step, step.name
        shape = _per_image_shape(shapes[node.name], info[node.name][1])
        specs.append(spec)
        layers.append(Layer(name, kind, shape))
        scratch.append(need)
        if node.name in k_split:
            spec.update(k_splits=2, part_off=offsets(_k_half(node)),
                        jobs_per_image=2 * spec['jobs_per_image'])
            specs.append(_k_halves_sum(spec))
            layers.append(Layer(name, 'k_halves_sum', shape))
    scratch_stride = padded_plane(max(scratch))
    program = Program(specs, image_stride, scratch_stride)
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


def _expand_dw_pairs(graph, shapes):
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
        if h * w > 1 and 4 * c * h * w >= FUSE_MIN_BYTES:
            pairs[dw.name] = pw
    return pairs


def _k_split_convs(graph, shapes, fused):
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
        if (_is_pointwise(n) and n.attrs['in_channels'] >= K_SPLIT_MIN_K
                and K_SPLIT_PIXELS[0] <= shapes[n.name][1] * shapes[n.name][2] <= K_SPLIT_PIXELS[1]
                and src is not None and _is_depthwise(src) and src.name not in fused):
            names.add(n.name)
    return names


def _k_half(node):
    """The value name of a K-split convolution's second half's partial sums."""
    return node.name + '#second-half'


def _k_halves_sum(conv):
    """The op after a K-split 1x1 convolution: its output (the first half,
    with bias and residual) plus the second half, clamped and activated.
    Split by pixels, as the 1x1 convolutions reading it are."""
    return dict(kind='eltwise', mode=5, n_out=conv['n_out'], plane=conv['plane'],  # ELTWISE_ADD_SPLIT
                lo=conv['lo'], hi=conv['hi'], act=conv['act'], in_off=conv['out_off'],
                in2_off=conv['part_off'], out_off=conv['out_off'],
                **_runs(conv['plane'] // _window.VECTOR, CHANNEL_JOBS))


def _compile_expand_dw(pw, dw, shapes, offsets):
    """One op: the 1x1 convolution pw writes bands of rows to scratch, the
    depthwise dw reads them there (kernels/fused.pyx)."""
    e, h, w = shapes[pw.name]
    out_h = shapes[dw.name][1]
    (sh, _), (kh, _), (dh, _) = dw.attrs['stride'], dw.attrs['kernel'], dw.attrs['dilation']

    def band_plane(rows):       # floats per channel of a band of `rows` output rows
        return padded_plane(((rows - 1) * sh + (kh - 1) * dh + 1) * w)

    rows = -(-out_h // FUSE_MIN_BANDS)
    while rows > 1 and 4 * e * band_plane(rows) > FUSE_BAND_BYTES:
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
    spec, kind, _ = _compile_node(pw, shapes, offsets, out_off=band_off)
    then, dw_kind, dw_need = _compile_node(dw, shapes, offsets, direct_only=not flat,
                                           in_off=band_off)
    if flat and then['path'] != _window.PATHS['flat']:     # no flat tables: the direct path
        flat = False
        then, dw_kind, dw_need = _compile_node(dw, shapes, offsets, direct_only=True,
                                               in_off=band_off)
    spec.update(kind='expand_dw', then=then, plane=plane, per_job=rows,
                jobs_per_image=-(-out_h // rows))
    after = _window.ARENA_SLACK if flat else dw_need      # the flat reads, or the direct path's scratch
    return spec, f'{kind}+{dw_kind}', int(band_off[-1]) + plane + after


def _per_image_shape(chw, rank):
    return tuple(chw) if rank == 4 else (chw[0],)


def _geometry(node, shapes):
    c, h, w = shapes[node.inputs[0]]
    oc, oh, ow = shapes[node.name]
    return dict(in_h=h, in_w=w, out_h=oh, out_w=ow, n_out=oc, plane=padded_plane(oh * ow))


def _compile_node(node, shapes, offsets, in_off=None, out_off=None, direct_only=False):
    """(op spec for Program, layer kind, scratch floats per thread).  in_off
    and out_off replace the node's arena planes (a fused op's scratch);
    direct_only keeps window ops on the direct path (they read bands)."""
    a, p = node.attrs, node.params
    geo = _geometry(node, shapes)
    lo, hi = clamp_bounds(a.get('clamp'))
    spec = dict(geo, lo=lo, hi=hi, act=NONLINEAR.get(a.get('act'), 0),
                in_off=offsets(node.inputs[0]) if in_off is None else in_off,
                out_off=offsets(node.name) if out_off is None else out_off)
    if node.op == 'conv' and len(node.inputs) == 2:
        spec['res_off'] = offsets(node.inputs[1])      # a fused residual add
    if node.op == 'conv':
        return _compile_conv(node, spec, direct_only)
    if node.op == 'linear':
        return _compile_linear(p['weight'], p.get('bias'), spec), 'linear', LINEAR_NO
    if node.op in ('maxpool', 'avgpool') and not _covers_whole_plane(node, geo):
        return _compile_pool(node, spec)
    if node.op in ('global_avgpool', 'avgpool'):
        spec.update(_channel_runs(geo['n_out']), kind='global_avgpool')
        return spec, 'global_avgpool', 0
    spec.update(_channel_runs(geo['n_out']), kind='eltwise')
    if node.op == 'add':
        spec.update(mode=0, in2_off=offsets(node.inputs[1]))
    elif node.op == 'mul':
        per_channel = shapes[node.inputs[1]] != shapes[node.inputs[0]]
        spec.update(mode=4 if per_channel else 3, in2_off=offsets(node.inputs[1]))
    elif node.op in ('affine', 'batchnorm'):
        scale, shift = _affine_params(node)
        spec.update(mode=1, w=scale, b=shift)
    elif node.op == 'act':
        spec.update(mode=2)
    else:
        raise ValueError(f'layer {node.name!r}: no kernel for op {node.op!r}')
    return spec, node.op, 0


def _covers_whole_plane(node, geo):
    """An average pool whose one window is the whole unpadded input (ShuffleNet
    V1's 7x7 pool): the global average pool's kernel does it."""
    a = node.attrs
    return (node.op == 'avgpool' and tuple(a['kernel']) == (geo['in_h'], geo['in_w'])
            and not any(a['padding']) and (geo['out_h'], geo['out_w']) == (1, 1))


def _runs(items, jobs, multiple=1):
    """About `jobs` jobs over `items` (channels, pixel tiles): runs of
    per_job items (a multiple of `multiple`), so that per-job set-up is paid
    per run, not per item."""
    per_job = -(-items // jobs)
    per_job = -(-per_job // multiple) * multiple
    return dict(per_job=per_job, jobs_per_image=-(-items // per_job))


def _channel_runs(channels, multiple=1):
    return _runs(channels, CHANNEL_JOBS, multiple)


def _affine_params(node):
    p = node.params
    if node.op == 'affine':
        return p['scale'], p['shift']
    scale = p['weight'] / np.sqrt(p['running_var'].astype(np.float64) + node.attrs['eps'])
    return scale.astype(np.float32), (p['bias'] - p['running_mean'] * scale).astype(np.float32)


def _window_spec(spec, attrs, kernel, mode, direct_only=False):
    (kh, kw), (sh, sw), (ph, pw) = kernel, attrs['stride'], attrs['padding']
    dh, dw = attrs.get('dilation', (1, 1))
    in_h, in_w, out_h, out_w = spec['in_h'], spec['in_w'], spec['out_h'], spec['out_w']
    path, tables = 'direct', None
    flat_max = {1: _window.FLAT_MAX_PIXELS, 2: _window.FLAT_S2_MAX_PIXELS}.get(sh, 0)
    if not direct_only and sh == sw and out_h * out_w <= flat_max:
        tables = _window.flat_tables(in_h, in_w, out_h, out_w, kh, kw, ph, pw, dh, dw, sh)
    if tables is not None:
        path = 'flat'
        spec.update(tap_off=tables[0], lanes=tables[1])
    elif sw <= 2:
        spec.update(lanes=_window.row_tables(in_w, out_w, kw, sw, pw, dw))
    spec.update(kind='window', mode=mode, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw,
                path=_window.PATHS[path],
                # the flat path takes FLAT_CH planes at a time: runs of whole groups
                **_channel_runs(spec['n_out'], _window.FLAT_PLANES if path == 'flat' else 1))
    return _window.scratch_floats(in_w, out_h, out_w, kh, pw, sh, path)


def _name_kernel(prefix, kernel, stride):
    return f'{prefix}{kernel[0]}x{kernel[1]}' + ('' if tuple(stride) == (1, 1) else f's{stride[0]}')


def _compile_pool(node, spec):
    a = node.attrs
    if node.op == 'maxpool':
        need = _window_spec(spec, a, a['kernel'], 1)
        spec['fill'] = -np.inf
    else:
        need = _window_spec(spec, a, a['kernel'], 2)
        div = avgpool_divisors(spec['in_h'], spec['in_w'], spec['out_h'], spec['out_w'],
                               a['kernel'], a['stride'], a['padding'], a['count_include_pad'])
        spec['aux'] = np.concatenate([div.ravel(), np.zeros(PLANE_ALIGN, np.float32)])
    return spec, _name_kernel(node.op, a['kernel'], a['stride']), need


def _compile_conv(node, spec, direct_only=False):
    a, p = node.attrs, node.params
    groups, cin, cout = a['groups'], a['in_channels'], a['out_channels']
    cin_g, cout_g = cin // groups, cout // groups
    weight = np.asarray(p['weight'], np.float32)
    bias = p.get('bias')
    bias = np.zeros(cout, np.float32) if bias is None else np.asarray(bias, np.float32)
    kernel, stride, padding = tuple(a['kernel']), tuple(a['stride']), tuple(a['padding'])
    spec.update(groups=groups, cin_g=cin_g, cout_g=cout_g)

    if cin_g == 1:      # depthwise, possibly with a channel multiplier
        need = _window_spec(spec, a, kernel, 0, direct_only)
        spec.update(in_off=spec['in_off'][np.arange(cout) // cout_g],
                    w=weight.reshape(cout, -1), b=bias)
        return spec, _name_kernel('dwconv', kernel, stride), need

    pixels = spec['out_h'] * spec['out_w']
    pointwise = kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)
    if pointwise and groups == 1 and pixels == 1:
        return _compile_linear(weight.reshape(cout, cin), bias, spec), 'conv1x1', LINEAR_NO

    K = cin_g * kernel[0] * kernel[1]
    tail = pointwise and TAIL_TILES and pixels == _gemm.TAIL_PIXELS
    w_packed, b_packed, rows, m_tiles = _pack_gemm(weight.reshape(groups, cout_g, K),
                                                   bias.reshape(groups, cout_g),
                                                   _gemm.NARROW_ROWS if tail else None)
    tile_pixels, n_tiles = (_pixel_tiles(pixels, spec['plane'], rows, K, tail) if pointwise
                            else (NR, -(-spec['plane'] // NR)))
    spec.update(K=K, tile_rows=rows, m_tiles=m_tiles, n_tiles=n_tiles, tile_pixels=tile_pixels,
                w=w_packed, b=b_packed)
    if pointwise:
        m_chunks = min(m_tiles, max(1, -(-MIN_JOBS // (groups * n_tiles))))
        m_per_job = -(-m_tiles // m_chunks)
        m_chunks = -(-m_tiles // m_per_job)
        spec.update(kind='gemm', m_per_job=m_per_job, jobs_per_image=groups * n_tiles * m_chunks)
        return spec, 'conv1x1' + ('' if groups == 1 else f'g{groups}'), 0
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, a['dilation']
    name = _name_kernel('conv', kernel, stride) + ('' if groups == 1 else f'g{groups}')
    spec.update(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)
    if DIRECT_CONV and groups == 1 and sh == sw and sh in (1, 2) and (dh, dw) == (1, 1):
        runs = _runs(spec['out_h'], CHANNEL_JOBS)
        spec.update(runs, kind='conv_direct', in2_off=_gemm.direct_tap_offsets(
            cin, spec['in_w'], pw, kh, kw, sw, runs['per_job']))
        return spec, name, _gemm.direct_scratch_floats(cin, spec['in_w'], pw, kh, sh,
                                                       runs['per_job'])
    runs = _runs(n_tiles, max(1, -(-CHANNEL_JOBS // groups)))
    spec.update(kind='conv_im2col', in2_off=np.arange(K, dtype=np.int64) * NR,
                per_job=runs['per_job'], jobs_per_image=groups * runs['jobs_per_image'])
    # scratch: two panels, then two int64 column bounds per kernel column
    return spec, name + '_im2col', 2 * K * NR + 4 * kw


def _pixel_tiles(pixels, plane, rows, K, tail):
    """(pixels per tile, tiles) of a 1x1 convolution's plane (gemm_job): the
    whole plane for a tail tile; else tiles of TILE_PIXELS, or WIDE_PIXELS
    for narrow rows and a long reduction, to the padded plane's end, except
    that a remainder of 1 to EXTRA_PIXELS past whole tiles joins the last."""
    if tail:
        return pixels, 1
    if WIDE_TILES and rows == _gemm.NARROW_ROWS and K >= WIDE_MIN_K and _gemm.WIDE_PIXELS:
        return _gemm.WIDE_PIXELS, -(-plane // _gemm.WIDE_PIXELS)
    if TAIL_TILES and pixels > NR and 0 < pixels % NR <= _gemm.EXTRA_PIXELS:
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


def _compile_linear(weight, bias, spec):
    """weight (O, K) -> [O/NO][K][NO] tiles zero-padded."""
    o, k = weight.shape
    tiles = -(-o // LINEAR_NO)
    wp = np.zeros((tiles * LINEAR_NO, k), np.float32)
    wp[:o] = weight
    bp = np.zeros(tiles * LINEAR_NO, np.float32)
    if bias is not None:
        bp[:o] = bias
    wp = np.ascontiguousarray(wp.reshape(tiles, LINEAR_NO, k).transpose(0, 2, 1)).ravel()
    spec.update(kind='linear', K=k, w=wp, b=bp, jobs_per_image=tiles)
    return spec
