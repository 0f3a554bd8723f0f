/* Winograd F(m x m, 3 x 3) for dense 3x3 stride-1 convolutions
 * (winograd.pxi runs them): an output tile of m x m pixels from an input tile
 * of a x a (a = m + 2) as
 *     Y = A^T [ (G g G^T) . (B^T d B) ] A
 * with the weights' transform G g G^T made once at plan time
 * (engine/ops/conv.py: winograd_weights), so that the a*a products per tile
 * and channel pair are a*a GEMMs over the channels.  m = 2 (a = 4: 16 products for 4 outputs) or
 * m = 4 (a = 6: 36 for 16; more rounding, fewer products).
 *
 * The transforms run VLEN tiles at once, one lane per tile, the tiles of a
 * band of tile rows one after another (tile g = q * tx + t: tile t of the
 * band's tile row q), so that a 14x14 plane's 4 x 4 tiles fill one 16-lane
 * vector rather than a quarter of four.  Each input row is framed into its
 * tiles' a columns (column c of tile t: input column t * m + c - pw) at the
 * position of its tile row, so that each of a tile's a x a inputs is a
 * contiguous vector over tiles:
 *     frame[(r * a + c) * fs + q * tx + t] = input row q * m + r, column c of tile t
 * for r < m; input rows m .. a - 1 of tile row q are rows 0 .. a - m - 1 of
 * tile row q + 1 (the frame holds one tile row more), tx tiles across.
 * NEON's transforms (winograd_neon.h) read the band's input rows padded
 * instead, their tiles' columns by LD4 and LD2: f32_wino_frame_band makes
 * whichever the ISA's input transform reads. */
#ifndef ENGINE_WINOGRAD_H
#define ENGINE_WINOGRAD_H
#include "ukernels.h"     /* simd.h, ENGINE_ALWAYS_INLINE */
/* the ISA's own transforms, which the row functions below run where they apply */
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
#include "winograd_neon.h"
#endif

#define WINO_A_MAX 6

/* B^T (a x a) and A^T (m x a), by m: interpolation points 0, 1, -1 (m = 2)
 * and 0, 1, -1, 2, -2 (m = 4), then infinity */
