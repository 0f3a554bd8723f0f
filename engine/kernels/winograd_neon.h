/* NEON (aarch64) Winograd transforms beside the generic ones of winograd.h,
 * which includes this in the NEON modules only. */
#ifndef ENGINE_WINOGRAD_NEON_H
#define ENGINE_WINOGRAD_NEON_H
#if defined(__aarch64__)
/* f32_wino_input_tiles and f32_wino_output_tiles run F(2x2)'s and F(4x4)'s
 * transforms by these */
#define ENGINE_WINO_NEON 1

/* F(4x4)'s input transform of one vector of tiles (f32_wino_input_tiles_m's
 * loop body for M = 4), in asm for what GCC did not manage from intrinsics:
 * it kept the 36 store and 24 load addresses in registers and spilled them
 * (about 474 instructions a vector under qemu; this takes about 270).  The
 * loads walk the frame's rows by register post-increment (input rows 4 and
 * 5 are rows 0 and 1 one tile row on: a step back), the stores walk V the
 * same way, and B^T runs on the rows first, through a 36-vector buffer on
 * the stack (column j's six rows adjacent: three LDPs), then on the columns.
 * B^T of six vectors x0..x5 (v0-v5) in 13 operations (y0 v17, y1 v18, y2
 * v19, y3 v20, y4 v6, y5 v5), the constants 4, 5, 2 as lanes of %[c]: */
#define NEON_BT4 \
    "fsub v6.4s, v4.4s, v2.4s\n\t"          /* t3 = x4 - x2 */ \
    "fsub v7.4s, v3.4s, v1.4s\n\t"          /* d31 = x3 - x1 */ \
    "fmla v5.4s, v1.4s, %[c].s[0]\n\t" \
    "fmls v5.4s, v3.4s, %[c].s[1]\n\t"      /* y5 = x5 + 4 x1 - 5 x3 */ \
    "fmls v4.4s, v2.4s, %[c].s[0]\n\t"      /* t1 = x4 - 4 x2 */ \
    "fsub v17.4s, v4.4s, v2.4s\n\t" \
    "fmla v17.4s, v0.4s, %[c].s[0]\n\t"     /* y0 = t1 - x2 + 4 x0 */ \
    "fmls v3.4s, v1.4s, %[c].s[0]\n\t"      /* t2 = x3 - 4 x1 */ \
    "fadd v18.4s, v4.4s, v3.4s\n\t"         /* y1 = t1 + t2 */ \
    "fsub v19.4s, v4.4s, v3.4s\n\t"         /* y2 = t1 - t2 */ \
    "fadd v20.4s, v7.4s, v7.4s\n\t" \
    "fadd v20.4s, v20.4s, v6.4s\n\t"        /* y3 = t3 + 2 d31 */ \
    "fmls v6.4s, v7.4s, %[c].s[2]\n\t"      /* y4 = t3 - 2 d31 */
/* input row r's six columns, a frame row (fs) apart */
#define WINO_LOAD_ROW4 \
    "ld1 {v0.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v1.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v2.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v3.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v4.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v5.4s}, [%[p]], %[fs]\n\t"
/* row r's B^T x into the buffer as element (r, j) at (j * 6 + r) vectors */
#define WINO_ROW4(r) WINO_LOAD_ROW4 NEON_BT4 \
    "str q17, [%[tmp], #0*96+" #r "*16]\n\t" \
    "str q18, [%[tmp], #1*96+" #r "*16]\n\t" \
    "str q19, [%[tmp], #2*96+" #r "*16]\n\t" \
    "str q20, [%[tmp], #3*96+" #r "*16]\n\t" \
    "str q6, [%[tmp], #4*96+" #r "*16]\n\t" \
    "str q5, [%[tmp], #5*96+" #r "*16]\n\t"
/* column j: B^T of its six rows into V's elements (i, j), i = 0..5, each
 * xi_step on: %[q] from element (0, j) to (0, j + 1) */
#define WINO_COL4(j) \
    "ldp q0, q1, [%[tmp], #" #j "*96]\n\t" \
    "ldp q2, q3, [%[tmp], #" #j "*96+32]\n\t" \
    "ldp q4, q5, [%[tmp], #" #j "*96+64]\n\t" \
    NEON_BT4 \
    "st1 {v17.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v18.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v19.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v20.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v6.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v5.4s}, [%[q]], %[s6]\n\t" \
    "sub %[q], %[q], %[s35]\n\t"

