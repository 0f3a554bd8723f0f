/* Register-blocked microkernels.  Names say data type, op, tile and that the
 * ISA comes from simd.h (one source, compiled once per build's ISA).
 *
 * Tensors live in an arena as one plane per channel (H*W floats, the stride
 * padded to ENGINE_PLANE_ALIGN); a tensor is a table of plane offsets, so a
 * kernel reads and writes channels through offset tables and a channel
 * shuffle, split or concat is only a different table: no bytes move. */
#ifndef ENGINE_UKERNELS_H
#define ENGINE_UKERNELS_H

#include "abi.h"
#include "simd.h"

#define ENGINE_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Activations beyond a clamp, applied after it (fused into the op that
 * produces the values, on its output while still in cache): n values of one
 * channel, `param` that channel's number for a parametric activation. */

#ifndef ENGINE_EF_FROM_F32
/* dst[i] = src[i] for i < n, float32 into the module's elements (the input's
 * copy into the arena where they are not float32) */
static inline void ef_from_f32(ef* restrict dst, const float* restrict src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = (ef)src[i];
}
#endif

static inline void f32_activation(ef* p, int64_t n, int act, float param) {
    int64_t i = 0;
    if (act == ACT_HARDSWISH || act == ACT_HARDSIGMOID) {
        /* PyTorch: hardswish(x) = x * relu6(x + 3) / 6, hardsigmoid(x) = relu6(x + 3) / 6 */
        const vf three = vf_set1(3.0f), zero = vf_zero(), six = vf_set1(6.0f);
        const vf sixth = vf_set1(1.0f / 6.0f);
        for (; i + VLEN <= n; i += VLEN) {
            vf x = vf_loadu(p + i);
            vf r = vf_mul(vf_min(six, vf_max(zero, vf_add(x, three))), sixth);
            vf_storeu(p + i, act == ACT_HARDSWISH ? vf_mul(x, r) : r);
        }
        for (; i < n; i++) {       /* comparisons, not fminf/fmaxf: NaN passes as in the vectors */
            float r = p[i] + 3.0f;
            r = r < 0.0f ? 0.0f : r > 6.0f ? 6.0f : r;
            r = r / 6.0f;
            p[i] = act == ACT_HARDSWISH ? p[i] * r : r;
        }
    } else if (act == ACT_SIGMOID) {
        for (; i < n; i++) p[i] = 1.0f / (1.0f + expf(-p[i]));
    } else if (act == ACT_SILU) {
        for (; i < n; i++) p[i] = p[i] / (1.0f + expf(-p[i]));
    } else if (act == ACT_LEAKY_RELU) {
        const vf slope = vf_set1(param);
        for (; i + VLEN <= n; i += VLEN) vf_storeu(p + i, vf_leaky(vf_loadu(p + i), slope));
        for (; i < n; i++) p[i] = p[i] >= 0.0f ? p[i] : p[i] * param;
    } else if (act == ACT_TANH) {
        for (; i < n; i++) p[i] = tanhf(p[i]);
    }
}

/* dst[i] = src[i * s] for i < n: a row of an im2col panel.  Like the window
 * rows, strides 1 and 2 finish with a part-full vector (reading a little past
 * the row, inside the arena's slack). */
static inline void f32_copy_strided(ef* dst, const ef* src, int64_t n, int64_t s) {
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) vf_storeu(dst + i, vf_load_strided(src + i * s, s));
    if (i < n && s <= 2) vf_store_partial(dst + i, vf_load_strided(src + i * s, s), (int)(n - i));
    else for (; i < n; i++) dst[i] = src[i * s];
}

/* Whole rows of a GEMM tile into their planes (see f32_gemm_tile): acc plus
 * the residual (RES), then max with lo (LO) and min with hi (HI): a bound at
 * infinity changes nothing, NaN included, and costs an instruction per vector;
 * then leaky ReLU by row r's slope[r] (LEAKY). */
ENGINE_ALWAYS_INLINE void f32_gemm_store(vf acc[GEMM_MR][GEMM_NV_MAX], ef* dst,
        const int64_t* restrict c_off, const int64_t* restrict r_off, vf vlo, vf vhi,
        const ef* restrict slope, const int MR, const int NV, const int RES, const int LO, const int HI,
        const int LEAKY) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        vf y[GEMM_NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            y[v] = RES ? vf_add(acc[r][v], vf_loadu(dst + r_off[r] + v * VLEN)) : acc[r][v];
            if (LO) y[v] = vf_max(vlo, y[v]);
            if (HI) y[v] = vf_min(vhi, y[v]);
            if (LEAKY) y[v] = vf_leaky(y[v], vf_set1(slope[r]));
        }
        vf_storeu_n(dst + c_off[r], y, NV);
    }
}

/* A tile's EXTRA pixels past its vectors, each with the MR rows as the lanes
 * of EV vectors (a struct passed by value: GCC keeps it in registers, where
 * it stored an array behind a pointer every k) */
#define GEMM_EV_MAX ((GEMM_MR + VLEN - 1) / VLEN)
typedef struct { vf v[GEMM_EXTRA_MAX][GEMM_EV_MAX]; } f32_gemm_extras;


/* Entry k's run of B planes (b_run, below): how many from k on (K at most)
 * and the step between them (0 for a run of one). */
ENGINE_ALWAYS_INLINE int64_t f32_gemm_run(int64_t k, int64_t K, const int64_t* restrict b_off,
        const int64_t* restrict b_run, int64_t* step) {
    const int64_t n = b_run[k] < K - k ? b_run[k] : K - k;
    *step = n > 1 ? b_off[k + 1] - b_off[k] : 0;
    return n;
}
/* The step between B planes when all K of them are one run, else -1 (once
 * per call of a tile function: the tiles then skip their walk along the runs) */
static inline int64_t f32_gemm_one_run(int64_t K, const int64_t* restrict b_off, const int64_t* restrict b_run) {
    int64_t step;
    return f32_gemm_run(0, K, b_off, b_run, &step) == K ? step : -1;
}

/* one k of a tile's extra pixels (f32_gemm_extras): x.v[p][e] += a[e * VLEN ...] * b[p] */
ENGINE_ALWAYS_INLINE f32_gemm_extras f32_gemm_extra_k(f32_gemm_extras x, const ef* restrict a,
        const ef* b, const int MR, const int EXTRA) {
    const int EV = (MR + VLEN - 1) / VLEN;
    vf ae[GEMM_EV_MAX];
    vf_loadu_n(ae, a, EV);
    for (int e = 0; e < EV; e++)
        for (int p = 0; p < EXTRA; p++) x.v[p][e] = vf_fma(ae[e], vf_set1(b[p]), x.v[p][e]);
    return x;
}

/* the ISA's own GEMM steps, which the tile below runs where they apply */
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT) || defined(ENGINE_ISA_NEON_FP16)
#include "ukernels_neon.h"
#endif

/* The extra pixels of all k in a pass of their own where
 * ENGINE_GEMM_EXTRA_PASS (NEON: f32_gemm_extra_pass; beside the asm
 * reduction's 24 accumulators GCC spilled some every k).  Elsewhere the
 * tile's own loop takes them, one walk along the runs for both. */
#ifndef ENGINE_GEMM_EXTRA_PASS
#define ENGINE_GEMM_EXTRA_PASS 0
#endif

/* GEMM tile over channel planes, NV vectors of pixels wide:
 *   for r < mr:  C_r[0 : nvalid] = clamp(bias[r] + sum_k a[k][r] * B_k[0 : ...] + R_r[...])
 * where B_k = src + b_off[k], C_r = dst + c_off[r] and, when r_off is not
 * NULL, R_r = dst + r_off[r] is a residual added before the clamp (a fused
 * add).  `a` is packed [K][MR] (rows past the matrix are zero), `bias` has
 * MR entries.  B is read NV whole vectors wide; only the first nvalid
 * pixels of C are written.  b_run[k] >= 1 says how many of B_k, B_k+1, ...
 * are equally far apart (a run: the planner sorts the planes by offset),
 * so that the loop over k steps a pointer instead of loading each offset;
 * b_step >= 0 says that all K are one run, b_step apart (f32_gemm_one_run:
 * no walk along the runs).  src and dst point at the tile's first pixel.
 * The clamp is to [bounds[0], bounds[1]], read once the reduction is done;
 * then, unless slope is NULL, leaky ReLU with row r's slope[r]. */