static const float WINO_BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const float WINO_AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float WINO_BT4[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                     {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float WINO_AT4[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0},
                                     {0, 1, -1, 8, -8, 1}};

static inline const float* f32_wino_bt(int m) { return m == 2 ? &WINO_BT2[0][0] : &WINO_BT4[0][0]; }
static inline const float* f32_wino_at(int m) { return m == 2 ? &WINO_AT2[0][0] : &WINO_AT4[0][0]; }

/* sum_k c[k] * x[k * s], k < n, for constant c (inlined with constant m, the
 * zero terms vanish and the ones are adds: no multiplications by 0 or +-1) */
ENGINE_ALWAYS_INLINE vf f32_wino_dot(const float* c, const vf* x, const int n, const int s) {
    vf acc = vf_zero();
    int first = 1;
#pragma GCC unroll 6
    for (int k = 0; k < n; k++) {
        const float ck = c[k];
        if (ck == 0.0f) continue;
        vf xk = x[k * s];
        if (first) acc = ck == 1.0f ? xk : vf_mul(vf_set1(ck), xk);
        else if (ck == 1.0f) acc = vf_add(acc, xk);
        else if (ck == -1.0f) acc = vf_sub(acc, xk);
        else acc = vf_fma(vf_set1(ck), xk, acc);
        first = 0;
    }
    return acc;
}

/* One input row into the frame at f: f[c * fs + t] = row[t * m + c - pw]
 * (0 outside the row, or everywhere when row is NULL), c < a, t < tx, in
 * whole vectors of tiles: up to VLEN - 1 tiles past tx written too (the next
 * tile rows' places, framed after this one, or the frame's slack).  The row
 * is split into its m phases (phase ph: columns ph, ph + m, ...: columns c <
 * m) a vector of tiles at a time, and columns m .. a - 1 are phases 0 .. a -
 * m - 1 one tile on (each vector moved a lane in from the next one's).
 * Where the ISA has masked loads (vf_load_range) the vectors come straight
 * from the row, zeros outside it; elsewhere the row is first framed with its
 * padding into pad (m * (tx + 2 VLEN) floats: f32_frame_row, the direct
 * convolution's) and split from there (NEON: one LD2 or LD4 a vector).
 * Framing first on AVX-512 stalled each load on the stores just made (store
 * forwarding): a quarter of a 56x56 F(4x4) layer's time. */
ENGINE_ALWAYS_INLINE void f32_wino_phases(vf* v, const ef* pad, const ef* row, int64_t col, int64_t in_w,
                                          const int M) {
    if (!row) {
        for (int k = 0; k < M; k++) v[k] = vf_zero();
        return;
    }
#ifdef ENGINE_LOAD_RANGE
    vf x[4];
    for (int k = 0; k < M; k++) x[k] = vf_load_range(row, col + k * VLEN, in_w);
    if (M == 2) vf_unzip2(x, v);
    else vf_unzip4(x, v);
#else
    if (M == 2) vf_load_pairs(pad + col, &v[0], &v[1]);
    else vf_load_quads(pad + col, v);
#endif
}

/* a vector of tiles' a columns from its phases v and the next vector's */
ENGINE_ALWAYS_INLINE void f32_wino_frame_store(ef* f, int64_t fs, const vf* v, const vf* next, const int M) {
    for (int c = 0; c < M; c++) vf_storeu(f + c * fs, v[c]);
    for (int c = M; c < M + 2; c++) vf_storeu(f + c * fs, vf_shift_in(v[c - M], next[c - M]));
}

/* the next vector's phases where the last tile of this one needs them (else zeros) */
ENGINE_ALWAYS_INLINE void f32_wino_next_phases(vf* next, const ef* pad, const ef* row, int64_t start,
                                               int64_t t, int64_t in_w, int64_t tx, const int M) {
    f32_wino_phases(next, pad, t + VLEN <= tx ? row : NULL, start + (t + VLEN) * M, in_w, M);
}

/* (two vectors a turn, the phases passed between them: no copies) */
ENGINE_ALWAYS_INLINE void f32_wino_frame_row_m(ef* f, int64_t fs, ef* pad, const ef* row, int64_t in_w,
                                               int64_t pw, int64_t tx, const int M) {
#ifdef ENGINE_LOAD_RANGE
    const int64_t start = -pw;
#else
    const int64_t start = 0;
    if (row) f32_frame_row(pad, row, in_w, pw, tx * M + 2, 1);
#endif
    vf v[4], next[4];
    f32_wino_phases(v, pad, row, start, in_w, M);
    for (int64_t t = 0;;) {
        f32_wino_next_phases(next, pad, row, start, t, in_w, tx, M);
        f32_wino_frame_store(f + t, fs, v, next, M);
        if ((t += VLEN) >= tx) break;
        f32_wino_next_phases(v, pad, row, start, t, in_w, tx, M);
        f32_wino_frame_store(f + t, fs, next, v, M);
        if ((t += VLEN) >= tx) break;
    }
}

ENGINE_ALWAYS_INLINE void f32_wino_frame_row(ef* f, int64_t fs, ef* pad, const ef* row, int64_t in_w,
                                             int64_t pw, int64_t tx, int m) {
    if (m == 2) f32_wino_frame_row_m(f, fs, pad, row, in_w, pw, tx, 2);
    else f32_wino_frame_row_m(f, fs, pad, row, in_w, pw, tx, 4);
}

/* Floats per row of a band's frame (rows of tiles' columns; NEON: padded
 * input rows), and of the whole frame, band_rows tile rows of tx tiles
 * (NEON: and the zeros its padded rows' last stores run past it) */
static inline int64_t f32_wino_frame_stride(int64_t band_rows, int64_t tx, int m) {
#ifdef ENGINE_WINO_NEON
    return f32_wino_pad_stride_neon(tx, m);
#else
    return (band_rows + 1) * tx + VLEN;
#endif
}

static inline int64_t f32_wino_frame_floats(int64_t band_rows, int64_t tx, int m) {
#ifdef ENGINE_WINO_NEON
    return (band_rows * m + 2) * f32_wino_frame_stride(band_rows, tx, m) + WINO_PAD_ZEROS;
#else
    return m * (m + 2) * f32_wino_frame_stride(band_rows, tx, m);
#endif
}

/* One channel's input rows of tile rows ty0 .. ty1 - 1 (plane: in_h rows of
 * in_w, ph and pw padding rows and columns, 0 or 1) into the frame f (rows
 * fs floats apart) that f32_wino_input_tiles reads; pad: an input row's
 * place with its padding (m * (tx + 2 VLEN) floats) */
static inline void f32_wino_frame_band(ef* f, int64_t fs, ef* pad, const ef* plane, int64_t in_h, int64_t in_w,
                                       int64_t ph, int64_t pw, int64_t ty0, int64_t ty1, int64_t tx, int m) {
    for (int64_t fr = 0; fr < (ty1 - ty0) * m + 2; fr++) {
        const int64_t ih = ty0 * m - ph + fr;
        const ef* row = 0 <= ih && ih < in_h ? plane + ih * in_w : NULL;
#ifdef ENGINE_WINO_NEON
        (void)pad;
        f32_wino_pad_row_neon(f + fr * fs, row, in_w, pw, fs);
#else
        /* frame row fr is row fr % m of tile row fr / m */
        f32_wino_frame_row(f + fr % m * (m + 2) * fs + fr / m * tx, fs, pad, row, in_w, pw, tx, m);
#endif
    }
}

/* y[i * ys] = (B^T x)[i], x[k * s] the a inputs: by B^T's rows for m = 2
 * (one operation each), factored for m = 4 (terms shared between rows: 12
 * operations where B^T's rows take 22) */
ENGINE_ALWAYS_INLINE void f32_wino_bt_col(const vf* x, int s, vf* y, int ys, const int M) {
    if (M == 2) {
        const float* bt = f32_wino_bt(2);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) y[i * ys] = f32_wino_dot(bt + i * 4, x, 4, s);
        return;
    }
    const vf four = vf_set1(4.0f), m4 = vf_set1(-4.0f), m5 = vf_set1(-5.0f), two = vf_set1(2.0f);
    const vf x1 = x[s], x2 = x[2 * s], x3 = x[3 * s], x4 = x[4 * s];
    const vf t1 = vf_fma(m4, x2, x4), t2 = vf_fma(m4, x1, x3);     /* x4 - 4 x2, x3 - 4 x1 */
    const vf t3 = vf_sub(x4, x2), d31 = vf_sub(x3, x1);
    y[0] = vf_fma(m5, x2, vf_fma(four, x[0], x4));
    y[ys] = vf_add(t1, t2);
    y[2 * ys] = vf_sub(t1, t2);
    y[3 * ys] = vf_fma(two, d31, t3);
    y[4 * ys] = vf_fma(vf_set1(-2.0f), d31, t3);
    y[5 * ys] = vf_fma(m5, x3, vf_fma(four, x1, x[5 * s]));
}

