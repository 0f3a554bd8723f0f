/* int8 microkernels (engine/int8.py: the scheme; int8.pxi: the jobs).
 *
 * Generic C, compiled into every fp32 kernel module with its flags, with
 * intrinsics (AVX-512, AVX2, NEON) where the compiler's loops fell short
 * and in the 1x1 tiles; the exact arithmetic they implement is
 * engine/int8.py's integer oracle, tested bit for bit on every ISA:
 *   sums    int32: sum of (q - zero point) * w over the valid taps (padding
 *           holds the zero point, so it adds 0), plus the bias in the sums' scale
 *   int8    y = float32(sums) * mult  [then y = fmaf(float32(r - r_zero), r_mult, y)
 *           for a residual or add's second operand], q = round half to even
 *           (y) + zero point, clamped to [qlo, qhi]
 *   float32 float32(sums) * mult, clamped to [lo, hi]
 * The fused multiply-add is explicit so that no compiler's contraction
 * choice changes a rounding. */
#ifndef ENGINE_UKERNELS_INT8_H
#define ENGINE_UKERNELS_INT8_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(ENGINE_ISA_AVX512) || defined(ENGINE_ISA_AVX2)
#include <immintrin.h>
#elif defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
#include <arm_neon.h>
#endif

/* 1.5 * 2^23: (y + M) - M is y rounded half to even, for |y| < 2^22 */
#define I8_ROUND_MAGIC 12582912.0f
/* |y| beyond this rounds to a q outside every int8 range whatever the zero
 * point: clamped first (NaN too), so the rounding above holds */
#define I8_Y_LIMIT 1024.0f

static inline int32_t i8_round(float y)
{
    y = y > -I8_Y_LIMIT ? y : -I8_Y_LIMIT;      /* (NaN fails the test: the low end) */
    y = y < I8_Y_LIMIT ? y : I8_Y_LIMIT;
    return (int32_t)((y + I8_ROUND_MAGIC) - I8_ROUND_MAGIC);
}

static inline int8_t i8_clamp(int32_t q, int32_t qlo, int32_t qhi)
{
    return (int8_t)(q < qlo ? qlo : q > qhi ? qhi : q);
}

#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
/* i8_round on four lanes (GCC leaves its loops scalar here) */
static inline int32x4_t i8_round4(float32x4_t y)
{
    float32x4_t lo = vdupq_n_f32(-I8_Y_LIMIT);
#if defined(__aarch64__)
    /* (maxnm: NaN -> the low end; no upper clamp: fcvtns saturates, and so do
     * the narrowings that follow every use, giving what the clamp gives) */
    return vcvtnq_s32_f32(vmaxnmq_f32(y, lo));
#else
    float32x4_t m = vdupq_n_f32(I8_ROUND_MAGIC);
    y = vminq_f32(vbslq_f32(vcgtq_f32(y, lo), y, lo), vdupq_n_f32(I8_Y_LIMIT));
    return vcvtq_s32_f32(vsubq_f32(vaddq_f32(y, m), m));
#endif
}

/* i8_round4 of a y that is not NaN (sums times a finite multiplier): on
 * aarch64 without the clamp, as fcvtns saturates and i8_narrow8's adds and
 * narrowings saturate, giving what clamping to the limit first gives */
static inline int32x4_t i8_round4_number(float32x4_t y)
{
#if defined(__aarch64__)
    return vcvtnq_s32_f32(y);
#else
    return i8_round4(y);
#endif
}

/* eight q + zero saturated to int16 (the zero point added in int16: |zero|
 * <= 128 cannot turn a q saturated there back into the int8 range) */
static inline int16x8_t i8_zq16(int32x4_t q0, int32x4_t q1, int16x8_t vz)
{
    return vqaddq_s16(vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1)), vz);
}

/* eight q (+ zero) saturated to int8, clamped to [lo, hi] */
static inline int8x8_t i8_narrow8(int32x4_t q0, int32x4_t q1, int16x8_t vz, int8x8_t lo, int8x8_t hi)
{
    return vmin_s8(vmax_s8(vqmovn_s16(i8_zq16(q0, q1, vz)), lo), hi);
}

/* eight sums (a0, a1) requantized with multiplier m: q + zero in int16 */
static inline int16x8_t i8_zq16_sums(int32x4_t a0, int32x4_t a1, float m, int16x8_t vz)
{
    float32x4_t vm = vdupq_n_f32(m);
    return i8_zq16(i8_round4_number(vmulq_f32(vcvtq_f32_s32(a0), vm)),
                   i8_round4_number(vmulq_f32(vcvtq_f32_s32(a1), vm)), vz);
}

/* eight sums (a0, a1) requantized with multiplier m and a residual's eight
 * q (res, its zero point rz) added at ratio rm by a fused multiply-add:
 * q + zero in int16 (as i8_store_q's loop: NaN to the low end) */
static inline int16x8_t i8_zq16_sums_res(int32x4_t a0, int32x4_t a1, float m, int16x8_t vz, int8x8_t res,
                                         int8x8_t rz, float rm)
{
    float32x4_t vm = vdupq_n_f32(m), vr = vdupq_n_f32(rm);
    int16x8_t r = vsubl_s8(res, rz);    /* (exact in int16) */
    float32x4_t y0 = vfmaq_f32(vmulq_f32(vcvtq_f32_s32(a0), vm), vcvtq_f32_s32(vmovl_s16(vget_low_s16(r))), vr);
    float32x4_t y1 = vfmaq_f32(vmulq_f32(vcvtq_f32_s32(a1), vm), vcvtq_f32_s32(vmovl_s16(vget_high_s16(r))), vr);
    return i8_zq16(i8_round4(y0), i8_round4(y1), vz);
}

/* eight sums (a0, a1) requantized with multiplier m and stored */
static inline void i8_row_q8(int8_t* out, int32x4_t a0, int32x4_t a1, float m, int16x8_t vz, int8x8_t lo,
                             int8x8_t hi)
{
    vst1_s8(out, vmin_s8(vmax_s8(vqmovn_s16(i8_zq16_sums(a0, a1, m, vz)), lo), hi));
}

/* two rows' eight sums (a, b) requantized with multipliers ma, mb (and,
 * with res, their residuals' q at res_a, res_b added: i8_zq16_sums_res) and stored:
 * narrowed into one vector, so that one clamp serves both (none where the
 * range is all of int8: the narrowing saturates to it) */
static inline __attribute__((always_inline)) void i8_rows_q8x2(int8_t* out_a, int8_t* out_b, const int32x4_t a[2],
                                                               const int32x4_t b[2], float ma, float mb,
                                                               int16x8_t vz, int8x16_t lo, int8x16_t hi, int clamp,
                                                               int res, const int8_t* res_a, const int8_t* res_b,
                                                               int8x8_t rz, float rm)
{
    int8x16_t q = !res ? vcombine_s8(vqmovn_s16(i8_zq16_sums(a[0], a[1], ma, vz)),
                                     vqmovn_s16(i8_zq16_sums(b[0], b[1], mb, vz)))
                       : vcombine_s8(vqmovn_s16(i8_zq16_sums_res(a[0], a[1], ma, vz, vld1_s8(res_a), rz, rm)),
                                     vqmovn_s16(i8_zq16_sums_res(b[0], b[1], mb, vz, vld1_s8(res_b), rz, rm)));
    if (clamp)
        q = vminq_s8(vmaxq_s8(q, lo), hi);
    vst1_s8(out_a, vget_low_s8(q));
    vst1_s8(out_b, vget_high_s8(q));
}
#endif

#if defined(ENGINE_ISA_AVX512) || defined(ENGINE_ISA_AVX2)
/* i8_round on eight lanes (the clamp first: max_ps gives its second operand
 * for NaN, the low end; cvtps2dq rounds half to even) */
static inline __m256i i8_round8(__m256 y)
{
    return _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(y, _mm256_set1_ps(-I8_Y_LIMIT)),
                                            _mm256_set1_ps(I8_Y_LIMIT)));
}

/* sixteen q (int16, in order) + zero saturated to int8 */
static inline __m128i i8_narrow16_full(__m256i q16, __m256i zero16)
{
    q16 = _mm256_adds_epi16(q16, zero16);
    return _mm_packs_epi16(_mm256_castsi256_si128(q16), _mm256_extracti128_si256(q16, 1));
}

/* the same clamped to [lo, hi] */
static inline __m128i i8_narrow16(__m256i q16, __m256i zero16, __m128i lo, __m128i hi)
{
    return _mm_min_epi8(_mm_max_epi8(i8_narrow16_full(q16, zero16), lo), hi);
}
#endif

/* The valid output columns [*ox0, *ox1) of a tap at input column offset
 * kx * dw - pw: those whose input column ox * sw + (kx * dw - pw) is in
 * [0, in_w). */
static inline void i8_tap_columns(int64_t shift, int64_t sw, int64_t in_w, int64_t out_w,
                                  int64_t* ox0, int64_t* ox1)
{
    int64_t a = shift >= 0 ? 0 : (-shift + sw - 1) / sw;
    int64_t b = in_w - 1 - shift < 0 ? 0 : (in_w - 1 - shift) / sw + 1;
    *ox0 = a;
    *ox1 = b < out_w ? b : out_w;
}

/* -- windows through frames ------------------------------------------------------
 * Single-plane windows (depthwise convolution, average and max pooling) of
 * stride 1 or 2 (both ways) and no dilation: the padded plane is copied into
 * s x s phase frames of int16 (phase (a, b): its rows a, a + s, ... and
 * columns b, b + s, ...), holding q - zero (the padding: 0) or, for max
 * pooling, q (the padding: below any q).  Output (oy, ox) reads tap (ky, kx)
 * from phase (ky % s, kx % s) at row oy + ky / s, column ox + kx / s: with
 * the output laid out in rows as wide as a frame (fw), each tap is one flat
 * run over the frame at a constant offset.  The columns past out_w are
 * computed from the next row's start and dropped. */
#define I8_FRAMED_KW_MAX 16         /* (wider windows run the generic loops) */

static inline int i8_framed(int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t kw)
{
    return sh == sw && (sh == 1 || sh == 2) && dh == 1 && dw == 1 && kw <= I8_FRAMED_KW_MAX;
}

static inline int64_t i8_frame_width(int64_t out_w, int64_t kw, int64_t s)
{
    return out_w + (kw - 1) / s;
}

#define I8_TAPS_MAX 49      /* (7 x 7: the taps held in registers; larger windows: the loops) */
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT) || defined(ENGINE_ISA_AVX2) || defined(ENGINE_ISA_AVX512)
/* planes straight to int8 (i8_window_planes below), I8_DW_PX outputs at a
 * time */
#define I8_DIRECT 1
#if (defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)) && !defined(__aarch64__)
#define I8_DW_PX 8          /* (armv7: 16 registers) */
#else
#define I8_DW_PX 16
#endif
/* their padded int8 plane: rows s (out_h - 1) + kh of s (out_w - 1) + kw
 * bytes, then slack: a tap's load at stride 2 takes 2 I8_DW_PX bytes, so a
 * narrow last row's reads end up to 2 I8_DW_PX - 2 past the plane */
