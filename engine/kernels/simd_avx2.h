/* The vector type of the AVX2 + FMA kernels (x86-64): 8 float lanes, 16 registers. */
#ifndef ENGINE_SIMD_AVX2_H
#define ENGINE_SIMD_AVX2_H
#if !defined(__AVX2__) || !defined(__FMA__)
#error "simd_avx2.h needs -mavx2 -mfma (variants.py)"
#endif
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>
#define ENGINE_SIMD_ISA "avx2"
#define VLEN 8
#define ENGINE_VREGS 16
/* 3x3, 5x5 and 7x7 windows run interleaved (ukernels.h: f32_window_interleaved),
 * at strides 1 and 2.  Measured on AVX2, Zen 3, 1 thread, per-layer medians:
 * 5x5 from flat planes, NanoDet-Plus-m 320's layers 1.94 -> 1.63 ms at stride
 * 1, 0.38 -> 0.21 ms at stride 2; 3x3 at stride 2 from rows, MobileNetV2's
 * 192-channel 28 -> 14 0.075 -> 0.047 ms, its fused 1x1 + 3x3s2 at 56x56
 * 0.450 -> 0.381; 3x3 at stride 1 from flat planes once row tails were plain
 * stores (vf_store_partial), MobileNetV2's 0.098 -> 0.073 ms at 28x28, 0.048
 * -> 0.043 at 14x14, MNASNet's 0.120 -> 0.101 at 56x56, NanoDet-Plus-m 320
 * 12.29 -> 12.20 ms whole (7x7 planes 0.035 -> 0.038: flat would keep those);
 * _S2: the same (simd.h) */
#define ENGINE_INTERLEAVED_SIDES ((1 << 3) | (1 << 5) | (1 << 7))
typedef __m256 vf;
static inline vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline vf vf_loadu(const float* p) { return _mm256_loadu_ps(p); }
static inline void vf_storeu(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
/* a and b interleaved: *lo = a0 b0 a1 b1 .. a3 b3, *hi = a4 b4 .. a7 b7 */
static inline void vf_zip(vf a, vf b, vf* lo, vf* hi) {
    const __m256 l = _mm256_unpacklo_ps(a, b), h = _mm256_unpackhi_ps(a, b);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
/* lanes a[1], ..., a[VLEN - 1], b[0]: a vector one lane on (Winograd's framing) */
static inline vf vf_shift_in(vf a, vf b) {
    const __m256i t = _mm256_castps_si256(_mm256_permute2f128_ps(a, b, 0x21));     /* a's high half, b's low */
    return _mm256_castsi256_ps(_mm256_alignr_epi8(t, _mm256_castps_si256(a), 4));
}
static inline vf vf_max_nan(vf acc, vf x) {
    return _mm256_blendv_ps(_mm256_max_ps(x, acc), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
static inline float vf_hsum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
/* the first n < 4 floats of q to p, by plain stores of 2 and 1 floats (a
 * masked store takes ~12 cycles on Zen 3) */
static inline void vf_store4_n(float* p, __m128 q, int n) {
    if (n >= 2) { _mm_storel_pi((__m64*)p, q); q = _mm_movehl_ps(q, q); p += 2; }
    if (n & 1) _mm_store_ss(p, q);
}
static inline void vf_store_partial(float* p, vf v, int n) {
    if (n >= 8) { _mm256_storeu_ps(p, v); return; }
    __m128 q = _mm256_castps256_ps128(v);
    if (n >= 4) { _mm_storeu_ps(p, q); q = _mm256_extractf128_ps(v, 1); p += 4; n -= 4; }
    vf_store4_n(p, q, n);
}
static inline vf vf_load_s2(const float* p) {
    __m256 t = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8),
                                 _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t),
                                                  _MM_SHUFFLE(3, 1, 2, 0)));
}
/* Phases of consecutive vectors (Winograd's framed rows): x[0], x[1] as
 * their even and odd floats (v[0], v[1]); x[0..4) as their four phases,
 * v[j] = floats j, 4 + j, ...: a 4x4 transpose in each 128-bit half gives
 * x0 x8 x16 x24 | x4 x12 x20 x28 (phase 0), ...; a permutation puts each in
 * order */
static inline void vf_unzip2(const vf* x, vf* v) {
    const __m256 e = _mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 o = _mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 1, 3, 1));
    v[0] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    v[1] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline void vf_unzip4(const vf* x, vf* v) {
    __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
    __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    v[0] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), order);
    v[1] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)), order);
    v[2] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), order);
    v[3] = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)), order);
}
/* 32 floats as their four phases */
#define ENGINE_LOAD_QUADS 1
static inline void vf_load_quads(const float* p, vf* v) {
    const vf x[4] = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)};
    vf_unzip4(x, v);
}
/* lanes row[c + i] for 0 <= c + i < n, zeros elsewhere; nothing outside
 * row[0 .. n) read (a masked load) */
