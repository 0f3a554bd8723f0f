"""Dense 3x3 stride-1 convolutions by Winograd F(m x m, 3 x 3) (winograd.h).
A job is a band of tile rows by a chunk of row tiles (output channels):
every input channel's tiles of the band transformed into scratch (V: a*a
matrices of cin rows by the band's tiles), a*a GEMMs of the transformed
weights (packed as a*a groups: lowering.pack_gemm) by V through the GEMM tile
into scratch (P: a*a matrices of the chunk's rows by tiles), then each
output channel's tiles transformed back into its plane with the bias, the
residual and the epilogue."""
from libc.stdint cimport int64_t

cdef extern from "winograd.h" nogil:
    const float* f32_wino_bt(int m)
    const float* f32_wino_at(int m)
    int64_t f32_wino_frame_stride(int64_t band_rows, int64_t tx, int m)
    int64_t f32_wino_frame_floats(int64_t band_rows, int64_t tx, int m)
    void f32_wino_frame_band(ef* f, int64_t fs, ef* pad, const ef* plane, int64_t in_h, int64_t in_w, int64_t ph,
                             int64_t pw, int64_t ty0, int64_t ty1, int64_t tx, int m)
    void f32_wino_input_tiles(const ef* frame, int64_t fs, int64_t tx, int64_t tiles, ef* v, int64_t xi_step,
                              int m)
    void f32_wino_output_tiles(const ef* mrow, int64_t xi_step, int64_t tiles, float bias, ef* out,
                               int64_t out_step, int m)
    int64_t f32_wino_out_step(int m, int64_t tiles)
    void f32_wino_store_rows(ef* dst, int64_t dst_step, const ef* src, int64_t src_step, const ef* res,
                             int64_t rows, int64_t spill, int64_t n, float lo, float hi)
    void f32_wino_output_band(const ef* mrow, int64_t xi_step, int64_t ty0, int64_t ty1, int64_t tx, float bias,
                              ef* buf, ef* dst, const ef* res, int64_t out_h, int64_t out_w, float lo, float hi,
                              int m)


cdef inline int64_t wino_tiles(int64_t out, int64_t m) noexcept nogil:
    """Tiles of m outputs across `out` pixels."""
    return (out + m - 1) // m


cdef inline int64_t wino_stride(int64_t band_rows, int64_t tiles_x) noexcept nogil:
    """Floats per row of V and P: a band's tiles in whole GEMM tiles, then
    the VLEN - 1 the transforms' vectors may run past them."""
    return (band_rows * tiles_x + GEMM_NR - 1) // GEMM_NR * GEMM_NR + VLEN


cdef inline int64_t wino_band_start(int64_t tiles_y, int64_t bands, int64_t b) noexcept nogil:
    """The first tile row of band b of `bands` over tiles_y tile rows: bands
    as equal as whole tile rows make them."""
    return b * tiles_y // bands


def winograd_band_rows(int64_t tiles_y, int64_t bands):
    """Tile rows of each band (wino_band_start)."""
    return [wino_band_start(tiles_y, bands, b + 1) - wino_band_start(tiles_y, bands, b) for b in range(bands)]


cdef struct WinoScratch:
    ef* v            # a*a x cin x stride
    ef* prod         # a*a x chunk_rows x stride
    ef* frame        # one channel's band of input rows as the input transform reads them
    ef* out          # m output rows of a band's tiles
    ef* pad          # an input row with its padding (f32_wino_frame_row without masked loads)
    int64_t end         # floats past the last


cdef inline WinoScratch wino_scratch(ef* at, int64_t m, int64_t cin, int64_t chunk_rows,
                                     int64_t band_rows, int64_t tiles_x) noexcept nogil:
    cdef int64_t a = m + 2, s = wino_stride(band_rows, tiles_x)
    cdef WinoScratch w
    w.v = at
    w.prod = w.v + a * a * cin * s
    w.frame = w.prod + a * a * chunk_rows * s
    w.out = w.frame + f32_wino_frame_floats(band_rows, tiles_x, <int>m)
    w.pad = w.out + m * f32_wino_out_step(<int>m, band_rows * tiles_x)
    w.end = (w.pad - at) + m * (tiles_x + 2 * VLEN)
    return w


def winograd_stride(int64_t band_rows, int64_t tiles_x):
    """Floats per row of a Winograd job's V and P (the op's in2_off table: r times it)."""
    return wino_stride(band_rows, tiles_x)


