/* NEON (aarch64) kernels beside the generic ones of ukernels.h, which
 * includes this in the NEON modules only, before the GEMM tile. */
#ifndef ENGINE_UKERNELS_NEON_H
#define ENGINE_UKERNELS_NEON_H
#if defined(__aarch64__)

/* The reduction of the 12- and 8-row, 2-vector GEMM tiles (ukernels.h:
 * f32_gemm_tile, whose C loop these replace): acc[r][v] = bias[r] +
 * sum_k a[k][r] * B_k[v], B_k two vectors at src + b_off[k], along the runs
 * of b_run.  In asm for what the compiler does not emit from intrinsics: the
 * B load with its register post-increment (one LD1, not LDP and ADD), and
 * sixteen k per loop turn without spilling the accumulators: per k two LD1s
 * and the FMLAs (12 rows: 26.1 instructions for 24 FMLAs, where the C loop
 * takes 29; four k a turn took 26.5, eight 26.25).
 * The accumulators are v0-v23 (outputs only: an asm takes at most 30
 * operands), v24-v30 the two k's B and the rows' weights, x9-x16 the walk
 * along the runs.  Tiles of one vector the same way (12 rows: 14 instructions
 * a k for 12 FMLAs; ResNet-18's one-vector tiles, their stores included, 1.58
 * instructions per FMLA by the C loop, 1.34 so).  ENGINE_GEMM_REDUCE(MR, NV):
 * whether MR rows of NV vectors have one (f32_gemm_reduce_neon). */
#define ENGINE_GEMM_REDUCE(MR, NV) (((MR) == 12 || (MR) == 8) && ((NV) == 1 || (NV) == 2))

/* The element in the asm: its arrangement (E), a lane of it (E_LANE), its
 * bytes as a shift (E_SHIFT) and in full (E_BYTES).  In fp16 (neon_fp16) a
 * vector holds 8, and FMLA by element takes an .h lane from v0-v15 only: the
 * weights and B go to v0-v5 there (fp32: v24-v30), the accumulators to the
 * registers left. */
#ifdef ENGINE_F16
#define E ".8h"
#define E_LANE ".h"
#define E_SHIFT "1"
#define E_BYTES "2"
#define B0 "v2"
#define B1 "v3"
#define B2 "v4"
#define B3 "v5"
#define REDUCE_CLOBBERS "x8", "v0", "v1", "v2", "v3", "v4", "v5"
#else
#define E ".4s"
#define E_LANE ".s"
#define E_SHIFT "2"
#define E_BYTES "4"
#define B0 "v24"
#define B1 "v25"
#define B2 "v29"
#define B3 "v30"
#define REDUCE_CLOBBERS "v24", "v25", "v26", "v27", "v28", "v29", "v30"
#endif

/* acc operand i += B vector bv times lane l of weights av */
#define F(i, bv, av, l) "fmla %" #i E ", " bv E ", " av E_LANE "[" #l "]\n\t"
/* four rows (accumulator operands i0 .. i7) from lanes l .. l+3 of av */
#define ROWS4(i0, i1, i2, i3, i4, i5, i6, i7, b0, b1, av, l0, l1, l2, l3) \
    F(i0, b0, av, l0) F(i1, b1, av, l0) F(i2, b0, av, l1) F(i3, b1, av, l1) \
    F(i4, b0, av, l2) F(i5, b1, av, l2) F(i6, b0, av, l3) F(i7, b1, av, l3)
#define B_LOAD(b0, b1) "ld1 {" b0 E ", " b1 E "}, [x14], x15\n\t"
/* the same for one B vector (tiles of one vector: a row's or a band's last pixels) */
#define ROWS4_1(i0, i1, i2, i3, b0, av, l0, l1, l2, l3) \
    F(i0, b0, av, l0) F(i1, b0, av, l1) F(i2, b0, av, l2) F(i3, b0, av, l3)
#define B_LOAD_1(b0) "ld1 {" b0 E "}, [x14], x15\n\t"
#ifdef ENGINE_F16
/* 12 rows' weights: 24 bytes, two vectors loaded (the packing's slack) and x8 = 24 stepped */
#define W12 "ld1 {v0.8h, v1.8h}, [x9], x8\n\t"
#define W12_SETUP "mov x8, #24\n\t"
#define K12(b0, b1) B_LOAD(b0, b1) W12 \
    ROWS4(0, 1, 2, 3, 4, 5, 6, 7, b0, b1, "v0", 0, 1, 2, 3) \
    ROWS4(8, 9, 10, 11, 12, 13, 14, 15, b0, b1, "v0", 4, 5, 6, 7) \
    ROWS4(16, 17, 18, 19, 20, 21, 22, 23, b0, b1, "v1", 0, 1, 2, 3)