#define I8_PAD_SLACK (2 * I8_DW_PX)

static inline int i8_dw_direct(int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t kh, int64_t kw)
{
    return sh == sw && (sh == 1 || sh == 2) && dh == 1 && dw == 1 && kh * kw <= I8_TAPS_MAX;
}

static inline int64_t i8_padded_width(int64_t out_w, int64_t kw, int64_t s)
{
    return s * (out_w - 1) + kw;
}

static inline int64_t i8_padded_bytes(int64_t out_h, int64_t out_w, int64_t kh, int64_t kw, int64_t s)
{
    return (s * (out_h - 1) + kh) * i8_padded_width(out_w, kw, s) + I8_PAD_SLACK;
}
#endif

/* int32s of scratch i8_window_sums takes: the sums (rows of fw, or out_w),
 * then the frames (int16, a row of slack each); at least
 * i8_window_planes's padded plane where it has one */
static inline int64_t i8_window_scratch(int64_t out_h, int64_t out_w, int64_t kh, int64_t kw,
                                        int64_t sh, int64_t sw, int64_t dh, int64_t dw)
{
    int64_t need = out_h * out_w;
    if (i8_framed(sh, sw, dh, dw, kw)) {
        int64_t fw = i8_frame_width(out_w, kw, sh), fh = out_h + (kh - 1) / sh;
        need = out_h * fw + (sh * sh * (fh + 1) * fw + 1) / 2 + 16;
    }
#if defined(I8_DIRECT)
    if (i8_dw_direct(sh, sw, dh, dw, kh, kw)) {
        int64_t padded = (i8_padded_bytes(out_h, out_w, kh, kw, sh) + 3) / 4;
        need = need > padded ? need : padded;
    }
#endif
    return need;
}

/* dst[j] = src[j * s] - sub (s 1 or 2) for j < n */
static void i8_widen(int16_t* restrict dst, const int8_t* restrict src, int64_t n, int64_t s, int32_t sub)
{
    int64_t j;
#if defined(ENGINE_ISA_AVX512)
    /* (GCC's loops run short rows scalar, and stride 2 an element at a time) */
    __m512i vs = _mm512_set1_epi16((short)sub);
    for (j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        if (s == 1) {
            __m256i v = _mm256_cvtepi8_epi16(_mm_maskz_loadu_epi8(k, src + j));
            _mm256_mask_storeu_epi16(dst + j, k, _mm256_sub_epi16(v, _mm512_castsi512_si256(vs)));
        } else {        /* 32 bytes widened, the even ones kept (vpmovdw: the low half of each pair) */
            __mmask32 k2 = n - j >= 16 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (2 * (n - j))) - 1);
            __m512i v = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k2, src + 2 * j)), vs);
            _mm256_mask_storeu_epi16(dst + j, k, _mm512_cvtepi32_epi16(v));
        }
    }
#else
    j = 0;
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
    /* eight at a time, the last eight overlapping the ones before (short
     * rows' scalar tails cost more than their sums); ld2: the even bytes of
     * 16, the last ones read from src + 2n - 17 (its odd bytes), none past
     * src[2n - 2] */
    int16x8_t vs = vdupq_n_s16((int16_t)sub);
    if (s == 1 && n >= 8) {
        for (; j + 8 < n; j += 8)
            vst1q_s16(dst + j, vsubq_s16(vmovl_s8(vld1_s8(src + j)), vs));
        vst1q_s16(dst + n - 8, vsubq_s16(vmovl_s8(vld1_s8(src + n - 8)), vs));
        return;
    }
    if (s == 2 && n >= 9) {
        for (; j + 8 < n; j += 8)
            vst1q_s16(dst + j, vsubq_s16(vmovl_s8(vld2_s8(src + 2 * j).val[0]), vs));
        vst1q_s16(dst + n - 8, vsubq_s16(vmovl_s8(vld2_s8(src + 2 * n - 17).val[1]), vs));
        return;
    }
#endif
    if (s == 1)
        for (; j < n; j++)
            dst[j] = (int16_t)(src[j] - sub);
    else
        for (; j < n; j++)
            dst[j] = (int16_t)(src[2 * j] - sub);
#endif
}

/* acc[i] (i < n) = the window's sum (w) or max (w NULL) over the taps,
 * a row of taps at a time; frames as i8_window_framed lays them out */
static void i8_window_rows(int32_t* restrict acc, const int16_t* frames, const int8_t* w, int64_t kh, int64_t kw,
                           int64_t s, int64_t size, int64_t fw, int64_t n)
{
    int64_t i, ky, kx;
    for (ky = 0; ky < kh; ky++) {
        const int16_t* f[I8_FRAMED_KW_MAX];
        for (kx = 0; kx < kw; kx++)
            f[kx] = frames + ((ky % s) * s + kx % s) * size + (ky / s) * fw + kx / s;
        if (kw == 3) {          /* a row of taps in one pass */
            const int16_t *f0 = f[0], *f1 = f[1], *f2 = f[2];
            if (w == NULL) {
                for (i = 0; i < n; i++) {
                    int32_t m = f0[i] > f1[i] ? f0[i] : f1[i];
                    m = m > f2[i] ? m : f2[i];
                    acc[i] = ky == 0 || acc[i] < m ? m : acc[i];
                }
                continue;
            }
            int32_t w0 = w[ky * 3], w1 = w[ky * 3 + 1], w2 = w[ky * 3 + 2];
            for (i = 0; i < n; i++)
                acc[i] = (ky == 0 ? 0 : acc[i]) + f0[i] * w0 + f1[i] * w1 + f2[i] * w2;
            continue;
        }
        for (kx = 0; kx < kw; kx++) {
            const int16_t* t = f[kx];
            if (w == NULL) {
                for (i = 0; i < n; i++)
                    acc[i] = ky + kx == 0 || acc[i] < t[i] ? t[i] : acc[i];
                continue;
            }
            int32_t wv = w[ky * kw + kx];
            for (i = 0; i < n; i++)
                acc[i] = (ky + kx == 0 ? 0 : acc[i]) + t[i] * wv;
        }
    }
}

#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
/* i8_window_rows with every tap per 8 pixels, the sums in registers (GCC's
 * loops reload and store acc per tap row); taps a constant where inlined */
static inline __attribute__((always_inline)) void i8_taps(int32_t* restrict acc, const int16_t* const* f,
                                                          const int16_t* wt, int64_t taps, int64_t n)
{
    int64_t i, t;
    int16x8_t wv[I8_TAPS_MAX];      /* (the weights in registers: GCC reloads scalars each pass) */
    for (t = 0; t < taps; t++)
        wv[t] = vdupq_n_s16(wt != NULL ? wt[t] : 0);
    for (i = 0; i + 8 <= n; i += 8) {
        int32x4_t a0, a1;
        if (wt != NULL) {
            a0 = a1 = vdupq_n_s32(0);
            for (t = 0; t < taps; t++) {
                int16x8_t v = vld1q_s16(f[t] + i);
                a0 = vmlal_s16(a0, vget_low_s16(v), vget_low_s16(wv[t]));
#if defined(__aarch64__)
                a1 = vmlal_high_s16(a1, v, wv[t]);
#else
                a1 = vmlal_s16(a1, vget_high_s16(v), vget_high_s16(wv[t]));
#endif
            }
        } else {
            int16x8_t m = vld1q_s16(f[0] + i);
            for (t = 1; t < taps; t++)
                m = vmaxq_s16(m, vld1q_s16(f[t] + i));
            a0 = vmovl_s16(vget_low_s16(m));
            a1 = vmovl_s16(vget_high_s16(m));
        }
        vst1q_s32(acc + i, a0);
        vst1q_s32(acc + i + 4, a1);
    }
    for (; i < n; i++) {        /* (acc ends where the frames begin: no vector store past n) */
        int32_t a = wt != NULL ? 0 : INT16_MIN;
        for (t = 0; t < taps; t++)
            a = wt != NULL ? a + f[t][i] * wt[t] : (a > f[t][i] ? a : f[t][i]);
        acc[i] = a;
    }
}

static void i8_window_taps(int32_t* restrict acc, const int16_t* frames, const int8_t* w, int64_t kh, int64_t kw,
                           int64_t s, int64_t size, int64_t fw, int64_t n)
{
    const int16_t* f[I8_TAPS_MAX];
    int16_t wt[I8_TAPS_MAX];
    int64_t ky, kx, taps = kh * kw;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            f[ky * kw + kx] = frames + ((ky % s) * s + kx % s) * size + (ky / s) * fw + kx / s;
            wt[ky * kw + kx] = w != NULL ? w[ky * kw + kx] : 0;
        }
    if (taps == 9)
        i8_taps(acc, f, w != NULL ? wt : NULL, 9, n);
    else
        i8_taps(acc, f, w != NULL ? wt : NULL, taps, n);
}
#endif

static void i8_window_framed(int32_t* restrict acc, int16_t* restrict frames, const int8_t* x, int32_t zero,
                             const int8_t* w, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                             int64_t kh, int64_t kw, int64_t s, int64_t ph, int64_t pw)
{
    int64_t fw = i8_frame_width(out_w, kw, s), fh = out_h + (kh - 1) / s, size = (fh + 1) * fw;
    int64_t a, b, i, n = out_h * fw;
    int16_t fill = w != NULL ? 0 : INT16_MIN;
    int32_t sub = w != NULL ? zero : 0;
    for (i = 0; i < s * s * size; i++)      /* the padding, then the rows read from the input */
        frames[i] = fill;
    for (a = 0; a < s; a++)
        for (b = 0; b < s; b++) {
            /* columns j0 <= j < j1 read the input (s * j + b - pw in [0, in_w)) */
            int64_t j0 = pw - b > 0 ? (pw - b + s - 1) / s : 0;
            int64_t j1 = in_w - 1 + pw - b >= 0 ? (in_w - 1 + pw - b) / s + 1 : 0;
            j1 = j1 < fw ? j1 : fw;
            j0 = j0 < j1 ? j0 : j1;
            for (i = 0; i < fh; i++) {
                int64_t r = s * i + a - ph;
                if (r >= 0 && r < in_h)
                    i8_widen(frames + (a * s + b) * size + i * fw + j0, x + r * in_w + s * j0 + b - pw, j1 - j0,
                             s, sub);
            }
        }
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
    if (kh * kw <= I8_TAPS_MAX)
        i8_window_taps(acc, frames, w, kh, kw, s, size, fw, n);
    else
#endif
        i8_window_rows(acc, frames, w, kh, kw, s, size, fw, n);
    for (i = 1; i < out_h; i++)         /* rows of out_w, as the other paths leave them */
        memmove(acc + i * out_w, acc + i * fw, out_w * sizeof(int32_t));
}

/* sum((x[i] - zero) * w[r * n + i]) for i < n into acc[r], r < rows (1 or
 * 4: four rows share x's loads); on NEON sum(x w) - zero * sum(w), 16 at a
 * time (sdot, or smull + smlal summing two products in int16 and sadalp) */
