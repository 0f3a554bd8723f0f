/* Register-blocked microkernels.  Names say data type, op, tile and that the
 * ISA comes from simd.h (one source, compiled once per build's ISA).
 *
 * Tensors live in an arena as one plane per channel (H*W floats, the stride
 * padded to ENGINE_PLANE_ALIGN); a tensor is a table of plane offsets, so a
 * kernel reads and writes channels through offset tables and a channel
 * shuffle, split or concat is only a different table: no bytes move. */
#ifndef ENGINE_UKERNELS_H
#define ENGINE_UKERNELS_H

#include "simd.h"

#define ENGINE_ALWAYS_INLINE static inline __attribute__((always_inline))

/* GEMM tile over channel planes, NV vectors of pixels wide:
 *   for r < mr:  C_r[n0 : n0 + NV*VLEN] = clamp(bias[r] + sum_k a[k][r] * B_k[n0 : ...])
 * where B_k = src + b_off[k] and C_r = dst + c_off[r].  `a` is packed
 * [K][GEMM_MR] (rows past the matrix are zero), `bias` has GEMM_MR entries. */
ENGINE_ALWAYS_INLINE void f32_gemm_tile(
        int64_t K, const float* restrict a, const float* restrict bias,
        const float* src, const int64_t* restrict b_off, int64_t n0,
        float* dst, const int64_t* restrict c_off, int mr,
        float lo, float hi, const int NV) {
    vf acc[GEMM_MR][GEMM_NV];
    for (int r = 0; r < GEMM_MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = vf_set1(bias[r]);
    for (int64_t k = 0; k < K; k++) {
        const float* b = src + b_off[k] + n0;
        vf bv[GEMM_NV];
        for (int v = 0; v < NV; v++) bv[v] = vf_loadu(b + v * VLEN);
        for (int r = 0; r < GEMM_MR; r++) {
            vf ar = vf_set1(a[r]);
            for (int v = 0; v < NV; v++) acc[r][v] = vf_fma(ar, bv[v], acc[r][v]);
        }
        a += GEMM_MR;
    }
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi);
    for (int r = 0; r < mr; r++) {
        float* c = dst + c_off[r] + n0;
        for (int v = 0; v < NV; v++)
            vf_storeu(c + v * VLEN, vf_min(vhi, vf_max(vlo, acc[r][v])));
    }
}

/* the full-width tile and the one-vector tile for a plane's last pixels */
static void f32_gemm_tile_mr_x2v(int64_t K, const float* a, const float* bias,
        const float* src, const int64_t* b_off, int64_t n0,
        float* dst, const int64_t* c_off, int mr, float lo, float hi) {
    f32_gemm_tile(K, a, bias, src, b_off, n0, dst, c_off, mr, lo, hi, GEMM_NV);
}
static void f32_gemm_tile_mr_x1v(int64_t K, const float* a, const float* bias,
        const float* src, const int64_t* b_off, int64_t n0,
        float* dst, const int64_t* c_off, int mr, float lo, float hi) {
    f32_gemm_tile(K, a, bias, src, b_off, n0, dst, c_off, mr, lo, hi, 1);
}

/* Fully connected tile, vectorised over outputs (a GEMV: one pixel per image):
 *   y[o] = clamp(bias[o] + sum_k w[k][o] * x_k)    for o < LINEAR_NO
 * with x_k = src[x_off[k]] and w packed [K][LINEAR_NO].  Writes LINEAR_NO
 * contiguous floats to y (a scratch row the caller scatters). */
#define LINEAR_NV 4
#define LINEAR_NO (LINEAR_NV * VLEN)
static void f32_linear_tile(int64_t K, const float* restrict w, const float* restrict bias,
        const float* src, const int64_t* restrict x_off, float* restrict y,
        float lo, float hi) {
    vf acc[LINEAR_NV];
    for (int v = 0; v < LINEAR_NV; v++) acc[v] = vf_loadu(bias + v * VLEN);
    for (int64_t k = 0; k < K; k++) {
        vf xk = vf_set1(src[x_off[k]]);
        for (int v = 0; v < LINEAR_NV; v++)
            acc[v] = vf_fma(xk, vf_loadu(w + v * VLEN), acc[v]);
        w += LINEAR_NO;
    }
    const vf vlo = vf_set1(lo), vhi = vf_set1(hi);
    for (int v = 0; v < LINEAR_NV; v++)
        vf_storeu(y + v * VLEN, vf_min(vhi, vf_max(vlo, acc[v])));
}

#endif