#define K8(b0, b1) B_LOAD(b0, b1) "ld1 {v0.8h}, [x9], #16\n\t" \
    ROWS4(0, 1, 2, 3, 4, 5, 6, 7, b0, b1, "v0", 0, 1, 2, 3) \
    ROWS4(8, 9, 10, 11, 12, 13, 14, 15, b0, b1, "v0", 4, 5, 6, 7)
#define K12_1(b0, b1) B_LOAD_1(b0) W12 \
    ROWS4_1(0, 1, 2, 3, b0, "v0", 0, 1, 2, 3) ROWS4_1(4, 5, 6, 7, b0, "v0", 4, 5, 6, 7) \
    ROWS4_1(8, 9, 10, 11, b0, "v1", 0, 1, 2, 3)
#define K8_1(b0, b1) B_LOAD_1(b0) "ld1 {v0.8h}, [x9], #16\n\t" \
    ROWS4_1(0, 1, 2, 3, b0, "v0", 0, 1, 2, 3) ROWS4_1(4, 5, 6, 7, b0, "v0", 4, 5, 6, 7)
#else
#define W12_SETUP ""
#define K12(b0, b1) B_LOAD(b0, b1) "ld1 {v26.4s, v27.4s, v28.4s}, [x9], #48\n\t" \
    ROWS4(0, 1, 2, 3, 4, 5, 6, 7, b0, b1, "v26", 0, 1, 2, 3) \
    ROWS4(8, 9, 10, 11, 12, 13, 14, 15, b0, b1, "v27", 0, 1, 2, 3) \
    ROWS4(16, 17, 18, 19, 20, 21, 22, 23, b0, b1, "v28", 0, 1, 2, 3)
#define K8(b0, b1) B_LOAD(b0, b1) "ld1 {v26.4s, v27.4s}, [x9], #32\n\t" \
    ROWS4(0, 1, 2, 3, 4, 5, 6, 7, b0, b1, "v26", 0, 1, 2, 3) \
    ROWS4(8, 9, 10, 11, 12, 13, 14, 15, b0, b1, "v27", 0, 1, 2, 3)
#define K12_1(b0, b1) B_LOAD_1(b0) "ld1 {v26.4s, v27.4s, v28.4s}, [x9], #48\n\t" \
    ROWS4_1(0, 1, 2, 3, b0, "v26", 0, 1, 2, 3) ROWS4_1(4, 5, 6, 7, b0, "v27", 0, 1, 2, 3) \
    ROWS4_1(8, 9, 10, 11, b0, "v28", 0, 1, 2, 3)
#define K8_1(b0, b1) B_LOAD_1(b0) "ld1 {v26.4s, v27.4s}, [x9], #32\n\t" \
    ROWS4_1(0, 1, 2, 3, b0, "v26", 0, 1, 2, 3) ROWS4_1(4, 5, 6, 7, b0, "v27", 0, 1, 2, 3)
#endif
/* row r's accumulators (operands i, j) start at bias[r] */
#define BIAS(i, j) "ld1r {%" #i E "}, [x16], #" E_BYTES "\n\tmov %" #j ".16b, %" #i ".16b\n\t"
#define BIAS_1(i) "ld1r {%" #i E "}, [x16], #" E_BYTES "\n\t"
/* the asm's run operand: NULL for K > 1 planes of one run (b_step >= 0:
 * ONE_RUN; an asm takes at most 30 operands, none left for b_step) */
static inline const int64_t* f32_runs_or_one(const int64_t* b_run, int64_t b_step, int64_t K) {
    return b_step >= 0 && K > 1 ? NULL : b_run;
}
/* the walk: for each run, n = min(b_run[k], K - k) planes from src + b_off[k],
 * the step between them in bytes (0 for a run of one), then K_STEP n times.
 * ONE_RUN: with run NULL the K (> 1) planes are one run: straight to the loop
 * over them, the step from the first two offsets. */