/* y[i * ys] = (A^T x)[i], i < m: by A^T's rows for m = 2, factored for
 * m = 4 (sums and differences of x1, x2 and of x3, x4: 10 operations, not 14) */
ENGINE_ALWAYS_INLINE void f32_wino_at_col(const vf* x, int s, vf* y, int ys, const int M) {
    if (M == 2) {
        const float* at = f32_wino_at(2);
        y[0] = f32_wino_dot(at, x, 4, s);
        y[ys] = f32_wino_dot(at + 4, x, 4, s);
        return;
    }
    const vf x1 = x[s], x2 = x[2 * s], x3 = x[3 * s], x4 = x[4 * s];
    const vf s12 = vf_add(x1, x2), d12 = vf_sub(x1, x2), s34 = vf_add(x3, x4), d34 = vf_sub(x3, x4);
    y[0] = vf_add(vf_add(x[0], s12), s34);
    y[ys] = vf_fma(vf_set1(2.0f), d34, d12);
    y[2 * ys] = vf_fma(vf_set1(4.0f), s34, s12);
    y[3 * ys] = vf_add(vf_fma(vf_set1(8.0f), d34, d12), x[5 * s]);
}

/* The input transform of `tiles` tiles of a band and one channel: frame as
 * f32_wino_frame_band left it (rows of fs floats, tx tiles a tile row);
 * v[xi * xi_step + g] = element xi of tile g's B^T d B.  Writes whole
 * vectors: up to VLEN - 1 past tiles. */