static inline __attribute__((always_inline)) void i8_dot_zero(int32_t* acc, const int8_t* x, const int8_t* w,
                                                              int64_t n, int rows, int32_t zero)
{
    int64_t i = 0;
    int r;
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
    int32x4_t sq[4], sw[4];
    for (r = 0; r < rows; r++)
        sq[r] = sw[r] = vdupq_n_s32(0);
    for (; i + 16 <= n; i += 16) {
        int8x16_t xv = vld1q_s8(x + i);
        for (r = 0; r < rows; r++) {
            int8x16_t wv = vld1q_s8(w + r * n + i);
#if defined(ENGINE_ISA_NEON_DOT)
            sq[r] = vdotq_s32(sq[r], wv, xv);
            sw[r] = vdotq_s32(sw[r], wv, vdupq_n_s8(1));
#else
            int16x8_t p = vmull_s8(vget_low_s8(wv), vget_low_s8(xv));
            sq[r] = vpadalq_s16(sq[r], vmlal_s8(p, vget_high_s8(wv), vget_high_s8(xv)));
            sw[r] = vpadalq_s16(sw[r], vpaddlq_s8(wv));
#endif
        }
    }
    for (r = 0; r < rows; r++) {
        int32x4_t t = vsubq_s32(sq[r], vmulq_n_s32(sw[r], zero));
        int32x2_t h = vadd_s32(vget_low_s32(t), vget_high_s32(t));
        acc[r] = vget_lane_s32(vpadd_s32(h, h), 0);
    }
#else
    for (r = 0; r < rows; r++)
        acc[r] = 0;
#endif
    for (r = 0; r < rows; r++) {
        int64_t j;
        for (j = i; j < n; j++)
            acc[r] += ((int32_t)x[j] - zero) * w[r * n + j];
    }
}

/* One output plane's int32 sums of a convolution (max pooling: its maxima,
 * w NULL): acc[oy * out_w + ox] over cin input planes, plane c at
 * base + off[c] (bytes), with weights w[c][kh][kw] (single planes through
 * frames where they can: their scratch after the sums, i8_window_scratch). */
static void i8_window_sums(int32_t* restrict acc, const int8_t* base, const int64_t* off, int64_t cin,
                           const int8_t* w, int32_t zero,
                           int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                           int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
    int64_t npix = out_h * out_w, c, ky, kx, oy, ox, ox0, ox1, i;
    if (cin == 1 && npix == 1 && kh == in_h && kw == in_w && ph == 0 && pw == 0) {    /* the whole plane */
        const int8_t* x = base + off[0];
        int32_t t = INT8_MIN;
        if (w != NULL)
            i8_dot_zero(&t, x, w, kh * kw, 1, zero);
        else
            for (i = 0; i < kh * kw; i++)
                t = t > x[i] ? t : x[i];
        acc[0] = t;
        return;
    }
    if (cin == 1 && kh * kw > 1 && i8_framed(sh, sw, dh, dw, kw)) {
        int64_t fw = i8_frame_width(out_w, kw, sh);
        i8_window_framed(acc, (int16_t*)(acc + out_h * fw), base + off[0], zero, w, in_h, in_w, out_h, out_w,
                         kh, kw, sh, ph, pw);
        return;
    }
    if (w == NULL) {
        for (i = 0; i < npix; i++)
            acc[i] = INT8_MIN;
    } else {
        memset(acc, 0, npix * sizeof(int32_t));
    }
    int flat = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    for (c = 0; c < cin; c++) {
        const int8_t* x = base + off[c];
        if (flat && w != NULL) {            /* 1x1: the plane as one row */
            int32_t wv = w[c];
            if (wv != 0)
                for (i = 0; i < npix; i++)
                    acc[i] += ((int32_t)x[i] - zero) * wv;
            continue;
        }
        for (ky = 0; ky < kh; ky++)
            for (kx = 0; kx < kw; kx++) {
                int32_t wv = w != NULL ? w[(c * kh + ky) * kw + kx] : 0;
                if (w != NULL && wv == 0)
                    continue;
                i8_tap_columns(kx * dw - pw, sw, in_w, out_w, &ox0, &ox1);
                for (oy = 0; oy < out_h; oy++) {
                    int64_t iy = oy * sh - ph + ky * dh;
                    if (iy < 0 || iy >= in_h)
                        continue;
                    const int8_t* row = x + iy * in_w + kx * dw - pw;
                    int32_t* a = acc + oy * out_w;
                    if (w == NULL) {
                        for (ox = ox0; ox < ox1; ox++)
                            a[ox] = a[ox] > row[ox * sw] ? a[ox] : row[ox * sw];
                    } else if (sw == 1) {
                        for (ox = ox0; ox < ox1; ox++)
                            a[ox] += ((int32_t)row[ox] - zero) * wv;
                    } else {
                        for (ox = ox0; ox < ox1; ox++)
                            a[ox] += ((int32_t)row[ox * sw] - zero) * wv;
                    }
                }
            }
    }
}

/* A 1x1 convolution of 1x1 planes (fully connected): the sums of n output
 * channels' rows of w (cin each) with x - zero, x's bytes gathered once
 * into xz. */
static void i8_dot_rows(int32_t* restrict acc, int32_t* restrict xz, const int8_t* base, const int64_t* off,
                        int64_t cin, const int8_t* w, int64_t n, int32_t zero)
{
    int8_t* xq = (int8_t*)xz;
    int64_t c, o;
    for (c = 0; c < cin; c++)
        xq[c] = base[off[c]];
    for (o = 0; o + 4 <= n; o += 4)
        i8_dot_zero(acc + o, xq, w + o * cin, cin, 4, zero);
    for (; o < n; o++)
        i8_dot_zero(acc + o, xq, w + o * cin, cin, 1, zero);
}

/* int8 outputs from sums: mult per output channel (mult_step 0) or per
 * pixel (1: average pooling's divisors); res, if not NULL, added as above. */
static void i8_store_q(int8_t* restrict out, const int32_t* acc, int64_t n, int32_t bias,
                       const float* mult, int64_t mult_step, int32_t zero, int32_t qlo, int32_t qhi,
                       const int8_t* res, int32_t res_zero, float res_mult)
{
    int64_t i;
    if (mult_step == 0 && res == NULL) {        /* the common case */
        float m = mult[0];
#if defined(ENGINE_ISA_AVX512)
        /* (GCC vectorizes the loop below into masked blends: 3-4x the instructions) */
        __m512 vm = _mm512_set1_ps(m), lim = _mm512_set1_ps(I8_Y_LIMIT), nlim = _mm512_set1_ps(-I8_Y_LIMIT);
        __m512i vb = _mm512_set1_epi32(bias), vz = _mm512_set1_epi32(zero);
        __m512i vlo = _mm512_set1_epi32(qlo), vhi = _mm512_set1_epi32(qhi);
        for (i = 0; i < n; i += 16) {
            __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
            __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + i), vb)), vm);
            y = _mm512_min_ps(_mm512_max_ps(y, nlim), lim);
            __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(y), vz);        /* (rounding: half to even) */
            q = _mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi);
            _mm_mask_storeu_epi8(out + i, k, _mm512_cvtepi32_epi8(q));
        }
#elif defined(ENGINE_ISA_AVX2)
        /* (GCC leaves the loop below scalar here) */
        __m256 vm = _mm256_set1_ps(m), lim = _mm256_set1_ps(I8_Y_LIMIT), nlim = _mm256_set1_ps(-I8_Y_LIMIT);
        __m256i vb = _mm256_set1_epi32(bias), vz = _mm256_set1_epi32(zero);
        __m256i vlo = _mm256_set1_epi32(qlo), vhi = _mm256_set1_epi32(qhi);
        for (i = 0; i + 8 <= n; i += 8) {
            __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(acc + i)),
                                                                          vb)), vm);
            y = _mm256_min_ps(_mm256_max_ps(y, nlim), lim);
            __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(y), vz);        /* (rounding: half to even) */
            q = _mm256_min_epi32(_mm256_max_epi32(q, vlo), vhi);
            __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            _mm_storel_epi64((__m128i*)(out + i), _mm_packs_epi16(h, h));
        }
        for (; i < n; i++)
            out[i] = i8_clamp(i8_round((float)(acc[i] + bias) * m) + zero, qlo, qhi);
#elif defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
        int32x4_t vb = vdupq_n_s32(bias);
        int16x8_t vz = vdupq_n_s16((int16_t)zero);
        int8x8_t vlo = vdup_n_s8((int8_t)qlo), vhi = vdup_n_s8((int8_t)qhi);
        for (i = 0; i + 8 <= n; i += 8)
            i8_row_q8(out + i, vaddq_s32(vld1q_s32(acc + i), vb), vaddq_s32(vld1q_s32(acc + i + 4), vb), m, vz, vlo,
                      vhi);
        for (; i < n; i++)
            out[i] = i8_clamp(i8_round((float)(acc[i] + bias) * m) + zero, qlo, qhi);
#else
        for (i = 0; i < n; i++)
            out[i] = i8_clamp(i8_round((float)(acc[i] + bias) * m) + zero, qlo, qhi);
#endif
        return;
    }
    if (res != NULL) {
        i = 0;
        if (mult_step == 0) {       /* (a residual's store: vectors, the same fused multiply-add) */
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
            int32x4_t vb = vdupq_n_s32(bias);
            int16x8_t vz = vdupq_n_s16((int16_t)zero);
            int8x8_t vrz = vdup_n_s8((int8_t)res_zero), vlo = vdup_n_s8((int8_t)qlo), vhi = vdup_n_s8((int8_t)qhi);
            for (; i + 8 <= n; i += 8) {
                int16x8_t q = i8_zq16_sums_res(vaddq_s32(vld1q_s32(acc + i), vb), vaddq_s32(vld1q_s32(acc + i + 4), vb),
                                               mult[0], vz, vld1_s8(res + i), vrz, res_mult);
                vst1_s8(out + i, vmin_s8(vmax_s8(vqmovn_s16(q), vlo), vhi));
            }
#elif defined(ENGINE_ISA_AVX512) || defined(ENGINE_ISA_AVX2)
            __m256 vm = _mm256_set1_ps(mult[0]), vr = _mm256_set1_ps(res_mult);
            __m256i vb = _mm256_set1_epi32(bias), vrz = _mm256_set1_epi32(res_zero);
            __m256i vz = _mm256_set1_epi16((short)zero);
            __m128i vlo = _mm_set1_epi8((char)qlo), vhi = _mm_set1_epi8((char)qhi);
            for (; i + 16 <= n; i += 16) {
                __m256i q[2];
                int h;
                for (h = 0; h < 2; h++) {
                    __m256i a = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(acc + i + 8 * h)), vb);
                    __m128i r8 = _mm_loadl_epi64((const __m128i*)(res + i + 8 * h));
                    __m256i r = _mm256_sub_epi32(_mm256_cvtepi8_epi32(r8), vrz);
                    q[h] = i8_round8(_mm256_fmadd_ps(_mm256_cvtepi32_ps(r), vr,
                                                     _mm256_mul_ps(_mm256_cvtepi32_ps(a), vm)));
                }
                /* (packs interleaves the 128-bit lanes: 0-3, 8-11, 4-7, 12-15) */
                __m256i q16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xd8);
                _mm_storeu_si128((__m128i*)(out + i), i8_narrow16(q16, vz, vlo, vhi));
            }
