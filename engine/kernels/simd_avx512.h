/* The vector type of the AVX-512 kernels (x86-64): 16 float lanes, 32 registers. */
#ifndef ENGINE_SIMD_AVX512_H
#define ENGINE_SIMD_AVX512_H
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || !defined(__AVX512DQ__)
#error "simd_avx512.h needs -mavx512f -mavx512bw -mavx512vl -mavx512dq (variants.py)"
#endif
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <immintrin.h>
#define ENGINE_SIMD_ISA "avx512"
#define VLEN 16
#define ENGINE_VREGS 32     /* vector registers (register-blocked kernels size their tiles by it) */
/* 5x5 and 7x7 windows run interleaved, as on AVX2 (simd_avx2.h; Zen 4, ShuffleNetV2+'s
 * 7x7 stride-2 layers 0.157 -> 0.105 ms, its 14x14 stride-1 one 0.042 -> 0.033) */
#define ENGINE_INTERLEAVED_SIDES ((1 << 5) | (1 << 7))
typedef __m512 vf;
static inline vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline vf vf_loadu(const float* p) { return _mm512_loadu_ps(p); }
static inline void vf_storeu(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
/* a and b interleaved: *lo = a0 b0 a1 b1 .. a7 b7, *hi = a8 b8 .. a15 b15 */
static inline void vf_zip(vf a, vf b, vf* lo, vf* hi) {
    *lo = _mm512_permutex2var_ps(a, _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0), b);
    *hi = _mm512_permutex2var_ps(a, _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8), b);
}
/* lanes a[1], ..., a[VLEN - 1], b[0]: a vector one lane on (Winograd's framing) */
static inline vf vf_shift_in(vf a, vf b) {
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(b), _mm512_castps_si512(a), 1));
}
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

/* The interleaved windows' transposes (ukernels.h: f32_window_interleaved),
 * by shuffles where the generic ones (simd.h) move a float at a time through
 * memory: that made 5x5 windows slower interleaved than flat on Zen 4.
 * vf_quads: u[k] lane 4L + i = v[i] lane 4L + k (i, k < 4; L the 128-bit
 * lane): 4 vectors transposed within each 128-bit lane. */
static inline void vf_quads(const vf* v, vf* u) {
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(v[0], v[1]));
    const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(v[0], v[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(v[2], v[3]));
    const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(v[2], v[3]));
    u[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
}
/* Phases of consecutive vectors (Winograd's framed rows): x[0], x[1] as
 * their even and odd floats (v[0], v[1]); x[0..4) as their four phases,
 * v[j] = floats j, 4 + j, ...: within each 128-bit lane a 4x4 transpose puts
 * float i = 4k + L of phase j at lane 4L + k, one permutation in order */
static inline void vf_unzip2(const vf* x, vf* v) {
    v[0] = vf_even_lanes(x[0], x[1]);
    v[1] = vf_odd_lanes(x[0], x[1]);
}
static inline void vf_unzip4(const vf* x, vf* v) {
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    vf u[4];
    vf_quads(x, u);
    for (int j = 0; j < 4; j++) v[j] = _mm512_permutexvar_ps(order, u[j]);
}
/* lanes row[c + i] for 0 <= c + i < n, zeros elsewhere; nothing outside
 * row[0 .. n) read (a masked load) */
#define ENGINE_LOAD_RANGE 1
static inline vf vf_load_range(const float* row, int64_t c, int64_t n) {
    if (c >= 0 && c + 16 <= n) return _mm512_loadu_ps(row + c);
    const int64_t lo = c < 0 ? -c : 0, hi = n - c < 16 ? n - c : 16;
    if (hi <= lo) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps((__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)), row + c);
}
/* p[0], p[2], ... into *even and p[1], p[3], ... into *odd: two loads, not the generic four */
#define ENGINE_LOAD_PAIRS 1
static inline void vf_load_pairs(const float* p, vf* even, vf* odd) {
    const vf x[2] = {vf_loadu(p), vf_loadu(p + 16)};
    vf v[2];
    vf_unzip2(x, v);
    *even = v[0];
    *odd = v[1];
}
/* rows[j] lane i -> dst[i * VLEN + j] for i < n (16x16 transposed: quads of
 * 4 rows, then their 128-bit lanes gathered across) */
