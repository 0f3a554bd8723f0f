/* The vector type of the NEON kernels (aarch64, armv7): 4 float lanes, 32
 * registers on aarch64 and 16 on armv7.  The neon_dot module (ARMv8.2-A
 * dotprod + fp16) uses it too, under its own kernel names. */
#ifndef ENGINE_SIMD_NEON_H
#define ENGINE_SIMD_NEON_H
#if !defined(__ARM_NEON) && !defined(__ARM_NEON__)
#error "simd_neon.h needs NEON (armv7: -mfpu=neon-vfpv4; variants.py)"
#endif
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <arm_neon.h>
#ifdef ENGINE_ISA_NEON_DOT
#define ENGINE_SIMD_ISA "neon_dot"
#else
#define ENGINE_SIMD_ISA "neon"
#endif
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
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
/* a and b interleaved: *lo = a0 b0 a1 b1, *hi = a2 b2 a3 b3 */
static inline void vf_zip(vf a, vf b, vf* lo, vf* hi) {
#if defined(__aarch64__)
    *lo = vzip1q_f32(a, b);
    *hi = vzip2q_f32(a, b);
#else
    const float32x4x2_t z = vzipq_f32(a, b);
    *lo = z.val[0];
    *hi = z.val[1];
#endif
}
/* lanes a[1], ..., a[VLEN - 1], b[0]: a vector one lane on (Winograd's framing) */
static inline vf vf_shift_in(vf a, vf b) { return vextq_f32(a, b, 1); }
static inline vf vf_max_nan(vf acc, vf x) { return vmaxq_f32(acc, x); }   /* NEON max keeps NaN */
static inline float vf_hsum(vf v) {
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}
/* the first n < 4 lanes: lane stores (a memcpy is a library call) */
static inline void vf_store_partial(float* p, vf v, int n) {
    if (n >= 2) vst1_f32(p, vget_low_f32(v));
    if (n == 1) vst1q_lane_f32(p, v, 0);
    else if (n == 3) vst1q_lane_f32(p + 2, v, 2);
}
static inline vf vf_load_s2(const float* p) { return vld2q_f32(p).val[0]; }
/* 16 floats as their four phases: one LD4 */
#define ENGINE_LOAD_QUADS 1
static inline void vf_load_quads(const float* p, vf* v) {
    const float32x4x4_t x = vld4q_f32(p);
    v[0] = x.val[0];
    v[1] = x.val[1];
    v[2] = x.val[2];
    v[3] = x.val[3];
}
/* p[0], p[2], ... into *even and p[1], p[3], ... into *odd: one LD2 */
#define ENGINE_LOAD_PAIRS 1
static inline void vf_load_pairs(const float* p, vf* even, vf* odd) {
    const float32x4x2_t x = vld2q_f32(p);
    *even = x.val[0];
    *odd = x.val[1];
}
typedef uint32x4_t vmask;
static inline vmask vf_mask(const int32_t* flags) { return vreinterpretq_u32_s32(vld1q_s32(flags)); }
static inline vf vf_load_masked(const float* p, vmask m, vf fill) {
    return vbslq_f32(m, vld1q_f32(p), fill);
}
static inline vf vf_select(vmask m, vf x, vf fill) { return vbslq_f32(m, x, fill); }
#if defined(__aarch64__)
/* acc + b * a[lane], FMLA by element: the GEMM tile takes its rows' weights
 * as vectors this way instead of broadcasting each (ukernels.h: a broadcast
 * is an instruction of its own on NEON, free inside an x86 FMA).  The lane
 * is a constant once the tile's loops are unrolled. */
#define ENGINE_FMA_LANE 1
/* n vectors to p (n <= 3): pairs by STP, in asm: an ST1 of two registers
 * needs them consecutive (where registers run short GCC moves them through
 * the stack), and left to itself GCC stores a pair as two STRs beside an
 * address computed for the second */