#endif
        }
        for (; i < n; i++) {
            float y = (float)(acc[i] + bias) * mult[i * mult_step];
            y = fmaf((float)((int32_t)res[i] - res_zero), res_mult, y);
            out[i] = i8_clamp(i8_round(y) + zero, qlo, qhi);
        }
    } else {
        for (i = 0; i < n; i++)
            out[i] = i8_clamp(i8_round((float)(acc[i] + bias) * mult[i * mult_step]) + zero, qlo, qhi);
    }
}

/* float32 outputs from sums (an int8 layer read by float32 ones: the
 * classifier); res, if not NULL, added (res_mult: its scale) */
static void i8_store_f32(float* restrict out, const int32_t* acc, int64_t n, int32_t bias, float mult,
                         float lo, float hi, const int8_t* res, int32_t res_zero, float res_mult)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        float y = (float)(acc[i] + bias) * mult;
        if (res != NULL)
            y = fmaf((float)((int32_t)res[i] - res_zero), res_mult, y);
        out[i] = y < lo ? lo : y > hi ? hi : y;
    }
}

/* -- single-plane windows straight to int8 ----------------------------------------
 * One output plane of a depthwise convolution (int8, one multiplier, no
 * residual: out = clamp(round(float32(sums + bias) * mult) + zero)) or of
 * max pooling (int8: out = clamp(max)).  With I8_DIRECT (NEON, AVX2,
 * AVX-512), strides 1 and 2 without dilation: from a padded int8 copy of
 * the plane (the padding: the input's zero point, so that every tap reads a
 * q and zero x sum(w) comes off the bias; for max pooling -128, which
 * changes no maximum), I8_DW_PX outputs at a time with every tap in
 * registers, requantized from them (the copy's padding filled for a run's
 * first plane: the run's later ones find it in the scratch).  Otherwise:
 * the plane's sums or maxima (i8_window_sums, into acc), then i8_store_q. */
#if defined(I8_DIRECT)
/* x's rows and columns [-ph, rows - ph) x [-pw, width - pw) into p (rows
 * of width bytes), with border fill outside x (else left as it is); each
 * row's bytes by the widest copies that fit, the last ones overlapping
 * those before */
static void i8_pad_plane(int8_t* restrict p, const int8_t* restrict x, int8_t fill, int64_t in_h, int64_t in_w,
                         int64_t rows, int64_t width, int64_t ph, int64_t pw, int border)
{
    int64_t c0 = pw < width ? pw : width, c1 = pw + in_w < width ? pw + in_w : width, n = c1 - c0, r, j;
    int64_t r0 = ph < rows ? ph : rows, r1 = ph + in_h < rows ? ph + in_h : rows;
    if (border)
        memset(p, fill, (size_t)(rows * width));
    int8_t* d = p + r0 * width + c0;
    const int8_t* src = x + (r0 - ph) * in_w + c0 - pw;
    if (n >= 16) {
        for (r = r0; r < r1; r++, d += width, src += in_w) {
            for (j = 0; j + 16 < n; j += 16)
                memcpy(d + j, src + j, 16);
            memcpy(d + n - 16, src + n - 16, 16);
        }
    } else if (n >= 8) {
        for (r = r0; r < r1; r++, d += width, src += in_w) {
            memcpy(d, src, 8);
            memcpy(d + n - 8, src + n - 8, 8);
        }
    } else if (n >= 4) {
        for (r = r0; r < r1; r++, d += width, src += in_w) {
            memcpy(d, src, 4);
            memcpy(d + n - 4, src + n - 4, 4);
        }
    } else if (n > 0) {
        for (r = r0; r < r1; r++, d += width, src += in_w)
            for (j = 0; j < n; j++)
                d[j] = src[j];
    }
}

#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
/* a vector of I8_DW_PX bytes (16 on aarch64, 8 on armv7): a tap's weight
 * or a clamp bound in every lane; 8-output windows take its low half */
#if I8_DW_PX == 16
typedef int8x16_t i8_vpx;
#define I8_VPX_DUP vdupq_n_s8
#define I8_LOW8(v) vget_low_s8(v)
#else
typedef int8x8_t i8_vpx;
#define I8_VPX_DUP vdup_n_s8
#define I8_LOW8(v) (v)
#endif
typedef i8_vpx i8_tapw;             /* a tap's weight in every lane */
#define I8_TAPW(taps) (taps)
typedef struct {                    /* what turns sums into int8 */
    int32x4_t bias;
    int16x8_t zero;
    float mult;
    i8_vpx lo, hi;
} i8_requant_px;

#if defined(ENGINE_ISA_NEON_DOT)
/* sdot's taps: a row's weights in groups of four (the last group's missing
 * ones 0), each group in every 32-bit lane; returns the weights' sum (as
 * every i8_load_taps: the zero point's share of the sums comes off the bias) */
static inline int32_t i8_load_taps(i8_tapw* wv, const int8_t* w, int64_t kh, int64_t kw)
{
    int64_t ky, g, t;
    int32_t sum = 0;
    if (kh == 3 && kw == 3) {   /* (the common window: three groups by one tbl, their sum by one sdot) */
        static const uint8_t rows3[16] = {0, 1, 2, 255, 3, 4, 5, 255, 6, 7, 8, 255, 255, 255, 255, 255};
        int8x16_t bytes = vqtbl1q_s8(vcombine_s8(vld1_s8(w), vdup_n_s8(w[8])), vld1q_u8(rows3));
        int32x4_t groups = vreinterpretq_s32_s8(bytes);
        wv[0] = vreinterpretq_s8_s32(vdupq_laneq_s32(groups, 0));
        wv[1] = vreinterpretq_s8_s32(vdupq_laneq_s32(groups, 1));
        wv[2] = vreinterpretq_s8_s32(vdupq_laneq_s32(groups, 2));
        return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), bytes, vdupq_n_s8(1)));
    }
    for (ky = 0; ky < kh; ky++)
        for (g = 0; g < kw; g += 4) {
            uint32_t four = 0;
            for (t = 0; t < 4 && g + t < kw; t++) {
                four |= (uint32_t)(uint8_t)w[ky * kw + g + t] << (8 * t);
                sum += w[ky * kw + g + t];
            }
            *wv++ = vreinterpretq_s8_u32(vdupq_n_u32(four));
        }
    return sum;
}
#else
static inline int32_t i8_load_taps(i8_tapw* wv, const int8_t* w, int64_t kh, int64_t kw)
{
    int64_t t;
    int32_t sum = 0;
    for (t = 0; t < kh * kw; t++) {
        wv[t] = I8_VPX_DUP(w[t]);
        sum += w[t];
    }
    return sum;
}
#endif

static inline i8_requant_px i8_requant(int32_t bias, float mult, int32_t zero, int32_t qlo, int32_t qhi)
{
    i8_requant_px rq = {vdupq_n_s32(bias), vdupq_n_s16((int16_t)zero), mult, I8_VPX_DUP((int8_t)qlo),
                        I8_VPX_DUP((int8_t)qhi)};
    return rq;
}

/* a tap's 8 bytes from q: every s-th (taps kx and kx + 1 of stride 2 share
 * an ld2) */
#define I8_TAP8(q, kx, s, pair) ((s) == 1 ? vld1_s8((q) + (kx)) : \
    ((kx) % 2 == 0 ? ((pair) = vld2_s8((q) + (kx))).val[0] : (pair).val[1]))

/* 8 outputs whose windows start at q, to out: for weights wv, products of
 * two taps summed in int16 (|q w| <= 128 x 127: two fit), widened into the
 * sums, requantized; without (wv NULL), the maxima, clamped */
static inline __attribute__((always_inline)) void i8_window_8px(int8_t* out, const int8_t* q, int64_t width,
                                                                const i8_tapw* wv, int64_t kh, int64_t kw, int64_t s,
                                                                const i8_requant_px* rq, int clamp)
{
    int32x4_t a0 = rq->bias, a1 = rq->bias;
    int16x8_t h = vdupq_n_s16(0);
    int8x8_t mx = vdup_n_s8(INT8_MIN);
    int8x8x2_t pair;
    int64_t ky, kx;
    int pending = 0;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++) {
            int8x8_t v = I8_TAP8(q + ky * width, kx, s, pair);
            if (wv == NULL) {
                mx = vmax_s8(mx, v);
            } else if (!pending) {
                h = vmull_s8(v, I8_LOW8(wv[ky * kw + kx]));
                pending = 1;
            } else {
                h = vmlal_s8(h, v, I8_LOW8(wv[ky * kw + kx]));
                a0 = vaddw_s16(a0, vget_low_s16(h));
                a1 = vaddw_s16(a1, vget_high_s16(h));
                pending = 0;
            }
        }
    if (wv != NULL && pending) {
        a0 = vaddw_s16(a0, vget_low_s16(h));
        a1 = vaddw_s16(a1, vget_high_s16(h));
    }
    int8x8_t v = wv == NULL ? mx : vqmovn_s16(i8_zq16_sums(a0, a1, rq->mult, rq->zero));
    vst1_s8(out, clamp ? vmin_s8(vmax_s8(v, I8_LOW8(rq->lo)), I8_LOW8(rq->hi)) : v);
}
#undef I8_TAP8

#if I8_DW_PX == 16
/* sixteen int8 stored, clamped to rq's range where it is not all of int8 */
static inline void i8_store16(int8_t* out, int8x16_t v, const i8_requant_px* rq, int clamp)
{
    vst1q_s8(out, clamp ? vminq_s8(vmaxq_s8(v, rq->lo), rq->hi) : v);
}

/* a tap's 16 bytes from q, as I8_TAP8 */
#define I8_TAP16(q, kx, s, pair) ((s) == 1 ? vld1q_s8((q) + (kx)) : \
    ((kx) % 2 == 0 ? ((pair) = vld2q_s8((q) + (kx))).val[0] : (pair).val[1]))

/* 16 outputs' maxima, clamped */
static inline __attribute__((always_inline)) void i8_window_max16(int8_t* out, const int8_t* q, int64_t width,
                                                                  int64_t kh, int64_t kw, int64_t s,
                                                                  const i8_requant_px* rq, int clamp)
{
    int8x16_t mx = vdupq_n_s8(INT8_MIN);
    int8x16x2_t pair;
    int64_t ky, kx;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++)
            mx = vmaxq_s8(mx, I8_TAP16(q + ky * width, kx, s, pair));
    i8_store16(out, mx, rq, clamp);
}
#undef I8_TAP16
#endif

#if defined(ENGINE_ISA_NEON_DOT)
/* which bytes of a 16-byte load make output i's four (of a group of four
 * outputs): at stride 1 bytes i .. i + 3 (and of the next group, 4 on), at
 * stride 2 bytes 2i .. 2i + 3 */
static const uint8_t i8_dot_gather[3][16] = {
    {0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6},
    {4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10},
    {0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9},
};

/* sixteen sums a[0..3] requantized, saturated to int8 */
static inline int8x16_t i8_q16(const int32x4_t a[4], const i8_requant_px* rq)
{
    return vcombine_s8(vqmovn_s16(i8_zq16_sums(a[0], a[1], rq->mult, rq->zero)),
                       vqmovn_s16(i8_zq16_sums(a[2], a[3], rq->mult, rq->zero)));
}

