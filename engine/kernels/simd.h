/* One float vector type `vf` of VLEN lanes and the handful of operations the
 * kernels need, for each instruction set the engine is built for.  The ISA is
 * chosen at compile time (setup.py: ENGINE_ISA=native|avx2|scalar ...), so a
 * kernel is written once against this header and every build exercises the
 * same source.  ENGINE_FORCE_SCALAR selects the plain C path on any machine. */
#ifndef ENGINE_SIMD_H
#define ENGINE_SIMD_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(__AVX512F__) && !defined(ENGINE_FORCE_SCALAR)
#include <immintrin.h>
#define ENGINE_SIMD_ISA "avx512"
#define VLEN 16
#define ENGINE_VREGS 32     /* vector registers (register-blocked kernels size their tiles by it) */
typedef __m512 vf;
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_loadu(const float* p) { return _mm512_loadu_ps(p); }
static inline void vf_storeu(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* max that keeps a NaN of either operand, as PyTorch's max pooling does */
static inline vf vf_max_nan(vf acc, vf x) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_max_ps(x, acc), x);
}
static inline float vf_hsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline void vf_store_partial(float* p, vf v, int n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), v);
}
/* the even (odd) lanes of a then b: a[0], a[2], ..., b[14] (a[1], ..., b[15]) */
static inline vf vf_even_lanes(vf a, vf b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
                                                      14, 12, 10, 8, 6, 4, 2, 0), b);
}
static inline vf vf_odd_lanes(vf a, vf b) {
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17,
                                                      15, 13, 11, 9, 7, 5, 3, 1), b);
}
/* lanes p[0], p[2], ..., p[2*VLEN-2] (reads p[0 .. 2*VLEN-1]) */
static inline vf vf_load_s2(const float* p) { return vf_even_lanes(vf_loadu(p), vf_loadu(p + 16)); }
/* lanes flags[i] != 0 of a table of -1/0 flags, decoded once for many loads */
typedef __mmask16 vmask;
static inline vmask vf_mask(const int32_t* flags) {
    __m512i v = _mm512_loadu_si512((const void*)flags);
    return _mm512_test_epi32_mask(v, v);
}
/* lanes p[i] where m has lane i, else fill (p[i] of other lanes is not read) */
static inline vf vf_load_masked(const float* p, vmask m, vf fill) {
    return _mm512_mask_loadu_ps(fill, m, p);
}
/* lanes of x where m has the lane, else fill */
static inline vf vf_select(vmask m, vf x, vf fill) { return _mm512_mask_blend_ps(m, fill, x); }

#elif defined(__AVX2__) && defined(__FMA__) && !defined(ENGINE_FORCE_SCALAR)
#include <immintrin.h>
#define ENGINE_SIMD_ISA "avx2"
#define VLEN 8
#define ENGINE_VREGS 16
typedef __m256 vf;
static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_loadu(const float* p) { return _mm256_loadu_ps(p); }
static inline void vf_storeu(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_max_nan(vf acc, vf x) {
    return _mm256_blendv_ps(_mm256_max_ps(x, acc), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
static inline float vf_hsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline void vf_store_partial(float* p, vf v, int n) {
    static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0, 0, 0, 0, 0, 0, 0, 0};
    __m256i mask = _mm256_loadu_si256((const __m256i*)(ones_then_zeros + 8 - n));
    _mm256_maskstore_ps(p, mask, v);
}
static inline vf vf_load_s2(const float* p) {
    __m256 t = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8),
                                 _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t),
                                                  _MM_SHUFFLE(3, 1, 2, 0)));
}
typedef __m256 vmask;       /* the flags themselves: blendv reads each lane's top bit */
static inline vmask vf_mask(const int32_t* flags) {
    return _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)flags));
}
/* reads all of p[0 .. VLEN), keeps the lanes m has */
static inline vf vf_load_masked(const float* p, vmask m, vf fill) {
    return _mm256_blendv_ps(fill, _mm256_loadu_ps(p), m);
}
static inline vf vf_select(vmask m, vf x, vf fill) { return _mm256_blendv_ps(fill, x, m); }