static inline void f32_wino_input_tiles4_neon(const float* frame, int64_t fs, int64_t tx, int64_t tiles, float* v,
                                              int64_t xi_step) {
    float tmp[36 * 4] __attribute__((aligned(16)));
    const float32x4_t c = {4.0f, 5.0f, 2.0f, 0.0f};
    const int64_t fs_bytes = fs * 4, back = (24 * fs - tx) * 4, s6 = 6 * xi_step * 4, s35 = 35 * xi_step * 4;
    for (int64_t t = 0; t < tiles; t += 4) {
        const float* p = frame + t;
        float* q = v + t;
        __asm__ volatile(
            WINO_ROW4(0) WINO_ROW4(1) WINO_ROW4(2) WINO_ROW4(3)
            "sub %[p], %[p], %[back]\n\t"
            WINO_ROW4(4) WINO_ROW4(5)
            WINO_COL4(0) WINO_COL4(1) WINO_COL4(2) WINO_COL4(3) WINO_COL4(4) WINO_COL4(5)
            : [p] "+r"(p), [q] "+r"(q)
            : [tmp] "r"(tmp), [fs] "r"(fs_bytes), [back] "r"(back), [s6] "r"(s6), [s35] "r"(s35), [c] "w"(c)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v17", "v18", "v19", "v20", "memory");
    }
}

/* F(4x4)'s output transform of one vector of tiles (f32_wino_output_tiles_m's
 * loop body for M = 4) the same way: the 36 products loaded in order by one
 * register post-increment, A^T on the rows into a 24-vector buffer (column
 * j's six rows adjacent), then on the columns into v16-v31, pixel (i, j) of
 * the tiles in v(16 + 4 i + j), so that one ST4 stores output row i's tiles
 * interleaved (the C loop's zips and stores: 12 instructions a row).  The
 * bias is added to element (1, 1) (see the C loop).
 * A^T of six vectors x0..x5 (v0-v5) in 10 operations into y0..y3, with
 * temporaries s34 and d34 (v8, v9); the constants 2, 4, 8 as lanes of %[c]: */
#define NEON_AT4(y0, y1, y2, y3) \
    "fadd " y2 ".4s, v1.4s, v2.4s\n\t"      /* s12 */ \
    "fsub " y1 ".4s, v1.4s, v2.4s\n\t"      /* d12 */ \
    "fadd v8.4s, v3.4s, v4.4s\n\t"          /* s34 */ \
    "fsub v9.4s, v3.4s, v4.4s\n\t"          /* d34 */ \
    "fadd " y0 ".4s, v0.4s, " y2 ".4s\n\t" \
    "fadd " y0 ".4s, " y0 ".4s, v8.4s\n\t"  /* y0 = x0 + s12 + s34 */ \
    "fadd " y3 ".4s, v5.4s, " y1 ".4s\n\t" \
    "fmla " y3 ".4s, v9.4s, %[c].s[2]\n\t"  /* y3 = x5 + d12 + 8 d34 */ \
    "fmla " y1 ".4s, v9.4s, %[c].s[0]\n\t"  /* y1 = d12 + 2 d34 */ \
    "fmla " y2 ".4s, v8.4s, %[c].s[1]\n\t"  /* y2 = s12 + 4 s34 */
#define WINO_LOAD_PRODUCTS \
    "ld1 {v0.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v1.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v2.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v3.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v4.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v5.4s}, [%[p]], %[s]\n\t"
/* row r's A^T x into the buffer as element (r, j) at (j * 6 + r) vectors */
#define WINO_AT_ROW4(r) NEON_AT4("v6", "v7", "v10", "v11") \
    "str q6, [%[tmp], #0*96+" #r "*16]\n\t" \
    "str q7, [%[tmp], #1*96+" #r "*16]\n\t" \
    "str q10, [%[tmp], #2*96+" #r "*16]\n\t" \
    "str q11, [%[tmp], #3*96+" #r "*16]\n\t"
/* column j: pixels (0..3, j) into v(16 + j), v(20 + j), v(24 + j), v(28 + j) */
#define WINO_AT_COL4(j, y0, y1, y2, y3) \
    "ldp q0, q1, [%[tmp], #" #j "*96]\n\t" \
    "ldp q2, q3, [%[tmp], #" #j "*96+32]\n\t" \
    "ldp q4, q5, [%[tmp], #" #j "*96+64]\n\t" \
    NEON_AT4(y0, y1, y2, y3)
#define WINO_STORE_ROW4(v) "st4 {" v "}, [%[o]], %[os]\n\t"

static inline void f32_wino_output_tiles4_neon(const float* mrow, int64_t xi_step, int64_t tiles, float bias,
                                             float* out, int64_t out_step) {
    float tmp[24 * 4] __attribute__((aligned(16)));
    const float32x4_t c = {2.0f, 4.0f, 8.0f, 0.0f}, vb = vdupq_n_f32(bias);
    const int64_t s = xi_step * 4, os = out_step * 4;
    for (int64_t t = 0; t < tiles; t += 4) {
        const float* p = mrow + t;
        float* o = out + t * 4;
        __asm__ volatile(
            WINO_LOAD_PRODUCTS WINO_AT_ROW4(0)
            WINO_LOAD_PRODUCTS "fadd v1.4s, v1.4s, %[b].4s\n\t" WINO_AT_ROW4(1)
            WINO_LOAD_PRODUCTS WINO_AT_ROW4(2)
            WINO_LOAD_PRODUCTS WINO_AT_ROW4(3)
            WINO_LOAD_PRODUCTS WINO_AT_ROW4(4)
            WINO_LOAD_PRODUCTS WINO_AT_ROW4(5)
            WINO_AT_COL4(0, "v16", "v20", "v24", "v28")
            WINO_AT_COL4(1, "v17", "v21", "v25", "v29")
            WINO_AT_COL4(2, "v18", "v22", "v26", "v30")
            WINO_AT_COL4(3, "v19", "v23", "v27", "v31")
            WINO_STORE_ROW4("v16.4s, v17.4s, v18.4s, v19.4s")
            WINO_STORE_ROW4("v20.4s, v21.4s, v22.4s, v23.4s")
            WINO_STORE_ROW4("v24.4s, v25.4s, v26.4s, v27.4s")
            WINO_STORE_ROW4("v28.4s, v29.4s, v30.4s, v31.4s")
            : [p] "+r"(p), [o] "+r"(o)
            : [tmp] "r"(tmp), [s] "r"(s), [os] "r"(os), [c] "w"(c), [b] "w"(vb)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11",
              "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
              "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory");
    }
}

/* F(2x2)'s input transform of one vector of tiles the same way, without a
 * buffer: the rows' B^T x (16 vectors) stay in v16-v31, element (r, j) in
 * v(16 + 4 r + j).  B^T of x0..x3 in 4 operations (GCC took 105 instructions
 * a vector, this 68). */
#define NEON_BT2(x0, x1, x2, x3, y0, y1, y2, y3) \
    "fsub " y0 ".4s, " x0 ".4s, " x2 ".4s\n\t" \
    "fadd " y1 ".4s, " x1 ".4s, " x2 ".4s\n\t" \
    "fsub " y2 ".4s, " x2 ".4s, " x1 ".4s\n\t" \
    "fsub " y3 ".4s, " x1 ".4s, " x3 ".4s\n\t"
/* input row r's four columns, a frame row (fs) apart */
#define WINO_ROW2(y0, y1, y2, y3) \
    "ld1 {v0.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v1.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v2.4s}, [%[p]], %[fs]\n\t" \
    "ld1 {v3.4s}, [%[p]], %[fs]\n\t" \
    NEON_BT2("v0", "v1", "v2", "v3", y0, y1, y2, y3)
/* column j into V's elements (i, j), i = 0..3 */
#define WINO_COL2(x0, x1, x2, x3) \
    NEON_BT2(x0, x1, x2, x3, "v4", "v5", "v6", "v7") \
    "st1 {v4.4s}, [%[q]], %[s4]\n\t" \
    "st1 {v5.4s}, [%[q]], %[s4]\n\t" \
    "st1 {v6.4s}, [%[q]], %[s4]\n\t" \
    "st1 {v7.4s}, [%[q]], %[s4]\n\t" \
    "sub %[q], %[q], %[s15]\n\t"

static inline void f32_wino_input_tiles2_neon(const float* frame, int64_t fs, int64_t tx, int64_t tiles, float* v,
                                              int64_t xi_step) {
    const int64_t fs_bytes = fs * 4, back = (8 * fs - tx) * 4, s4 = 4 * xi_step * 4, s15 = 15 * xi_step * 4;
    for (int64_t t = 0; t < tiles; t += 4) {
        const float* p = frame + t;
        float* q = v + t;
        __asm__ volatile(
            WINO_ROW2("v16", "v17", "v18", "v19") WINO_ROW2("v20", "v21", "v22", "v23")
            "sub %[p], %[p], %[back]\n\t"
            WINO_ROW2("v24", "v25", "v26", "v27") WINO_ROW2("v28", "v29", "v30", "v31")
            WINO_COL2("v16", "v20", "v24", "v28") WINO_COL2("v17", "v21", "v25", "v29")
            WINO_COL2("v18", "v22", "v26", "v30") WINO_COL2("v19", "v23", "v27", "v31")
            : [p] "+r"(p), [q] "+r"(q)
            : [fs] "r"(fs_bytes), [back] "r"(back), [s4] "r"(s4), [s15] "r"(s15)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7",
              "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
              "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory");
    }
}

/* F(2x2)'s output transform of one vector of tiles, without a buffer: the
 * rows' A^T x in v16-v23 (element (r, j) in v(16 + 2 r + j)), pixel (i, j)
 * in v(24 + 2 i + j), output row i stored by one ST2 (GCC took about 143
 * instructions a vector, this 43).  A^T of x0..x3 in 4 operations: */
#define NEON_AT2(x0, x1, x2, x3, y0, y1) \
    "fadd " y0 ".4s, " x1 ".4s, " x2 ".4s\n\t" \
    "fsub " y1 ".4s, " x1 ".4s, " x2 ".4s\n\t" \
    "fadd " y0 ".4s, " y0 ".4s, " x0 ".4s\n\t"/* y0 = x0 + x1 + x2 */ \
    "fsub " y1 ".4s, " y1 ".4s, " x3 ".4s\n\t"  /* y1 = x1 - x2 - x3 */
#define WINO_LOAD_PRODUCTS2 \
    "ld1 {v0.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v1.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v2.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v3.4s}, [%[p]], %[s]\n\t"
#define WINO_AT_ROW2(y0, y1) NEON_AT2("v0", "v1", "v2", "v3", y0, y1)

static inline void f32_wino_output_tiles2_neon(const float* mrow, int64_t xi_step, int64_t tiles, float bias,
                                             float* out, int64_t out_step) {
    const float32x4_t vb = vdupq_n_f32(bias);
    const int64_t s = xi_step * 4, os = out_step * 4;
    for (int64_t t = 0; t < tiles; t += 4) {
        const float* p = mrow + t;
        float* o = out + t * 2;
        __asm__ volatile(
            WINO_LOAD_PRODUCTS2 WINO_AT_ROW2("v16", "v17")
            WINO_LOAD_PRODUCTS2 "fadd v1.4s, v1.4s, %[b].4s\n\t" WINO_AT_ROW2("v18", "v19")
            WINO_LOAD_PRODUCTS2 WINO_AT_ROW2("v20", "v21")
            WINO_LOAD_PRODUCTS2 WINO_AT_ROW2("v22", "v23")
            NEON_AT2("v16", "v18", "v20", "v22", "v24", "v26")
            NEON_AT2("v17", "v19", "v21", "v23", "v25", "v27")
            "st2 {v24.4s, v25.4s}, [%[o]], %[os]\n\t"
            "st2 {v26.4s, v27.4s}, [%[o]], %[os]\n\t"
            : [p] "+r"(p), [o] "+r"(o)
            : [s] "r"(s), [os] "r"(os), [b] "w"(vb)
            : "v0", "v1", "v2", "v3", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
              "v24", "v25", "v26", "v27", "memory");
    }
}

/* the asm pieces are for the functions above only */
#undef NEON_AT2
#undef NEON_AT4
#undef NEON_BT2
#undef NEON_BT4
#undef WINO_AT_COL4
#undef WINO_AT_ROW2
#undef WINO_AT_ROW4
#undef WINO_COL2
#undef WINO_COL4
#undef WINO_LOAD_PRODUCTS
#undef WINO_LOAD_PRODUCTS2
#undef WINO_LOAD_ROW4
#undef WINO_ROW2
#undef WINO_ROW4
#undef WINO_STORE_ROW4

#endif
#endif