#define ENGINE_LOAD_RANGE 1
static inline vf vf_load_range(const float* row, int64_t c, int64_t n) {
    if (c >= 0 && c + 8 <= n) return _mm256_loadu_ps(row + c);
    const __m256i i = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)c));
    const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
                                           _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), i));
    return _mm256_maskload_ps(row + c, in);
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

/* The interleaved windows' transposes (simd_avx512.h's, 8 lanes).
 * vf_quads: u[k] lane 4L + i = v[i] lane 4L + k (i, k < 4; L the 128-bit lane). */
static inline void vf_quads(const vf* v, vf* u) {
    const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(v[0], v[1]));
    const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(v[0], v[1]));
    const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(v[2], v[3]));
    const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(v[2], v[3]));
    u[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
    u[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
    u[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
    u[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
}
/* dst[i * VLEN + j] = src[j][x + i] for i < n <= VLEN (no float past x + n read) */
#define ENGINE_INTERLEAVE 1
#define ENGINE_INTERLEAVE_N 1
static inline void vf_interleave_n(float* dst, const float* const* src, int64_t x, int64_t n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    vf rows[8], u[8];
    for (int j = 0; j < 8; j++) rows[j] = _mm256_maskload_ps(src[j] + x, m);
    vf_quads(rows, u);
    vf_quads(rows + 4, u + 4);
    for (int k = 0; k < 4; k++) {
        if (k < n) vf_storeu(dst + k * VLEN, _mm256_permute2f128_ps(u[k], u[4 + k], 0x20));
        if (4 + k < n) vf_storeu(dst + (4 + k) * VLEN, _mm256_permute2f128_ps(u[k], u[4 + k], 0x31));
    }
}
static inline void vf_interleave(float* dst, const float* const* src, int64_t x) {
    vf_interleave_n(dst, src, x, VLEN);
}
/* dst[j][x + i] = lane j of v[i], i < n <= 4: a 128-bit store per channel (n < 4: vf_store4_n) */
#define ENGINE_STORE_LANES_N 1
static inline void vf_store_lanes_n(float* const* dst, int64_t x, const vf* v, int n) {
    const vf w[4] = {v[0], v[n > 1], v[2 * (n > 2)], v[3 * (n > 3)]};     /* (lanes past n: any) */
    vf u[4];
    vf_quads(w, u);
    for (int k = 0; k < 4; k++) {
        const __m128 q[2] = {_mm256_castps256_ps128(u[k]), _mm256_extractf128_ps(u[k], 1)};
        for (int L = 0; L < 2; L++) {
            if (n == 4) _mm_storeu_ps(dst[4 * L + k] + x, q[L]);
            else vf_store4_n(dst[4 * L + k] + x, q[L], n);
        }
    }
}

#define ENGINE_ISA_TAG avx2     /* kernel names end in _avx2 (ENGINE_ISA_NAME) */
/* GEMM tile rows: 6 x 2 accumulators and 2 loads fit 16 registers.  The
 * tiles do not prefetch their pixels (ENGINE_PREFETCH): on a Zen 3 without, ShuffleNetV2
 * x1.0 ran 9-19 % and NanoDet-Plus-m 320 6-7 % faster (1 thread, interleaved
 * A/B rounds; the AVX-512 build's prefetch was measured faster on a Xeon) */
#define GEMM_MR 6
#define GEMM_MR_SHORT 4
#define GEMM_MR_NARROW 4
/* the GEMM tile prefetches its packed weights this many k ahead: Winograd's
 * transformed weights (4-17 MB a ResNet-18 layer) stream from memory, and
 * the hardware prefetcher alone left them late (Zen 4, 1 thread, A/B by
 * process: ResNet-18 24.4 -> 22.3 ms with AVX-512, 26.6 -> 23.7 with AVX2;
 * ShuffleNetV2 x1.5 and SqueezeNet 1-4 % faster; 32 to 128 k alike, 16
 * slower).  NEON's do not (an instruction a k, unmeasured on a Pi). */
#define ENGINE_PREFETCH_WEIGHTS 64
/* a GEMM call's pixel tiles in blocks of K planes x 16 KB (f32_gemm_block_tiles):
 * with all row tiles per pixel tile, a 1x1 from few channels on a large plane
 * wrote each output plane a tile's two vectors at a time (Zen 3, 1 thread, per-layer medians,
 * old vs new alternating: MobileNetV3-large's 16 -> 16 at 112x112 0.246 -> 0.151 ms,
 * 24 -> 72 at 56x56 0.155 -> 0.140; layers of 128 channels and more unchanged) */
#define ENGINE_GEMM_BLOCK_BYTES 16384

#endif
