/* The plain C "vector" of the scalar kernels: one float lane.  The fallback
 * for any CPU, and what the vector kernels are tested against.  In the
 * scalar_fp16 module the elements are halves, each widened as it is loaded
 * and rounded as it is stored: fp16 storage, float arithmetic. */
#ifndef ENGINE_SIMD_SCALAR_H
#define ENGINE_SIMD_SCALAR_H

#include <stdint.h>
#include <string.h>
#include <math.h>
#ifdef ENGINE_F16
#define ENGINE_SIMD_ISA "scalar_fp16"
#else
#define ENGINE_SIMD_ISA "scalar"
#endif
#define VLEN 1
#define ENGINE_VREGS 16
typedef float vf;
static inline vf vf_zero(void) { return 0.0f; }
static inline vf vf_set1(float x) { return x; }
static inline vf vf_loadu(const ef* p) { return *p; }
static inline void vf_storeu(ef* p, vf v) { *p = v; }
static inline vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vf_add(vf a, vf b) { return a + b; }
static inline vf vf_sub(vf a, vf b) { return a - b; }
static inline vf vf_mul(vf a, vf b) { return a * b; }
/* as x86's maxps/minps: b when either is NaN, so clamp(bound, x) keeps x's NaN */
static inline vf vf_max(vf a, vf b) { return a > b ? a : b; }
static inline vf vf_min(vf a, vf b) { return a < b ? a : b; }
/* a and b interleaved (one lane each) */
static inline void vf_zip(vf a, vf b, vf* lo, vf* hi) { *lo = a; *hi = b; }
/* lanes a[1], ..., a[VLEN - 1], b[0]: a vector one lane on (Winograd's framing) */
static inline vf vf_shift_in(vf a, vf b) { (void)a; return b; }
static inline vf vf_max_nan(vf acc, vf x) { return (x != x || x > acc) ? x : acc; }
static inline float vf_hsum(vf v) { return v; }
static inline void vf_store_partial(ef* p, vf v, int n) { if (n > 0) *p = v; }
static inline vf vf_load_s2(const ef* p) { return *p; }
typedef int32_t vmask;
static inline vmask vf_mask(const int32_t* flags) { return flags[0]; }
static inline vf vf_load_masked(const ef* p, vmask m, vf fill) { return m ? *p : fill; }
static inline vf vf_select(vmask m, vf x, vf fill) { return m ? x : fill; }

#ifdef ENGINE_F16
#define ENGINE_ISA_TAG scalar_fp16
#else
#define ENGINE_ISA_TAG scalar     /* kernel names end in _scalar (ENGINE_ISA_NAME) */
#endif
#define GEMM_MR 4
#define GEMM_MR_SHORT 2
#define GEMM_MR_NARROW 2

#endif
