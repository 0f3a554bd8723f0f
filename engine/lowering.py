"""What op definitions (engine/ops/) lower nodes with: the planner's options,
the context of one node's lowering, and the shared pieces of kernel records
(plane strides, job runs, GEMM weight packing, window tables).  The planner
(engine/plan.py) makes the context; each op's `lower` returns its record."""
from dataclasses import dataclass

import numpy as np

from engine.kernels import isa
from engine.kernels.abi import DTYPE_OF, DTYPE_SIZE, Act, DType, WindowMode, WindowPath
from engine.kernels.descriptors import Linear, Window
from engine.ops.activations import ACT_PARAM, clamp_bounds


@dataclass(frozen=True)
class PlanOptions:
    """How the planner splits work and picks kernels, tiles and fusions.
    The defaults are what measured fastest (README); tests and benchmarks
    pass others (Model(..., options=PlanOptions(direct_conv=False)))."""
    single_thread: bool = False  # the plan runs on one thread (engine.Model sets it): its jobs need
                                 # not share out, so it takes fewer, larger ones where they read
                                 # less (several threads: laid out as measured on two)
    min_jobs: int = 8            # split a GEMM's row tiles until an image gives this many jobs
    channel_jobs: int = 16       # per-channel ops, convolutions: jobs per image, each a run of
                                 # channels, pixel tiles or output rows
    thread_jobs: int = 2         # a plan for several threads takes min_jobs and channel_jobs this
                                 # many times over (planned_*): finer jobs even out the threads' shares
                                 # (2 threads, Zen 3, per-layer sums: MobileNetV2 and MNASNet 4 %
                                 # faster than x1, x4 1-1.5 % slower than x2; one thread: x2 1 % slower)
    direct_conv: bool = None     # dense stride-1/2 convolutions read framed rows in place (else im2col):
                                 # None: where their output rows fill the tiles (ops/conv.py:
                                 # direct_pays); True: always; False: never
    direct_panel: bool = None    # ... their pixels across output rows through a panel: None: in a
                                 # one-thread plan where rows leave the tiles' lanes empty
                                 # (ops/conv.py: panel_pays)
    panel_jobs: int = 2          # ... in this many runs of pixel tiles per image (each frames its
                                 # rows and reads all the weights; one thread: one)
    winograd: int = None         # dense 3x3 stride-1 convolutions by Winograd F(m x m, 3x3): None:
                                 # m = 2 or 4 or the direct path, whichever costs least (ops/conv.py:
                                 # winograd_tile); 0: never; 2 or 4: that m for every one
    winograd_bytes: int = 1 << 20  # a Winograd job's transform buffers: bands of tile rows this size
                                   # (one thread: or as large as the transformed weights)
    weight_block_bytes: int = None  # 1x1 and direct convolutions run their row tiles in blocks whose
                                 # packed weights fit this, each over many pixels (in cache the while):
                                 # a 1x1's jobs take such chunks (weight_block); None: WEIGHT_BLOCK_BYTES
    weight_block_bands: int = 4  # ... and a direct convolution with such weights in this many bands
                                 # of output rows (each band reads them all once)
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
    fuse_min_jobs: int = 4       # blocks of channels per image at least (jobs for the threads)
    k_split: bool = True         # a 1x1 convolution reading a depthwise one reduces in two halves
    k_split_min_k: int = 192     # (with two threads, each the channels its core wrote; a model of
    k_split_pixels: tuple = (196, 784)  # one thread plans without), then an op sums them; from this
                                 # many channels, on planes of these
                                 # sizes (MobileNetV2: at 7x7 and below 192 channels the sum costs
                                 # what the split saves)
    framed_windows: bool = False  # 3x3 windows of stride 1 and 2 through framed rows, one plane
                                  # at a time (where they do not run interleaved)
    interleaved_windows: bool = None  # 3x3, 5x5 and 7x7 windows of stride 1 and 2 with VLEN channels'
                                 # rows interleaved, before framed (None: those of
                                 # the kernels' INTERLEAVED_SIDES by stride: NEON and AVX2 3x3, 5x5,
                                 # 7x7, AVX-512 5x5, 7x7; but not 3x3 pooling at stride 2: row by row,
                                 # separably)
    flat_max_pixels: int = 16384   # window ops: stride-1 output planes up to this size run flat,
    flat_s2_max_pixels: int = 64   # and stride-2 ones up to this size (through phase planes;
                                   # beyond it, building them costs more than they save)

    # min_jobs and channel_jobs as this plan takes them: thread_jobs times
    # over where several threads share them
    @property
    def planned_min_jobs(self):
        return self.min_jobs * (1 if self.single_thread else self.thread_jobs)

    @property
    def planned_channel_jobs(self):
        return self.channel_jobs * (1 if self.single_thread else self.thread_jobs)


