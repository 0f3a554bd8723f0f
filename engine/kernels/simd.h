/* One float vector type `vf` of VLEN lanes and the handful of operations the
 * kernels need.  A kernel is written once against it; each kernel module of
 * a build (variants.py) is compiled with one ENGINE_ISA_ macro, which picks
 * the ISA's header here, with its own flags, and suffixes its kernels' names
 * with the ISA (f32_gemm_12x2v_avx512): every build exercises the same source. */
#ifndef ENGINE_SIMD_H
#define ENGINE_SIMD_H

/* ef: the element type of the module's tensors, weights and scratch: float,
 * or IEEE half in the fp16 modules (ENGINE_F16: neon_fp16, scalar_fp16).
 * The kernels read and write ef and compute in vf (halves on neon_fp16,
 * floats on scalar_fp16); scalars handed to them (bias of one channel, clamp
 * bounds, padding values) stay float. */
#if defined(ENGINE_ISA_NEON_FP16) || defined(ENGINE_ISA_SCALAR_FP16)
#define ENGINE_F16 1
#if defined(__aarch64__) || defined(__arm__)
typedef __fp16 ef;              /* arm_neon.h's float16_t */
#else
typedef _Float16 ef;
#endif
#else
typedef float ef;
#endif

#if defined(ENGINE_ISA_AVX512)
#include "simd_avx512.h"
#elif defined(ENGINE_ISA_AVX2)
#include "simd_avx2.h"
#elif defined(ENGINE_ISA_NEON) || defined(ENGINE_ISA_NEON_DOT)
#include "simd_neon.h"
#elif defined(ENGINE_ISA_NEON_FP16)
#include "simd_neon_fp16.h"
#elif defined(ENGINE_ISA_SCALAR) || defined(ENGINE_ISA_SCALAR_FP16)
#include "simd_scalar.h"
#else
#error "a kernel module is compiled with one ENGINE_ISA_ macro (engine/kernels/variants.py)"
#endif

/* a kernel's name with its ISA's: ENGINE_ISA_NAME(f32_linear_tile) is
 * f32_linear_tile_avx512 in the AVX-512 module (profiles and disassembly
 * say which ISA ran) */
#define ENGINE_CAT_(a, b) a##b
#define ENGINE_CAT(a, b) ENGINE_CAT_(a, b)
#define ENGINE_ISA_NAME(name) ENGINE_CAT(name, ENGINE_CAT(_, ENGINE_ISA_TAG))

/* y clamped to [lo, hi]; a NaN in y passes (the ISAs' max and min keep it) */
static inline vf vf_clamp(vf y, vf lo, vf hi) { return vf_min(hi, vf_max(lo, y)); }

/* leaky ReLU (PReLU): y >= 0 ? y : slope * y, exactly (max(0, y) + slope *
 * min(0, y): one of the two is zero), y second in max and min so that a NaN
 * passes, as it does in PyTorch */
static inline vf vf_leaky(vf y, vf slope) { return vf_fma(slope, vf_min(vf_zero(), y), vf_max(vf_zero(), y)); }

#ifndef ENGINE_STOREU_N
/* n vectors to p */
static inline void vf_storeu_n(ef* p, const vf* v, int n) {
    for (int i = 0; i < n; i++) vf_storeu(p + i * VLEN, v[i]);
}
#endif

#ifndef ENGINE_LOADU_N
/* v[0 .. n) = n vectors from p (NEON aarch64: one LD1) */
static inline void vf_loadu_n(vf* v, const ef* p, int n) {
    for (int i = 0; i < n; i++) v[i] = vf_loadu(p + i * VLEN);
}
#endif

#ifndef ENGINE_LOAD_PAIRS
/* p[0], p[2], ... into *even and p[1], p[3], ... into *odd (NEON: one LD2) */
static inline void vf_load_pairs(const ef* p, vf* even, vf* odd) {
    *even = vf_load_s2(p);
    *odd = vf_load_s2(p + 1);
}
#endif