#elif (defined(__ARM_NEON) || defined(__ARM_NEON__)) && !defined(ENGINE_FORCE_SCALAR)
#include <arm_neon.h>
#define ENGINE_SIMD_ISA "neon"
#define VLEN 4
#if defined(__aarch64__)
#define ENGINE_VREGS 32
#else
#define ENGINE_VREGS 16
#endif
typedef float32x4_t vf;
static inline vf vf_zero(void) { return vdupq_n_f32(0.0f); }
static inline vf vf_set1(float x) { return vdupq_n_f32(x); }
static inline vf vf_loadu(const float* p) { return vld1q_f32(p); }
static inline void vf_storeu(float* p, vf v) { vst1q_f32(p, v); }
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
static inline vf vf_fma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
#else
static inline vf vf_fma(vf a, vf b, vf c) { return vmlaq_f32(c, a, b); }
#endif
static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
static inline vf vf_max_nan(vf acc, vf x) { return vmaxq_f32(acc, x); }   /* NEON max keeps NaN */
static inline float vf_hsum(vf v) {
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}
static inline void vf_store_partial(float* p, vf v, int n) {
    float tmp[4];
    vst1q_f32(tmp, v);
    memcpy(p, tmp, (size_t)n * sizeof(float));
}
static inline vf vf_load_s2(const float* p) { return vld2q_f32(p).val[0]; }
typedef uint32x4_t vmask;
static inline vmask vf_mask(const int32_t* flags) { return vreinterpretq_u32_s32(vld1q_s32(flags)); }
static inline vf vf_load_masked(const float* p, vmask m, vf fill) {
    return vbslq_f32(m, vld1q_f32(p), fill);
}
static inline vf vf_select(vmask m, vf x, vf fill) { return vbslq_f32(m, x, fill); }

#else
#define ENGINE_SIMD_ISA "scalar"
#define VLEN 1
#define ENGINE_VREGS 16
typedef float vf;
static inline vf vf_zero(void) { return 0.0f; }
static inline vf vf_set1(float x) { return x; }
static inline vf vf_loadu(const float* p) { return *p; }
static inline void vf_storeu(float* p, vf v) { *p = v; }
static inline vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
/* as x86's maxps/minps: b when either is NaN, so clamp(bound, x) keeps x's NaN */
static inline vf vf_max(vf a, vf b) { return a > b ? a : b; }
static inline vf vf_min(vf a, vf b) { return a < b ? a : b; }
static inline vf vf_max_nan(vf acc, vf x) { return (x != x || x > acc) ? x : acc; }
static inline float vf_hsum(vf v) { return v; }
static inline void vf_store_partial(float* p, vf v, int n) { if (n > 0) *p = v; }
static inline vf vf_load_s2(const float* p) { return *p; }
typedef int32_t vmask;
static inline vmask vf_mask(const int32_t* flags) { return flags[0]; }
static inline vf vf_load_masked(const float* p, vmask m, vf fill) { return m ? *p : fill; }
static inline vf vf_select(vmask m, vf x, vf fill) { return m ? x : fill; }
#endif

/* lanes p[0], p[s], ..., p[(VLEN-1)*s]: the window kernels' input row */
static inline vf vf_load_strided(const float* p, int64_t s) {
    if (s == 1) return vf_loadu(p);
    if (s == 2) return vf_load_s2(p);
    float lanes[VLEN];
    for (int i = 0; i < VLEN; i++) lanes[i] = p[i * s];
    return vf_loadu(lanes);
}

/* Plane strides are padded to this many floats (64 bytes) for every ISA, so a
 * model planned on one machine lays out memory the same way on any other, and
 * element-wise kernels can run whole vectors to the end of each plane. */
#define ENGINE_PLANE_ALIGN 16

/* Rows of the GEMM register tile (output channels), and vectors of pixels per
 * tile: sized so that MR x NV accumulators plus NV loads fit the register file. */
#if VLEN == 16
#define GEMM_MR 12
#elif VLEN == 8
#define GEMM_MR 6
#elif VLEN == 4
#define GEMM_MR 8
#else
#define GEMM_MR 4
#endif
#define GEMM_NV 2
#define GEMM_NR (GEMM_NV * VLEN)
#define GEMM_NV_MAX 3           /* the widest tile (ukernels.h: f32_gemm_tile_narrow_x3v1) */
#define GEMM_EXTRA_MAX 4        /* pixels a tile may take past its vectors, rows as lanes */
/* shorter tiles for layers whose output channels (per group) they divide
 * with fewer rows left empty: ShuffleNet V1's 20 and 40 on AVX-512 (short),
 * MobileNetV2's 16, 32 and 64 (narrow; as short where the tall tile is small) */
#define GEMM_MR_SHORT (GEMM_MR - 2)
#define GEMM_MR_NARROW (GEMM_MR >= 12 ? GEMM_MR - 4 : GEMM_MR_SHORT)

#endif