/* n (8 or 16) outputs of a depthwise convolution by sdot: per row of taps
 * and group of four, each output's four bytes gathered by tbl (stride 1:
 * two groups of outputs from one load) and dotted with the group's weights
 * into the int32 sums, which start at the bias (no widening steps) */
static inline __attribute__((always_inline)) void i8_window_dot(int8_t* out, const int8_t* q, int64_t width,
                                                                const i8_tapw* wv, int64_t kh, int64_t kw,
                                                                int64_t s, const i8_requant_px* rq, int n, int clamp)
{
    int32x4_t a[4] = {rq->bias, rq->bias, rq->bias, rq->bias};
    uint8x16_t g0 = vld1q_u8(i8_dot_gather[s == 1 ? 0 : 2]), g1 = vld1q_u8(i8_dot_gather[1]);
    int64_t ky, g;
    int j;
    for (ky = 0; ky < kh; ky++)
        for (g = 0; g < kw; g += 4, wv++)
            for (j = 0; j < n / 4; j++) {
                const int8_t* src = q + ky * width + g + 4 * s * j;
                if (s == 1 && j % 2 == 1) {     /* (its bytes in the load before) */
                    a[j] = vdotq_s32(a[j], vqtbl1q_s8(vld1q_s8(src - 4), g1), *wv);
                    continue;
                }
                a[j] = vdotq_s32(a[j], vqtbl1q_s8(vld1q_s8(src), g0), *wv);
            }
    if (n == 8) {
        int8x8_t v = vqmovn_s16(i8_zq16_sums(a[0], a[1], rq->mult, rq->zero));
        vst1_s8(out, clamp ? vmin_s8(vmax_s8(v, vget_low_s8(rq->lo)), vget_low_s8(rq->hi)) : v);
        return;
    }
    i8_store16(out, i8_q16(a, rq), rq, clamp);
}
#endif

/* n (8 or I8_DW_PX) outputs whose windows start at q */
static inline __attribute__((always_inline)) void i8_window_px(int8_t* out, const int8_t* q, int64_t width,
                                                               const i8_tapw* wv, int64_t kh, int64_t kw, int64_t s,
                                                               const i8_requant_px* rq, int n, int clamp)
{
#if defined(ENGINE_ISA_NEON_DOT)
    if (wv != NULL) {
        i8_window_dot(out, q, width, wv, kh, kw, s, rq, n, clamp);
        return;
    }
#endif
#if I8_DW_PX == 16
    if (n == 16 && wv == NULL) {
        i8_window_max16(out, q, width, kh, kw, s, rq, clamp);
        return;
    }
    if (n == 16) {              /* (without sdot: two halves, each product in int16 as wide as 8 bytes) */
        i8_window_8px(out, q, width, wv, kh, kw, s, rq, clamp);
        i8_window_8px(out + 8, q + 8 * s, width, wv, kh, kw, s, rq, clamp);
        return;
    }
#endif
    i8_window_8px(out, q, width, wv, kh, kw, s, rq, clamp);
}
#else
/* AVX2 (and AVX-512, on 256-bit vectors): 16 outputs' taps as int16, two
 * taps' interleaved against a pair of weights by vpmaddwd */
typedef __m256i i8_tapw;            /* a pair of taps' weights (int16 w_t, w_t+1) in every int32 */
#define I8_TAPW(taps) (((taps) + 1) / 2)
typedef struct {
    __m256i bias;
    __m256 mult;
    __m256i zero;
    __m128i lo, hi;
} i8_requant_px;

static inline int32_t i8_load_taps(i8_tapw* wv, const int8_t* w, int64_t kh, int64_t kw)
{
    int64_t t, taps = kh * kw;
    int32_t sum = 0;
    for (t = 0; t < taps; t += 2) {
        wv[t / 2] = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)w[t] |
                                                (t + 1 < taps ? (uint32_t)(uint16_t)w[t + 1] << 16 : 0)));
        sum += w[t] + (t + 1 < taps ? w[t + 1] : 0);
    }
    return sum;
}

static inline i8_requant_px i8_requant(int32_t bias, float mult, int32_t zero, int32_t qlo, int32_t qhi)
{
    i8_requant_px rq = {_mm256_set1_epi32(bias), _mm256_set1_ps(mult), _mm256_set1_epi16((short)zero),
                        _mm_set1_epi8((char)qlo), _mm_set1_epi8((char)qhi)};
    return rq;
}

/* a tap's 16 int16 from q: every s-th byte (taps kx and kx + 1 of stride 2
 * share a load: the even bytes of its int16s, then the odd) */
#define I8_TAP16(q, kx, s, pair) ((s) == 1 ? _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)((q) + (kx)))) : \
    ((kx) % 2 == 0 ? _mm256_srai_epi16(_mm256_slli_epi16( \
                         (pair) = _mm256_loadu_si256((const __m256i*)((q) + (kx))), 8), 8) \
                   : _mm256_srai_epi16((pair), 8)))

/* 16 outputs whose windows start at q, to out: for weights wv, the sums of
 * pairs of taps by vpmaddwd (the products' order within 128-bit lanes: the
 * low half's pixels 0-3 and 8-11, the high half's 4-7 and 12-15, put back
 * by the packs), requantized; without (wv NULL), the maxima, clamped */
static inline __attribute__((always_inline)) void i8_window_px(int8_t* out, const int8_t* q, int64_t width,
                                                               const i8_tapw* wv, int64_t kh, int64_t kw, int64_t s,
                                                               const i8_requant_px* rq, int n, int clamp)
{
    (void)n;                    /* (always I8_DW_PX) */
    __m256i lo = rq->bias, hi = rq->bias, prev = _mm256_setzero_si256(), mx = _mm256_set1_epi16(INT8_MIN), pair;
    int64_t ky, kx, t = 0;
    for (ky = 0; ky < kh; ky++)
        for (kx = 0; kx < kw; kx++, t++) {
            __m256i v = I8_TAP16(q + ky * width, kx, s, pair);
            if (wv == NULL) {
                mx = _mm256_max_epi16(mx, v);
            } else if (t % 2 == 0) {
                prev = v;
            } else {
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(prev, v), wv[t / 2]));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(prev, v), wv[t / 2]));
            }
        }
    __m256i q16;
    if (wv == NULL) {
        q16 = mx;
    } else {
        if (t % 2 == 1) {       /* the last tap's pair: its weight and 0 */
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(prev, prev), wv[t / 2]));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(prev, prev), wv[t / 2]));
        }
        q16 = _mm256_packs_epi32(i8_round8(_mm256_mul_ps(_mm256_cvtepi32_ps(lo), rq->mult)),
                                 i8_round8(_mm256_mul_ps(_mm256_cvtepi32_ps(hi), rq->mult)));
    }
    _mm_storeu_si128((__m128i*)out, clamp ? i8_narrow16(q16, rq->zero, rq->lo, rq->hi) :
                                            i8_narrow16_full(q16, rq->zero));
}
#undef I8_TAP16
#endif

/* a narrower vector for short rows and rows' last few outputs, where
 * vectors are wider than 8 */
#if (defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)) && I8_DW_PX > 8
#define I8_NARROW_PX 8
#else
#define I8_NARROW_PX I8_DW_PX
#endif

/* The plane's outputs from the padded plane p, n (8 or I8_DW_PX) at a
 * time: a row's last ones overlapping those before; rows narrower than n
 * by a whole vector too, its store running into the next row (stored again
 * after) except where it would pass the plane's end (a copy of the lanes
 * wanted).  Inlined with constant taps, stride and n: the loads' offsets
 * fold. */
static inline __attribute__((always_inline)) void i8_padded_rows_n(int8_t* restrict out, const int8_t* p,
                                                                   int64_t width, const i8_tapw* wv, int64_t kh,
                                                                   int64_t kw, int64_t s, const i8_requant_px* rq,
                                                                   int64_t out_h, int64_t out_w, int n, int clamp)
{
    int64_t oy, ox;
    for (oy = 0; oy < out_h; oy++) {
        const int8_t* row = p + oy * s * width;
        int8_t* dst = out + oy * out_w;
        for (ox = 0; ox + n <= out_w; ox += n)
            i8_window_px(dst + ox, row + ox * s, width, wv, kh, kw, s, rq, n, clamp);
        if (ox == out_w)
            continue;
        if (n > I8_NARROW_PX && out_w - ox <= I8_NARROW_PX) {     /* (the last few by a narrower vector) */
            i8_window_px(dst + out_w - I8_NARROW_PX, row + (out_w - I8_NARROW_PX) * s, width, wv, kh, kw, s, rq,
                         I8_NARROW_PX, clamp);
        } else if (out_w >= n) {
            i8_window_px(dst + out_w - n, row + (out_w - n) * s, width, wv, kh, kw, s, rq, n, clamp);
        } else if (oy * out_w + n <= out_h * out_w) {
            i8_window_px(dst, row, width, wv, kh, kw, s, rq, n, clamp);
        } else {
            int8_t lanes[I8_DW_PX];
            i8_window_px(lanes, row, width, wv, kh, kw, s, rq, n, clamp);
            memcpy(dst, lanes, (size_t)out_w);
        }
    }
}

/* (rows of up to I8_NARROW_PX outputs that many at a time: a wider vector
 * would compute twice what they keep) */
static inline __attribute__((always_inline)) void i8_padded_rows(int8_t* restrict out, const int8_t* p, int64_t width,
                                                                 const i8_tapw* wv, int64_t kh, int64_t kw, int64_t s,
                                                                 const i8_requant_px* rq, int64_t out_h,
                                                                 int64_t out_w, int clamp)
{
    if (I8_NARROW_PX < I8_DW_PX && out_w <= I8_NARROW_PX) {
        i8_padded_rows_n(out, p, width, wv, kh, kw, s, rq, out_h, out_w, I8_NARROW_PX, clamp);
        return;
    }
    i8_padded_rows_n(out, p, width, wv, kh, kw, s, rq, out_h, out_w, I8_DW_PX, clamp);
}

/* i8_window_planes's run of planes from padded copies (strides 1 and 2,
 * no dilation) */
