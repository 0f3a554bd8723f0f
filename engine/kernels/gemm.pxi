"""Convolutions that reduce to GEMM: 1x1 (pointwise), direct for dense
stride-1 and stride-2 convolutions, im2col for any other dense or grouped
convolution, and fully connected layers.

Each runs the register-blocked tile of ukernels.h over channel planes read and
written through offset tables (so a shuffled, split or concatenated tensor is
read in place)."""
from libc.stdint cimport int64_t
from libc.math cimport INFINITY
from engine.kernels.abi cimport ACT_LEAKY_RELU
import numpy as np
from engine.kernels.common cimport (Op, ef, Ctx, GEMM_MR, GEMM_NR, VLEN, ENGINE_PLANE_ALIGN,
                                    act_param, f32_activation, image_data, worker_scratch)

# how much of the reduction gemm_row_tiles computes, and where to
cdef enum:
    WHOLE_K = 0
    FIRST_HALF = 1     # of a K-split op (Op.k_splits)
    SECOND_HALF = 2
    PRODUCTS = 3       # the whole reduction into scratch rows, bare (Winograd's products)

cdef extern from "ukernels.h" nogil:
    ctypedef struct f32_gemm_args:
        int64_t K, a_step, bias_step, rows, nvalid, pixel_tiles
        const ef* a
        const ef* bias
        const ef* src
        const int64_t* b_off
        const int64_t* b_run
        ef* dst
        const int64_t* c_off
        const int64_t* r_off
        const ef* slope
        float lo, hi
    ctypedef void (*f32_gemm_tile_fn)(const f32_gemm_args* p, int64_t tiles)
    f32_gemm_tile_fn f32_gemm_tile_for(int64_t rows, int64_t nvalid)
    int64_t f32_gemm_block_tiles(int64_t K, int NV)
    const int GEMM_MR_SHORT, GEMM_MR_NARROW, GEMM_TAIL_PIXELS, GEMM_EXTRA_MAX, GEMM_WIDE_PIXELS
    void f32_frame_row(ef* dst, const ef* row, int64_t in_w, int64_t pl, int64_t fw,
                       int64_t s)
    void f32_linear_tile(int64_t K, const ef* w, const ef* bias, const ef* src,
                         const int64_t* x_off, const int64_t* x_run, ef* y, float lo, float hi)
    const int LINEAR_NO
    void f32_copy_strided(ef* dst, const ef* src, int64_t n, int64_t s)
    void f32_direct_panel(ef* panel, int64_t stride, const ef* frame, const int64_t* tap, int64_t K,
                          int64_t p0, int64_t p1, int64_t out_w, int64_t oh0, int64_t row_step)
    const int ACT_END
    void f32_fma_peak_loop(int64_t iters, float* sink)
    const int PEAK_CHAINS


# output channels per packed weight tile: the choices, each with its cost per
# row relative to the tallest (fewer rows per loaded pixel vector), measured
# on AVX-512: MobileNetV2's 160-, 320- and 1280-channel 7x7 layers took 5-6 %
# longer with 8-row tiles than with 10, ShuffleNet V1's 320 per group longer
# with 12 (4 of them empty) than with 10
TILE_ROWS = {GEMM_MR: 1.0, GEMM_MR_SHORT: 1.0, GEMM_MR_NARROW: 1.055}
TILE_PIXELS = GEMM_NR        # pixels per GEMM tile
TAIL_PIXELS = GEMM_TAIL_PIXELS   # planes of this many pixels (7x7 on AVX-512) run as one tile,
NARROW_ROWS = GEMM_MR_NARROW     # of this many rows
EXTRA_PIXELS = GEMM_EXTRA_MAX    # pixels past whole tiles that may join a plane's last tile
WIDE_PIXELS = GEMM_WIDE_PIXELS   # pixels per tile of narrow rows three vectors wide (0: none)
WEIGHT_OVERREAD = VLEN       # floats the tiles may read past the packed weights and bias
LINEAR_OUTPUTS = LINEAR_NO   # outputs per packed fully-connected tile