#define ONE_RUN \
        "cbnz %[run], 3f\n\t" \
        "ldp x13, x15, [%[off]]\n\t" \
        "add x14, %[src], x13, lsl #" E_SHIFT "\n\t" \
        "sub x15, x15, x13\n\t" \
        "lsl x15, x15, #" E_SHIFT "\n\t" \
        "mov x11, %[K]\n\t" \
        "b 4f\n"
/* k steps in turn with the two B registers each (one loads while the other is used) */
#define TWO(K_STEP) K_STEP(B0, B1) K_STEP(B2, B3)
#define FOUR(K_STEP) TWO(K_STEP) TWO(K_STEP)
#define EIGHT(K_STEP) FOUR(K_STEP) FOUR(K_STEP)
#define REDUCE(K_STEP, FIRST) \
        "mov x9, %[a]\n\t" \
        "mov x10, #0\n\t" \
        FIRST \
        "3:\n\t" \
        "cmp x10, %[K]\n\t" \
        "b.ge 5f\n\t" \
        "ldr x11, [%[run], x10, lsl #3]\n\t" \
        "sub x12, %[K], x10\n\t" \
        "cmp x11, x12\n\t" \
        "csel x11, x11, x12, le\n\t" \
        "add x12, %[off], x10, lsl #3\n\t" \
        "ldr x13, [x12]\n\t" \
        "add x14, %[src], x13, lsl #" E_SHIFT "\n\t" \
        "mov x15, #0\n\t" \
        "cmp x11, #1\n\t" \
        "b.le 4f\n\t" \
        "ldr x15, [x12, #8]\n\t" \
        "sub x15, x15, x13\n\t" \
        "lsl x15, x15, #" E_SHIFT "\n" \
        "4:\n\t" \
        "add x10, x10, x11\n\t" \
        "tbz x11, #0, 1f\n\t"            /* an odd count: one k first */ \
        K_STEP(B0, B1) \
        "subs x11, x11, #1\n\t" \
        "b.eq 3b\n" \
        "1:\n\t" \
        "tbz x11, #1, 6f\n\t"            /* then two, four and eight, to a multiple of 16 */ \
        TWO(K_STEP) \
        "subs x11, x11, #2\n\t" \
        "b.eq 3b\n" \
        "6:\n\t" \
        "tbz x11, #2, 7f\n\t" \
        FOUR(K_STEP) \
        "subs x11, x11, #4\n\t" \
        "b.eq 3b\n" \
        "7:\n\t" \
        "tbz x11, #3, 2f\n\t" \
        EIGHT(K_STEP) \
        "subs x11, x11, #8\n\t" \
        "b.eq 3b\n" \
        "2:\n\t" \
        EIGHT(K_STEP) \
        EIGHT(K_STEP) \
        "subs x11, x11, #16\n\t" \
        "b.ne 2b\n\t" \
        "b 3b\n" \
        "5:\n\t"
#define OUT(r) "=w"(acc[r][0]), "=w"(acc[r][1])
#define IN [K] "r"(K), [a] "r"(a), [bias] "r"(bias), [src] "r"(src), [off] "r"(b_off), [run] "r"(b_run)
#define CLOBBERS "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", REDUCE_CLOBBERS, "cc", "memory"

ENGINE_ALWAYS_INLINE void f32_gemm_reduce_12x2_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K, const ef* a,
        const ef* bias, const ef* src, const int64_t* b_off, const int64_t* b_run) {
    __asm__("mov x16, %[bias]\n\t" W12_SETUP
            BIAS(0, 1) BIAS(2, 3) BIAS(4, 5) BIAS(6, 7) BIAS(8, 9) BIAS(10, 11)
            BIAS(12, 13) BIAS(14, 15) BIAS(16, 17) BIAS(18, 19) BIAS(20, 21) BIAS(22, 23)
            REDUCE(K12, ONE_RUN)
            : OUT(0), OUT(1), OUT(2), OUT(3), OUT(4), OUT(5), OUT(6), OUT(7), OUT(8), OUT(9), OUT(10), OUT(11)
            : IN : CLOBBERS);
}