static void i8_direct_planes(char* base, const int64_t* out_off, const int64_t* in_off, int64_t c0, int64_t c1,
                             int64_t cout_g, const int8_t* w, const int32_t* bias, const float* mult,
                             int32_t in_zero, int32_t zero, int32_t qlo, int32_t qhi, int8_t* restrict p,
                             int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t kh, int64_t kw,
                             int64_t s, int64_t ph, int64_t pw)
{
    i8_tapw wv[I8_TAPW(I8_TAPS_MAX)];
    int64_t width = i8_padded_width(out_w, kw, s), rows = s * (out_h - 1) + kh, taps = kh * kw, c;
    int8_t fill = w != NULL ? (int8_t)in_zero : INT8_MIN;
    int clamp = w == NULL || qlo > INT8_MIN || qhi < INT8_MAX;
    i8_requant_px rq = i8_requant(0, 1.0f, 0, qlo, qhi);
    for (c = c0; c < c1; c++) {
        int8_t* out = (int8_t*)(base + out_off[c]);
        if (w != NULL) {
            int32_t sum = i8_load_taps(wv, w + c * taps, kh, kw);
            rq = i8_requant(bias[c] - in_zero * sum, mult[c], zero, qlo, qhi);
        }
        i8_pad_plane(p, (const int8_t*)(base + in_off[c / cout_g]), fill, in_h, in_w, rows, width, ph, pw, c == c0);
        /* (the common windows inlined with constant taps and stride; 3 x 3
         * depthwise without the clamp too, where the range is all of int8) */
        if (w == NULL && kh == 3 && kw == 3 && s == 2)
            i8_padded_rows(out, p, width, NULL, 3, 3, 2, &rq, out_h, out_w, 1);
        else if (w == NULL)
            i8_padded_rows(out, p, width, NULL, kh, kw, s, &rq, out_h, out_w, 1);
        else if (kh == 3 && kw == 3 && s == 1 && clamp)
            i8_padded_rows(out, p, width, wv, 3, 3, 1, &rq, out_h, out_w, 1);
        else if (kh == 3 && kw == 3 && s == 1)
            i8_padded_rows(out, p, width, wv, 3, 3, 1, &rq, out_h, out_w, 0);
        else if (kh == 3 && kw == 3 && clamp)
            i8_padded_rows(out, p, width, wv, 3, 3, 2, &rq, out_h, out_w, 1);
        else if (kh == 3 && kw == 3)
            i8_padded_rows(out, p, width, wv, 3, 3, 2, &rq, out_h, out_w, 0);
        else if (s == 1)
            i8_padded_rows(out, p, width, wv, kh, kw, 1, &rq, out_h, out_w, 1);
        else
            i8_padded_rows(out, p, width, wv, kh, kw, 2, &rq, out_h, out_w, 1);
    }
}
#endif

/* A job's run of output planes [c0, c1) of a depthwise convolution (w: kh
 * x kw weights a channel, cout_g channels an input plane; int8, one
 * multiplier a channel, no residual) or of max pooling (w NULL: in_zero,
 * bias, mult and zero unused) to int8: plane c from base + in_off[c /
 * cout_g] to base + out_off[c]; acc: the job's scratch.  One call a run:
 * its geometry passed once, not a channel at a time. */
static void i8_window_planes(char* base, const int64_t* out_off, const int64_t* in_off, int64_t c0, int64_t c1,
                             int64_t cout_g, const int8_t* w, const int32_t* bias, const float* mult,
                             int32_t in_zero, int32_t zero, int32_t qlo, int32_t qhi, int32_t* restrict acc,
                             int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t kh, int64_t kw,
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
    int64_t c, origin = 0;
    float one = 1.0f;
#if defined(I8_DIRECT)
    if (i8_dw_direct(sh, sw, dh, dw, kh, kw)) {
        i8_direct_planes(base, out_off, in_off, c0, c1, cout_g, w, bias, mult, in_zero, zero, qlo, qhi, (int8_t*)acc,
                         in_h, in_w, out_h, out_w, kh, kw, sh, ph, pw);
        return;
    }
#endif
    for (c = c0; c < c1; c++) {
        int max = w == NULL;
        i8_window_sums(acc, (const int8_t*)(base + in_off[c / cout_g]), &origin, 1, max ? NULL : w + c * kh * kw,
                       max ? 0 : in_zero, in_h, in_w, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw);
        i8_store_q((int8_t*)(base + out_off[c]), acc, out_h * out_w, max ? 0 : bias[c], max ? &one : mult + c, 0,
                   max ? 0 : zero, qlo, qhi, NULL, 0, 0);
    }
}

/* add: q = round(fmaf(b - b_zero, b_mult, (a - a_zero) * a_mult)) + zero, clamped */
static void i8_add(int8_t* restrict out, const int8_t* a, const int8_t* b, int64_t n,
                   int32_t a_zero, float a_mult, int32_t b_zero, float b_mult,
                   int32_t zero, int32_t qlo, int32_t qhi)
{
    int64_t i;
    for (i = 0; i < n; i++) {
        float y = fmaf((float)((int32_t)b[i] - b_zero), b_mult, (float)((int32_t)a[i] - a_zero) * a_mult);
        out[i] = i8_clamp(i8_round(y) + zero, qlo, qhi);
    }
}

/* float32 -> int8: q = round(x * inv_scale) + zero, clamped */
static void i8_quantize(int8_t* restrict out, const float* x, int64_t n, float inv_scale, int32_t zero,
                        int32_t qlo, int32_t qhi)
{
    int64_t i = 0;
#if defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
    float32x4_t vs = vdupq_n_f32(inv_scale);
    int16x8_t vz = vdupq_n_s16((int16_t)zero);
    /* (a quantize node's range is all of int8, which the saturating
     * narrowing gives: no clamp; another range takes the loop below) */
    for (; qlo == INT8_MIN && qhi == INT8_MAX && i + 16 <= n; i += 16)
        vst1q_s8(out + i, vcombine_s8(vqmovn_s16(i8_zq16(i8_round4(vmulq_f32(vld1q_f32(x + i), vs)),
                                                         i8_round4(vmulq_f32(vld1q_f32(x + i + 4), vs)), vz)),
                                      vqmovn_s16(i8_zq16(i8_round4(vmulq_f32(vld1q_f32(x + i + 8), vs)),
                                                         i8_round4(vmulq_f32(vld1q_f32(x + i + 12), vs)), vz))));
#elif defined(ENGINE_ISA_AVX512) || defined(ENGINE_ISA_AVX2)
    /* (GCC's loop below runs scalar here) */
    __m256 vs = _mm256_set1_ps(inv_scale);
    __m256i vz = _mm256_set1_epi16((short)zero);
    __m128i vlo = _mm_set1_epi8((char)qlo), vhi = _mm_set1_epi8((char)qhi);
    for (; i + 16 <= n; i += 16) {
        __m256i q16 = _mm256_packs_epi32(i8_round8(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs)),
                                         i8_round8(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), vs)));
        /* (packs interleaves the 128-bit lanes: 0-3, 8-11, 4-7, 12-15) */
        q16 = _mm256_permute4x64_epi64(q16, 0xd8);
        _mm_storeu_si128((__m128i*)(out + i), i8_narrow16(q16, vz, vlo, vhi));
    }
#endif
    for (; i < n; i++)
        out[i] = i8_clamp(i8_round(x[i] * inv_scale) + zero, qlo, qhi);
}

/* int8 -> float32: (q - zero) * scale */
static void i8_dequantize(float* restrict out, const int8_t* q, int64_t n, int32_t zero, float scale)
{
    int64_t i;
    for (i = 0; i < n; i++)
        out[i] = (float)((int32_t)q[i] - zero) * scale;
}

/* -- 1x1 convolutions: a GEMM over packed panels ---------------------------------
 * A pixel tile of I8_NR pixels of the group's K input planes is packed into
 * a panel, [K / I8_KG][I8_NR][I8_KG] elements (i8_panel_t) each holding q + I8_PANEL_OFFSET
 * (channels past K: 0), and tiles of I8_MR output channels run over it with
 * weights packed [K / I8_KG][I8_MR][I8_KG] (ops/quant.py: int8_gemm_record)
 * and a bias that takes the panel's offset and the input's zero point off:
 * qb - (zero point + offset) * sum(w), so the sums are the convolution's.
 *   AVX-512 (with VNNI: vpdpbusd multiplies u8 by s8, four at a time):
 *     12 x 32 tiles, K in groups of 4, the panel as u8 (q ^ 0x80 = q + 128)
 *   AVX2: 6 x 16 tiles, K in pairs, panel and weights as int16 (vpmaddwd)
 *   NEON with the dot product (ARMv8.2-A: Cortex-A55/A76, Pi 5): 12 x 8
 *     tiles, K in groups of 4 (sdot: four products per lane)
 *   NEON (Cortex-A72, armv7): 8 x 8 tiles (4 x 8 on armv7's 16 registers),
 *     K in pairs: smull + smlal sum two pairs' products in int16 (|w| <= 127:
 *     2 * 127 * 128 fits), sadalp adds them into int32
 *   the others: 8 x 16 tiles, K one by one, in C (the compiler vectorizes
 *     the pixels) */
#if defined(ENGINE_ISA_AVX512)
#define I8_MR 12
#define I8_NR 32
#define I8_KG 4
#define I8_PANEL_OFFSET 128
#define I8_ELEM_BYTES 1     /* the panel's and weights' elements: bytes */
#elif defined(ENGINE_ISA_AVX2)
/* vpmaddwd: int16 pairs (AVX2 has no u8 x s8 product that cannot saturate) */
#define I8_MR 6             /* (12 accumulators of 8 lanes: the registers AVX2 has, with the panel's) */
#define I8_NR 16
#define I8_KG 2
#define I8_PANEL_OFFSET 0
#define I8_ELEM_BYTES 2     /* int16 panel and weights */
#elif defined(ENGINE_ISA_NEON_DOT)
#define I8_MR 12            /* (24 accumulators of 4 lanes, of 32 registers) */
#define I8_NR 8
#define I8_KG 4
#define I8_PANEL_OFFSET 0
#define I8_ELEM_BYTES 1
#elif defined(ENGINE_ISA_NEON)
#if defined(__aarch64__)
#define I8_MR 8             /* (16 accumulators, the panel's 8 rotations: of 32 registers) */
#else
#define I8_MR 4             /* (armv7: 16 registers) */
#endif
#define I8_NR 8
#define I8_KG 2
#define I8_PANEL_OFFSET 0
#define I8_ELEM_BYTES 1
#else
#define I8_MR 8
#define I8_NR 16
#define I8_KG 1
#define I8_PANEL_OFFSET 0
#define I8_ELEM_BYTES 1
#endif
#if I8_ELEM_BYTES == 2
typedef int16_t i8_panel_t;
#else
typedef uint8_t i8_panel_t;
#endif

/* The panel of pixels [p0, p0 + I8_NR) of planes base + off[0..K) (K
 * rounded up to I8_KG: kp); reads whole tiles (planes are whole 64-byte
 * lines: the pixels past the plane are read, never stored). */
static void i8_pack_panel(uint8_t* restrict panel, const int8_t* base, const int64_t* off, int64_t K,
                          int64_t kp, int64_t p0)
{
    int64_t k, px, j;
#if defined(ENGINE_ISA_AVX512)
    /* four planes' 16 pixels interleaved by two rounds of unpacking (the
     * generic loop below would move a byte at a time) */
    const __m128i flip = _mm_set1_epi8((char)0x80);
    for (k = 0; k + 4 <= K; k += 4)
        for (px = 0; px < 32; px += 16) {
            __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(base + off[k] + p0 + px)), flip);
            __m128i r1 = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(base + off[k + 1] + p0 + px)), flip);
            __m128i r2 = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(base + off[k + 2] + p0 + px)), flip);
            __m128i r3 = _mm_xor_si128(_mm_loadu_si128((const __m128i*)(base + off[k + 3] + p0 + px)), flip);
            __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpackhi_epi8(r0, r1);
            __m128i c = _mm_unpacklo_epi8(r2, r3), d = _mm_unpackhi_epi8(r2, r3);
            uint8_t* o = panel + k * 32 + px * 4;
            _mm_storeu_si128((__m128i*)o, _mm_unpacklo_epi16(a, c));
            _mm_storeu_si128((__m128i*)(o + 16), _mm_unpackhi_epi16(a, c));
            _mm_storeu_si128((__m128i*)(o + 32), _mm_unpacklo_epi16(b, d));
            _mm_storeu_si128((__m128i*)(o + 48), _mm_unpackhi_epi16(b, d));
        }
    panel += k * I8_NR;         /* the last group of fewer than four, below */
    off += k;
    K -= k;
    kp -= k;