cdef inline int64_t covered_pixels(int64_t n) noexcept nogil:
    """Pixels the GEMM tiles read and compute to cover a run of n pixels
    (gemm_row_tiles with no extra pixels): whole tiles, then one of one
    vector or of two (f32_gemm_tile_for)."""
    cdef int64_t rest = n % GEMM_NR
    return n - rest + (0 if rest == 0 else VLEN if rest <= VLEN else GEMM_NR)


def gemm_covered_pixels(int64_t n):
    """covered_pixels: the planner's cost of a run of n pixels."""
    return covered_pixels(n)


def gemm_block_tiles(int64_t K, int vectors):
    """Pixel tiles of `vectors` vectors a GEMM call runs each row tile over
    before the next (f32_gemm_block_tiles): tests reach past one block."""
    return f32_gemm_block_tiles(K, vectors)


def fma_peak_gflops(double seconds=0.2):
    """One core's measured fp32 FMA throughput in GFLOP/s with this build's
    vectors (independent FMA chains, no memory traffic): the ceiling the
    GEMM microkernel is measured against."""
    import time
    cdef int64_t iters = 1 << 16
    cdef double elapsed = 0
    cdef float sink = 0
    while True:
        t0 = time.perf_counter()
        with nogil:
            f32_fma_peak_loop(iters, &sink)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds / 4:
            break
        iters *= 2
    best = elapsed
    for _ in range(3):
        t0 = time.perf_counter()
        with nogil:
            f32_fma_peak_loop(iters, &sink)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * VLEN * PEAK_CHAINS * iters / best / 1e9


def plane_runs(b_off):
    """f32_gemm_tile's b_run for B tables b_off (groups, K): for each entry,
    how many entries from it on, in its group, are equally spaced."""
    b = np.asarray(b_off, np.int64)
    run = np.ones(b.shape, np.int64)
    if b.shape[1] > 1:
        run[:, -2] = 2
    for k in range(b.shape[1] - 3, -1, -1):
        even = b[:, k + 1] - b[:, k] == b[:, k + 2] - b[:, k + 1]
        run[:, k] = np.where(even, run[:, k + 1] + 1, 2)
    return run.ravel()


cdef extern from *:
    """
    /* the bias of bare tiles (a K-split op's second half, Winograd's products): zeros, as many as a tile reads */
    static const ef f32_no_bias[GEMM_MR + VLEN];
    """
    const ef* NO_BIAS "f32_no_bias"


cdef inline int64_t tile_first_row(const Op* op, int64_t mt) noexcept nogil:
    """Row tile mt's first row in its group: tile_rows-row tiles, then short ones."""
    cdef int64_t m_tall = op.p.m_tiles - op.p.short_tiles
    return min(mt, m_tall) * op.p.tile_rows + max(mt - m_tall, 0) * op.p.short_rows