ENGINE_ALWAYS_INLINE void f32_gemm_reduce_8x2_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K, const ef* a,
        const ef* bias, const ef* src, const int64_t* b_off, const int64_t* b_run) {
    __asm__("mov x16, %[bias]\n\t"
            BIAS(0, 1) BIAS(2, 3) BIAS(4, 5) BIAS(6, 7) BIAS(8, 9) BIAS(10, 11) BIAS(12, 13) BIAS(14, 15)
            REDUCE(K8, ONE_RUN)
            : OUT(0), OUT(1), OUT(2), OUT(3), OUT(4), OUT(5), OUT(6), OUT(7)
            : IN : CLOBBERS);
}

#define OUT_1(r) "=w"(acc[r][0])
ENGINE_ALWAYS_INLINE void f32_gemm_reduce_12x1_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K, const ef* a,
        const ef* bias, const ef* src, const int64_t* b_off, const int64_t* b_run) {
    __asm__("mov x16, %[bias]\n\t" W12_SETUP
            BIAS_1(0) BIAS_1(1) BIAS_1(2) BIAS_1(3) BIAS_1(4) BIAS_1(5)
            BIAS_1(6) BIAS_1(7) BIAS_1(8) BIAS_1(9) BIAS_1(10) BIAS_1(11)
            REDUCE(K12_1, ONE_RUN)
            : OUT_1(0), OUT_1(1), OUT_1(2), OUT_1(3), OUT_1(4), OUT_1(5), OUT_1(6), OUT_1(7), OUT_1(8),
              OUT_1(9), OUT_1(10), OUT_1(11)
            : IN : CLOBBERS);
}

ENGINE_ALWAYS_INLINE void f32_gemm_reduce_8x1_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K, const ef* a,
        const ef* bias, const ef* src, const int64_t* b_off, const int64_t* b_run) {
    __asm__("mov x16, %[bias]\n\t"
            BIAS_1(0) BIAS_1(1) BIAS_1(2) BIAS_1(3) BIAS_1(4) BIAS_1(5) BIAS_1(6) BIAS_1(7)
            REDUCE(K8_1, ONE_RUN)
            : OUT_1(0), OUT_1(1), OUT_1(2), OUT_1(3), OUT_1(4), OUT_1(5), OUT_1(6), OUT_1(7)
            : IN : CLOBBERS);
}

ENGINE_ALWAYS_INLINE void f32_gemm_reduce_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K, const ef* a,
        const ef* bias, const ef* src, const int64_t* b_off, const int64_t* b_run, int64_t b_step,
        const int MR, const int NV) {
    const int64_t* run = f32_runs_or_one(b_run, b_step, K);
    if (MR == 12 && NV == 2) f32_gemm_reduce_12x2_neon(acc, K, a, bias, src, b_off, run);
    else if (MR == 8 && NV == 2) f32_gemm_reduce_8x2_neon(acc, K, a, bias, src, b_off, run);
    else if (MR == 12) f32_gemm_reduce_12x1_neon(acc, K, a, bias, src, b_off, run);
    else f32_gemm_reduce_8x1_neon(acc, K, a, bias, src, b_off, run);
}

#ifndef ENGINE_F16
/* The extra pixels' pass (ukernels.h: ENGINE_GEMM_EXTRA_PASS): x.v[p][e] +=
 * sum_k a[k][4e ..] * B_k[p], p < EXTRA, along the runs as the reduction
 * above.  Per k one LD1 of the pixels (a lane, two lanes or a vector: past
 * the 3rd pixel, still inside the padded plane), one of the row weights
 * (v26-v28), and the FMLAs by the pixels' lanes: with one pixel 5
 * instructions for 3 FMLAs, where the C loop took 8 (a broadcast, an
 * address add). */