#elif defined(ENGINE_ISA_AVX2)
    /* two planes' 16 pixels widened to int16 and interleaved */
    for (k = 0; k + 2 <= K; k += 2) {
        __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(base + off[k] + p0)));
        __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(base + off[k + 1] + p0)));
        __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
        _mm256_storeu_si256((__m256i*)(panel + k * 32), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i*)(panel + k * 32 + 32), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    panel += k * I8_NR * I8_ELEM_BYTES;     /* an odd last plane, below */
    off += k;
    K -= k;
    kp -= k;
#elif defined(ENGINE_ISA_NEON_DOT) || defined(ENGINE_ISA_NEON)
    /* I8_KG planes' 8 pixels interleaved by one st4 (st2) */
    for (k = 0; k + I8_KG <= K; k += I8_KG) {
#if I8_KG == 4
        int8x8x4_t v = {{vld1_s8(base + off[k] + p0), vld1_s8(base + off[k + 1] + p0),
                         vld1_s8(base + off[k + 2] + p0), vld1_s8(base + off[k + 3] + p0)}};
        vst4_s8((int8_t*)panel + k * 8, v);
#else
        int8x8x2_t v = {{vld1_s8(base + off[k] + p0), vld1_s8(base + off[k + 1] + p0)}};
        vst2_s8((int8_t*)panel + k * 8, v);
#endif
    }
    panel += k * I8_NR;         /* a last group of fewer planes, below */
    off += k;
    K -= k;
    kp -= k;
#endif
    for (k = 0; k < kp; k += I8_KG)
        for (j = 0; j < I8_KG; j++) {
            i8_panel_t* dst = (i8_panel_t*)panel + k * I8_NR + j;
            if (k + j >= K) {
                for (px = 0; px < I8_NR; px++)
                    dst[px * I8_KG] = 0;
                continue;
            }
            const int8_t* src = base + off[k + j] + p0;
            for (px = 0; px < I8_NR; px++)
                dst[px * I8_KG] = (i8_panel_t)(src[px] ^ (int8_t)I8_PANEL_OFFSET);
        }
}

/* The requantizing store of a tile's rows (int8 outputs with one
 * multiplier per row: every 1x1 but those writing float32): row r < rows's
 * n pixels go to base + off[r] + p0 (the offset table read here: no
 * per-tile table of pointers to fill), the residual's at base + res_off[r]
 * + p0 added (res_off NULL: none; as i8_store_q adds it).  Fused into the
 * tile without a residual; with one, i8_tile_store_sums from the tile's
 * sums (inlined beside the tile's own store, its registers made GCC spill
 * in the tile's loop). */
typedef struct {
    char* base;
    const int64_t* off;
    const int64_t* res_off;
    int64_t p0, rows, n;
    const float* mult;
    int32_t zero, qlo, qhi, res_zero;
    float res_mult;
} i8_tile_store;

static inline int8_t* i8_tile_out(const i8_tile_store* st, int64_t r)
{
    return (int8_t*)(st->base + st->off[r]) + st->p0;
}

static inline const int8_t* i8_tile_res(const i8_tile_store* st, int64_t r)
{
    return st->res_off == NULL ? NULL : (const int8_t*)(st->base + st->res_off[r]) + st->p0;
}

/* a tile's rows stored from its sums in acc (I8_NR a row) by i8_store_q;
 * with res, the residual added (without, inlined with a constant NULL as
 * the tiles' own stores of a few pixels: GCC then inlines i8_store_q) */
static inline __attribute__((always_inline)) void i8_tile_rows_stored(const int32_t* acc, const i8_tile_store* st,
                                                                      int res)
{
    int64_t r;
    for (r = 0; r < st->rows; r++)
        i8_store_q(i8_tile_out(st, r), acc + r * I8_NR, st->n, 0, st->mult + r, 0, st->zero, st->qlo, st->qhi,
                   res ? i8_tile_res(st, r) : NULL, st->res_zero, st->res_mult);
}

#if defined(ENGINE_ISA_NEON_DOT) || defined(ENGINE_ISA_NEON)
/* A NEON tile's rows c[r] (8 sums each) to acc, or with st and whole rows
 * of pixels requantized from the registers (and the residual added where
 * st has one), two rows at a time (inline, constant r: c stays in
 * registers; constant clamp and res: no test a row) */
static inline __attribute__((always_inline)) void i8_tile_rows_q(int32x4_t c[I8_MR][2], const i8_tile_store* st,
                                                                 int clamp, int res)
{
    int16x8_t vz = vdupq_n_s16((int16_t)st->zero);
    int8x16_t lo = vdupq_n_s8((int8_t)st->qlo), hi = vdupq_n_s8((int8_t)st->qhi);
    int8x8_t rz = vdup_n_s8((int8_t)st->res_zero);
    char* base = st->base + st->p0;     /* (row r at base + off[r]: one add fewer a row) */
    __asm__("" : "+r"(base));           /* (else GCC adds p0 to each row's offset again) */
    const int64_t *off = st->off, *roff = st->res_off;
    const float* m = st->mult;
    int r;
#define I8_ROWS_Q(ra, rb) i8_rows_q8x2((int8_t*)(base + off[ra]), (int8_t*)(base + off[rb]), c[ra], c[rb], m[ra], \
    m[rb], vz, lo, hi, clamp, res, (const int8_t*)(base + (res ? roff[ra] : 0)), \
    (const int8_t*)(base + (res ? roff[rb] : 0)), rz, st->res_mult)
    if (st->rows == I8_MR) {    /* (no test a row: the common tile) */
#pragma GCC unroll 6
        for (r = 0; r < I8_MR; r += 2)
            I8_ROWS_Q(r, r + 1);
        return;
    }
#pragma GCC unroll 6
    for (r = 0; r < I8_MR; r += 2)
        if (r + 1 < st->rows)
            I8_ROWS_Q(r, r + 1);
        else if (r < st->rows)
            I8_ROWS_Q(r, r);    /* (a last row alone: stored twice) */
#undef I8_ROWS_Q
}

static inline __attribute__((always_inline)) void i8_tile_rows(int32x4_t c[I8_MR][2], int32_t* restrict acc,
                                                               const i8_tile_store* st)
{
    int r;
    if (st != NULL && st->n == I8_NR) {
        /* (no clamp where the range is all of int8: after a ReLU whose zero point is -128, too) */
        if (st->qlo == INT8_MIN && st->qhi == INT8_MAX)
            i8_tile_rows_q(c, st, 0, 0);
        else
            i8_tile_rows_q(c, st, 1, 0);
        return;
    }
#pragma GCC unroll 12
    for (r = 0; r < I8_MR; r++) {
        vst1q_s32(acc + r * 8, c[r][0]);
        vst1q_s32(acc + r * 8 + 4, c[r][1]);
    }
    if (st != NULL)
        i8_tile_rows_stored(acc, st, 0);
}
#endif

#if defined(ENGINE_ISA_AVX512)
/* acc[12][32] = bias + w . panel: 24 accumulators, the weights of a row
 * broadcast 4 bytes at a time.  vpdpbusd in asm: GCC 12 spills the
 * accumulators of its intrinsic (measured: 1.6-1.9x slower).  With st, the
 * rows go out requantized from the registers (as i8_store_q rounds them),
 * and acc is not written. */