ENGINE_ALWAYS_INLINE void f32_gemm_tile(
        int64_t K, const ef* restrict a, const ef* restrict bias,
        const ef* src, const int64_t* restrict b_off, const int64_t* restrict b_run, int64_t b_step,
        ef* dst, const int64_t* restrict c_off, const int64_t* restrict r_off, const ef* restrict slope,
        int mr, int64_t nvalid, const volatile float* bounds, const int MR, const int NV, const int EXTRA) {
    vf acc[GEMM_MR][GEMM_NV_MAX];
    /* EXTRA more pixels after the NV vectors (lanes past MR unused) */
    const int EV = EXTRA ? (MR + VLEN - 1) / VLEN : 0;
    f32_gemm_extras extra;
    for (int x = 0; x < EXTRA; x++)
        for (int e = 0; e < EV; e++) extra.v[x][e] = vf_loadu(bias + e * VLEN);
#if ENGINE_GEMM_EXTRA_PASS
    if (EXTRA) extra = f32_gemm_extra_pass(extra, K, a, src + NV * VLEN, b_off, b_run, b_step, MR, EXTRA);
#endif
#ifdef ENGINE_GEMM_REDUCE
    if (ENGINE_GEMM_REDUCE(MR, NV))
        f32_gemm_reduce_neon(acc, K, a, bias, src, b_off, b_run, b_step, MR, NV);
    else
#endif
    {
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = vf_set1(bias[r]);
    for (int64_t k = 0, step; k < K;) {
        int64_t n = b_step >= 0 ? (step = b_step, K) : f32_gemm_run(k, K, b_off, b_run, &step);
        const ef* b = src + b_off[k];
        k += n;
        for (; n > 0; n--, b += step, a += MR) {
            vf bv[GEMM_NV_MAX];
            if (EXTRA && !ENGINE_GEMM_EXTRA_PASS) extra = f32_gemm_extra_k(extra, a, b + NV * VLEN, MR, EXTRA);
#ifdef ENGINE_PREFETCH
            /* the next pixel tile's row of this plane: a GEMM reads K planes at
             * once, more streams than the hardware prefetcher follows */
            if (!EXTRA) {       /* (the tiles with EXTRA end their plane) */
                __builtin_prefetch(b + (NV > GEMM_NV ? NV : GEMM_NV) * VLEN);
                __builtin_prefetch(b + (NV > GEMM_NV ? NV : GEMM_NV) * VLEN + 16);
            }
#endif
#ifdef ENGINE_PREFETCH_WEIGHTS
            __builtin_prefetch(a + MR * ENGINE_PREFETCH_WEIGHTS);
#endif
            for (int v = 0; v < NV; v++) bv[v] = vf_loadu(b + v * VLEN);
#ifdef ENGINE_FMA_LANE
            /* the rows' weights as whole vectors, each row's taken by lane (NEON's
             * FMLA by element): one LD1 of 3 vectors for 12 rows, not 12 broadcasts.
             * (Reads up to VLEN - 1 floats past the rows: the packing's slack.) */
            vf av[(GEMM_MR + VLEN - 1) / VLEN];
            vf_loadu_n(av, a, (MR + VLEN - 1) / VLEN);
            /* (unrolled, so that each lane is a constant: GCC left the fp16 module's
             * loop rolled, its accumulators in memory) */
#pragma GCC unroll 16
            for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) acc[r][v] = vf_fma_lane(acc[r][v], bv[v], av[r / VLEN], r % VLEN);
#else
            for (int r = 0; r < MR; r++) {
                vf ar = vf_set1(a[r]);
                for (int v = 0; v < NV; v++) acc[r][v] = vf_fma(ar, bv[v], acc[r][v]);
            }
#endif
        }
    }
    }
    const float lo = bounds[0], hi = bounds[1];
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi);
    if (mr == MR && nvalid >= NV * VLEN) {
        /* whole rows of whole vectors (most tiles): straight to their planes,
         * one branch-free loop for each way of the residual and the clamp */
#define STORE(LO, HI, LEAKY) (r_off ? f32_gemm_store(acc, dst, c_off, r_off, vlo, vhi, slope, MR, NV, 1, LO, HI, LEAKY) \
                                    : f32_gemm_store(acc, dst, c_off, r_off, vlo, vhi, slope, MR, NV, 0, LO, HI, LEAKY))
        if (slope && (lo > -INFINITY || hi < INFINITY)) STORE(1, 1, 1);     /* (rare: no variants) */
        else if (slope) STORE(0, 0, 1);
        else if (hi < INFINITY) STORE(1, 1, 0);
        else if (lo > -INFINITY) STORE(1, 0, 0);
        else STORE(0, 0, 0);
#undef STORE
    } else {
        /* a tile cut short (rows past mr, pixels past nvalid) goes through a
         * buffer (rows past mr read row 0's residual: no branch) */
        vf part[GEMM_MR][GEMM_NV_MAX];
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            const int64_t row = r < mr ? r : 0;
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                vf y = acc[r][v];
                if (r_off) y = vf_add(y, vf_loadu(dst + r_off[row] + v * VLEN));
                y = vf_clamp(y, vlo, vhi);
                part[r][v] = slope ? vf_leaky(y, vf_set1(slope[row])) : y;
            }
        }
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < NV && v * VLEN < nvalid; v++) {
                ef* c = dst + c_off[r] + v * VLEN;
                if (nvalid - v * VLEN >= VLEN) vf_storeu(c, part[r][v]);
                else vf_store_partial(c, part[r][v], (int)(nvalid - v * VLEN));
            }
    }
    for (int x = 0; x < EXTRA; x++) {
        ef lanes[GEMM_MR + VLEN];
        const int64_t n = NV * VLEN + x;
        for (int e = 0; e < EV; e++) vf_storeu(lanes + e * VLEN, extra.v[x][e]);
        for (int r = 0; r < mr; r++) {
            float y = lanes[r] + (r_off ? dst[r_off[r] + n] : 0.0f);
            y = y < lo ? lo : y;        /* written so that NaN passes, as in the vectors */
            y = y > hi ? hi : y;
            dst[c_off[r] + n] = slope && !(y >= 0.0f) ? y * slope[r] : y;
        }
    }
}

/* The tiles: GEMM_MR, GEMM_MR_SHORT or GEMM_MR_NARROW rows (the op's weight
 * packing), by pixels: one vector, two, two and 1-GEMM_EXTRA_MAX pixels (a
 * plane's remainder past whole tiles, 14x14 on AVX-512: 6 x 32 + 4, joins its
 * last tile), and for narrow rows three vectors (fewer loads per FMA than
 * two: GEMM_WIDE_PIXELS), or three vectors and a pixel (GEMM_TAIL_PIXELS, 7x7
 * on AVX-512: the whole plane in one tile, where two tiles of two vectors
 * would leave a quarter of their lanes empty).  The tiles with extra pixels
 * read up to VLEN floats past the packed weights and the bias. */
/* One call of a tile: `tiles` row tiles of its height, one after another,
 * for each of pixel_tiles pixel tiles (the planner's tiles of that height
 * in a job: one call saves the call's own work, its registers saved and
 * restored, per tile).  Tile t takes weights a + t * a_step ([K][its rows]),
 * bias + t * bias_step (0: one bias for all, a K-split op's zeros), rows
 * c_off[t * ROWS ..] (and r_off's and slope's, unless NULL); of the rows, the first
 * `rows` are written (the last tile may be cut short).  Pixel tile q reads
 * src + q * NV * VLEN and writes dst + q * NV * VLEN (pixel_tiles > 1: whole
 * tiles of no extra pixels, nvalid NV * VLEN).  The other fields: f32_gemm_tile's. */
typedef struct {
    int64_t K, a_step, bias_step, rows, nvalid, pixel_tiles;
    const ef* a;
    const ef* bias;
    const ef* src;
    const int64_t* b_off;
    const int64_t* b_run;
    ef* dst;
    const int64_t* c_off;
    const int64_t* r_off;
    const ef* slope;     /* leaky ReLU after the clamp, row r's slope[r]; or NULL */
    float lo, hi;       /* (in this order: the tile reads them as bounds[0], bounds[1]) */
} f32_gemm_args;
typedef void (*f32_gemm_tile_fn)(const f32_gemm_args* p, int64_t tiles);

/* How many pixel tiles a GEMM call runs each row tile over before the next
 * row tile: a block whose K planes' pixels (ENGINE_GEMM_BLOCK_BYTES at most)
 * stay in L1 while every row tile reads them, so that each row tile writes
 * its output planes a block at a time rather than a tile's vectors at a
 * time.  1 where the ISA sets no block (0) or one tile's K planes fill it:
 * every row tile for one pixel tile, then the next. */
#ifndef ENGINE_GEMM_BLOCK_BYTES
#define ENGINE_GEMM_BLOCK_BYTES 0
#endif
static inline int64_t f32_gemm_block_tiles(int64_t K, int NV) {
    const int64_t q = ENGINE_GEMM_BLOCK_BYTES / (K * NV * VLEN * (int64_t)sizeof(ef));
    return q > 1 ? q : 1;
}
/* A call's loops over its pixel tiles q and row tiles t (the ISAs with no
 * block keep the plain two: with blocks of one tile the three loops cost
 * NEON 0.8 % more instructions on ShuffleNetV2 x0.5) */
#if ENGINE_GEMM_BLOCK_BYTES
#define ENGINE_GEMM_PIXEL_LOOPS(K, NV, PIXEL_TILES, TILES) \
    for (int64_t q0 = 0, qb = f32_gemm_block_tiles(K, NV); q0 < PIXEL_TILES; q0 += qb) \
    for (int64_t t = 0; t < TILES; t++) \
    for (int64_t q = q0; q < q0 + qb && q < PIXEL_TILES; q++)
#else
#define ENGINE_GEMM_PIXEL_LOOPS(K, NV, PIXEL_TILES, TILES) \
    for (int64_t q = 0; q < PIXEL_TILES; q++) \
    for (int64_t t = 0; t < TILES; t++)
#endif

/* f32_gemm_<rows>x<vectors>v[<extra pixels>]_<isa>: f32_gemm_12x2v_avx512 is
 * 12 rows by two vectors (32 pixels), f32_gemm_8x3v1_avx512 8 rows by three
 * vectors and a pixel.  (ROWS is a number: ENGINE_GEMM_TILES expands its
 * argument first.) */
#define ENGINE_GEMM_TILE(ROWS, NAME, NV, EXTRA) \
    static void ENGINE_ISA_NAME(f32_gemm_##ROWS##x##NAME)(const f32_gemm_args* p, int64_t tiles) { \
        const f32_gemm_args g = *p; \
        /* the clamp bounds (lo, hi) read afresh by each tile after its \
         * reduction (volatile): hoisted out of these loops, their vectors \
         * stayed live through the reduction and AVX-512 spilled a B vector on \
         * every k (ShuffleNetV2 10 % slower); read before it, NEON kept them \
         * on the stack */ \
        const volatile float* bounds = &p->lo; \
        const int64_t b_step = f32_gemm_one_run(g.K, g.b_off, g.b_run); \
        ENGINE_GEMM_PIXEL_LOOPS(g.K, NV, g.pixel_tiles, tiles) \
            f32_gemm_tile(g.K, g.a + t * g.a_step, g.bias + t * g.bias_step, g.src + q * NV * VLEN, \
                          g.b_off, g.b_run, b_step, g.dst + q * NV * VLEN, g.c_off + t * ROWS, \
                          g.r_off ? g.r_off + t * ROWS : NULL, g.slope ? g.slope + t * ROWS : NULL, \
                          (int)(g.rows - t * ROWS < ROWS ? g.rows - t * ROWS : ROWS), \
                          EXTRA ? NV * VLEN : g.nvalid, bounds, ROWS, NV, EXTRA); \
    }