def winograd_scratch_floats(int64_t m, int64_t cin, int64_t chunk_rows, int64_t band_rows, int64_t tiles_x):
    """Scratch one worker needs for a Winograd job (conv_winograd_job)."""
    return wino_scratch(NULL, m, cin, chunk_rows, band_rows, tiles_x).end


def winograd_matrices(int m):
    """(B^T, A^T) of F(m x m, 3 x 3) as winograd.h has them (float64)."""
    _wino_m(m)
    cdef int a = m + 2
    bt, at = f32_wino_bt(m), f32_wino_at(m)
    return (np.array([bt[i] for i in range(a * a)], np.float64).reshape(a, a),
            np.array([at[i] for i in range(m * a)], np.float64).reshape(m, a))


cdef void conv_winograd_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, band of at most per_job tile rows, chunk of m_per_job
    row tiles); op.in2_off[r] = r * wino_stride: row r of V and of P."""
    cdef int64_t image = job // op.p.jobs_per_image
    cdef int64_t r = job % op.p.jobs_per_image
    cdef int64_t m_chunks = (op.p.m_tiles + op.p.m_per_job - 1) // op.p.m_per_job
    cdef int64_t mt0 = r % m_chunks * op.p.m_per_job
    cdef int64_t mt1 = min(mt0 + op.p.m_per_job, op.p.m_tiles)
    cdef int m = <int>op.p.wino, a = m + 2
    cdef int64_t tx = wino_tiles(op.p.out_w, m), cin = op.p.cin_g
    cdef int64_t tiles_y = wino_tiles(op.p.out_h, m), bands = op.p.jobs_per_image // m_chunks
    cdef int64_t ty0 = wino_band_start(tiles_y, bands, r // m_chunks)
    cdef int64_t ty1 = wino_band_start(tiles_y, bands, r // m_chunks + 1)
    cdef int64_t s = wino_stride(op.p.per_job, tx), chunk_rows = op.p.m_per_job * op.p.tile_rows
    cdef WinoScratch w = wino_scratch(worker_scratch(ctx, tid), m, cin, chunk_rows, op.p.per_job, tx)
    cdef ef* base = image_data(ctx, image)
    # the input transform writes whole vectors of tiles, all the GEMM tiles
    # read (covered_pixels: whole tiles, then one of one vector or two)
    cdef int64_t n_tiles = (ty1 - ty0) * tx, fs = f32_wino_frame_stride(op.p.per_job, tx, m)
    cdef int64_t ci, xi
    for ci in range(cin):
        f32_wino_frame_band(w.frame, fs, w.pad, base + op.in_off[ci], op.p.in_h, op.p.in_w, op.p.ph, op.p.pw,
                            ty0, ty1, tx, m)
        f32_wino_input_tiles(w.frame, fs, tx, n_tiles, w.v + ci * s, cin * s, m)
    # whole GEMM tiles of tiles, then the rest in a tile as narrow as takes
    # them (one vector: 7x7 planes by F(4x4) are 4 tiles)
    cdef int64_t first = tile_first_row(op, mt0), whole = n_tiles // GEMM_NR, rest = n_tiles % GEMM_NR
    cdef ef* prod
    for xi in range(a * a):
        # rows first.. of the chunk at P's rows 0..: c_table[row] = row * s
        prod = w.prod + (xi * chunk_rows - first) * s
        if whole:
            gemm_row_tiles(op, xi, mt0, mt1, w.v + xi * cin * s, op.in2_off, op.k_runs, 0, prod, 0, GEMM_NR,
                           PRODUCTS, whole, op.in2_off)
        if rest:
            gemm_row_tiles(op, xi, mt0, mt1, w.v + xi * cin * s, op.in2_off, op.k_runs, whole * GEMM_NR, prod,
                           whole * GEMM_NR, rest, PRODUCTS, 1, op.in2_off)
    cdef int64_t co, oh0 = ty0 * m, oh1 = min(ty1 * m, op.p.out_h)
    for co in range(first, min(tile_first_row(op, mt1), op.p.cout_g)):
        f32_wino_output_band(w.prod + (co - first) * s, chunk_rows * s, ty0, ty1, tx, op.b[co], w.out,
                             base + op.out_off[co], base + op.res_off[co] if op.res_off != NULL else NULL,
                             op.p.out_h, op.p.out_w, op.p.lo, op.p.hi, m)
        if op.p.act:
            f32_activation(base + op.out_off[co] + oh0 * op.p.out_w, (oh1 - oh0) * op.p.out_w, op.p.act,
                           act_param(op, co))
