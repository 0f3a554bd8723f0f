/* int8 microkernels (engine/int8.py: the scheme; int8.pxi: the jobs).
 *
 * Generic C, compiled into every fp32 kernel module with its flags (the
 * compiler vectorizes the inner loops for the module's ISA); the exact
 * arithmetic they implement is engine/int8.py's integer oracle, tested bit
 * for bit:
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

/* 1.5 * 2^23: (y + M) - M is y rounded half to even, for |y| < 2^22 */
#define I8_ROUND_MAGIC 12582912.0f
/* |y| beyond this rounds to a q outside every int8 range whatever the zero
 * point: clamped first (NaN too), so the rounding above holds */
#define I8_Y_LIMIT 1024.0f

static inline int32_t i8_round(float y)
{
    y = fminf(fmaxf(y, -I8_Y_LIMIT), I8_Y_LIMIT);
    return (int32_t)((y + I8_ROUND_MAGIC) - I8_ROUND_MAGIC);
}

static inline int8_t i8_clamp(int32_t q, int32_t qlo, int32_t qhi)
{
    return (int8_t)(q < qlo ? qlo : q > qhi ? qhi : q);
}

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

/* One output plane's int32 sums of a convolution (max pooling: its maxima,
 * w NULL): acc[oy * out_w + ox] over cin input planes, plane c at
 * base + off[c] (bytes), with weights w[c][kh][kw]. */
static void i8_window_sums(int32_t* restrict acc, const int8_t* base, const int64_t* off, int64_t cin,
                           const int8_t* w, int32_t zero,
                           int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                           int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t dh, int64_t dw)
{
    int64_t npix = out_h * out_w, c, ky, kx, oy, ox, ox0, ox1, i;
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

/* int8 outputs from sums: mult per output channel (mult_step 0) or per
 * pixel (1: average pooling's divisors); res, if not NULL, added as above. */
static void i8_store_q(int8_t* restrict out, const int32_t* acc, int64_t n, int32_t bias,
                       const float* mult, int64_t mult_step, int32_t zero, int32_t qlo, int32_t qhi,
                       const int8_t* res, int32_t res_zero, float res_mult)
{
    int64_t i;
    if (res != NULL) {
        for (i = 0; i < n; i++) {
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
    int64_t i;
    for (i = 0; i < n; i++)
        out[i] = i8_clamp(i8_round(x[i] * inv_scale) + zero, qlo, qhi);
}

/* int8 -> float32: (q - zero) * scale */
static void i8_dequantize(float* restrict out, const int8_t* q, int64_t n, int32_t zero, float scale)
{
    int64_t i;
    for (i = 0; i < n; i++)
        out[i] = (float)((int32_t)q[i] - zero) * scale;
}

#endif