#define ENGINE_GEMM_TILES_(ROWS) \
    ENGINE_GEMM_TILE(ROWS, 1v, 1, 0) \
    ENGINE_GEMM_TILE(ROWS, 2v, 2, 0) \
    ENGINE_GEMM_TILE(ROWS, 2v1, 2, 1) \
    ENGINE_GEMM_TILE(ROWS, 2v2, 2, 2) \
    ENGINE_GEMM_TILE(ROWS, 2v3, 2, 3) \
    ENGINE_GEMM_TILE(ROWS, 2v4, 2, 4) \
    static const f32_gemm_tile_fn f32_gemm_tiles_##ROWS[GEMM_EXTRA_MAX + 2] = { \
        ENGINE_ISA_NAME(f32_gemm_##ROWS##x1v), ENGINE_ISA_NAME(f32_gemm_##ROWS##x2v), \
        ENGINE_ISA_NAME(f32_gemm_##ROWS##x2v1), ENGINE_ISA_NAME(f32_gemm_##ROWS##x2v2), \
        ENGINE_ISA_NAME(f32_gemm_##ROWS##x2v3), ENGINE_ISA_NAME(f32_gemm_##ROWS##x2v4)};
#define ENGINE_GEMM_TILES(ROWS) ENGINE_GEMM_TILES_(ROWS)
#define ENGINE_GEMM_WIDE_TILES_(ROWS) \
    ENGINE_GEMM_TILE(ROWS, 3v, 3, 0) \
    ENGINE_GEMM_TILE(ROWS, 3v1, 3, 1) \
    static const f32_gemm_tile_fn f32_gemm_wide_tiles[2] = { \
        ENGINE_ISA_NAME(f32_gemm_##ROWS##x3v), ENGINE_ISA_NAME(f32_gemm_##ROWS##x3v1)};
#define ENGINE_GEMM_WIDE_TILES(ROWS) ENGINE_GEMM_WIDE_TILES_(ROWS)
#define f32_gemm_tiles(ROWS) ENGINE_CAT(f32_gemm_tiles_, ROWS)
ENGINE_GEMM_TILES(GEMM_MR)
ENGINE_GEMM_TILES(GEMM_MR_SHORT)
#if GEMM_MR_NARROW != GEMM_MR_SHORT
ENGINE_GEMM_TILES(GEMM_MR_NARROW)
#endif
/* narrow rows only: three vectors (GEMM_WIDE_PIXELS; where they are no more
 * than two and the extra pixels, the planner does not ask for them: 0), and
 * three and a pixel (GEMM_TAIL_PIXELS) */
ENGINE_GEMM_WIDE_TILES(GEMM_MR_NARROW)
#define GEMM_TAIL_PIXELS (3 * VLEN + 1)
#define GEMM_WIDE_PIXELS (3 * VLEN > GEMM_NR + GEMM_EXTRA_MAX ? 3 * VLEN : 0)

/* the tile for `rows` rows and nvalid pixels: 1 .. GEMM_NR + GEMM_EXTRA_MAX,
 * or with narrow rows up to GEMM_WIDE_PIXELS or GEMM_TAIL_PIXELS */
static inline f32_gemm_tile_fn f32_gemm_tile_for(int64_t rows, int64_t nvalid) {
    const f32_gemm_tile_fn* tiles = rows == GEMM_MR ? f32_gemm_tiles(GEMM_MR)
                                  : rows == GEMM_MR_SHORT ? f32_gemm_tiles(GEMM_MR_SHORT)
                                  : f32_gemm_tiles(GEMM_MR_NARROW);
    if (nvalid == GEMM_TAIL_PIXELS && rows == GEMM_MR_NARROW) return f32_gemm_wide_tiles[1];
    if (nvalid > GEMM_NR + GEMM_EXTRA_MAX) return f32_gemm_wide_tiles[0];
    if (nvalid <= VLEN) return tiles[0];
    return tiles[1 + (nvalid > GEMM_NR ? nvalid - GEMM_NR : 0)];
}

/* The core's FMA throughput: PEAK_CHAINS independent accumulator chains,
 * enough to hide FMA latency on every ISA here (latency 4 x 2 pipes) and few
 * enough to stay in 16 vector registers with a and b (AVX2, armv7: 16 chains
 * spilled and measured AVX2 at half its peak); 2 flops per lane per FMA.
 * The result goes into *sink through a volatile store: inlined into a caller
 * that never reads it, a plain store let GCC drop the plain C loop. */
#define PEAK_CHAINS 12
#define f32_fma_peak_loop ENGINE_ISA_NAME(f32_fma_peak_loop)
static void f32_fma_peak_loop(int64_t iters, float* sink) {
    vf acc[PEAK_CHAINS];
    const vf a = vf_set1(0.999999f), b = vf_set1(1e-7f);
    for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = vf_set1((float)c);
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = vf_fma(acc[c], a, b);
    vf sum = acc[0];
    for (int c = 1; c < PEAK_CHAINS; c++) sum = vf_add(sum, acc[c]);
    *(volatile float*)sink += vf_hsum(sum);
}

/* Fully connected tile, vectorised over outputs (a GEMV: one pixel per image):
 *   y[o] = clamp(bias[o] + sum_k w[k][o] * x_k)    for o < LINEAR_NO
 * with x_k = src[x_off[k]] and w packed [K][LINEAR_NO]; x_run: the runs of
 * equally spaced x_off (f32_gemm_tile's b_run).  Writes LINEAR_NO contiguous
 * floats to y (a scratch row the caller scatters). */
#ifndef LINEAR_NV
#define LINEAR_NV 4         /* vectors of outputs (the ISA header may take more) */
#endif
#define LINEAR_NO (LINEAR_NV * VLEN)
#define LINEAR_PREFETCH_ROWS 32     /* rows of w ahead (8 KB on AVX-512; 16 and 64 were slower) */
#define f32_linear_tile ENGINE_ISA_NAME(f32_linear_tile)
static void f32_linear_tile(int64_t K, const ef* restrict w, const ef* restrict bias,
        const ef* src, const int64_t* restrict x_off, const int64_t* restrict x_run,
        ef* restrict y, float lo, float hi) {
#ifdef ENGINE_LINEAR_TILE_NEON     /* fp16: sums in fp32 */
    f16_linear_tile_f32sum_neon(K, w, bias, src, x_off, x_run, y, lo, hi);
#else
    /* (every loop over v unrolled: one that is not keeps acc in memory, stored
     * on each turn of the loops over k) */
    vf acc[LINEAR_NV];
#pragma GCC unroll 16
    for (int v = 0; v < LINEAR_NV; v++) acc[v] = vf_loadu(bias + v * VLEN);
#ifdef ENGINE_LINEAR_REDUCE
    f32_linear_reduce_neon(acc, K, w, src, x_off, x_run);
#else
    (void)x_run;
    for (int64_t k = 0; k < K; k++) {
        vf xk = vf_set1(src[x_off[k]]);
#pragma GCC unroll 16
        for (int v = 0; v < LINEAR_NV; v++) {
#ifdef ENGINE_PREFETCH
            /* the weights stream from L3 (MobileNetV2's 5 MB): the hardware
             * prefetcher alone left part of the bandwidth unused */
            __builtin_prefetch(w + v * VLEN + LINEAR_PREFETCH_ROWS * LINEAR_NO);
#endif
            acc[v] = vf_fma(xk, vf_loadu(w + v * VLEN), acc[v]);
        }
        w += LINEAR_NO;
    }
#endif
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi);
#pragma GCC unroll 16
    for (int v = 0; v < LINEAR_NV; v++)
        vf_storeu(y + v * VLEN, vf_min(vhi, vf_max(vlo, acc[v])));
#endif
}

/* One output row of a sliding window, read straight from the input planes:
 *   out[ow] = clamp(reduce over taps (ki, kj) of rows[ki][ow*S - PW + kj*DW])
 * rows[ki] is the input row under tap row ki, or a row of `fill` where that
 * is padding.  Strides 1 and 2 run every output as vectors, the lanes of a
 * border vector that fall outside the row (per the op's `lanes` table,
 * window.row_tables) taking fill; larger strides run their borders one by one.
 * MODE 0: init (bias) + sum of w[tap] * x;  1: max from init;  2: sum * aux[ow].
 * Constant sizes and MODE unroll the taps (f32_dwconv_3x3s1 ... below). */

ENGINE_ALWAYS_INLINE float f32_window_reduce(float acc, float x, float w, const int MODE) {
    if (MODE == WINDOW_CONV) return acc + w * x;
    if (MODE == WINDOW_MAX) return (x != x || x > acc) ? x : acc;   /* NaN wins, as in PyTorch */
    return acc + x;
}

ENGINE_ALWAYS_INLINE void f32_window_row(
        const ef* const* rows, int64_t in_w, int64_t pw, int64_t out_w,
        const ef* w, float init, float fill, const ef* aux, ef* out, float lo, float hi,
        const int32_t* lanes,
        const int64_t KH, const int64_t KW, const int64_t S, const int64_t DW, const int MODE) {
    /* the vector body: every tap inside the row */
    int64_t body_lo = (pw + S - 1) / S;
    int64_t last = in_w - 1 - (KW - 1) * DW + pw;
    int64_t body_hi = last < 0 ? 0 : last / S + 1;
    if (body_hi > out_w) body_hi = out_w;
    if (body_lo > body_hi) body_lo = body_hi;
    /* strides 1 and 2 run every output as vectors, the border ones with the
     * lanes outside the row replaced by fill (reading up to pw floats before
     * the row and 2*VLEN after it, inside the slack of the arena and of the
     * padding row); larger strides would read far past the row, so their
     * borders and last part-vector run one by one */
    const int64_t vec_lo = S <= 2 ? 0 : body_lo;
    const int64_t vec_hi = S <= 2 ? out_w : body_lo + (body_hi - body_lo) / VLEN * VLEN;
    for (int64_t ow = 0; ow < out_w; ow++) {
        if (ow == vec_lo) ow = vec_hi;
        if (ow >= out_w) break;
        float acc = init;
        for (int64_t ki = 0; ki < KH; ki++)
            for (int64_t kj = 0; kj < KW; kj++) {
                int64_t iw = ow * S - pw + kj * DW;
                float x = (iw >= 0 && iw < in_w) ? rows[ki][iw] : fill;
                acc = f32_window_reduce(acc, x, MODE == WINDOW_CONV ? w[ki * KW + kj] : 0.0f, MODE);
            }
        if (MODE == WINDOW_AVG) acc *= aux[ow];
        acc = acc < lo ? lo : acc;          /* written so that NaN passes, as in the vector path */
        out[ow] = acc > hi ? hi : acc;
    }
    /* four accumulators taking the kernel rows in turn: independent chains
     * instead of one KH*KW-long dependency (a narrow row has a single vector).
     * Strides 1 and 2: lanes[j] says whether vector j has taps outside the
     * row, and its flags block [kj][0 .. VLEN) which lanes have tap column kj
     * inside (the same for every row: worked out once, by the planner) */
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi), vinit = vf_set1(init), vfill = vf_set1(fill);
    const vf vnone = MODE == WINDOW_MAX ? vinit : vf_zero();
    const int32_t* blocks = S <= 2 ? lanes + ((out_w + VLEN - 1) / VLEN + VLEN - 1) / VLEN * VLEN : 0;
    for (int64_t ow = vec_lo; ow < vec_hi; ow += VLEN) {
        const int masked = S <= 2 && lanes[ow / VLEN];
        vf part[4] = {vinit, vnone, vnone, vnone};
        for (int64_t kj = 0; kj < KW; kj++)
            for (int64_t ki = 0; ki < KH; ki++) {
                vf x;
#ifdef ENGINE_S2_COLUMNS
                if (S == 2 && KW == 3 && DW == 1) x = vf_s2_column(rows[ki] + ow * 2 - pw, kj);
                else
#endif
                x = vf_load_strided(rows[ki] + ow * S - pw + kj * DW, S);
                if (masked) x = vf_select(vf_mask(blocks + (ow / VLEN * KW + kj) * VLEN), x, vfill);
                vf acc = part[ki & 3];
                if (MODE == WINDOW_CONV) acc = vf_fma(vf_set1(w[ki * KW + kj]), x, acc);
                else if (MODE == WINDOW_MAX) acc = vf_max_nan(acc, x);
                else acc = vf_add(acc, x);
                part[ki & 3] = acc;
            }
        vf acc = part[0];
        for (int k = 1; k < 4; k++)
            acc = MODE == WINDOW_MAX ? vf_max_nan(acc, part[k]) : vf_add(acc, part[k]);
        if (MODE == WINDOW_AVG) acc = vf_mul(acc, vf_loadu(aux + ow));
        acc = vf_min(vhi, vf_max(vlo, acc));
        if (vec_hi - ow >= VLEN) vf_storeu(out + ow, acc);
        else vf_store_partial(out + ow, acc, (int)(vec_hi - ow));
    }
}

/* One plane of a window op: its input rows (the padding row where a window
 * row is outside) through f32_window_row, output row by output row. */
typedef struct {
    const ef* src;           /* input plane, rows of in_w */
    int64_t in_h, in_w, ph, pw;
    int64_t out_h, out_w;
    const ef* w;             /* kernel weights (convolution) */
    float init, fill, lo, hi;
    const ef* aux;           /* reciprocal counts per output pixel (average) */
    ef* out;
    const ef* fill_row;      /* in_w + ENGINE_ROW_OVERREAD floats of fill */
    const ef** rows;         /* room for kh row pointers */
    const int32_t* lanes;       /* the row kernel's lane flags (strides 1 and 2) */
} f32_window_args;

ENGINE_ALWAYS_INLINE void f32_window_plane(const f32_window_args* a,
        const int64_t KH, const int64_t KW, const int64_t SH, const int64_t SW,
        const int64_t DH, const int64_t DW, const int MODE) {
    const ef** rows = a->rows;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
        for (int64_t ki = 0; ki < KH; ki++) {
            int64_t ih = oh * SH - a->ph + ki * DH;
            rows[ki] = (ih >= 0 && ih < a->in_h) ? a->src + ih * a->in_w : a->fill_row;
        }
        f32_window_row(rows, a->in_w, a->pw, a->out_w, a->w, a->init, a->fill,
                       MODE == WINDOW_AVG ? a->aux + oh * a->out_w : 0, a->out + oh * a->out_w,
                       a->lo, a->hi, a->lanes, KH, KW, SW, DW, MODE);
    }
}

typedef void (*f32_window_plane_fn)(const f32_window_args*);

/* whether a window op's clamp to [lo, hi] is not the whole line */
#define ENGINE_WINDOW_CLAMPED(lo, hi) ((lo) > -INFINITY || (hi) < INFINITY)

/* A 3x3 pooling window's row across at stride 2 for a vector of outputs
 * from column `row` on: columns 0 and 1 of each window by one pair load,
 * column 2 by a strided one; lanes outside the input row take fill where
 * blk (the vector's lane flags, f32_window_row's) is given. */
ENGINE_ALWAYS_INLINE vf f32_pool3s2_across(const ef* row, const int32_t* blk, vf vfill, const int MODE) {
    vf x0, x1, x2 = vf_load_strided(row + 2, 2);
    vf_load_pairs(row, &x0, &x1);
    if (blk) {
        x0 = vf_select(vf_mask(blk), x0, vfill);
        x1 = vf_select(vf_mask(blk + VLEN), x1, vfill);
        x2 = vf_select(vf_mask(blk + 2 * VLEN), x2, vfill);
    }
    return MODE == WINDOW_MAX ? vf_max_nan(vf_max_nan(x0, x1), x2) : vf_add(vf_add(x0, x1), x2);
}

/* Max and average pooling of 3x3 windows at stride 2, separably: NV
 * vectors of output columns from ow walk down the plane, each input row's
 * windows taken across once (f32_pool3s2_across) for the two output rows
 * that read it, then down.  The same reads, border lanes and padding rows as
 * f32_window_row, which reduces the nine taps of every output.  The
 * accumulators' start (channel_start: -inf for max, 0 for average) is the
 * reduction's identity, so is left out; CLAMP: lo and hi are not the whole
 * line. */
ENGINE_ALWAYS_INLINE void f32_pool_columns_3x3s2(const f32_window_args* a, int64_t ow, const int32_t* blocks,
                                                 const int NV, const int MASKED, const int MODE, const int CLAMP) {
    const int64_t in_h = a->in_h, in_w = a->in_w, ph = a->ph, out_h = a->out_h, out_w = a->out_w;
    const ef* src = a->src + ow * 2 - a->pw;
    const ef* fill_row = a->fill_row + ow * 2 - a->pw;
    ef* out = a->out + ow;
    const ef* aux = MODE == WINDOW_AVG ? a->aux + ow : 0;
    const vf vfill = vf_set1(a->fill), vlo = vf_set1(a->lo), vhi = vf_set1(a->hi);
    const int32_t* blk[2] = {0, 0};      /* (MASKED: the border strips; the others test no lanes) */
    for (int v = 0; v < NV; v++)
        if (MASKED && a->lanes[ow / VLEN + v]) blk[v] = blocks + (ow / VLEN + v) * 3 * VLEN;
#define ROW(ih) ((ih) >= 0 && (ih) < in_h ? src + (ih) * in_w : fill_row)
#define ACROSS(r, h) for (int v = 0; v < NV; v++) h[v] = f32_pool3s2_across((r) + v * 2 * VLEN, blk[v], vfill, MODE)
    /* output row oh from input rows r1, r2 (2 oh - ph + 1 and + 2) and shared (2 oh - ph) */
#define OUT_ROW(r1, r2) do { \
        ACROSS(r1, h1); \
        ACROSS(r2, h2); \
        for (int v = 0; v < NV; v++) { \
            vf acc = MODE == WINDOW_MAX ? vf_max_nan(vf_max_nan(shared[v], h1[v]), h2[v]) \
                                        : vf_mul(vf_add(vf_add(shared[v], h1[v]), h2[v]), \
                                                 vf_loadu(aux + oh * out_w + v * VLEN)); \
            if (CLAMP) acc = vf_min(vhi, vf_max(vlo, acc)); \
            if (v + 1 < NV || whole) vf_storeu(out + oh * out_w + v * VLEN, acc); \
            else vf_store_partial(out + oh * out_w + v * VLEN, acc, (int)(out_w - ow - v * VLEN)); \
            shared[v] = h2[v]; \
        } \
    } while (0)
    const int whole = out_w - ow >= NV * VLEN;
    vf shared[2], h1[2], h2[2];
    ACROSS(ROW(-ph), shared);
    /* the output rows whose input rows are all inside [oh_in, oh_end): no padding row to pick */
    const int64_t oh_in = ph / 2, oh_end = in_h + ph < 3 ? 0 : (in_h + ph - 3) / 2 + 1;
    int64_t oh = 0;
    for (; oh < out_h && oh < oh_in; oh++) OUT_ROW(ROW(oh * 2 - ph + 1), ROW(oh * 2 - ph + 2));
    const ef* r = src + (oh * 2 - ph + 1) * in_w;
    for (; oh < out_h && oh < oh_end; oh++, r += 2 * in_w) OUT_ROW(r, r + in_w);
    for (; oh < out_h; oh++) OUT_ROW(ROW(oh * 2 - ph + 1), ROW(oh * 2 - ph + 2));
#undef OUT_ROW
#undef ACROSS
#undef ROW
}

ENGINE_ALWAYS_INLINE void f32_pool_plane_3x3s2(const f32_window_args* a, const int MODE, const int CLAMP) {
    const int64_t nvec = (a->out_w + VLEN - 1) / VLEN;
    const int32_t* blocks = a->lanes + (nvec + VLEN - 1) / VLEN * VLEN;
    int64_t v = 0;
    for (; v + 2 <= nvec; v += 2) {
        if (a->lanes[v] || a->lanes[v + 1]) f32_pool_columns_3x3s2(a, v * VLEN, blocks, 2, 1, MODE, CLAMP);
        else f32_pool_columns_3x3s2(a, v * VLEN, blocks, 2, 0, MODE, CLAMP);
    }
    if (v < nvec) f32_pool_columns_3x3s2(a, v * VLEN, blocks, 1, 1, MODE, CLAMP);
}
#define ENGINE_POOL_3X3S2(NAME, MODE) \
    static void ENGINE_ISA_NAME(NAME)(const f32_window_args* a) { \
        if (ENGINE_WINDOW_CLAMPED(a->lo, a->hi)) f32_pool_plane_3x3s2(a, MODE, 1); \
        else f32_pool_plane_3x3s2(a, MODE, 0); \
    }

#define ENGINE_WINDOW_PLANE(NAME, K, S, MODE) \
    static void ENGINE_ISA_NAME(NAME)(const f32_window_args* a) { f32_window_plane(a, K, K, S, S, 1, 1, MODE); }
ENGINE_WINDOW_PLANE(f32_dwconv_3x3s1, 3, 1, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_dwconv_3x3s2, 3, 2, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_dwconv_5x5s1, 5, 1, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_dwconv_5x5s2, 5, 2, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_dwconv_7x7s1, 7, 1, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_dwconv_7x7s2, 7, 2, WINDOW_CONV)
ENGINE_WINDOW_PLANE(f32_maxpool_3x3s1, 3, 1, WINDOW_MAX)
ENGINE_POOL_3X3S2(f32_maxpool_3x3s2, WINDOW_MAX)
ENGINE_WINDOW_PLANE(f32_maxpool_2x2s2, 2, 2, WINDOW_MAX)
ENGINE_WINDOW_PLANE(f32_avgpool_3x3s1, 3, 1, WINDOW_AVG)
ENGINE_POOL_3X3S2(f32_avgpool_3x3s2, WINDOW_AVG)
ENGINE_WINDOW_PLANE(f32_avgpool_2x2s2, 2, 2, WINDOW_AVG)

/* the specialised plane kernel for a square window without dilation, or NULL */
static inline f32_window_plane_fn f32_window_plane_special(int mode, int64_t kh, int64_t kw,
        int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
    if (kh != kw || sh != sw || dh != 1 || dw != 1 || sh < 1 || sh > 2) return 0;
#define KERNEL(name) ENGINE_ISA_NAME(name)
    static const f32_window_plane_fn conv[8][3] = {
        [3] = {0, KERNEL(f32_dwconv_3x3s1), KERNEL(f32_dwconv_3x3s2)},
        [5] = {0, KERNEL(f32_dwconv_5x5s1), KERNEL(f32_dwconv_5x5s2)},
        [7] = {0, KERNEL(f32_dwconv_7x7s1), KERNEL(f32_dwconv_7x7s2)}};
    static const f32_window_plane_fn pool[2][4][3] = {
        {[2] = {0, 0, KERNEL(f32_maxpool_2x2s2)}, [3] = {0, KERNEL(f32_maxpool_3x3s1), KERNEL(f32_maxpool_3x3s2)}},
        {[2] = {0, 0, KERNEL(f32_avgpool_2x2s2)}, [3] = {0, KERNEL(f32_avgpool_3x3s1), KERNEL(f32_avgpool_3x3s2)}}};
#undef KERNEL
    if (mode == WINDOW_CONV) return kh < 8 ? conv[kh][sh] : 0;
    return kh < 4 ? pool[mode - 1][kh][sh] : 0;
}

/* the same for any window, stride and dilation */
#define f32_window_plane_any ENGINE_ISA_NAME(f32_window_plane_any)
static void f32_window_plane_any(const f32_window_args* a, int mode, int64_t kh, int64_t kw,
        int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
    if (mode == WINDOW_CONV) f32_window_plane(a, kh, kw, sh, sw, dh, dw, WINDOW_CONV);
    else if (mode == WINDOW_MAX) f32_window_plane(a, kh, kw, sh, sw, dh, dw, WINDOW_MAX);
    else f32_window_plane(a, kh, kw, sh, sw, dh, dw, WINDOW_AVG);
}

/* The kernels of a path of KxK windows of stride 1 or 2 (framed: 3x3;
 * interleaved: 3x3, 5x5 and 7x7): one function per stride, mode and clamp, each
 * keeping its weights in registers, IMPL(args, scratch, S, MODE, CLAMP)
 * specialised, and their table f32_window_<PATH>_<K>x<K>[mode][s - 1][clamped]
 * (clamped: the clamp to [lo, hi] is not the whole line). */
#define ENGINE_WINDOW_ONE(NAME, ARGS, IMPL, S, MODE) \
    static void ENGINE_ISA_NAME(NAME)(const ARGS* a, ef* scratch) { IMPL(a, scratch, S, MODE, 0); } \
    static void ENGINE_ISA_NAME(NAME##_clamped)(const ARGS* a, ef* scratch) { IMPL(a, scratch, S, MODE, 1); }
#define ENGINE_WINDOW_PICK(NAME) {ENGINE_ISA_NAME(NAME), ENGINE_ISA_NAME(NAME##_clamped)}
#define ENGINE_WINDOW_PATH(PATH, KXK, ARGS, IMPL) \
    ENGINE_WINDOW_ONE(f32_dwconv_##KXK##s1_##PATH, ARGS, IMPL, 1, WINDOW_CONV) \
    ENGINE_WINDOW_ONE(f32_dwconv_##KXK##s2_##PATH, ARGS, IMPL, 2, WINDOW_CONV) \
    ENGINE_WINDOW_ONE(f32_maxpool_##KXK##s1_##PATH, ARGS, IMPL, 1, WINDOW_MAX) \
    ENGINE_WINDOW_ONE(f32_maxpool_##KXK##s2_##PATH, ARGS, IMPL, 2, WINDOW_MAX) \
    ENGINE_WINDOW_ONE(f32_avgpool_##KXK##s1_##PATH, ARGS, IMPL, 1, WINDOW_AVG) \
    ENGINE_WINDOW_ONE(f32_avgpool_##KXK##s2_##PATH, ARGS, IMPL, 2, WINDOW_AVG) \
    static const f32_window_##PATH##_fn f32_window_##PATH##_##KXK[3][2][2] = { \
        [WINDOW_CONV] = {ENGINE_WINDOW_PICK(f32_dwconv_##KXK##s1_##PATH), \
                         ENGINE_WINDOW_PICK(f32_dwconv_##KXK##s2_##PATH)}, \
        [WINDOW_MAX] = {ENGINE_WINDOW_PICK(f32_maxpool_##KXK##s1_##PATH), \
                        ENGINE_WINDOW_PICK(f32_maxpool_##KXK##s2_##PATH)}, \
        [WINDOW_AVG] = {ENGINE_WINDOW_PICK(f32_avgpool_##KXK##s1_##PATH), \
                        ENGINE_WINDOW_PICK(f32_avgpool_##KXK##s2_##PATH)}};

/* 3x3 windows of stride 1 or 2 through a framed plane: the input rows are
 * copied into a frame that holds the padding as rows and columns of fill
 * (for stride 2 each row's even columns, then its odd ones), so that every
 * tap of an output vector is one whole-vector load with no lane masks at the
 * borders, and the taps' weights stay in registers for the plane.  The fill
 * is written once per job (f32_window_framed_init), each plane then copies
 * only its rows over the frame's inside.  Output rows are written as whole
 * vectors, the last one running into the next rows (written after it) but
 * not past the last.  (The row kernel, f32_window_row, tests a mask per
 * vector and selects per tap where the window leaves the row; on 4-lane
 * NEON most vectors of a 7-, 14- or 28-wide row touch a border.) */
/* floats of a frame row: stride 1 reads out_w rounded to vectors plus two
 * columns; stride 2 that plus one even column, then as many odd ones */
static inline int64_t f32_framed_width(int64_t out_w, int64_t s) {
    const int64_t ow = (out_w + VLEN - 1) / VLEN * VLEN;
    return s == 1 ? ow + 2 : 2 * (ow + 1);
}
static inline int64_t f32_framed_stride(int64_t out_w, int64_t s) {
    return (f32_framed_width(out_w, s) + ENGINE_PLANE_ALIGN - 1) / ENGINE_PLANE_ALIGN * ENGINE_PLANE_ALIGN;
}
/* frame rows under out_h output rows */
static inline int64_t f32_framed_rows(int64_t out_h, int64_t s) { return (out_h - 1) * s + 3; }
/* scratch of the framed path */
static inline int64_t f32_framed_floats(int64_t out_h, int64_t out_w, int64_t s) {
    return f32_framed_rows(out_h, s) * f32_framed_stride(out_w, s);
}

/* the frame all fill, once per job (planes copy only their rows' inside) */
static inline void f32_window_framed_init(const f32_window_args* a, ef* frames, int64_t s) {
    const int64_t n = f32_framed_floats(a->out_h, a->out_w, s);
    const vf fill = vf_set1(a->fill);
    for (int64_t i = 0; i < n; i += VLEN) vf_storeu(frames + i, fill);
}

/* input row `row` (in_w floats) into frame row f: at column pl, or for
 * stride 2 column c to f[c / 2], or to f[half + c / 2] when c is odd */
ENGINE_ALWAYS_INLINE void f32_framed_row(ef* f, const ef* row, int64_t in_w, int64_t pl,
                                         int64_t half, const int64_t S) {
    int64_t x = 0;
    if (S == 1) {
        for (; x + 2 * VLEN <= in_w; x += 2 * VLEN) {       /* (a load and a store pair) */
            const vf v0 = vf_loadu(row + x), v1 = vf_loadu(row + x + VLEN);
            vf_storeu(f + pl + x, v0);
            vf_storeu(f + pl + x + VLEN, v1);
        }
        for (; x + VLEN <= in_w; x += VLEN) vf_storeu(f + pl + x, vf_loadu(row + x));
        /* the last part-vector as the row's last whole one, over columns
         * already written (the same values): no loop of single floats */
        if (x < in_w && in_w >= VLEN) vf_storeu(f + pl + in_w - VLEN, vf_loadu(row + in_w - VLEN));
        else for (; x < in_w; x++) f[pl + x] = row[x];
        return;
    }
    /* columns x, x + 2, ... land on one side, x + 1, x + 3, ... on the other */
    ef* first = pl % 2 ? f + half + pl / 2 : f + pl / 2;
    ef* second = pl % 2 ? f + (pl + 1) / 2 : f + half + pl / 2;
    vf even, odd;
    /* (pointers stepped, not x / 2 per store: 5 instructions a turn on NEON, from 7) */
    ef* a = first;
    ef* b = second;
    for (; x + 2 * VLEN <= in_w; x += 2 * VLEN, a += VLEN, b += VLEN) {
        vf_load_pairs(row + x, &even, &odd);
        vf_storeu(a, even);
        vf_storeu(b, odd);
    }
    if (x < in_w && in_w > 2 * VLEN) {
        /* the rest as the last whole pairs from an even column (the same
         * values again where they overlap), and an odd row's last column */
        const int64_t last = (in_w - 2 * VLEN) / 2 * 2;
        vf_load_pairs(row + last, &even, &odd);
        vf_storeu(first + last / 2, even);
        vf_storeu(second + last / 2, odd);
        x = last + 2 * VLEN;
    }
    for (; x < in_w; x++) (x % 2 ? second : first)[x / 2] = row[x];
}

/* dst[0 .. n) = 0: whole vectors, then the few floats left by one partial
 * store (GCC makes a loop of scalar zero stores a memset call: a library
 * call for a padding column or two; the vector loop may still become one,
 * for n of VLEN and more) */
ENGINE_ALWAYS_INLINE void f32_zero_n(ef* dst, int64_t n) {
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) vf_storeu(dst + i, vf_zero());
    vf_store_partial(dst + i, vf_zero(), (int)(n - i));
}

/* One input row as the direct convolution reads it: pl zeros, the row (or
 * zeros where row is NULL: padding rows), zeros to fw columns (pl + in_w <=
 * fw).  For stride 2 the even columns come first, then the odd ones (from
 * dst + (fw + 1) / 2), so that every tap reads its pixels of an output row
 * as contiguous vectors.  Either way the fw columns are dst[0 .. fw).
 * (Inlined into its job, as when it had one caller: the microkernel tester's
 * second call made GCC keep it apart, 0.3 M more instructions under qemu.) */
ENGINE_ALWAYS_INLINE void f32_frame_row(ef* dst, const ef* row, int64_t in_w, int64_t pl, int64_t fw,
                                        int64_t s) {
    const int64_t half = s == 2 ? (fw + 1) / 2 : 0;
    if (!row) {
        f32_zero_n(dst, fw);
        return;
    }
    /* the padding columns, then the row (f32_framed_row: its pairs of
     * columns by one LD2 at stride 2) */
    if (s == 1) {
        f32_zero_n(dst, pl);
        f32_zero_n(dst + pl + in_w, fw - pl - in_w);
    } else {
#define ZERO(c) dst[((c) % 2 ? half : 0) + (c) / 2] = 0.0f
        for (int64_t c = 0; c < pl; c++) ZERO(c);
        for (int64_t c = pl + in_w; c < fw; c++) ZERO(c);
#undef ZERO
    }
    if (s == 2) f32_framed_row(dst, row, in_w, pl, half, 2);
    else f32_framed_row(dst, row, in_w, pl, 0, 1);
}

/* A direct convolution's panel (conv_direct_job with a panel): row k (of K,
 * `stride` floats apart) holds tap k's pixels p0 .. p1 - 1 of the output
 * plane (out_w wide) one after another, copied from the framed rows: the
 * tap's pixels of output row oh start at frame + tap[k] + (oh - oh0) *
 * row_step + its column.  So the GEMM tiles run across output rows (a 7x7
 * plane in 8-pixel tiles: 49 pixels in 7 tiles, not 56 in 7 half-empty).
 * Whole vectors: a row's last one runs into the next row's place, written
 * after it, and past the last (the caller's slack: VLEN floats); the reads
 * past a framed row stay in the frame (its slack). */
static inline void f32_direct_panel(ef* panel, int64_t stride, const ef* frame, const int64_t* restrict tap,
                                    int64_t K, int64_t p0, int64_t p1, int64_t out_w, int64_t oh0, int64_t row_step) {
    for (int64_t k = 0; k < K; k++) {
        ef* dst = panel + k * stride;
        for (int64_t p = p0, oh = p0 / out_w; p < p1; oh++) {
            const int64_t ow = p - oh * out_w, n = p1 - p < out_w - ow ? p1 - p : out_w - ow;
            const ef* src = frame + tap[k] + (oh - oh0) * row_step + ow;
            for (int64_t i = 0; i < n; i += VLEN) vf_storeu(dst + (p - p0) + i, vf_loadu(src + i));
            p += n;
        }
    }
}

#define FRAMED_R 4
/* Vector ow of R output rows (1 to FRAMED_R) of a framed window from frame
 * row r0 on, each input row's taps loaded once for all of them.  A row's
 * last vector (TAIL) runs past its row into the next rows, written after
 * it: not so for all but the last of the R rows (the next one's were
 * written before), nor past the last row (for the last of the R rows,
 * vectors from whole - (R - 1) * out_w on are stored in part). */
ENGINE_ALWAYS_INLINE void f32_framed_vector(const ef* r0, int64_t fs, int64_t half, ef* out,
        int64_t out_w, const ef* aux, int64_t whole, const vf* wt, vf vinit, vf vlo, vf vhi,
        int64_t ow, const int TAIL, const int64_t S, const int MODE, const int CLAMP, const int R) {
    vf acc[FRAMED_R];
    for (int i = 0; i < R; i++) acc[i] = vinit;
    for (int ki = 0; ki < (R - 1) * S + 3; ki++)
        for (int kj = 0; kj < 3; kj++) {
            /* column ow * S + kj of the frame: for stride 2 an even column
             * (kj 0, 2) or an odd one (kj 1) */
            const vf x = vf_loadu(r0 + ki * fs + ow + (S == 1 ? kj : kj == 1 ? half : kj / 2));
            for (int i = 0; i < R; i++) {
                const int t = 3 * (ki - i * (int)S) + kj;       /* output row i's tap */
                if (t < 0 || t >= 9) continue;
                if (MODE == WINDOW_CONV) acc[i] = vf_fma(wt[t], x, acc[i]);
                else if (MODE == WINDOW_MAX) acc[i] = vf_max_nan(acc[i], x);
                else acc[i] = vf_add(acc[i], x);
            }
        }
    for (int i = 0; i < R; i++) {
        vf y = acc[i];
        if (MODE == WINDOW_AVG) y = vf_mul(y, vf_loadu(aux + i * out_w + ow));
        if (CLAMP) y = vf_clamp(y, vlo, vhi);
        if (!TAIL || (i + 1 == R && ow <= whole - i * out_w)) vf_storeu(out + i * out_w + ow, y);
        else vf_store_partial(out + i * out_w + ow, y, (int)(out_w - ow));
    }
}

ENGINE_ALWAYS_INLINE void f32_framed_rows_out(const ef* r0, int64_t fs, int64_t half, ef* out,
        int64_t out_w, const ef* aux, int64_t whole, const vf* wt, vf vinit, vf vlo, vf vhi,
        const int64_t S, const int MODE, const int CLAMP, const int R) {
    int64_t ow = 0;
    for (; ow + VLEN <= out_w; ow += VLEN)
        f32_framed_vector(r0, fs, half, out, out_w, aux, whole, wt, vinit, vlo, vhi, ow, 0, S, MODE, CLAMP, R);
    if (ow < out_w)
        f32_framed_vector(r0, fs, half, out, out_w, aux, whole, wt, vinit, vlo, vhi, ow, 1, S, MODE, CLAMP, R);
}

ENGINE_ALWAYS_INLINE void f32_window_plane_framed(const f32_window_args* a, ef* frames,
                                                  const int64_t S, const int MODE, const int CLAMP) {
    const int64_t fs = f32_framed_stride(a->out_w, S), in_h = a->in_h, in_w = a->in_w, ph = a->ph;
    const int64_t out_h = a->out_h, out_w = a->out_w, nrows = f32_framed_rows(out_h, S);
    const int64_t half = S == 2 ? (f32_framed_width(out_w, S) + 1) / 2 : 0;   /* stride 2: odd columns */
    for (int64_t r = ph > 0 ? ph : 0; r < nrows && r - ph < in_h; r++)
        f32_framed_row(frames + r * fs, a->src + (r - ph) * in_w, in_w, a->pw, half, S);
    vf wt[9];
    for (int t = 0; t < 9; t++) wt[t] = vf_set1(MODE == WINDOW_CONV ? a->w[t] : 0.0f);
    const vf vinit = vf_set1(a->init), vlo = vf_set1(a->lo), vhi = vf_set1(a->hi);
    /* FRAMED_R output rows at a time at stride 1 (they share all but two of
     * their input rows: 3 R + 6 loads for 9 R taps), two at stride 2 (one
     * shared: more would not save loads per tap), then two, then one */
    const int R = S == 1 ? FRAMED_R : 2;
    int64_t oh = 0;
#define ROWS_OUT(N) f32_framed_rows_out(frames + oh * S * fs, fs, half, a->out + oh * out_w, out_w, \
        MODE == WINDOW_AVG ? a->aux + oh * out_w : 0, (out_h - oh) * out_w - VLEN, wt, vinit, vlo, vhi, \
        S, MODE, CLAMP, N)
    for (; oh + R <= out_h; oh += R) ROWS_OUT(R);
    for (; oh + 2 <= out_h; oh += 2) ROWS_OUT(2);
    if (oh < out_h) ROWS_OUT(1);
#undef ROWS_OUT
}

typedef void (*f32_window_framed_fn)(const f32_window_args* a, ef* frames);
ENGINE_WINDOW_PATH(framed, 3x3, f32_window_args, f32_window_plane_framed)
static inline f32_window_framed_fn f32_window_framed_for(int mode, int64_t s, float lo, float hi) {
    return f32_window_framed_3x3[mode][s - 1][ENGINE_WINDOW_CLAMPED(lo, hi)];
}

/* 3x3, 5x5 and 7x7 windows (depthwise convolution, max and average pooling) of VLEN
 * channels at once, stride 1 or 2, their rows interleaved into one frame:
 * pixel x of frame row r is one vector of the channels' values (NEON: 4
 * loads and an ST4 per 4 pixels), so that each tap of an output pixel is one
 * FMA by the tap's weights across the channels (which stay in registers
 * for the whole plane, 3x3; 5x5 and 7x7 reload some), one max or one add.  No lane is spent on a narrow
 * row's end (a 7-wide row is 7 pixel vectors, where a plane's row is 2
 * vectors, the second 3/4 full), and loads of neighbouring pixels are one
 * instruction (NEON: LD1 of 4 registers).  Output pixels run DW_PX at a
 * time along a row (the row's last 1-3 in a block of their own: computed
 * again within a last whole block, they cost MobileNetV2's 14- and 7-wide
 * rows 0.9 M instructions on NEON), two 3x3 rows at a time where the registers hold them,
 * and go back to the channels' planes transposed (vf_store_lanes4).  The frame's
 * padding is written once per job (f32_interleaved_init), each group of
 * channels then overwrites its inside. */
#define DW_PX 4
#define DW_K_MAX 7      /* the widest window the path takes (3, 5 and 7: f32_window_interleaved_for) */
typedef struct {
    const ef* src[VLEN];     /* the channels' input planes (a short group repeats its last) */
    ef* out[VLEN];           /* their output planes */
    const ef* w[VLEN];       /* their k x k taps (convolution) */
    ef init[VLEN];           /* their bias (pooling starts from each output's first tap) */
    int64_t k;                  /* the window's side: 3, 5 or 7 */
    int64_t in_h, in_w, ph, pw, out_h, out_w;
    float fill, lo, hi;         /* fill: the padding value */
    const ef* aux;           /* reciprocal counts per output pixel (average) */
} f32_window_group_args;

/* pixels of a frame row: the columns under the row's outputs; and its rows */
static inline int64_t f32_interleaved_cols(int64_t out_w, int64_t s, int64_t k) {
    return (out_w - 1) * s + k;
}
static inline int64_t f32_interleaved_rows(int64_t out_h, int64_t s, int64_t k) {
    return (out_h - 1) * s + k;
}
/* scratch of the interleaved path: the frame */
static inline int64_t f32_interleaved_floats(int64_t out_h, int64_t out_w, int64_t s, int64_t k) {
    return f32_interleaved_rows(out_h, s, k) * f32_interleaved_cols(out_w, s, k) * VLEN;
}
/* the input rows' pixels inside the frame (a stride-2 row's last column may lie past it) */
static inline int64_t f32_interleaved_inside(const f32_window_group_args* a, int64_t s) {
    const int64_t room = f32_interleaved_cols(a->out_w, s, a->k) - a->pw;
    return a->in_w < room ? a->in_w : room;
}
/* the frame's padding, once per job (each group of channels overwrites only
 * the inside): rows above and below the input, columns left and right of it */
static inline void f32_interleaved_init(const f32_window_group_args* a, ef* frame, int64_t s) {
    const int64_t cols = f32_interleaved_cols(a->out_w, s, a->k), rows = f32_interleaved_rows(a->out_h, s, a->k);
    const int64_t right = a->pw + f32_interleaved_inside(a, s);
    const vf fill = vf_set1(a->fill);
    for (int64_t r = 0; r < rows; r++) {
        ef* row = frame + r * cols * VLEN;
        const int inside = r >= a->ph && r - a->ph < a->in_h;
        for (int64_t x = 0; x < (inside ? a->pw : cols); x++) vf_storeu(row + x * VLEN, fill);
        for (int64_t x = right; inside && x < cols; x++) vf_storeu(row + x * VLEN, fill);
    }
}

/* n pixels from column 0 of the rows src[0 .. VLEN) into f, pixel by pixel;
 * the part past whole vectors as the last whole one (the same values again) */
ENGINE_ALWAYS_INLINE void f32_interleave_row(ef* f, const ef* const* src, int64_t n) {
    int64_t x = 0;
    for (; x + VLEN <= n; x += VLEN) vf_interleave(f + x * VLEN, src, x);
    if (x < n && n >= VLEN) vf_interleave(f + (n - VLEN) * VLEN, src, n - VLEN);
    else if (x < n) vf_interleave_n(f, src, 0, n);
}

/* two values of a pooling window into one: max (NaN kept) or sum */
ENGINE_ALWAYS_INLINE vf f32_window_pool2(vf a, vf b, const int MODE) {
    return MODE == WINDOW_MAX ? vf_max_nan(a, b) : vf_add(a, b);
}

/* R output rows (1 or 2) of PX pixels (DW_PX, or fewer at a row's end) of a
 * KxK window from frame row r0 on, frame rows fs floats apart; stored to the
 * planes at `at` */
ENGINE_ALWAYS_INLINE void f32_window_interleaved_block(const ef* r0, int64_t fs, const vf* wt, vf vinit,
        vf vlo, vf vhi, const ef* aux, ef* const* out, int64_t at, int64_t out_w,
        const int K, const int S, const int MODE, const int R, const int CLAMP, const int PX) {
    const int XS = (PX - 1) * S + K;          /* input pixels under a block's row */
    vf acc[2][DW_PX], x[(DW_PX - 1) * 2 + DW_K_MAX];     /* (XS at most: stride 2, the widest window) */
#ifdef ENGINE_DW3X3_BLOCK
    if (MODE == WINDOW_CONV && K == 3 && R == 2 && PX == 4)
        f32_dw3x3_block_neon(acc, r0, fs, wt, vinit, S);
    else
#endif
    {
        /* (pooling starts from each output's first tap instead: no copy of vinit) */
        for (int i = 0; i < R && MODE == WINDOW_CONV; i++)
            for (int p = 0; p < PX; p++) acc[i][p] = vinit;
        for (int ki = 0; ki < (R - 1) * S + K; ki++) {
            /* LD1s of 4 registers, the rest single loads (paired: LDP with an offset) */
            int p = 0;
            for (; p + 4 <= XS; p += 4) vf_loadu_n(x + p, r0 + ki * fs + p * VLEN, 4);
            for (; p < XS; p++) x[p] = vf_loadu(r0 + ki * fs + p * VLEN);
            /* pooling: the row's window across first, once for the output
             * rows that share it (3x3 stride 2: 56 maxima a block, not 64) */
            vf across[DW_PX];
            for (int p = 0; p < PX && MODE != WINDOW_CONV; p++) {
                across[p] = x[p * S];
                for (int kj = 1; kj < K; kj++)
                    across[p] = f32_window_pool2(across[p], x[p * S + kj], MODE);
            }
            for (int i = 0; i < R; i++) {
                const int tr = ki - i * S;         /* output row i's tap row */
                if (tr < 0 || tr >= K) continue;
                for (int p = 0; p < PX; p++) {
                    if (MODE != WINDOW_CONV)
                        acc[i][p] = tr == 0 ? across[p] : f32_window_pool2(acc[i][p], across[p], MODE);
                    else
                        for (int kj = 0; kj < K; kj++)
                            acc[i][p] = vf_fma(wt[K * tr + kj], x[p * S + kj], acc[i][p]);
                }
            }
        }
    }
    for (int i = 0; i < R; i++) {
        for (int p = 0; p < PX; p++) {
            /* average: the pixel's divisor, the same for every channel */
            if (MODE == WINDOW_AVG) acc[i][p] = vf_mul(acc[i][p], vf_set1(aux[at + i * out_w + p]));
            if (CLAMP) acc[i][p] = vf_clamp(acc[i][p], vlo, vhi);
        }
        if (PX == 4) vf_store_lanes4(out, at + i * out_w, acc[i]);
        else vf_store_lanes_n(out, at + i * out_w, acc[i], PX);
    }
}

ENGINE_ALWAYS_INLINE void f32_window_interleaved(const f32_window_group_args* a, ef* frame,
                                                 const int K, const int64_t S, const int MODE, const int CLAMP) {
    const int64_t cols = f32_interleaved_cols(a->out_w, S, K), fs = cols * VLEN;
    const int64_t rows = f32_interleaved_rows(a->out_h, S, K), out_w = a->out_w;
    const int64_t inside = f32_interleaved_inside(a, S);
    const ef* src[VLEN];
    for (int64_t r = a->ph > 0 ? a->ph : 0; r < rows && r - a->ph < a->in_h; r++) {
        for (int j = 0; j < VLEN; j++) src[j] = a->src[j] + (r - a->ph) * a->in_w;
        f32_interleave_row(frame + r * fs + a->pw * VLEN, src, inside);
    }
    /* the taps across the channels: tap t's weights one vector */
    vf wt[K * K];
    ef taps[K * K * VLEN];
    if (MODE == WINDOW_CONV) f32_interleave_row(taps, a->w, K * K);
    for (int t = 0; t < K * K && MODE == WINDOW_CONV; t++) wt[t] = vf_loadu(taps + t * VLEN);
    const vf vinit = vf_loadu(a->init), vlo = vf_set1(a->lo), vhi = vf_set1(a->hi);
    ef* out[VLEN];           /* in registers, not reloaded after each store */
    for (int j = 0; j < VLEN; j++) out[j] = a->out[j];
    /* two rows at a time share their input rows but one (stride 2) or two;
     * with 16 registers one row (its weights and accumulators fill them), and
     * for 5x5 and 7x7 one row (25 or 49 weights: two rows' accumulators would spill more) */
    const int R = ENGINE_VREGS >= 32 && K == 3 ? 2 : 1;
    int64_t oh = 0;
    /* blocks from the row's start, then a narrower one for the rest */
#define ROWS(N) { \
        const ef* f = frame + oh * S * fs; \
        int64_t ow = 0; \
        for (; ow + DW_PX <= out_w; ow += DW_PX, f += DW_PX * S * VLEN) \
            f32_window_interleaved_block(f, fs, wt, vinit, vlo, vhi, a->aux, out, oh * out_w + ow, out_w, \
                                         K, S, MODE, N, CLAMP, DW_PX); \
        switch (out_w - ow) { \
        case 1: f32_window_interleaved_block(f, fs, wt, vinit, vlo, vhi, a->aux, out, oh * out_w + ow, \
                                             out_w, K, S, MODE, N, CLAMP, 1); break; \
        case 2: f32_window_interleaved_block(f, fs, wt, vinit, vlo, vhi, a->aux, out, oh * out_w + ow, \
                                             out_w, K, S, MODE, N, CLAMP, 2); break; \
        case 3: f32_window_interleaved_block(f, fs, wt, vinit, vlo, vhi, a->aux, out, oh * out_w + ow, \
                                             out_w, K, S, MODE, N, CLAMP, 3); break; \
        } \
    }
    for (; oh + R <= a->out_h; oh += R) ROWS(R)
    for (; oh < a->out_h; oh++) ROWS(1)
#undef ROWS
}

#define f32_window_interleaved_3(a, frame, S, MODE, CLAMP) f32_window_interleaved(a, frame, 3, S, MODE, CLAMP)
#define f32_window_interleaved_5(a, frame, S, MODE, CLAMP) f32_window_interleaved(a, frame, 5, S, MODE, CLAMP)
#define f32_window_interleaved_7(a, frame, S, MODE, CLAMP) f32_window_interleaved(a, frame, 7, S, MODE, CLAMP)
typedef void (*f32_window_interleaved_fn)(const f32_window_group_args* a, ef* frame);
ENGINE_WINDOW_PATH(interleaved, 3x3, f32_window_group_args, f32_window_interleaved_3)
ENGINE_WINDOW_PATH(interleaved, 5x5, f32_window_group_args, f32_window_interleaved_5)
ENGINE_WINDOW_PATH(interleaved, 7x7, f32_window_group_args, f32_window_interleaved_7)
/* the interleaved kernel for a k x k window (3, 5 or 7) */
static inline f32_window_interleaved_fn f32_window_interleaved_for(int mode, int64_t k, int64_t s, float lo,
                                                                   float hi) {
    return (k == 7 ? f32_window_interleaved_7x7 : k == 5 ? f32_window_interleaved_5x5 : f32_window_interleaved_3x3)
        [mode][s - 1][ENGINE_WINDOW_CLAMPED(lo, hi)];
}

/* Small stride-1 planes whose output rows are as wide as the input's: output
 * pixel p reads input pixel p + tap_off[t] under tap t, so the whole plane runs
 * as flat vectors with no per-row work.  Output vector j's block of lane flags
 * is blocks + lanes[j] * taps * VLEN, with blocks = lanes + nvec rounded up to
 * whole vectors; its [t][0 .. VLEN) says which lanes have tap t inside the
 * input, the others take the padding: -inf for max pooling, else 0 (a
 * compile-time zero lets the masked loads zero the lanes).  FLAT_CH planes
 * of the same shape run together: each block of flags is decoded once for
 * all of them, and their accumulators are independent chains.  Reads reach up to a few rows outside
 * the input plane (into the arena's slack) and write whole vectors (into the
 * plane's padding). */
#define FLAT_CH 4
typedef struct {
    const ef* src[FLAT_CH];
    ef* out[FLAT_CH];
    const ef* w[FLAT_CH];    /* kernel weights (convolution) */
    ef init[FLAT_CH];        /* the accumulators' start: bias, 0 or -inf */
    const int64_t* tap_off;
    int64_t taps, nvec;         /* nvec: the plane's output vectors */
    int64_t j0, j1;             /* the ones to compute */
    const int32_t* lanes;
    float lo, hi;
    const ef* aux;           /* reciprocal counts per output pixel (average) */
    /* set once per job by f32_window_flat_tap_rows, for the AVX-512 path:
     * whether the taps are three rows of three adjacent offsets (3x3,
     * stride 1); then for each row its first tap offset rounded down to a
     * vector (row_q) and how far past that the row starts (row_s) */
    int tap_rows;
    int64_t row_q[3];
    int row_s[3];
} f32_window_flat_args;

static inline void f32_window_flat_tap_rows(f32_window_flat_args* a) {
    a->tap_rows = a->taps == 9;
    for (int r = 0; r < 3 && a->tap_rows; r++) {
        const int64_t* t = a->tap_off + 3 * r;
        a->tap_rows = t[1] == t[0] + 1 && t[2] == t[0] + 2;
        a->row_q[r] = (t[0] >= 0 ? t[0] / VLEN : -((-t[0] + VLEN - 1) / VLEN)) * VLEN;
        a->row_s[r] = (int)(t[0] - a->row_q[r]);
    }
}

/* output vectors per pass: FLAT_CH x FLAT_NB accumulators take half the registers */
#define FLAT_NB (ENGINE_VREGS / 2 / FLAT_CH)
/* NB output vectors from j of every plane */
ENGINE_ALWAYS_INLINE void f32_window_flat_vectors(const f32_window_flat_args* a, int64_t j,
                                                  const int NB, const int MODE) {
    const vf vfill = MODE == WINDOW_MAX ? vf_set1(-INFINITY) : vf_zero();
    const int32_t* blocks = a->lanes + (a->nvec + VLEN - 1) / VLEN * VLEN;
    const int32_t* flags[FLAT_NB];
    vf acc[FLAT_CH][FLAT_NB];
    for (int b = 0; b < NB; b++)
        flags[b] = blocks + (int64_t)a->lanes[j + b] * a->taps * VLEN;
    for (int c = 0; c < FLAT_CH; c++)
        for (int b = 0; b < NB; b++) acc[c][b] = vf_set1(a->init[c]);
    for (int64_t t = 0; t < a->taps; t++) {
        const int64_t at = a->tap_off[t] + j * VLEN;
        for (int b = 0; b < NB; b++) {
            const vmask m = vf_mask(flags[b] + t * VLEN);
            for (int c = 0; c < FLAT_CH; c++) {
                vf x = vf_load_masked(a->src[c] + at + b * VLEN, m, vfill);
                if (MODE == WINDOW_CONV) acc[c][b] = vf_fma(vf_set1(a->w[c][t]), x, acc[c][b]);
                else if (MODE == WINDOW_MAX) acc[c][b] = vf_max_nan(acc[c][b], x);
                else acc[c][b] = vf_add(acc[c][b], x);
            }
        }
    }
    const vf vlo = vf_set1(a->lo), vhi = vf_set1(a->hi);
    for (int b = 0; b < NB; b++) {
        const vf scale = MODE == WINDOW_AVG ? vf_loadu(a->aux + (j + b) * VLEN) : vf_zero();
        for (int c = 0; c < FLAT_CH; c++) {
            vf y = MODE == WINDOW_AVG ? vf_mul(acc[c][b], scale) : acc[c][b];
            vf_storeu(a->out[c] + (j + b) * VLEN, vf_min(vhi, vf_max(vlo, y)));
        }
    }
}

ENGINE_ALWAYS_INLINE void f32_window_flat_mode(const f32_window_flat_args* a, const int MODE) {
    int64_t j = a->j0;
    for (; j + FLAT_NB <= a->j1; j += FLAT_NB) f32_window_flat_vectors(a, j, FLAT_NB, MODE);
    for (; j < a->j1; j++) f32_window_flat_vectors(a, j, 1, MODE);
}

/* the ISA's own kernels beside the generic ones, which they fall back to */
#if defined(ENGINE_ISA_AVX512)
#include "ukernels_avx512.h"
#endif


#define f32_window_flat ENGINE_ISA_NAME(f32_window_flat)
static void f32_window_flat(const f32_window_flat_args* a, int mode) {
#ifdef ENGINE_DWCONV3X3_FLAT_ROWS
    if (mode == WINDOW_CONV && a->tap_rows) {
        int64_t j = a->j0;
        for (; j + FLAT_ROWS_NB <= a->j1; j += FLAT_ROWS_NB) ENGINE_DWCONV3X3_FLAT_ROWS(a, j);
        for (; j < a->j1; j++) f32_window_flat_vectors(a, j, 1, WINDOW_CONV);
        return;
    }
#endif
    if (mode == WINDOW_CONV) f32_window_flat_mode(a, WINDOW_CONV);
    else if (mode == WINDOW_MAX) f32_window_flat_mode(a, WINDOW_MAX);
    else f32_window_flat_mode(a, WINDOW_AVG);
}

/* The four phase planes of a stride-2 window's input plane (in_h x in_w),
 * through which the flat path runs it as stride 1: dst + (2a + b) * ps,
 * rows of cols floats, holds in[2i + a][2j + b] for i < rows (those inside
 * the input) and j < cols.  A row's last vector store runs up to VLEN - 1
 * floats past it: into the next row, written later, or after the plane
 * (ps leaves VLEN floats for it). */
#define f32_phase_planes ENGINE_ISA_NAME(f32_phase_planes)
static void f32_phase_planes(const ef* src, int64_t in_h, int64_t in_w, ef* dst, int64_t ps,
                             int64_t rows, int64_t cols) {
    for (int64_t a = 0; a < 2; a++)
        for (int64_t i = 0; i < rows && 2 * i + a < in_h; i++) {
            const ef* row = src + (2 * i + a) * in_w;
            for (int64_t b = 0; b < 2; b++) {
                ef* d = dst + (2 * a + b) * ps + i * cols;
                for (int64_t j = 0; j < cols; j += VLEN) vf_storeu(d + j, vf_load_s2(row + b + 2 * j));
            }
        }
}

/* floats the window kernels may read past the end of a row */
#define ENGINE_ROW_OVERREAD (2 * VLEN + 16)

#endif