#define ENGINE_GEMM_EXTRA_PASS 1
#define W_0 "v26"
#define W_1 "v27"
#define W_2 "v28"
#define XF(p, e, b) "fmla %[x" #p #e "].4s, " W_##e ".4s, " b ".s[" #p "]\n\t"
#define XB1(b) "ld1 {" b ".s}[0], [x14], x15\n\t"
#define XB2(b) "ld1 {" b ".2s}, [x14], x15\n\t"
#define XB3(b) "ld1 {" b ".4s}, [x14], x15\n\t"
#define XB4(b) XB3(b)
#define XA3 "ld1 {v26.4s, v27.4s, v28.4s}, [x9], #48\n\t"
#define XA2 "ld1 {v26.4s, v27.4s}, [x9], #32\n\t"
#define XP3(p, b) XF(p, 0, b) XF(p, 1, b) XF(p, 2, b)
#define XP2(p, b) XF(p, 0, b) XF(p, 1, b)
/* one k of EXTRA pixels and EV weight vectors */
#define XK_3_1(b, unused) XB1(b) XA3 XP3(0, b)
#define XK_3_2(b, unused) XB2(b) XA3 XP3(0, b) XP3(1, b)
#define XK_3_3(b, unused) XB3(b) XA3 XP3(0, b) XP3(1, b) XP3(2, b)
#define XK_3_4(b, unused) XB4(b) XA3 XP3(0, b) XP3(1, b) XP3(2, b) XP3(3, b)
#define XK_2_1(b, unused) XB1(b) XA2 XP2(0, b)
#define XK_2_2(b, unused) XB2(b) XA2 XP2(0, b) XP2(1, b)
#define XK_2_3(b, unused) XB3(b) XA2 XP2(0, b) XP2(1, b) XP2(2, b)
#define XK_2_4(b, unused) XB4(b) XA2 XP2(0, b) XP2(1, b) XP2(2, b) XP2(3, b)
/* the accumulators of pixel p */
#define XO3(p) [x##p##0] "+w"(x.v[p][0]), [x##p##1] "+w"(x.v[p][1]), [x##p##2] "+w"(x.v[p][2])
#define XO2(p) [x##p##0] "+w"(x.v[p][0]), [x##p##1] "+w"(x.v[p][1])
#define XIN [K] "r"(K), [a] "r"(a), [src] "r"(src), [off] "r"(b_off), [run] "r"(run)
#define XCLOBBERS "x9", "x10", "x11", "x12", "x13", "x14", "x15", "v24", "v26", "v27", "v28", "v29", \
    "cc", "memory"