ENGINE_ALWAYS_INLINE void f32_wino_input_tiles_m(const ef* frame, int64_t fs, int64_t tx, int64_t tiles,
                                                 ef* v, int64_t xi_step, const int M) {
    const int A = M + 2;
    for (int64_t g = 0; g < tiles; g += VLEN) {
        vf d[WINO_A_MAX * WINO_A_MAX], bd[WINO_A_MAX * WINO_A_MAX], y[WINO_A_MAX];
#pragma GCC unroll 6
        for (int r = 0; r < A; r++)
#pragma GCC unroll 6
            for (int c = 0; c < A; c++) d[r * A + c] = vf_loadu(frame + ((r % M) * A + c) * fs + g + r / M * tx);
#pragma GCC unroll 6
        for (int c = 0; c < A; c++) f32_wino_bt_col(d + c, A, bd + c, A, M);
#pragma GCC unroll 6
        for (int i = 0; i < A; i++) {
            f32_wino_bt_col(bd + i * A, 1, y, 1, M);
#pragma GCC unroll 6
            for (int j = 0; j < A; j++) vf_storeu(v + (i * A + j) * xi_step + g, y[j]);
        }
    }
}

/* m vectors v[0..m) interleaved into m * VLEN floats at p: p[l * m + j] = lane l of v[j] */
ENGINE_ALWAYS_INLINE void f32_wino_store_interleaved(ef* p, const vf* v, const int M) {
    vf lo, hi;
    if (M == 2) {
        vf_zip(v[0], v[1], &lo, &hi);
        vf_storeu(p, lo);
        vf_storeu(p + VLEN, hi);
    } else {        /* (0, 2) and (1, 3) zipped, then the pairs: lanes 0 1 2 3 in order */
        vf l02, h02, l13, h13;
        vf_zip(v[0], v[2], &l02, &h02);
        vf_zip(v[1], v[3], &l13, &h13);
        vf_zip(l02, l13, &lo, &hi);
        vf_storeu(p, lo);
        vf_storeu(p + VLEN, hi);
        vf_zip(h02, h13, &lo, &hi);
        vf_storeu(p + 2 * VLEN, lo);
        vf_storeu(p + 3 * VLEN, hi);
    }
}

/* The output transform of `tiles` tiles and one output channel:
 * mrow[xi * xi_step + g] is element xi of tile g's product;
 * out[i * out_step + g * m + j] = bias + pixel (i, j) of tile g's A^T M A
 * (a band's tiles one after another: output row q * m + i of tile row q is
 * out[i * out_step + q * tx * m ..], tx * m floats).  Writes whole vectors
 * of tiles: out_step >= m times tiles rounded up to VLEN. */
