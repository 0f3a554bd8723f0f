/* NEON (aarch64) kernels beside the generic ones of ukernels.h, which
 * includes this in the NEON modules only, before the GEMM tile. */
#ifndef ENGINE_UKERNELS_NEON_H
#define ENGINE_UKERNELS_NEON_H
#if defined(__aarch64__)

/* The reduction of the 12-row, 2-vector GEMM tile (ukernels.h:
 * f32_gemm_tile, whose C loop this replaces): acc[r][v] = bias[r] +
 * sum_k a[k][r] * B_k[v], B_k two vectors at src + b_off[k], along the runs
 * of b_run.  In asm for what the compiler does not emit from intrinsics: the
 * B load with its register post-increment (one LD1, not LDP and ADD), and two
 * k per loop turn without spilling the 24 accumulators: 25 instructions per
 * k for 24 FMLAs, where the C loop takes 29.  The accumulators are v0-v23
 * (outputs only: an asm takes at most 30 operands), v24-v30 the two k's B
 * and weights, x9-x16 the walk along the runs. */
#define ENGINE_GEMM_12X2 f32_gemm_reduce_12x2_neon
#define F(i, bv, av, l) "fmla %" #i ".4s, " bv ".4s, " av ".s[" #l "]\n\t"
#define K_STEP(b0, b1) \
    "ld1 {" b0 ".4s, " b1 ".4s}, [x14], x15\n\t" \
    "ld1 {v26.4s, v27.4s, v28.4s}, [x9], #48\n\t" \
    F(0, b0, "v26", 0) F(1, b1, "v26", 0) F(2, b0, "v26", 1) F(3, b1, "v26", 1) \
    F(4, b0, "v26", 2) F(5, b1, "v26", 2) F(6, b0, "v26", 3) F(7, b1, "v26", 3) \
    F(8, b0, "v27", 0) F(9, b1, "v27", 0) F(10, b0, "v27", 1) F(11, b1, "v27", 1) \
    F(12, b0, "v27", 2) F(13, b1, "v27", 2) F(14, b0, "v27", 3) F(15, b1, "v27", 3) \
    F(16, b0, "v28", 0) F(17, b1, "v28", 0) F(18, b0, "v28", 1) F(19, b1, "v28", 1) \
    F(20, b0, "v28", 2) F(21, b1, "v28", 2) F(22, b0, "v28", 3) F(23, b1, "v28", 3)
#define BIAS(i, r) "ld1r {%" #i ".4s}, [x16], #4\n\tmov %" #r ".16b, %" #i ".16b\n\t"
ENGINE_ALWAYS_INLINE void f32_gemm_reduce_12x2_neon(vf acc[GEMM_MR][GEMM_NV_MAX], int64_t K,
        const float* a, const float* bias, const float* src, const int64_t* b_off, const int64_t* b_run) {
    __asm__(
        "mov x16, %[bias]\n\t"
        BIAS(0, 1) BIAS(2, 3) BIAS(4, 5) BIAS(6, 7) BIAS(8, 9) BIAS(10, 11)
        BIAS(12, 13) BIAS(14, 15) BIAS(16, 17) BIAS(18, 19) BIAS(20, 21) BIAS(22, 23)
        "mov x9, %[a]\n\t"
        "mov x10, #0\n"                  /* k */
        "3:\n\t"                         /* a run: n = min(b_run[k], K - k) planes from b_off[k] */
        "cmp x10, %[K]\n\t"
        "b.ge 5f\n\t"
        "ldr x11, [%[run], x10, lsl #3]\n\t"
        "sub x12, %[K], x10\n\t"
        "cmp x11, x12\n\t"
        "csel x11, x11, x12, le\n\t"
        "add x12, %[off], x10, lsl #3\n\t"
        "ldr x13, [x12]\n\t"
        "add x14, %[src], x13, lsl #2\n\t"
        "mov x15, #0\n\t"                /* the step in bytes: 0 for a run of one */
        "cmp x11, #1\n\t"
        "b.le 4f\n\t"
        "ldr x15, [x12, #8]\n\t"
        "sub x15, x15, x13\n\t"
        "lsl x15, x15, #2\n"
        "4:\n\t"
        "add x10, x10, x11\n\t"
        "tbz x11, #0, 1f\n\t"            /* an odd count: one k first */
        K_STEP("v24", "v25")
        "subs x11, x11, #1\n\t"
        "b.eq 3b\n"
        "1:\n\t"
        K_STEP("v24", "v25")
        K_STEP("v29", "v30")
        "subs x11, x11, #2\n\t"
        "b.ne 1b\n\t"
        "b 3b\n"
        "5:\n\t"
        : "=w"(acc[0][0]), "=w"(acc[0][1]), "=w"(acc[1][0]), "=w"(acc[1][1]),
          "=w"(acc[2][0]), "=w"(acc[2][1]), "=w"(acc[3][0]), "=w"(acc[3][1]),
          "=w"(acc[4][0]), "=w"(acc[4][1]), "=w"(acc[5][0]), "=w"(acc[5][1]),
          "=w"(acc[6][0]), "=w"(acc[6][1]), "=w"(acc[7][0]), "=w"(acc[7][1]),
          "=w"(acc[8][0]), "=w"(acc[8][1]), "=w"(acc[9][0]), "=w"(acc[9][1]),
          "=w"(acc[10][0]), "=w"(acc[10][1]), "=w"(acc[11][0]), "=w"(acc[11][1])
        : [K] "r"(K), [a] "r"(a), [bias] "r"(bias), [src] "r"(src), [off] "r"(b_off), [run] "r"(b_run)
        : "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16",
          "v24", "v25", "v26", "v27", "v28", "v29", "v30", "cc", "memory");
}
#undef BIAS
#undef K_STEP
#undef F

#endif
#endif