static inline void vf_transpose_store(float* dst, const vf* rows, int64_t n) {
    vf u[16];
    for (int q = 0; q < 4; q++) vf_quads(rows + 4 * q, u + 4 * q);
    for (int k = 0; k < 4; k++) {
        /* (0x88: lanes 0 and 2 of each operand, 0xDD: lanes 1 and 3) */
        const vf a = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88), b = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
        const vf c = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
        const vf d = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
        const vf col[4] = {_mm512_shuffle_f32x4(a, c, 0x88), _mm512_shuffle_f32x4(b, d, 0x88),
                           _mm512_shuffle_f32x4(a, c, 0xDD), _mm512_shuffle_f32x4(b, d, 0xDD)};
        for (int L = 0; L < 4; L++)
            if (4 * L + k < n) vf_storeu(dst + (4 * L + k) * VLEN, col[L]);
    }
}
/* dst[i * VLEN + j] = src[j][x + i] for i < n <= VLEN: n pixels of VLEN
 * channels as pixel vectors (no float past x + n read) */
#define ENGINE_INTERLEAVE 1
#define ENGINE_INTERLEAVE_N 1
static inline void vf_interleave_n(float* dst, const float* const* src, int64_t x, int64_t n) {
    const __mmask16 m = (__mmask16)((1u << n) - 1u);
    vf rows[16];
    for (int j = 0; j < 16; j++) rows[j] = _mm512_maskz_loadu_ps(m, src[j] + x);
    vf_transpose_store(dst, rows, n);
}
static inline void vf_interleave(float* dst, const float* const* src, int64_t x) {
    vf_interleave_n(dst, src, x, VLEN);
}
/* dst[j][x + i] = lane j of v[i], i < n <= 4: pixel vectors back to the
 * channels' planes, a 128-bit store per channel (masked: n < 4) */
#define ENGINE_STORE_LANES_N 1
static inline void vf_store_lanes_n(float* const* dst, int64_t x, const vf* v, int n) {
    const vf w[4] = {v[0], v[n > 1], v[2 * (n > 2)], v[3 * (n > 3)]};     /* (lanes past n: any) */
    vf u[4];
    vf_quads(w, u);
    const __mmask8 m = (__mmask8)((1u << n) - 1u);
    for (int k = 0; k < 4; k++) {
        const __m128 q[4] = {_mm512_castps512_ps128(u[k]), _mm512_extractf32x4_ps(u[k], 1),
                             _mm512_extractf32x4_ps(u[k], 2), _mm512_extractf32x4_ps(u[k], 3)};
        for (int L = 0; L < 4; L++) {
            if (n == 4) _mm_storeu_ps(dst[4 * L + k] + x, q[L]);
            else _mm_mask_storeu_ps(dst[4 * L + k] + x, m, q[L]);
        }
    }
}

/* Column kj < 3 of a stride-2 window row: lanes p[2i + kj].  The three
 * columns come from three loads (the even and odd lanes of two vectors, and
 * the even ones moved a lane), where vf_load_s2 per column makes six, each
 * unaligned load crossing a cache line (window kernels: ENGINE_S2_COLUMNS). */
#define ENGINE_S2_COLUMNS 1
static inline vf vf_s2_column(const float* p, int64_t kj) {
    const vf a = vf_loadu(p), b = vf_loadu(p + VLEN);
    if (kj == 0) return vf_even_lanes(a, b);
    if (kj == 1) return vf_odd_lanes(a, b);
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(vf_loadu(p + 2 * VLEN)),
                                                   _mm512_castps_si512(vf_even_lanes(a, b)), 1));
}

#define ENGINE_ISA_TAG avx512     /* kernel names end in _avx512 (ENGINE_ISA_NAME) */
/* GEMM tile rows (output channels): 12 x 2 accumulators and 2 loads fit 32
 * registers; 10 and 8 for layers whose channels they divide better */
/* the GEMM and fully connected tiles prefetch what they read next (measured
 * faster here; NEON's do not: an instruction per load, unmeasured on a Pi) */
#define ENGINE_PREFETCH 1
/* the GEMM tile prefetches its packed weights this many k ahead: Winograd's
 * transformed weights (4-17 MB a ResNet-18 layer) stream from memory, and
 * the hardware prefetcher alone left them late (Zen 4, 1 thread, A/B by
 * process: ResNet-18 24.4 -> 22.3 ms with AVX-512, 26.6 -> 23.7 with AVX2;
 * ShuffleNetV2 x1.5 and SqueezeNet 1-4 % faster; 32 to 128 k alike, 16
 * slower).  NEON's do not (an instruction a k, unmeasured on a Pi). */
#define ENGINE_PREFETCH_WEIGHTS 64
#define GEMM_MR 12
#define GEMM_MR_SHORT 10
#define GEMM_MR_NARROW 8

#endif