cdef inline void gemm_row_tiles(const Op* op, int64_t g, int64_t mt0, int64_t mt1,
                         const ef* src, const int64_t* b_off, const int64_t* b_run, int64_t nb0,
                         ef* dst, int64_t nc0, int64_t nvalid, int half,
                         int64_t pixel_tiles=1, const int64_t* c_table=NULL) noexcept nogil:
    """Row tiles [mt0, mt1) of group g for one pixel tile: B read from src
    + b_off[k] (its runs b_run: f32_gemm_tile) at pixel nb0, nvalid pixels written to dst at nc0 (two vectors of them
    when more than one; past GEMM_NR, a plane's last pixels: see
    f32_gemm_tile_for); or for pixel_tiles whole tiles one after another
    (nvalid pixels each: GEMM_NR, or for narrow rows GEMM_WIDE_PIXELS).  Tiles of tile_rows rows, then short_tiles of
    short_rows (lowering.pack_gemm).  half: WHOLE_K, or one half of the
    reduction of a K-split op: the first with the bias and residual into
    out_off, the second into part_off, both unclamped (ELTWISE_ADD_SPLIT
    finishes); or PRODUCTS: row r into dst + c_table[r], no bias, residual
    or epilogue (c_table indexed by the row in the whole matrix)."""
    cdef int64_t k0 = 0 if half != SECOND_HALF else op.p.K // 2
    cdef int64_t k1 = op.p.K if half != FIRST_HALF else op.p.K // 2
    cdef int64_t cout_g = op.p.cout_g, K = op.p.K, r, n, rows
    cdef int64_t tall = op.p.tile_rows, m_tall = op.p.m_tiles - op.p.short_tiles
    # tile mt0's first row; the group's first packed row
    cdef int64_t m0 = tile_first_row(op, mt0), first = m0
    cdef int64_t row0 = g * tile_first_row(op, op.p.m_tiles)
    cdef const int64_t* c_off = (c_table if half == PRODUCTS else
                                 (op.part_off if half == SECOND_HALF else op.out_off) + g * cout_g)
    cdef bint bare = half == SECOND_HALF or half == PRODUCTS
    cdef const int64_t* res_off = op.res_off + g * cout_g if op.res_off != NULL and not bare else NULL
    cdef f32_gemm_args t
    t.K, t.src, t.b_off, t.b_run = k1 - k0, src + nb0, b_off + k0, b_run + k0
    t.dst, t.nvalid, t.pixel_tiles = dst + nc0, nvalid, pixel_tiles
    t.lo = op.p.lo if half == WHOLE_K else -INFINITY
    t.hi = op.p.hi if half == WHOLE_K else INFINITY
    t.r_off = NULL
    # leaky ReLU (PReLU) in the tile's store, while the rows are in registers
    cdef bint leaky = half == WHOLE_K and op.p.act == ACT_LEAKY_RELU and op.act_w != NULL
    t.slope = NULL
    cdef int64_t mt = mt0
    while mt < mt1:     # the tall tiles in one call, then the short ones
        rows = tall if mt < m_tall else op.p.short_rows
        n = (min(mt1, m_tall) if mt < m_tall else mt1) - mt
        t.a, t.a_step = op.w + (row0 + m0) * K + k0 * rows, rows * K
        t.c_off, t.rows = c_off + m0, min(cout_g - m0, n * rows)
        if bare:
            t.bias, t.bias_step = NO_BIAS, 0
        else:
            t.bias, t.bias_step = op.b + row0 + m0, rows
            if res_off != NULL:
                t.r_off = res_off + m0
        if leaky:
            t.slope = op.act_w + g * cout_g + m0
        f32_gemm_tile_for(rows, nvalid)(&t, n)
        mt += n
        m0 += n * rows
    if half == WHOLE_K and op.p.act and not leaky:
        for r in range(first, min(m0, cout_g)):
            f32_activation(dst + c_off[r] + nc0, pixel_tiles * nvalid, op.p.act, act_param(op, g * cout_g + r))


cdef void gemm_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """1x1 convolution: job = (image, half of K if split, group, chunk of row
    tiles, run of per_job pixel tiles).  Pixel tiles vary fastest:
    consecutive jobs (one thread's share) use the same weights, so small
    planes, split into chunks of row tiles, read each weight once per image
    and thread rather than once per pixel tile.  A run's whole tiles are one
    call of each tile height; the plane's last tile (cut short, or taking
    the pixels past whole tiles) another.  A K-split op's first half of jobs reduces the first half
    of the input channels: with the threads taking contiguous shares, those
    the depthwise op before it wrote on the same cores.  (A model of
    several threads splits also when a run gets one: its results do not
    depend on the threads a run gets.)"""
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t r = job % op.p.jobs_per_image
    cdef int64_t m_chunks = (op.p.m_tiles + op.p.m_per_job - 1) // op.p.m_per_job
    cdef int64_t n_runs = (op.p.n_tiles + op.p.per_job - 1) // op.p.per_job
    cdef int64_t per_group = n_runs * m_chunks
    cdef int half = WHOLE_K
    if op.p.k_splits == 2:
        half = FIRST_HALF if r < op.p.groups * per_group else SECOND_HALF
        r = r % (op.p.groups * per_group)
    cdef int64_t g = r // per_group
    r = r % per_group
    cdef int64_t nt0 = r % n_runs * op.p.per_job
    cdef int64_t nt1 = min(nt0 + op.p.per_job, op.p.n_tiles)
    cdef int64_t mt0 = r // n_runs * op.p.m_per_job
    cdef int64_t mt1 = min(mt0 + op.p.m_per_job, op.p.m_tiles)
    cdef ef* base = image_data(ctx, image)
    cdef const int64_t* b_off = op.in_off + g * op.p.cin_g
    cdef const int64_t* b_run = op.k_runs + g * op.p.cin_g
    cdef int64_t tp = op.p.tile_pixels, whole = nt1 - nt0 - (nt1 == op.p.n_tiles), n0, nvalid
    if whole > 0:
        gemm_row_tiles(op, g, mt0, mt1, base, b_off, b_run, nt0 * tp, base, nt0 * tp, tp, half, whole)
    if nt1 == op.p.n_tiles:
        # whole vectors to the end of the padded plane; the last tile may also
        # take the pixels past whole tiles
        n0 = (nt1 - 1) * tp
        nvalid = max(min(tp, op.p.plane - n0), op.p.out_h * op.p.out_w - n0)
        gemm_row_tiles(op, g, mt0, mt1, base, b_off, b_run, n0, base, n0, nvalid, half)