#define I8_DOT2(r) { __m512i wr = _mm512_set1_epi32(wk[r]); \
    __asm__("vpdpbusd %2, %3, %0\n\tvpdpbusd %2, %4, %1" : "+v"(a##r##0), "+v"(a##r##1) : "v"(wr), "v"(b0), "v"(b1)); }
#define I8_ACC_INIT(r) __m512i a##r##0 = _mm512_set1_epi32(bias[r]), a##r##1 = a##r##0;
#define I8_ACC_STORE(r) _mm512_storeu_si512(acc + (r) * 32, a##r##0); _mm512_storeu_si512(acc + (r) * 32 + 16, a##r##1);
#define I8_ROW_Q(r) if ((r) < st->rows) { \
    __m512 m = _mm512_set1_ps(st->mult[r]); \
    _mm_mask_storeu_epi8(i8_tile_out(st, r), k0, i8_requant16(a##r##0, m, lim, vz, vlo, vhi)); \
    _mm_mask_storeu_epi8(i8_tile_out(st, r) + 16, k1, i8_requant16(a##r##1, m, lim, vz, vlo, vhi)); }
#define I8_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

static inline __m128i i8_requant16(__m512i a, __m512 m, __m512 lim, __m512i vz, __m128i vlo, __m128i vhi)
{
    __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(a), m);
    y = _mm512_min_ps(_mm512_max_ps(y, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
    __m128i q = _mm512_cvtsepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(y), vz));     /* (saturating: the int8 range) */
    return _mm_min_epi8(_mm_max_epi8(q, vlo), vhi);
}

static void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp, const int32_t* bias,
                         int32_t* restrict acc, const i8_tile_store* st)
{
    I8_ROWS(I8_ACC_INIT)
    int64_t k;
    for (k = 0; k < kp; k += 4) {
        __m512i b0 = _mm512_loadu_si512(panel + k * 32), b1 = _mm512_loadu_si512(panel + k * 32 + 64);
        const int32_t* wk = (const int32_t*)(w + k * 12);
        I8_ROWS(I8_DOT2)
    }
    if (st == NULL) {
        I8_ROWS(I8_ACC_STORE)
        return;
    }
    __mmask16 k0 = st->n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << st->n) - 1);
    __mmask16 k1 = st->n >= 32 ? (__mmask16)0xffff : st->n <= 16 ? 0 : (__mmask16)((1u << (st->n - 16)) - 1);
    __m512 lim = _mm512_set1_ps(I8_Y_LIMIT);
    __m512i vz = _mm512_set1_epi32(st->zero);
    __m128i vlo = _mm_set1_epi8((char)st->qlo), vhi = _mm_set1_epi8((char)st->qhi);
    I8_ROWS(I8_ROW_Q)
}
#elif defined(ENGINE_ISA_AVX2)
/* acc[6][16] = bias + w . panel: 12 accumulators; a row's weights for a
 * pair of k broadcast as one int32 (two int16), vpmaddwd then vpaddd. */
#define I8_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define I8_AVX2_INIT(r) __m256i a##r##0 = _mm256_set1_epi32(bias[r]), a##r##1 = a##r##0;
#define I8_AVX2_DOT(r) { __m256i wr = _mm256_set1_epi32(wk[r]); \
    a##r##0 = _mm256_add_epi32(a##r##0, _mm256_madd_epi16(b0, wr)); \
    a##r##1 = _mm256_add_epi32(a##r##1, _mm256_madd_epi16(b1, wr)); }
#define I8_AVX2_STORE(r) _mm256_storeu_si256((__m256i*)(acc + (r) * 16), a##r##0); \
    _mm256_storeu_si256((__m256i*)(acc + (r) * 16 + 8), a##r##1);
static void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp, const int32_t* bias,
                         int32_t* restrict acc, const i8_tile_store* st)
{
    I8_ROWS6(I8_AVX2_INIT)
    int64_t k;
    for (k = 0; k < kp; k += 2) {
        __m256i b0 = _mm256_loadu_si256((const __m256i*)(panel + k * 32));
        __m256i b1 = _mm256_loadu_si256((const __m256i*)(panel + k * 32 + 32));
        const int32_t* wk = (const int32_t*)(w + k * 12);     /* [k / 2][6][2] int16 */
        I8_ROWS6(I8_AVX2_DOT)
    }
    I8_ROWS6(I8_AVX2_STORE)
    if (st != NULL)
        i8_tile_rows_stored(acc, st, 0);
}
#elif defined(ENGINE_ISA_NEON_DOT)
/* acc[12][8] = bias + w . panel: 24 accumulators, sdot by element (lane i
 * of a 16-byte weight group: row i's four weights). */
#define I8_SDOT(r, g, i) c[r][0] = vdotq_laneq_s32(c[r][0], b0, w##g, i); \
    c[r][1] = vdotq_laneq_s32(c[r][1], b1, w##g, i);
/* (inlined into the job's loop: as a call it costs ~40 instructions a tile) */
static inline __attribute__((always_inline)) void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp,
                                                               const int32_t* bias, int32_t* restrict acc,
                                                               const i8_tile_store* st)
{
    int32x4_t c[12][2];
    int32x4_t bv[3] = {vld1q_s32(bias), vld1q_s32(bias + 4), vld1q_s32(bias + 8)};  /* (3 loads, not 12) */
#define I8_BIAS(r) c[r][0] = c[r][1] = vdupq_laneq_s32(bv[(r) / 4], (r) % 4);
    I8_BIAS(0) I8_BIAS(1) I8_BIAS(2) I8_BIAS(3) I8_BIAS(4) I8_BIAS(5)
    I8_BIAS(6) I8_BIAS(7) I8_BIAS(8) I8_BIAS(9) I8_BIAS(10) I8_BIAS(11)
#undef I8_BIAS
    const int8_t *x = (const int8_t*)panel, *end = x + kp * 8;
    /* (one ld1 of two and one of three registers a step, two steps a turn:
     * 56 instructions for 48 sdot, where separate loads took 31 for 24) */
#pragma GCC unroll 2
    for (; x < end; x += 32, w += 48) {
        int8x16x2_t b = vld1q_s8_x2(x);
        int8x16x3_t ws = vld1q_s8_x3(w);
        int8x16_t b0 = b.val[0], b1 = b.val[1], w0 = ws.val[0], w1 = ws.val[1], w2 = ws.val[2];
        I8_SDOT(0, 0, 0) I8_SDOT(1, 0, 1) I8_SDOT(2, 0, 2) I8_SDOT(3, 0, 3)
        I8_SDOT(4, 1, 0) I8_SDOT(5, 1, 1) I8_SDOT(6, 1, 2) I8_SDOT(7, 1, 3)
        I8_SDOT(8, 2, 0) I8_SDOT(9, 2, 1) I8_SDOT(10, 2, 2) I8_SDOT(11, 2, 3)
    }
    i8_tile_rows(c, acc, st);
}
#elif defined(ENGINE_ISA_NEON)
/* acc[I8_MR][8] = bias + w . panel without a product by element for bytes:
 * 4 rows x 4 pixels at a time, the panel's pixel pairs (16-bit units: one
 * pixel's two k) rotated within each half four ways so that lane i meets
 * pixel i ^ j in rotation j.  c[g][h][j] lane i: row 4g + i, pixel
 * 4h + (i ^ j); i8_unrotate puts them back in rows. */
static inline int8x16_t i8_rotate(int8x16_t x, int j)
{
    int16x8_t v = vreinterpretq_s16_s8(x);
    return j == 1 ? vreinterpretq_s8_s16(vrev32q_s16(v))                          /* i ^ 1 */
         : j == 2 ? vreinterpretq_s8_s32(vrev64q_s32(vreinterpretq_s32_s8(x)))    /* i ^ 2 */
         : j == 3 ? vreinterpretq_s8_s16(vrev64q_s16(v)) : x;                     /* i ^ 3 */
}

/* rows 0-3 of a 4 x 4 block from its rotations a: row i, pixel p =
 * a[i ^ p] lane i (a transpose, then row i's lanes by i ^ p) */
static inline void i8_unrotate(int32x4_t row[4], const int32x4_t a[4])
{
    int32x4x2_t t01 = vtrnq_s32(a[0], a[1]), t23 = vtrnq_s32(a[2], a[3]);
    int32x4_t r2 = vcombine_s32(vget_high_s32(t01.val[0]), vget_high_s32(t23.val[0]));
    int32x4_t r3 = vrev64q_s32(vcombine_s32(vget_high_s32(t01.val[1]), vget_high_s32(t23.val[1])));
    row[0] = vcombine_s32(vget_low_s32(t01.val[0]), vget_low_s32(t23.val[0]));
    row[1] = vrev64q_s32(vcombine_s32(vget_low_s32(t01.val[1]), vget_low_s32(t23.val[1])));
    row[2] = vextq_s32(r2, r2, 2);
    row[3] = vextq_s32(r3, r3, 2);
}

#if defined(__aarch64__)
#define I8_MULL_HI(a, b) vmull_high_s8(a, b)
#define I8_MLAL_HI(c, a, b) vmlal_high_s8(c, a, b)
#else
#define I8_MULL_HI(a, b) vmull_s8(vget_high_s8(a), vget_high_s8(b))
#define I8_MLAL_HI(c, a, b) vmlal_s8(c, vget_high_s8(a), vget_high_s8(b))
#endif
/* a row group's weights of pair k (8 bytes), in both halves */
#define I8_WPAIR(k, g) vreinterpretq_s8_s64(vld1q_dup_s64((const int64_t*)(w + (k) * I8_MR + (g) * 8)))
/* (GCC's first scheduling pass starts every product at once and spills
 * accumulators: measured 75 instructions a step with it) */
__attribute__((optimize("no-schedule-insns")))
static void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp, const int32_t* bias,
                         int32_t* restrict acc, const i8_tile_store* st)
{
    int32x4_t c[I8_MR / 4][2][4];
    int64_t k;
    int g, h, j;
    for (g = 0; g < I8_MR / 4; g++)
        for (h = 0; h < 2; h++) {
            c[g][h][0] = vld1q_s32(bias + 4 * g);
            c[g][h][1] = c[g][h][2] = c[g][h][3] = c[g][h][0];
        }
    for (k = 0; k + 4 <= kp; k += 4) {          /* two pairs: products of both summed in int16 */
        int8x16_t x0 = vld1q_s8((const int8_t*)panel + k * 8), x1 = vld1q_s8((const int8_t*)panel + k * 8 + 16);
#pragma GCC unroll 4
        for (j = 0; j < 4; j++) {
            int8x16_t y0 = i8_rotate(x0, j), y1 = i8_rotate(x1, j);
#pragma GCC unroll 4
            for (g = 0; g < I8_MR / 4; g++) {
                int8x16_t w0 = I8_WPAIR(k, g), w1 = I8_WPAIR(k + 2, g);
                c[g][0][j] = vpadalq_s16(c[g][0][j], vmlal_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(y0)),
                                                              vget_low_s8(w1), vget_low_s8(y1)));
                c[g][1][j] = vpadalq_s16(c[g][1][j], I8_MLAL_HI(I8_MULL_HI(w0, y0), w1, y1));
            }
        }
    }
    if (k < kp)                                 /* a last pair */
#pragma GCC unroll 4
        for (j = 0; j < 4; j++) {
            int8x16_t y0 = i8_rotate(vld1q_s8((const int8_t*)panel + k * 8), j);
            for (g = 0; g < I8_MR / 4; g++) {
                int8x16_t w0 = I8_WPAIR(k, g);
                c[g][0][j] = vpadalq_s16(c[g][0][j], vmull_s8(vget_low_s8(w0), vget_low_s8(y0)));
                c[g][1][j] = vpadalq_s16(c[g][1][j], I8_MULL_HI(w0, y0));
            }
        }
    int32x4_t rows[I8_MR][2];
#pragma GCC unroll 4
    for (g = 0; g < I8_MR / 4; g++) {
        int32x4_t lo[4], hi[4];
        i8_unrotate(lo, c[g][0]);
        i8_unrotate(hi, c[g][1]);
        for (j = 0; j < 4; j++) {
            rows[4 * g + j][0] = lo[j];
            rows[4 * g + j][1] = hi[j];
        }
    }
    i8_tile_rows(rows, acc, st);
}
#else
static void i8_gemm_tile(const int8_t* w, const uint8_t* panel, int64_t kp, const int32_t* bias,
                         int32_t* restrict acc, const i8_tile_store* st)
{
    int64_t k, r, px;
    int32_t c[I8_MR][I8_NR];        /* (a local tile: no pointer the compiler must fear aliases it) */
    for (r = 0; r < I8_MR; r++)
        for (px = 0; px < I8_NR; px++)
            c[r][px] = bias[r];
    for (k = 0; k < kp; k++) {
        int32_t b[I8_NR];
        for (px = 0; px < I8_NR; px++)
            b[px] = ((const int8_t*)panel)[k * I8_NR + px];
        for (r = 0; r < I8_MR; r++) {
            int32_t wv = w[k * I8_MR + r];
            for (px = 0; px < I8_NR; px++)
                c[r][px] += wv * b[px];
        }
    }
    memcpy(acc, c, sizeof(c));
    if (st != NULL)
        i8_tile_rows_stored(acc, st, 0);
}
#endif

/* A tile's rows stored from its sums in acc (I8_NR a row), the residual
 * added where st has one: the 1x1's store where the tile's own (which
 * takes no residual) does not serve.  NEON: a whole tile's pixels from
 * registers, two rows at a time. */
static void i8_tile_store_sums(const int32_t* acc, const i8_tile_store* st)
{
#if defined(ENGINE_ISA_NEON_DOT) || defined(ENGINE_ISA_NEON)
    if (st->n == I8_NR) {
        int32x4_t c[I8_MR][2];
        int r;
#pragma GCC unroll 12
        for (r = 0; r < I8_MR; r++) {
            c[r][0] = vld1q_s32(acc + r * 8);
            c[r][1] = vld1q_s32(acc + r * 8 + 4);
        }
        if (st->qlo == INT8_MIN && st->qhi == INT8_MAX)
            i8_tile_rows_q(c, st, 0, 1);
        else
            i8_tile_rows_q(c, st, 1, 1);
        return;
    }
#endif
    i8_tile_rows_stored(acc, st, 1);
}

#endif