#define ENGINE_STOREU_N 1
static inline void vf_storeu_n(float* p, const vf* v, int n) {
    if (n == 1) { vst1q_f32(p, v[0]); return; }
    __asm__("stp %q1, %q2, [%3]" : "=m"(*(float (*)[8])p) : "w"(v[0]), "w"(v[1]), "r"(p));
    if (n == 3) vst1q_f32(p + 8, v[2]);
}
/* v[0 .. n) = n vectors from p: one LD1 of n registers (n <= 4) */
#define ENGINE_LOADU_N 1
static inline void vf_loadu_n(vf* v, const float* p, int n) {
    if (n == 1) { v[0] = vld1q_f32(p); }
    else if (n == 2) { float32x4x2_t x = vld1q_f32_x2(p); v[0] = x.val[0]; v[1] = x.val[1]; }
    else if (n == 3) { float32x4x3_t x = vld1q_f32_x3(p); v[0] = x.val[0]; v[1] = x.val[1]; v[2] = x.val[2]; }
    else { float32x4x4_t x = vld1q_f32_x4(p); v[0] = x.val[0]; v[1] = x.val[1]; v[2] = x.val[2]; v[3] = x.val[3]; }
}
static inline vf vf_fma_lane(vf acc, vf b, vf a, int lane) {
    switch (lane) {
    case 0: return vfmaq_laneq_f32(acc, b, a, 0);
    case 1: return vfmaq_laneq_f32(acc, b, a, 1);
    case 2: return vfmaq_laneq_f32(acc, b, a, 2);
    default: return vfmaq_laneq_f32(acc, b, a, 3);
    }
}
#endif

/* dst[i * 4 + j] = src[j][x + i]: 4 pixels of 4 channels as 4 pixel
 * vectors, one ST4 (ukernels.h: the interleaved depthwise frame) */
#define ENGINE_INTERLEAVE 1
static inline void vf_interleave(float* dst, const float* const* src, int64_t x) {
    const float32x4x4_t v = {{vld1q_f32(src[0] + x), vld1q_f32(src[1] + x), vld1q_f32(src[2] + x),
                              vld1q_f32(src[3] + x)}};
    vst4q_f32(dst, v);
}
#if defined(__aarch64__)
/* dst[j][x + i] = lane j of v[i] for 4 pixel vectors v: the 4x4 transposed
 * by two TRN1/TRN2 pairs and ZIP1/ZIP2 of halves, then a store per channel
 * (ST4 of a lane per channel would be 4 instructions, but GCC moves its
 * operands through the stack into the 4 consecutive registers it needs) */
#define ENGINE_STORE_LANES4 1
static inline void vf_store_lanes4(float* const* dst, int64_t x, const vf* v) {
    const float64x2_t a0 = vreinterpretq_f64_f32(vtrn1q_f32(v[0], v[1]));
    const float64x2_t a1 = vreinterpretq_f64_f32(vtrn2q_f32(v[0], v[1]));
    const float64x2_t b0 = vreinterpretq_f64_f32(vtrn1q_f32(v[2], v[3]));
    const float64x2_t b1 = vreinterpretq_f64_f32(vtrn2q_f32(v[2], v[3]));
    vst1q_f32(dst[0] + x, vreinterpretq_f32_f64(vzip1q_f64(a0, b0)));
    vst1q_f32(dst[1] + x, vreinterpretq_f32_f64(vzip1q_f64(a1, b1)));
    vst1q_f32(dst[2] + x, vreinterpretq_f32_f64(vzip2q_f64(a0, b0)));
    vst1q_f32(dst[3] + x, vreinterpretq_f32_f64(vzip2q_f64(a1, b1)));
}
#endif
/* 3x3, 5x5 and 7x7 windows run interleaved (ukernels.h: f32_window_interleaved):
 * no lane of a narrow row is wasted, no lane mask needed (under qemu,
 * ShuffleNetV2 x1.0's depthwise and pooling layers 6.9 -> 4.4 M
 * instructions, from framed planes; NanoDet-Plus-m 320's 5x5 ones 28.7 ->
 * 15.3 M, from flat planes; ShuffleNetV2+'s 7x7 ones 6.98 -> 2.57 M, from
 * rows and flat planes) */
#define ENGINE_INTERLEAVED_SIDES ((1 << 3) | (1 << 5) | (1 << 7))

#ifdef ENGINE_ISA_NEON_DOT
#define ENGINE_ISA_TAG neon_dot /* kernel names end in _neon_dot or _neon (ENGINE_ISA_NAME) */
#else
#define ENGINE_ISA_TAG neon
#endif

#if defined(__aarch64__)
/* fully connected tile: 8 vectors of outputs, 8 FMLAs per input's broadcast */
#define LINEAR_NV 8
/* GEMM tile rows: 12 x 2 accumulators, 2 vectors of pixels and 3 of the
 * rows' weights in 32 registers; per k 24 FMLAs and 3 other instructions
 * (the asm reduction of ukernels_neon.h) */
#define GEMM_MR 12
#define GEMM_MR_SHORT 8
#define GEMM_MR_NARROW 8
#else
/* armv7's 16 registers: 6 x 2 accumulators, 2 loads and a broadcast */
#define GEMM_MR 6
#define GEMM_MR_SHORT 4
#define GEMM_MR_NARROW 4
#endif

#endif