cdef inline void zero(ef* p, int64_t n) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        p[i] = 0


cdef void im2col_panel(const Op* op, const ef* base, int64_t g, int64_t n0,
                       ef* panel, int64_t* col_lo, int64_t* col_hi) noexcept nogil:
    """panel[k][0:GEMM_NR] = input pixel under tap k = (ci, ki, kj) for output
    pixels n0 .. n0+GEMM_NR-1 of group g, zero outside the input.  Each output
    row's stretch of the tile is one strided copy between zeroed borders."""
    cdef int64_t npix = op.p.out_h * op.p.out_w
    cdef int64_t k = 0, ci, ki, kj, n, oh, ow, seg, ih, x0, lo, hi
    cdef int64_t oh0 = n0 // op.p.out_w, ow0 = n0 % op.p.out_w
    cdef const ef* plane
    cdef ef* row
    # output columns [col_lo[kj], col_hi[kj]) read inside the input row under tap column kj
    for kj in range(op.p.kw):
        x0 = kj * op.p.dw - op.p.pw
        col_lo[kj] = 0 if x0 >= 0 else (op.p.sw - 1 - x0) // op.p.sw
        col_hi[kj] = 0 if x0 > op.p.in_w - 1 else (op.p.in_w - 1 - x0) // op.p.sw + 1
    for ci in range(op.p.cin_g):
        plane = base + op.in_off[g * op.p.cin_g + ci]
        for ki in range(op.p.kh):
            for kj in range(op.p.kw):
                row = panel + k * GEMM_NR
                k += 1
                n, oh, ow = n0, oh0, ow0
                while n < n0 + GEMM_NR:
                    if n >= npix:               # the tile's padding columns
                        zero(row + n - n0, n0 + GEMM_NR - n)
                        break
                    seg = min(n0 + GEMM_NR - n, op.p.out_w - ow)
                    ih = oh * op.p.sh - op.p.ph + ki * op.p.dh
                    lo = max(<int64_t>0, col_lo[kj] - ow)
                    hi = min(seg, col_hi[kj] - ow)
                    if not 0 <= ih < op.p.in_h or lo >= hi:
                        zero(row + n - n0, seg)
                    else:
                        zero(row + n - n0, lo)
                        f32_copy_strided(row + n - n0 + lo,
                                         plane + ih * op.p.in_w + (ow + lo) * op.p.sw + kj * op.p.dw - op.p.pw,
                                         hi - lo, op.p.sw)
                        zero(row + n - n0 + hi, seg - hi)
                    n += seg
                    ow = 0
                    oh += 1


cdef inline int64_t im2col_panel_floats(int64_t K) noexcept nogil:
    """Elements of one im2col panel: K rows of a tile's pixels, then to a
    whole line (the int64 column bounds after the second stay aligned)."""
    return (K * GEMM_NR + ENGINE_PLANE_ALIGN - 1) // ENGINE_PLANE_ALIGN * ENGINE_PLANE_ALIGN


