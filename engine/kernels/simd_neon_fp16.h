/* The vector type of the fp16 kernels for aarch64 with FP16 arithmetic
 * (ARMv8.2-A: Cortex-A55/A76, Pi 5): 8 half lanes, so each FMLA does twice
 * the work of the fp32 module's.  Tensors, weights and scratch are halves
 * (ef: __fp16); the scalars the kernels are given (bias, bounds) stay float. */
#ifndef ENGINE_SIMD_NEON_FP16_H
#define ENGINE_SIMD_NEON_FP16_H
#if !defined(__aarch64__) || !defined(__ARM_FEATURE_FP16_VECTOR_ARITHMETIC)
#error "simd_neon_fp16.h needs aarch64 with -march=armv8.2-a+fp16 (variants.py)"
#endif
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <arm_neon.h>
#define ENGINE_SIMD_ISA "neon_fp16"
#define VLEN 8
#define ENGINE_VREGS 32
typedef float16x8_t vf;
static inline vf vf_zero(void) { return vdupq_n_f16(0); }
static inline vf vf_set1(float x) { return vdupq_n_f16((float16_t)x); }
static inline vf vf_loadu(const ef* p) { return vld1q_f16(p); }
static inline void vf_storeu(ef* p, vf v) { vst1q_f16(p, v); }
static inline vf vf_fma(vf a, vf b, vf c) { return vfmaq_f16(c, a, b); }
static inline vf vf_add(vf a, vf b) { return vaddq_f16(a, b); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f16(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f16(a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f16(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f16(a, b); }
/* a and b interleaved: *lo = a0 b0 a1 b1 a2 b2 a3 b3, *hi = the upper halves' */
static inline void vf_zip(vf a, vf b, vf* lo, vf* hi) {
    *lo = vzip1q_f16(a, b);
    *hi = vzip2q_f16(a, b);
}
/* lanes a[1], ..., a[VLEN - 1], b[0]: a vector one lane on (Winograd's framing) */
static inline vf vf_shift_in(vf a, vf b) { return vextq_f16(a, b, 1); }
static inline vf vf_max_nan(vf acc, vf x) { return vmaxq_f16(acc, x); }   /* NEON max keeps NaN */
/* the sum in float: the two halves widened, then added */
static inline float vf_hsum(vf v) {
    return vaddvq_f32(vaddq_f32(vcvt_f32_f16(vget_low_f16(v)), vcvt_high_f32_f16(v)));
}
/* the first n < 8 lanes: 4, 2 and 1 lanes stored by lane stores */
static inline void vf_store_partial(ef* p, vf v, int n) {
    if (n & 4) { vst1_f16(p, vget_low_f16(v)); v = vextq_f16(v, v, 4); p += 4; }
    if (n & 2) { vst1q_lane_f16(p, v, 0); vst1q_lane_f16(p + 1, v, 1); v = vextq_f16(v, v, 2); p += 2; }
    if (n & 1) vst1q_lane_f16(p, v, 0);
}
static inline vf vf_load_s2(const ef* p) { return vld2q_f16(p).val[0]; }
#define ENGINE_LOAD_PAIRS 1
static inline void vf_load_pairs(const ef* p, vf* even, vf* odd) {
    const float16x8x2_t x = vld2q_f16(p);
    *even = x.val[0];
    *odd = x.val[1];
}
/* lane flags (0 or -1, one int32 per lane) narrowed to the halves' mask */
typedef uint16x8_t vmask;
static inline vmask vf_mask(const int32_t* flags) {
    return vcombine_u16(vmovn_u32(vld1q_u32((const uint32_t*)flags)),
                        vmovn_u32(vld1q_u32((const uint32_t*)flags + 4)));
}
static inline vf vf_load_masked(const ef* p, vmask m, vf fill) { return vbslq_f16(m, vld1q_f16(p), fill); }
static inline vf vf_select(vmask m, vf x, vf fill) { return vbslq_f16(m, x, fill); }
/* acc + b * a[lane], FMLA by element (ukernels.h's GEMM tile, as in simd_neon.h) */
#define ENGINE_FMA_LANE 1
static inline vf vf_fma_lane(vf acc, vf b, vf a, int lane) {
    switch (lane) {
    case 0: return vfmaq_laneq_f16(acc, b, a, 0);
    case 1: return vfmaq_laneq_f16(acc, b, a, 1);
    case 2: return vfmaq_laneq_f16(acc, b, a, 2);
    case 3: return vfmaq_laneq_f16(acc, b, a, 3);
    case 4: return vfmaq_laneq_f16(acc, b, a, 4);
    case 5: return vfmaq_laneq_f16(acc, b, a, 5);
    case 6: return vfmaq_laneq_f16(acc, b, a, 6);
    default: return vfmaq_laneq_f16(acc, b, a, 7);
    }
}

/* dst[i * 8 + j] = src[j][x + i]: 8 pixels of 8 channels as 8 pixel vectors
 * (ukernels.h: the interleaved depthwise frame).  ZIP1/ZIP2 pair channels
 * 2j and 2j + 1 pixel by pixel, then ST4 of those pairs as 32-bit lanes
 * puts each pixel's four pairs side by side: 18 instructions for 64 halves
 * (an 8x8 transpose by TRN1/TRN2 and its stores took 41) */
#define ENGINE_INTERLEAVE 1
static inline void vf_interleave(ef* dst, const ef* const* src, int64_t x) {
    uint32x4x4_t lo, hi;
    for (int j = 0; j < 4; j++) {
        const vf a = vld1q_f16(src[2 * j] + x), b = vld1q_f16(src[2 * j + 1] + x);
        lo.val[j] = vreinterpretq_u32_f16(vzip1q_f16(a, b));
        hi.val[j] = vreinterpretq_u32_f16(vzip2q_f16(a, b));
    }
    vst4q_u32((uint32_t*)dst, lo);
    vst4q_u32((uint32_t*)(dst + 32), hi);
    /* the frame is stored as 32-bit lanes and read as halves: no reordering
     * across the two by type-based aliasing (no instruction) */
    __asm__ volatile("" ::: "memory");
}
/* dst[j][x + i] = lane j of v[i] for 4 pixel vectors v: a 4x8 transpose by
 * TRN1/TRN2 of halves and of pairs, then each channel's 4 pixels stored
 * (channels j and j + 4 share a register) */
#define ENGINE_STORE_LANES4 1
static inline void vf_store_lanes4(ef* const* dst, int64_t x, const vf* v) {
    const uint32x4_t a0 = vreinterpretq_u32_f16(vtrn1q_f16(v[0], v[1]));
    const uint32x4_t a1 = vreinterpretq_u32_f16(vtrn2q_f16(v[0], v[1]));
    const uint32x4_t b0 = vreinterpretq_u32_f16(vtrn1q_f16(v[2], v[3]));
    const uint32x4_t b1 = vreinterpretq_u32_f16(vtrn2q_f16(v[2], v[3]));
    const vf c[4] = {vreinterpretq_f16_u32(vtrn1q_u32(a0, b0)), vreinterpretq_f16_u32(vtrn1q_u32(a1, b1)),
                     vreinterpretq_f16_u32(vtrn2q_u32(a0, b0)), vreinterpretq_f16_u32(vtrn2q_u32(a1, b1))};
    for (int j = 0; j < 4; j++) {
        vst1_f16(dst[j] + x, vget_low_f16(c[j]));
        vst1_f16(dst[j + 4] + x, vget_high_f16(c[j]));
    }
}
/* ukernels.h's ef_from_f32 by vectors (GCC leaves the loop of __fp16 stores scalar) */
#define ENGINE_EF_FROM_F32 1
static inline void ef_from_f32(ef* restrict dst, const float* restrict src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_f16(dst + i, vcombine_f16(vcvt_f16_f32(vld1q_f32(src + i)), vcvt_f16_f32(vld1q_f32(src + i + 4))));
    for (; i < n; i++) dst[i] = (ef)src[i];
}
/* 3x3, 5x5 and 7x7 windows run interleaved, as in fp32 (simd_neon.h; ShuffleNetV2+'s
 * 7x7 layers 4.60 -> 1.30 M instructions) */
#define ENGINE_INTERLEAVED_SIDES ((1 << 3) | (1 << 5) | (1 << 7))

#define ENGINE_ISA_TAG neon_fp16  /* kernel names end in _neon_fp16 (ENGINE_ISA_NAME) */
/* the fully connected tile: 8 vectors of outputs, as in fp32 */
#define LINEAR_NV 8
/* GEMM tile rows: 12 x 2 accumulators of 8 halves (16 pixels), as simd_neon.h's */
#define GEMM_MR 12
#define GEMM_MR_SHORT 8
#define GEMM_MR_NARROW 8

#endif