ENGINE_ALWAYS_INLINE f32_gemm_extras f32_gemm_extra_pass(f32_gemm_extras x, int64_t K, const float* a,
        const float* src, const int64_t* b_off, const int64_t* b_run, int64_t b_step,
        const int MR, const int EXTRA) {
    const int64_t* run = f32_runs_or_one(b_run, b_step, K);
#define X(EV, P, ...) \
    if (MR == 4 * EV && EXTRA == P) { \
        __asm__(REDUCE(XK_##EV##_##P, ONE_RUN) : __VA_ARGS__ : XIN : XCLOBBERS); \
        return x; \
    }
    X(3, 1, XO3(0))
    X(3, 2, XO3(0), XO3(1))
    X(3, 3, XO3(0), XO3(1), XO3(2))
    X(3, 4, XO3(0), XO3(1), XO3(2), XO3(3))
    X(2, 1, XO2(0))
    X(2, 2, XO2(0), XO2(1))
    X(2, 3, XO2(0), XO2(1), XO2(2))
    X(2, 4, XO2(0), XO2(1), XO2(2), XO2(3))
#undef X
    __builtin_unreachable();        /* (12 or 8 rows, 1-4 pixels: the tiles there are) */
}
#undef XCLOBBERS
#undef XIN
#undef XO2
#undef XO3
#undef XK_2_4
#undef XK_2_3
#undef XK_2_2
#undef XK_2_1
#undef XK_3_4
#undef XK_3_3
#undef XK_3_2
#undef XK_3_1
#undef XP2
#undef XP3
#undef XA2
#undef XA3
#undef XB4
#undef XB3
#undef XB2
#undef XB1
#undef XF
#undef W_2
#undef W_1
#undef W_0
#else
/* fp16: the extra pixels' pass in C, along the runs as the reduction (the
 * asm reduction leaves them; the fp32 pass's asm takes 4 rows a vector) */
#define ENGINE_GEMM_EXTRA_PASS 1
ENGINE_ALWAYS_INLINE f32_gemm_extras f32_gemm_extra_pass(f32_gemm_extras x, int64_t K, const ef* a,
        const ef* src, const int64_t* b_off, const int64_t* b_run, int64_t b_step,
        const int MR, const int EXTRA) {
    for (int64_t k = 0, step; k < K;) {
        int64_t n = b_step >= 0 ? (step = b_step, K) : f32_gemm_run(k, K, b_off, b_run, &step);
        const ef* b = src + b_off[k];
        k += n;
        for (; n > 0; n--, b += step, a += MR) x = f32_gemm_extra_k(x, a, b, MR, EXTRA);
    }
    return x;
}
#endif

/* The 3x3 depthwise block of the interleaved path, strides 1 and 2
 * (ukernels.h: f32_window_interleaved_block; 2 output rows of 4 pixels, a
 * vector of channels): acc[i][p] = init + sum of the taps over frame rows
 * r0 .. r0 + 2S.  In asm for the loads: each frame row's pixels (6 at stride
 * 1, 9 at stride 2) are LD1s of 4 registers and a last LD1 that steps to the
 * next row, into fixed registers (v20-v28); from intrinsics GCC moved the
 * LD1s' results out of the consecutive registers they need (stride 2: 172
 * instructions a block, 144 so).  fp32 and fp16 alike (E: the element's
 * arrangement). */
#define ENGINE_DW3X3_BLOCK 1
#define X0 "v20"
#define X1 "v21"
#define X2 "v22"
#define X3 "v23"
#define X4 "v24"
#define X5 "v25"
#define X6 "v26"
#define X7 "v27"
#define X8 "v28"
/* acc[i][p] += w[t] * frame pixel j of the row loaded */
#define FM(i, p, t, j) "fmla %[a" #i #p "]" E ", %[w" #t "]" E ", " X##j E "\n\t"
/* output row i's 4 pixels from the row loaded, under taps t0 t1 t2 of a tap row */
#define TAPS_S1(i, t0, t1, t2) \
    FM(i, 0, t0, 0) FM(i, 0, t1, 1) FM(i, 0, t2, 2) FM(i, 1, t0, 1) FM(i, 1, t1, 2) FM(i, 1, t2, 3) \
    FM(i, 2, t0, 2) FM(i, 2, t1, 3) FM(i, 2, t2, 4) FM(i, 3, t0, 3) FM(i, 3, t1, 4) FM(i, 3, t2, 5)
#define TAPS_S2(i, t0, t1, t2) \
    FM(i, 0, t0, 0) FM(i, 0, t1, 1) FM(i, 0, t2, 2) FM(i, 1, t0, 2) FM(i, 1, t1, 3) FM(i, 1, t2, 4) \
    FM(i, 2, t0, 4) FM(i, 2, t1, 5) FM(i, 2, t2, 6) FM(i, 3, t0, 6) FM(i, 3, t1, 7) FM(i, 3, t2, 8)
#define ROW_S1 "ld1 {v20" E "-v23" E "}, [%[r]], #64\n\t" "ld1 {v24" E ", v25" E "}, [%[r]], %[next]\n\t"
#define ROW_S2 "ld1 {v20" E "-v23" E "}, [%[r]], #64\n\t" "ld1 {v24" E "-v27" E "}, [%[r]], #64\n\t" \
    "ld1 {v28" E "}, [%[r]], %[next]\n\t"
#define INIT(i, p) "mov %[a" #i #p "].16b, %[init].16b\n\t"
#define INITS INIT(0, 0) INIT(0, 1) INIT(0, 2) INIT(0, 3) INIT(1, 0) INIT(1, 1) INIT(1, 2) INIT(1, 3)
#define DW_OUT [a00] "=&w"(acc[0][0]), [a01] "=&w"(acc[0][1]), [a02] "=&w"(acc[0][2]), [a03] "=&w"(acc[0][3]), \
    [a10] "=&w"(acc[1][0]), [a11] "=&w"(acc[1][1]), [a12] "=&w"(acc[1][2]), [a13] "=&w"(acc[1][3]), [r] "+r"(r0)
#define DW_IN [w0] "w"(wt[0]), [w1] "w"(wt[1]), [w2] "w"(wt[2]), [w3] "w"(wt[3]), [w4] "w"(wt[4]), \
    [w5] "w"(wt[5]), [w6] "w"(wt[6]), [w7] "w"(wt[7]), [w8] "w"(wt[8]), [init] "w"(vinit), [next] "r"(next)
ENGINE_ALWAYS_INLINE void f32_dw3x3_block_neon(vf acc[2][4], const ef* r0, int64_t fs, const vf* wt, vf vinit,
                                               const int S) {
    /* bytes from the last pixel loaded to the next row */
    const int64_t next = (fs - (S == 1 ? 4 : 8) * VLEN) * (int64_t)sizeof(ef);
    if (S == 1)
        __asm__(INITS
                ROW_S1 TAPS_S1(0, 0, 1, 2)
                ROW_S1 TAPS_S1(0, 3, 4, 5) TAPS_S1(1, 0, 1, 2)
                ROW_S1 TAPS_S1(0, 6, 7, 8) TAPS_S1(1, 3, 4, 5)
                ROW_S1 TAPS_S1(1, 6, 7, 8)
                : DW_OUT : DW_IN : "v20", "v21", "v22", "v23", "v24", "v25", "memory");
    else
        __asm__(INITS
                ROW_S2 TAPS_S2(0, 0, 1, 2)
                ROW_S2 TAPS_S2(0, 3, 4, 5)
                ROW_S2 TAPS_S2(0, 6, 7, 8) TAPS_S2(1, 0, 1, 2)
                ROW_S2 TAPS_S2(1, 3, 4, 5)
                ROW_S2 TAPS_S2(1, 6, 7, 8)
                : DW_OUT : DW_IN : "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "memory");
}
#undef DW_IN
#undef DW_OUT
#undef INITS
#undef ROW_S2
#undef ROW_S1
#undef TAPS_S2
#undef TAPS_S1
#undef INIT
#undef FM
#undef X8
#undef X7
#undef X6
#undef X5
#undef X4
#undef X3
#undef X2
#undef X1
#undef X0

#ifdef ENGINE_F16
/* The fully connected tile in fp16 (ukernels.h: f32_linear_tile, which calls
 * this): the same sums, kept in fp32.  A classifier's K (1024 in
 * ShuffleNetV2) summed in fp16 gave most of a model's fp16 error (a NumPy
 * emulation: 1.17 of ShuffleNetV2's 1.18 on logits up to 110, storage alone
 * 0.07; 0.26 measured with this tile), and Cortex-A76 has no widening FMLAL (FEAT_FHM): per k one LD1 of the
 * input's lane and its FCVT, two LD1s of the 64 weights, 16 FCVTLs to
 * fp32 and 16 FMLAs by the lane (36 instructions where fp16 sums take 11;
 * about 0.4 M instructions on ShuffleNetV2).  Weights in v4-v7, widened in
 * v8-v15; the 16 accumulators are the asm's operands. */
#define ENGINE_LINEAR_TILE_NEON 1
_Static_assert(LINEAR_NV == 8, "the fp16 fully connected asm takes 8 vectors of outputs");
/* 4 vectors of halves at [p] into 8 of floats */
#define WIDEN4(p, a, b, c, d, e, f, g, h) "ld1 {v4.8h, v5.8h, v6.8h, v7.8h}, " p ", #64\n\t" \
    "fcvtl " a ".4s, v4.4h\n\tfcvtl2 " b ".4s, v4.8h\n\tfcvtl " c ".4s, v5.4h\n\tfcvtl2 " d ".4s, v5.8h\n\t" \
    "fcvtl " e ".4s, v6.4h\n\tfcvtl2 " f ".4s, v6.8h\n\tfcvtl " g ".4s, v7.4h\n\tfcvtl2 " h ".4s, v7.8h\n\t"
#define WF(acc, wv) "fmla " acc ".4s, " wv ".4s, v0.s[0]\n\t"
/* half of one k's weights (32 outputs) widened and summed into accumulators a .. h */
#define KW_HALF(a, b, c, d, e, f, g, h) WIDEN4("[x9]", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15") \
    WF(a, "v8") WF(b, "v9") WF(c, "v10") WF(d, "v11") WF(e, "v12") WF(f, "v13") WF(g, "v14") WF(h, "v15")
#define ACC_LO "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23"
#define ACC_HI "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"
#define WITH(m, ...) m(__VA_ARGS__)   /* m of ACC_LO's registers: the list expanded first */
#define KW(unused0, unused1) "ld1 {v0.h}[0], [x14], x15\n\t" "fcvt s0, h0\n\t" \
    WITH(KW_HALF, ACC_LO) WITH(KW_HALF, ACC_HI)
/* 4 accumulators clamped and narrowed into v4-v5, stored at [y] */
#define CLAMP(r) "fmax " r ".4s, " r ".4s, %[lo].4s\n\tfmin " r ".4s, " r ".4s, %[hi].4s\n\t"
#define STORE4(a, b, c, d) CLAMP(a) CLAMP(b) CLAMP(c) CLAMP(d) \
    "fcvtn v4.4h, " a ".4s\n\tfcvtn2 v4.8h, " b ".4s\n\tfcvtn v5.4h, " c ".4s\n\tfcvtn2 v5.8h, " d ".4s\n\t" \
    "st1 {v4.8h, v5.8h}, [%[y]], #32\n\t"
ENGINE_ALWAYS_INLINE void f16_linear_tile_f32sum_neon(int64_t K, const ef* w, const ef* bias, const ef* src,
        const int64_t* x_off, const int64_t* x_run, ef* y, float lo, float hi) {
    __asm__ volatile(WITH(WIDEN4, "[%[bias]]", ACC_LO) WITH(WIDEN4, "[%[bias]]", ACC_HI)
            REDUCE(KW, "")
            STORE4("v16", "v17", "v18", "v19") STORE4("v20", "v21", "v22", "v23")
            STORE4("v24", "v25", "v26", "v27") STORE4("v28", "v29", "v30", "v31")
            : [bias] "+r"(bias), [y] "+r"(y)     /* (volatile: y is written through memory only) */
            : [K] "r"(K), [a] "r"(w), [src] "r"(src), [off] "r"(x_off), [run] "r"(x_run),
              [lo] "w"(vdupq_n_f32(lo)), [hi] "w"(vdupq_n_f32(hi))
            : "x9", "x10", "x11", "x12", "x13", "x14", "x15", "v0", "v4", "v5", "v6", "v7", "v8", "v9",
              "v10", "v11", "v12", "v13", "v14", "v15", ACC_LO, ACC_HI, "cc", "memory");
}
#undef KW
#undef WITH
#undef STORE4
#undef CLAMP
#undef ACC_HI
#undef ACC_LO
#undef KW_HALF
#undef WF
#undef WIDEN4
#else
/* The fully connected tile's reduction (ukernels.h: f32_linear_tile, 8
 * vectors of outputs): acc[v] += sum_k w[k][v] * src[x_off[k]], along the
 * runs of x_run.  Per k one LD1 of the input's lane (register
 * post-increment along a run: no offset loaded, no broadcast), two LD1s of
 * 4 weight vectors, 8 FMLAs by that lane (11 instructions for 8 FMLAs, where
 * the C loop's gather and LDPs took 16).  Weights in v16-v23. */
#define ENGINE_LINEAR_REDUCE 1
#define KL(xv, unused) "ld1 {" xv E_LANE "}[0], [x14], x15\n\t" \
    "ld1 {v16" E ", v17" E ", v18" E ", v19" E "}, [x9], #64\n\t" \
    "ld1 {v20" E ", v21" E ", v22" E ", v23" E "}, [x9], #64\n\t" \
    F(0, "v16", xv, 0) F(1, "v17", xv, 0) F(2, "v18", xv, 0) F(3, "v19", xv, 0) \
    F(4, "v20", xv, 0) F(5, "v21", xv, 0) F(6, "v22", xv, 0) F(7, "v23", xv, 0)
ENGINE_ALWAYS_INLINE void f32_linear_reduce_neon(vf acc[8], int64_t K, const ef* w, const ef* src,
        const int64_t* x_off, const int64_t* x_run) {
    __asm__(REDUCE(KL, "")
            : "+w"(acc[0]), "+w"(acc[1]), "+w"(acc[2]), "+w"(acc[3]),
              "+w"(acc[4]), "+w"(acc[5]), "+w"(acc[6]), "+w"(acc[7])
            : [K] "r"(K), [a] "r"(w), [src] "r"(src), [off] "r"(x_off), [run] "r"(x_run)
            : "x9", "x10", "x11", "x12", "x13", "x14", "x15", "v16", "v17", "v18", "v19", "v20", "v21",
              "v22", "v23", B0, B2, "cc", "memory");
}
#undef KL
#endif
#undef REDUCE_CLOBBERS
#undef B3
#undef B2
#undef B1
#undef B0
#undef E_BYTES
#undef E_SHIFT
#undef E_LANE
#undef E
#undef W12_SETUP
#undef W12
#undef CLOBBERS
#undef IN
#undef OUT
#undef OUT_1
#undef REDUCE
#undef EIGHT
#undef FOUR
#undef TWO
#undef ONE_RUN
#undef BIAS
#undef BIAS_1
#undef K8
#undef K12
#undef K8_1
#undef K12_1
#undef B_LOAD
#undef B_LOAD_1
#undef ROWS4
#undef ROWS4_1
#undef F

#endif
#endif