def im2col_scratch_floats(int64_t K, int64_t kw):
    """Scratch one worker needs for im2col (conv_im2col_job's layout): two
    panels, then two int64 column bounds per kernel column."""
    return 2 * im2col_panel_floats(K) + 2 * kw * <int64_t>(sizeof(int64_t) // sizeof(ef))


cdef void conv_im2col_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """General convolution: job = (image, group, run of per_job pixel tiles).
    Each tile's im2col panel is built in this worker's scratch, then
    multiplied; the panel of the next tile is built before this one is
    multiplied (two panels in turn), since reading a panel right after
    writing it stalls on store forwarding."""
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t r = job % op.p.jobs_per_image
    cdef int64_t runs = (op.p.n_tiles + op.p.per_job - 1) // op.p.per_job
    cdef int64_t g = r // runs
    cdef int64_t t0 = (r % runs) * op.p.per_job
    cdef int64_t t1 = min(t0 + op.p.per_job, op.p.n_tiles), t, n0
    cdef ef* base = image_data(ctx, image)
    cdef ef* panels[2]
    panels[0] = worker_scratch(ctx, tid)
    panels[1] = panels[0] + im2col_panel_floats(op.p.K)
    cdef int64_t* col_lo = <int64_t*>(panels[1] + im2col_panel_floats(op.p.K))
    im2col_panel(op, base, g, t0 * GEMM_NR, panels[0], col_lo, col_lo + op.p.kw)
    for t in range(t0, t1):
        if t + 1 < t1:
            im2col_panel(op, base, g, (t + 1) * GEMM_NR, panels[(t + 1 - t0) & 1], col_lo,
                         col_lo + op.p.kw)
        n0 = t * GEMM_NR
        # op.in2_off holds k * GEMM_NR: the panel's rows, read at pixel 0
        gemm_row_tiles(op, g, 0, op.p.m_tiles, <const ef*>panels[(t - t0) & 1], op.in2_off,
                       op.k_runs, 0, base, n0, min(<int64_t>GEMM_NR, op.p.plane - n0), WHOLE_K)


cdef inline int64_t direct_row_floats(const Op* op) noexcept nogil:
    """Floats per framed input row of the direct convolution (whole vectors)."""
    return (op.p.in_w + 2 * op.p.pw + ENGINE_PLANE_ALIGN - 1) // ENGINE_PLANE_ALIGN * ENGINE_PLANE_ALIGN


cdef inline int64_t direct_band_rows(const Op* op, int64_t rows) noexcept nogil:
    """Input rows under `rows` output rows."""
    return (rows - 1) * op.p.sh + op.p.kh


cdef inline int64_t panel_rows(int64_t pixels, int64_t out_w, int64_t out_h) noexcept nogil:
    """Output rows a run of pixels may span (starting anywhere in a row)."""
    return min(out_h, (pixels + out_w - 2) // out_w + 1)


def direct_panel_rows(int64_t pixels, int64_t out_w, int64_t out_h):
    """panel_rows: the rows a panel job of `pixels` frames."""
    return panel_rows(pixels, out_w, out_h)


cdef inline int64_t direct_frame_floats(const Op* op, int64_t cin, int64_t rows) noexcept nogil:
    """A band's frame: the input rows under `rows` output rows, every
    channel's, then the slack the tile reads past a row."""
    return cin * direct_band_rows(op, rows) * direct_row_floats(op) + 2 * GEMM_NR


cdef inline Op direct_geometry(int64_t in_w, int64_t pw, int64_t kh, int64_t sh) noexcept:
    cdef Op op
    op.p.in_w, op.p.pw, op.p.kh, op.p.sh = in_w, pw, kh, sh
    return op


def direct_scratch_floats(int64_t cin, int64_t in_w, int64_t pw, int64_t kh, int64_t sh,
                          int64_t rows_per_job, int64_t K=0, int64_t panel_pixels=0):
    """Scratch one worker needs for a direct convolution: the band's frame
    (rows_per_job output rows), then with a panel of panel_pixels its K
    rows and the slack of their copy."""
    cdef Op op = direct_geometry(in_w, pw, kh, sh)
    return direct_frame_floats(&op, cin, rows_per_job) + (K * panel_pixels + VLEN if panel_pixels else 0)


def direct_tap_offsets(int64_t cin, int64_t in_w, int64_t pw, int64_t kh, int64_t kw, int64_t stride):
    """(offsets, columns): where tap (ci, ki, kj) of the first output row of
    a band starts in the band's frame (the direct convolution's B rows;
    planned once, read by every job), and its column there.  The frame holds
    band row r of channel ci as its row r * cin + ci, so that the taps of one
    column are equally spaced over (ki, ci): one run.  stride: 1 or 2, both ways."""
    cdef Op op = direct_geometry(in_w, pw, kh, stride)
    fw = in_w + 2 * pw
    ci, ki, kj = np.meshgrid(np.arange(cin), np.arange(kh), np.arange(kw), indexing='ij')
    column = kj if stride == 1 else kj % 2 * ((fw + 1) // 2) + kj // 2
    offsets = (ki * cin + ci) * direct_row_floats(&op) + column
    return offsets.astype(np.int64).ravel(), column.astype(np.int64).ravel()


cdef inline void direct_frame(const Op* op, const ef* base, ef* frame, int64_t oh0, int64_t oh1) noexcept nogil:
    """The input rows under output rows oh0 .. oh1 - 1 framed in scratch
    (zero padding; for stride 2 even columns, then odd): band row r of
    channel ci is frame row r * cin + ci (direct_tap_offsets)."""
    cdef int64_t fs = direct_row_floats(op), ih0 = oh0 * op.p.sh - op.p.ph, ci, ki, ih
    cdef const ef* row
    for ci in range(op.p.cin_g):
        for ki in range(direct_band_rows(op, oh1 - oh0)):
            ih = ih0 + ki
            row = base + op.in_off[ci] + ih * op.p.in_w if 0 <= ih < op.p.in_h else NULL
            f32_frame_row(frame + (ki * op.p.cin_g + ci) * fs, row, op.p.in_w, op.p.pw,
                          op.p.in_w + 2 * op.p.pw, op.p.sw)


cdef void conv_direct_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """Dense convolution, stride 1 or 2 (both ways), no dilation: job =
    (image, band of per_job output rows).  The band's input rows are framed
    (direct_frame), so each tap's pixels under an output row are contiguous:
    the GEMM tile reads them in place, no im2col panel.  op.in2_off: each
    tap's offset in the frame.  The row tiles m_block at a time, each block
    over all the band's rows: its weights stay in cache across them (all
    the weights for each row read ResNet-18's 1.2-4.7 MB ones from memory
    once a row on a Pi).  With op.p.panel, direct_panel_job."""
    cdef int64_t image = job // op.p.jobs_per_image
    if op.p.panel:
        direct_panel_job(op, image_data(ctx, image), worker_scratch(ctx, tid), job % op.p.jobs_per_image)
        return
    cdef int64_t oh0 = job % op.p.jobs_per_image * op.p.per_job
    cdef int64_t oh1 = min(oh0 + op.p.per_job, op.p.out_h)
    cdef int64_t fs = direct_row_floats(op), oh
    cdef ef* base = image_data(ctx, image)
    cdef ef* frame = worker_scratch(ctx, tid)
    direct_frame(op, base, frame, oh0, oh1)
    # each output row: its whole pixel tiles in one call, then the rest
    cdef int64_t whole = op.p.out_w // GEMM_NR, nb, nc, mt0 = 0, mt1
    while mt0 < op.p.m_tiles:
        mt1 = min(mt0 + op.p.m_block, op.p.m_tiles)
        for oh in range(oh0, oh1):
            nb, nc = (oh - oh0) * op.p.sh * op.p.cin_g * fs, oh * op.p.out_w
            if whole:
                gemm_row_tiles(op, 0, mt0, mt1, frame, op.in2_off, op.k_runs, nb, base, nc, GEMM_NR,
                               WHOLE_K, whole)
            if op.p.out_w > whole * GEMM_NR:
                gemm_row_tiles(op, 0, mt0, mt1, frame, op.in2_off, op.k_runs, nb + whole * GEMM_NR,
                               base, nc + whole * GEMM_NR, op.p.out_w - whole * GEMM_NR, WHOLE_K)
        mt0 = mt1


cdef inline void direct_panel_job(const Op* op, ef* base, ef* scratch, int64_t j) noexcept nogil:
    """A direct convolution whose output rows would leave the GEMM tiles'
    lanes empty (7 or 14 pixels wide in 8-pixel tiles): job j takes per_job
    pixels of the plane across rows, frames the rows under them, copies each
    tap's pixels into a panel row (f32_direct_panel: one run of K rows), and
    runs its tiles over the panel, m_block row tiles at a time; the last
    tile takes up to GEMM_EXTRA_MAX pixels past whole tiles."""
    cdef int64_t p0 = j * op.p.per_job, p1 = min(p0 + op.p.per_job, op.p.out_h * op.p.out_w)
    cdef int64_t oh0 = p0 // op.p.out_w, oh1 = (p1 - 1) // op.p.out_w + 1
    cdef ef* panel = scratch + direct_frame_floats(op, op.p.cin_g, panel_rows(op.p.per_job, op.p.out_w, op.p.out_h))
    cdef int64_t off[2]
    cdef int64_t run = op.p.K               # the panel's rows: one run, per_job floats apart
    off[0], off[1] = 0, op.p.per_job
    direct_frame(op, base, scratch, oh0, oh1)
    f32_direct_panel(panel, op.p.per_job, scratch, op.in2_off, op.p.K, p0, p1, op.p.out_w, oh0,
                     op.p.sh * op.p.cin_g * direct_row_floats(op))
    cdef int64_t whole = (p1 - p0) // GEMM_NR, rest = p1 - p0 - whole * GEMM_NR, mt0 = 0, mt1
    if whole and 0 < rest <= GEMM_EXTRA_MAX:
        whole, rest = whole - 1, rest + GEMM_NR
    while mt0 < op.p.m_tiles:
        mt1 = min(mt0 + op.p.m_block, op.p.m_tiles)
        if whole:
            gemm_row_tiles(op, 0, mt0, mt1, panel, off, &run, 0, base, p0, GEMM_NR, WHOLE_K, whole)
        if rest:
            gemm_row_tiles(op, 0, mt0, mt1, panel, off, &run, whole * GEMM_NR, base, p0 + whole * GEMM_NR,
                           rest, WHOLE_K)
        mt0 = mt1


cdef void linear_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """Fully connected: job = (image, tile of LINEAR_NO outputs)."""
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t t = job % op.p.jobs_per_image
    cdef ef* base = image_data(ctx, image)
    cdef ef* y = worker_scratch(ctx, tid)
    cdef int64_t o0 = t * LINEAR_NO, o
    cdef int64_t n = min(o0 + LINEAR_NO, op.p.n_out) - o0
    cdef float v
    if op.res_off == NULL:
        f32_linear_tile(op.p.K, op.w + t * op.p.K * LINEAR_NO, op.b + o0, base, op.in_off, op.k_runs,
                        y, op.p.lo, op.p.hi)
    else:       # the residual goes in before the clamp
        f32_linear_tile(op.p.K, op.w + t * op.p.K * LINEAR_NO, op.b + o0, base, op.in_off, op.k_runs,
                        y, -INFINITY, INFINITY)
        for o in range(n):
            v = y[o] + base[op.res_off[o0 + o]]
            y[o] = op.p.hi if v > op.p.hi else op.p.lo if v < op.p.lo else v
    if op.p.act and op.act_w == NULL:
        f32_activation(y, LINEAR_NO, op.p.act, 0)
    elif op.p.act:          # each output is a channel, with its own number
        for o in range(n):
            f32_activation(y + o, 1, op.p.act, op.act_w[o0 + o])
    for o in range(n):
        base[op.out_off[o0 + o]] = y[o]