/* lanes p[0], p[s], ..., p[(VLEN-1)*s]: the window kernels' input row */
static inline vf vf_load_strided(const ef* p, int64_t s) {
    if (s == 1) return vf_loadu(p);
    if (s == 2) return vf_load_s2(p);
    ef lanes[VLEN];
    for (int i = 0; i < VLEN; i++) lanes[i] = p[i * s];
    return vf_loadu(lanes);
}

#ifndef ENGINE_LOAD_QUADS
/* v[j] = p[j], p[4 + j], ..., p[4 (VLEN - 1) + j] for j < 4: 4 * VLEN floats
 * as their four phases (NEON: one LD4) */
static inline void vf_load_quads(const ef* p, vf* v) {
    for (int j = 0; j < 4; j++) {
        ef lanes[VLEN];
        for (int i = 0; i < VLEN; i++) lanes[i] = p[4 * i + j];
        v[j] = vf_loadu(lanes);
    }
}
#endif

/* dst[i * VLEN + j] = src[j][x + i] for i < n <= VLEN, j < VLEN: n pixels
 * of VLEN channels as n pixel vectors, no float past x + n read; with n =
 * VLEN, vf_interleave (NEON: one ST4; AVX: shuffles) */
static inline void vf_interleave_floats(ef* dst, const ef* const* src, int64_t x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < VLEN; j++) dst[i * VLEN + j] = src[j][x + i];
}
#ifndef ENGINE_INTERLEAVE
static inline void vf_interleave(ef* dst, const ef* const* src, int64_t x) {
    vf_interleave_floats(dst, src, x, VLEN);
}
#endif
#ifndef ENGINE_INTERLEAVE_N
#define vf_interleave_n vf_interleave_floats
#endif

#ifndef ENGINE_STORE_LANES_N
/* dst[j][x + i] = lane j of v[i], for n <= 4 pixel vectors v and j < VLEN:
 * pixel vectors of VLEN channels back to the channels' planes (AVX: shuffles) */
static inline void vf_store_lanes_n(ef* const* dst, int64_t x, const vf* v, int n) {
    ef lanes[4][VLEN];
    for (int i = 0; i < n; i++) vf_storeu(lanes[i], v[i]);
    for (int j = 0; j < VLEN; j++)
        for (int i = 0; i < n; i++) dst[j][x + i] = lanes[i][j];
}
#endif

#ifndef ENGINE_STORE_LANES4
/* vf_store_lanes_n of 4 (NEON aarch64: a 4x4 transpose and a store per channel) */
static inline void vf_store_lanes4(ef* const* dst, int64_t x, const vf* v) {
    vf_store_lanes_n(dst, x, v, 4);
}
#endif

#ifndef ENGINE_INTERLEAVED_SIDES
#define ENGINE_INTERLEAVED_SIDES 0   /* bit k: the planner runs k x k windows interleaved by default */
#endif
#ifndef ENGINE_INTERLEAVED_SIDES_S2
#define ENGINE_INTERLEAVED_SIDES_S2 ENGINE_INTERLEAVED_SIDES    /* ... those of stride 2 */
#endif


/* Plane strides are padded to this many floats (64 bytes) for every ISA, so a
 * model planned on one machine lays out memory the same way on any other, and
 * element-wise kernels can run whole vectors to the end of each plane. */
#define ENGINE_PLANE_ALIGN 16

/* Vectors of pixels per GEMM tile (its rows, GEMM_MR and the shorter
 * GEMM_MR_SHORT and GEMM_MR_NARROW, are the ISA header's): sized so that
 * MR x NV accumulators plus NV loads fit the register file. */
#define GEMM_NV 2
#define GEMM_NR (GEMM_NV * VLEN)
#define GEMM_NV_MAX 3           /* the widest tile (ukernels.h: f32_gemm_8x3v1_avx512) */
#define GEMM_EXTRA_MAX 4        /* pixels a tile may take past its vectors, rows as lanes */
/* (the shorter tiles are for layers whose output channels per group they
 * divide with fewer rows left empty: ShuffleNet V1's 20 and 40 on AVX-512
 * (short), MobileNetV2's 16, 32 and 64 (narrow; the same as short where the
 * tall tile is small)) */

#endif