ENGINE_ALWAYS_INLINE void f32_wino_output_tiles_m(const ef* mrow, int64_t xi_step, int64_t tiles, float bias,
                                                ef* out, int64_t out_step, const int M) {
    const int A = M + 2;
    const vf vb = vf_set1(bias);
    for (int64_t t = 0; t < tiles; t += VLEN) {
        vf x[WINO_A_MAX * WINO_A_MAX], ax[4 * WINO_A_MAX], y[4];
#pragma GCC unroll 36
        for (int k = 0; k < A * A; k++) x[k] = vf_loadu(mrow + k * xi_step + t);
        /* A^T's column 1 is all ones: the bias on element (1, 1) is on every pixel, one add not m * m */
        x[A + 1] = vf_add(x[A + 1], vb);
#pragma GCC unroll 6
        for (int c = 0; c < A; c++) f32_wino_at_col(x + c, A, ax + c, A, M);
#pragma GCC unroll 4
        for (int i = 0; i < M; i++) {
            f32_wino_at_col(ax + i * A, 1, y, 1, M);
            f32_wino_store_interleaved(out + i * out_step + t * M, y, M);
        }
    }
}

static inline void f32_wino_input_tiles(const ef* frame, int64_t fs, int64_t tx, int64_t tiles, ef* v,
                                        int64_t xi_step, int m) {
#ifdef ENGINE_WINO_NEON
    if (m == 2) f32_wino_input_tiles2_neon(frame, fs, tx, tiles, v, xi_step);
    else f32_wino_input_tiles4_neon(frame, fs, tx, tiles, v, xi_step);
#else
    if (m == 2) f32_wino_input_tiles_m(frame, fs, tx, tiles, v, xi_step, 2);
    else f32_wino_input_tiles_m(frame, fs, tx, tiles, v, xi_step, 4);
#endif
}

static inline void f32_wino_output_tiles(const ef* mrow, int64_t xi_step, int64_t tiles, float bias,
                                         ef* out, int64_t out_step, int m) {
#ifdef ENGINE_WINO_NEON
    if (m == 2) f32_wino_output_tiles2_neon(mrow, xi_step, tiles, bias, out, out_step);
    else f32_wino_output_tiles4_neon(mrow, xi_step, tiles, bias, out, out_step);
#else
    if (m == 2) f32_wino_output_tiles_m(mrow, xi_step, tiles, bias, out, out_step, 2);
    else f32_wino_output_tiles_m(mrow, xi_step, tiles, bias, out, out_step, 4);
#endif
}

/* floats f32_wino_store_rows may write past a row it spills */
#define WINO_SPILL (2 * VLEN - 1)

/* Floats per output row of the output transform's buffer: whole vectors of tiles */
static inline int64_t f32_wino_out_step(int m, int64_t tiles) { return (tiles + VLEN - 1) / VLEN * VLEN * m; }

/* clamp(src (+ res), lo, hi), a vector; the bounds at infinity left out (LO,
 * HI: whether there is one).  max(lo, y): NaN passes, as in the GEMM's store */
ENGINE_ALWAYS_INLINE vf f32_wino_store_vec(const ef* src, const ef* res, vf vlo, vf vhi, const int RES,
                                           const int LO, const int HI) {
    vf y = vf_loadu(src);
    if (RES) y = vf_add(y, vf_loadu(res));
    if (LO) y = vf_max(vlo, y);
    if (HI) y = vf_min(vhi, y);
    return y;
}