PLANE_BYTES = isa.PLANE_ALIGN * DTYPE_SIZE[DType.DTYPE_F32]     # planes start on these boundaries (64 bytes)


def padded_plane(pixels):
    """A plane's stride in elements: the kernels' `plane` (ENGINE_PLANE_ALIGN, the
    same in every kernel module)."""
    return -(-pixels // isa.PLANE_ALIGN) * isa.PLANE_ALIGN


def whole_lines(nbytes):
    """nbytes rounded up to whole PLANE_BYTES."""
    return -(-nbytes // PLANE_BYTES) * PLANE_BYTES


def plane_bytes(pixels, dtype):
    """The stride in bytes of a plane of `pixels` elements of dtype (a name)
    in the arena: whole PLANE_BYTES, whatever the type."""
    return whole_lines(pixels * DTYPE_SIZE[DTYPE_OF[dtype]])


@dataclass(frozen=True)
class Lowering:
    """What lowering one node needs beyond the node: shapes {value: (C, H, W)},
    dtypes {value: element type}, quants {value: (scale, zero point) of an
    int8 value, else None}, offsets(value) (its planes' offsets in
    bytes), the options, the kernel module the program will run on (its
    tiles, vector width and table builders: engine.kernels.isa.kernels); in_off
    and out_off replace the node's own planes (a fused op's scratch, bytes),
    and direct_only keeps window ops on the direct path (they read bands)."""
    shapes: dict
    dtypes: dict
    quants: dict
    offsets: object
    options: PlanOptions
    kernels: object
    in_off: np.ndarray = None
    out_off: np.ndarray = None
    direct_only: bool = False

    def step(self, node):
        """The fields every record has (descriptors.Step) for node."""
        oc, oh, ow = self.shapes[node.name]
        lo, hi = clamp_bounds(node.attrs.get('clamp'))
        act = node.attrs.get('act')
        return dict(n_out=oc, plane=padded_plane(oh * ow), lo=lo, hi=hi,
                    act=Act.ACT_NONE if act is None else Act['ACT_' + act.upper()],
                    act_w=node.params.get(ACT_PARAM), dtype=DTYPE_OF[self.dtypes[node.name]],
                    in_off=self.offsets(node.inputs[0]) if self.in_off is None else self.in_off,
                    out_off=self.offsets(node.name) if self.out_off is None else self.out_off)

    def spatial(self, node):
        """Input and output plane sizes (descriptors.Spatial) of node."""
        _, h, w = self.shapes[node.inputs[0]]
        _, oh, ow = self.shapes[node.name]
        return dict(in_h=h, in_w=w, out_h=oh, out_w=ow)


def runs(items, jobs, multiple=1):
    """About `jobs` jobs over `items` (channels, pixel tiles): runs of
    per_job items (a multiple of `multiple`), so that per-job set-up is paid
    per run, not per item."""
    per_job = -(-items // jobs)
    per_job = -(-per_job // multiple) * multiple
    return dict(per_job=per_job, jobs_per_image=-(-items // per_job))


# The packed weights a 1x1 or direct convolution keeps in cache while it runs
# over the pixels, by kernel module (PlanOptions.weight_block_bytes None).
# Without blocks every weight was read again for each pixel tile or output
# row: on NEON SqueezeNet's 2 MB classifier 21 times a run, ResNet-18's 1.2-4.7
# MB stride-2 layers once a row (counted as a Cortex-A72, L2 misses 1.37 ->
# 0.72 M and 4.39 -> 3.71 M a run; a Pi 4's 1 MB L2 is shared by its cores,
# with nothing behind it but memory).  x86 none: its L3 streamed them as fast,
# and the blocks' extra calls cost ResNet-18 1-2.5 % (AVX-512, Zen 4).
WEIGHT_BLOCK_BYTES = {'neon': 256 << 10, 'neon_dot': 256 << 10, 'neon_fp16': 256 << 10}


def weight_block(kernels, tiles, K, items, options):
    """Row tiles a block of a convolution whose jobs each run over `items`
    pixel tiles or output rows: those whose packed weights (tile_rows x K a
    tile) fit the block bytes (options.weight_block_bytes, WEIGHT_BLOCK_BYTES);
    all where there are none, or where one item reads each weight once anyway."""
    budget = (WEIGHT_BLOCK_BYTES.get(kernels.ISA) if options.weight_block_bytes is None
              else options.weight_block_bytes)
    if budget is None or items <= 1:
        return tiles['m_tiles']
    return max(1, min(tiles['m_tiles'], budget // (tiles['tile_rows'] * K * kernels.ELEMENT_BYTES)))


def gemm_jobs(m_tiles, n_tiles, groups, options, m_block=None):
    """A 1x1 convolution's jobs: row tiles split where pixel tiles are too
    few for options.planned_min_jobs, and in chunks of at most m_block (weight_block);
    runs of pixel tiles, options.planned_channel_jobs of them (one GEMM call each).
    The fields m_per_job, per_job (pixel tiles) and jobs_per_image (groups x
    row chunks x pixel runs)."""
    m_chunks = min(m_tiles, max(1, -(-options.planned_min_jobs // (groups * n_tiles))))
    m_per_job = min(-(-m_tiles // m_chunks), m_block or m_tiles)
    m_chunks = -(-m_tiles // m_per_job)
    pix = runs(n_tiles, max(1, -(-options.planned_channel_jobs // (groups * m_chunks))))
    return dict(m_per_job=m_per_job, per_job=pix['per_job'], jobs_per_image=groups * pix['jobs_per_image'] * m_chunks)


def channel_runs(channels, options, multiple=1):
    return runs(channels, options.planned_channel_jobs, multiple)


def kernel_fields(attrs, kernel):
    (kh, kw), (sh, sw), (ph, pw) = kernel, attrs['stride'], attrs['padding']
    dh, dw = attrs.get('dilation', (1, 1))
    return dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw)


def _separable_pool(k, mode, options):
    """3x3 pooling at stride 2 runs row by row unless the options name a path:
    its rows read in place, separably (f32_pool_plane_3x3s2), take fewer
    instructions than interleaved or flat ones (NEON)."""
    return (mode != WindowMode.WINDOW_CONV and (k['kh'], k['kw'], k['sh'], k['sw']) == (3, 3, 2, 2)
            and (k['dh'], k['dw']) == (1, 1) and options.interleaved_windows is None and not options.framed_windows)


def _square(k):
    """A square window, undilated, of equal strides 1 or 2 (the interleaved and framed paths' own)."""
    return k['kh'] == k['kw'] and (k['dh'], k['dw']) == (1, 1) and k['sh'] == k['sw'] and k['sh'] in (1, 2)


def interleaved_window(kernels, k, mode, options):
    """Whether a window of kernel_fields k runs interleaved, VECTOR channels'
    rows at a time: 3x3, 5x5 and 7x7 at strides 1 and 2, where the options
    or the kernels' INTERLEAVED_SIDES (by stride) say so."""
    sides = (kernels.INTERLEAVED_SIDES.get(k['sh'], ()) if options.interleaved_windows is None
             else kernels.INTERLEAVABLE_SIDES if options.interleaved_windows else ())
    return _square(k) and k['kh'] in sides and not _separable_pool(k, mode, options)


def window_op(kernels, step, spatial, attrs, kernel, mode, options, direct_only=False, **tables):
    """(Window record, scratch floats): interleaved where interleaved_window
    says so, framed (3x3) where the options say so, flat where the plane is
    small enough and the tables fit, else row by row (3x3 pooling at stride
    2 always: _separable_pool)."""
    k = kernel_fields(attrs, kernel)
    in_h, in_w, out_h, out_w = spatial['in_h'], spatial['in_w'], spatial['out_h'], spatial['out_w']
    three = _square(k) and k['kh'] == 3
    pool_s2 = _separable_pool(k, mode, options)
    flat = None
    if interleaved_window(kernels, k, mode, options):
        path = WindowPath.WINDOW_INTERLEAVED
    elif options.framed_windows and three:
        path = WindowPath.WINDOW_FRAMED
    else:
        flat_max = {1: options.flat_max_pixels, 2: options.flat_s2_max_pixels}.get(k['sh'], 0)
        if not direct_only and not pool_s2 and k['sh'] == k['sw'] and out_h * out_w <= flat_max:
            flat = kernels.flat_tables(in_h, in_w, out_h, out_w, k['kh'], k['kw'], k['ph'], k['pw'],
                                   k['dh'], k['dw'], k['sh'])
        if flat is not None:
            path = WindowPath.WINDOW_FLAT
            tables.update(tap_off=flat[0], lanes=flat[1])
        else:
            path = WindowPath.WINDOW_DIRECT
            if k['sw'] <= 2:
                tables.update(lanes=kernels.row_tables(in_w, out_w, k['kw'], k['sw'], k['pw'], k['dw']))
    # the flat path takes FLAT_PLANES planes at a time, the interleaved one
    # VECTOR channels: runs of whole groups
    group = kernels.FLAT_PLANES if flat is not None else kernels.VECTOR if path == WindowPath.WINDOW_INTERLEAVED else 1
    jobs = channel_runs(step['n_out'], options, group)
    record = Window(**step, **spatial, **k, mode=mode, path=path, **jobs, **tables)
    return record, kernels.scratch_floats(in_w, out_h, out_w, k['kh'], k['pw'], k['sh'], path)


def name_kernel(prefix, kernel, stride):
    return f'{prefix}{kernel[0]}x{kernel[1]}' + ('' if tuple(stride) == (1, 1) else f's{stride[0]}')


def pixel_tiles(kernels, pixels, plane, rows, K, tail, options):
    """(pixels per tile, tiles) of a 1x1 convolution's plane (gemm_job): the
    whole plane for a tail tile; else tiles of TILE_PIXELS, or WIDE_PIXELS
    for narrow rows and a long reduction, to the padded plane's end, except
    that a remainder of 1 to EXTRA_PIXELS past whole tiles joins the last.
    rows: the op's tile_rows (narrow ones are its only height: no tile is
    shorter)."""
    if tail:
        return pixels, 1
    nr = kernels.TILE_PIXELS
    if options.wide_tiles and rows == kernels.NARROW_ROWS and K >= options.wide_min_k and kernels.WIDE_PIXELS:
        return kernels.WIDE_PIXELS, -(-plane // kernels.WIDE_PIXELS)
    if options.tail_tiles and pixels > nr and 0 < pixels % nr <= kernels.EXTRA_PIXELS:
        return nr, pixels // nr
    return nr, -(-plane // nr)


def reduction_order(kernels, table, first=None):
    """The order in which a GEMM reduces over its B table (groups, K), each
    group's planes or taps by offset (by `first`, then offset, when given),
    and the runs of equally spaced entries in that order (k_runs: the tile
    steps a pointer along a run).  Returns (order (groups, K), k_runs)."""
    order = (np.argsort(table, axis=1, kind='stable') if first is None
             else np.stack([np.lexsort((t, f)) for t, f in zip(table, first)]))
    return order, kernels.plane_runs(np.take_along_axis(table, order, axis=1))


def row_tiles(kernels, m, rows=None):
    """How a GEMM covers m rows (output channels per group) with the tile
    heights of TILE_ROWS: tile_rows-row tiles, then short_tiles tiles of
    short_rows (0: none; ShuffleNet V1's 20 rows per group on NEON as
    12 + 8 rather than two 12s).  The mix whose rows, empty ones included,
    cost least, then the one with fewer tiles, then the taller; rows: one
    height only, that one.  Returns a dict of Gemm's four fields."""
    rate = kernels.TILE_ROWS          # {rows: cost per row}

    def cost(tall, n_tall, short, n_short):
        return (n_tall * tall * rate[tall] + n_short * short * rate.get(short, 0),
                n_tall + n_short, -tall)
    if rows is not None:
        mixes = [(rows, -(-m // rows), 0, 0)]
    else:
        mixes = [(tall, -(-m // tall), 0, 0) for tall in rate]
        mixes += [(tall, -(-(m - n * short) // tall), short, n)
                  for tall in rate for short in rate if short < tall
                  for n in range(1, -(-m // short)) if m - n * short > 0]
    tall, n_tall, short, n_short = min(mixes, key=lambda mix: cost(*mix))
    return dict(tile_rows=tall, m_tiles=n_tall + n_short, short_rows=short, short_tiles=n_short)


def tile_starts(tiles):
    """The first row of each of row_tiles' tiles, then the rows of all
    (padded): the kernels' tile_first_row."""
    heights = ([tiles['tile_rows']] * (tiles['m_tiles'] - tiles['short_tiles'])
               + [tiles['short_rows']] * tiles['short_tiles'])
    return np.cumsum([0] + heights)


def pack_gemm(kernels, w, b, tiles):
    """w (G, M, K) -> per group, row tiles [K][rows] (row_tiles' tiles:
    tile_rows-row ones, then short_rows-row ones) zero-padded; b -> per group
    the padded rows; each followed by the floats the tiles may read past it.
    Tile t's weights start at (g * padded rows + its first row) * K."""
    g, m, k = w.shape
    starts = tile_starts(tiles)
    padded = starts[-1]
    wp = np.zeros((g, padded, k), np.float32)
    wp[:, :m] = w
    bp = np.zeros((g, padded), np.float32)
    bp[:, :m] = b
    wp = np.concatenate([wp[:, r0:r1].transpose(0, 2, 1).reshape(g, -1)
                         for r0, r1 in zip(starts[:-1], starts[1:])], axis=1)
    slack = np.zeros(kernels.WEIGHT_OVERREAD, np.float32)
    return np.concatenate([wp.ravel(), slack]), np.concatenate([bp.ravel(), slack])


def linear_record(kernels, weight, bias, step, residual):
    """weight (O, K) -> [O/NO][K][NO] tiles zero-padded; the input's runs of
    equally spaced planes (the tile steps along them)."""
    o, k = weight.shape
    no = kernels.LINEAR_OUTPUTS
    tiles = -(-o // no)
    wp = np.zeros((tiles * no, k), np.float32)
    wp[:o] = weight
    bp = np.zeros(tiles * no, np.float32)
    if bias is not None:
        bp[:o] = bias
    wp = np.ascontiguousarray(wp.reshape(tiles, no, k).transpose(0, 2, 1)).ravel()
    return Linear(**step, K=k, w=wp, b=bp, k_runs=kernels.plane_runs(step['in_off'][None]), res_off=residual,
                  jobs_per_image=tiles)