ENGINE_ALWAYS_INLINE void f32_wino_store_rows_v(ef* dst, int64_t dst_step, const ef* src, int64_t src_step,
                                                const ef* res, int64_t rows, int64_t spill, int64_t n, vf vlo,
                                                vf vhi, const int RES, const int LO, const int HI) {
#define VEC(x) f32_wino_store_vec(s + (x), q + (x), vlo, vhi, RES, LO, HI)
    for (int64_t r = 0; r < rows; r++) {
        const ef* s = src + r * src_step;
        const ef* q = res + r * dst_step;
        ef* d = dst + r * dst_step;
        int64_t x = 0;
        if (r < spill) {    /* (a loop of its own: one loop for both took 0.14 M more on SqueezeNet) */
            for (; x < n; x += 2 * VLEN) {
                const vf a = VEC(x), b = VEC(x + VLEN);
                vf_storeu(d + x, a);
                vf_storeu(d + x + VLEN, b);
            }
            continue;
        }
        for (; x + 2 * VLEN <= n; x += 2 * VLEN) {
            const vf a = VEC(x), b = VEC(x + VLEN);
            vf_storeu(d + x, a);
            vf_storeu(d + x + VLEN, b);
        }
        if (x + VLEN <= n) {
            vf_storeu(d + x, VEC(x));
            x += VLEN;
        }
        if (x < n) vf_store_partial(d + x, VEC(x), (int)(n - x));
    }
#undef VEC
}

/* dst[r * dst_step + x] = clamp(src[r * src_step + x] (+ res[r * dst_step +
 * x]), lo, hi), x < n, r < rows: output rows of the transform's buffer into
 * their plane, two vectors a turn: rows r < spill end on a whole turn, up to
 * WINO_SPILL floats into the rows after them (written later); the others
 * take their last part-vector as a vector stored in part (a row's tail
 * took about 25 instructions so).  src has whole vectors; res is
 * read past the row as the GEMM's store reads it, into the arena's slack.
 * One loop for each way of the residual and the bounds (ReLU's +infinity:
 * no min).  Without a residual res walks dst, unread (no arithmetic on
 * NULL). */
static inline void f32_wino_store_rows(ef* dst, int64_t dst_step, const ef* src, int64_t src_step, const ef* res,
                                       int64_t rows, int64_t spill, int64_t n, float lo, float hi) {
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi);
    const int LO = lo > -INFINITY || hi < INFINITY, HI = hi < INFINITY;
#define ROWS(RES, LO, HI) f32_wino_store_rows_v(dst, dst_step, src, src_step, RES ? res : dst, rows, spill, n, \
                                                vlo, vhi, RES, LO, HI)
    if (res) {
        if (HI) ROWS(1, 1, 1);
        else if (LO) ROWS(1, 1, 0);
        else ROWS(1, 0, 0);
    } else {
        if (HI) ROWS(0, 1, 1);
        else if (LO) ROWS(0, 1, 0);
        else ROWS(0, 0, 0);
    }
#undef ROWS
}

/* One output channel of a band of tile rows ty0 .. ty1 - 1 (tx tiles each):
 * the output transform of its tiles' products (mrow, xi_step apart) with
 * the bias into buf, then its output rows into the plane dst (out_h rows of
 * out_w) with the residual plane's (res, or NULL) and the clamp.  Rows whose
 * next WINO_SPILL floats are the band's spill (the band's last rows do not:
 * past them, another job's rows or another plane) */
static inline void f32_wino_output_band(const ef* mrow, int64_t xi_step, int64_t ty0, int64_t ty1, int64_t tx,
                                        float bias, ef* buf, ef* dst, const ef* res, int64_t out_h, int64_t out_w,
                                        float lo, float hi, int m) {
    const int64_t step = f32_wino_out_step(m, (ty1 - ty0) * tx);
    const int64_t oh1 = ty1 * m < out_h ? ty1 * m : out_h, exact = (WINO_SPILL + out_w - 1) / out_w;
    f32_wino_output_tiles(mrow, xi_step, (ty1 - ty0) * tx, bias, buf, step, m);
    for (int64_t ty = ty0; ty < ty1; ty++, buf += tx * m) {
        const int64_t oh = ty * m, rows = out_h - oh < m ? out_h - oh : m;
        f32_wino_store_rows(dst + oh * out_w, out_w, buf, step, res ? res + oh * out_w : NULL, rows,
                            oh1 - exact - oh, out_w, lo, hi);
    }
}

#endif
