/* NEON (aarch64) Winograd transforms beside the generic ones of winograd.h,
 * which includes this in the NEON modules only. */
#ifndef ENGINE_WINOGRAD_NEON_H
#define ENGINE_WINOGRAD_NEON_H
#if defined(__aarch64__)
/* f32_wino_input_tiles and f32_wino_output_tiles run F(2x2)'s and F(4x4)'s
 * transforms by these */
#define ENGINE_WINO_NEON 1

/* The band's input rows, padded (f32_wino_pad_row_neon), are what the input
 * transforms read: column c of tile t of a tile row is padded column t * m
 * + c, so one LD4 (LD2 for m = 2) takes columns 0 .. m - 1 of a vector of
 * tiles, one lane a tile, and a second one m columns on the last two: no
 * frame of the tiles' columns to write (winograd.h's, which took about 220
 * instructions a 56-pixel row, now about 40).  A vector of tiles stays in its
 * tile row: the last one of a row runs up to VLEN - 1 tiles into the next
 * row's places in V (written after it) or past the band's last tile. */
static inline int64_t f32_wino_pad_stride_neon(int64_t tx, int m) { return m * ((tx + 3) / 4 * 4 + 1); }

/* The right padding of a row is at most 5 m - 2 floats (the stride's whole
 * vectors of tiles and one more tile's columns past the plane's m tx - 2 +
 * pw: pw <= 1): five zero vectors cover it, which can run this far past the
 * row (into the next, written after it, or past the last: the frame's
 * slack; a padding row's four-vector stores run up to 15 past) */
#define WINO_PAD_ZEROS 20

/* d[c] = row[c - pw] for c < fs, 0 outside the row (row NULL: a padding
 * row); pw is 0 or 1 and in_w + 2 pw - 2 at most m tx wide (3x3, stride 1).
 * The row by LD1/ST1 of two vectors, then its last part-vector as its last
 * vector; no library calls (GCC made the padding's loop a memset call). */
static inline void f32_wino_pad_row_neon(float* d, const float* row, int64_t in_w, int64_t pw, int64_t fs) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    if (!row) {     /* (ST1 of four vectors: GCC made a loop of vector stores a memset call) */
        const float32x4x4_t z4 = {{z, z, z, z}};
        for (int64_t x = 0; x < fs; x += 16) vst1q_f32_x4(d + x, z4);
        return;
    }
    vst1q_f32(d, z);                  /* the left padding, under the row's first vector */
    float* o = d + pw;
    int64_t x = 0;
    for (; x + 8 <= in_w; x += 8) vst1q_f32_x2(o + x, vld1q_f32_x2(row + x));
    if (x + 4 <= in_w) {
        vst1q_f32(o + x, vld1q_f32(row + x));
        x += 4;
    }
    if (x < in_w && in_w >= 4) vst1q_f32(o + in_w - 4, vld1q_f32(row + in_w - 4));
    else for (; x < in_w; x++) o[x] = row[x];
#pragma GCC unroll 5
    for (int k = 0; k < WINO_PAD_ZEROS; k += 4) vst1q_f32(o + in_w + k, z);
}

/* F(4x4)'s input transform of one vector of tiles (f32_wino_input_tiles_m's
 * loop body for M = 4), in asm for what GCC did not manage from intrinsics:
 * it kept the 36 store and 24 load addresses in registers and spilled them.
 * The six input rows' columns come by two LD4s a row (columns 0-3, then
 * 4-7 of which 4 and 5 are the tiles'), the rows walked by register
 * post-increment, the stores walk V the same way, and B^T runs on the rows
 * first, then on the columns: columns 0-2 of the rows' results wait in
 * v8-v25 (row r's in v(8 + 3 r + j)), columns 3-5 in an 18-vector buffer on
 * the stack (column j's six rows adjacent: three LDPs); all 36 through the
 * buffer took 27 stores and loads more of about 264 instructions a vector.
 * B^T of six vectors x0..x5 in 13 operations into y0..y5, y4 in t3 and y5 in
 * x5, x3 to x5 overwritten (t3 and d31: temporaries); the constants
 * 4, 5, 2 as lanes of %[c]: */
#define NEON_BT4(x0, x1, x2, x3, x4, x5, y0, y1, y2, y3, t3, d31) \
    "fsub " t3 ".4s, " x4 ".4s, " x2 ".4s\n\t"        /* t3 = x4 - x2 */ \
    "fsub " d31 ".4s, " x3 ".4s, " x1 ".4s\n\t"       /* d31 = x3 - x1 */ \
    "fmla " x5 ".4s, " x1 ".4s, %[c].s[0]\n\t" \
    "fmls " x5 ".4s, " x3 ".4s, %[c].s[1]\n\t"        /* y5 = x5 + 4 x1 - 5 x3 */ \
    "fmls " x4 ".4s, " x2 ".4s, %[c].s[0]\n\t"        /* t1 = x4 - 4 x2 */ \
    "fsub " y0 ".4s, " x4 ".4s, " x2 ".4s\n\t" \
    "fmla " y0 ".4s, " x0 ".4s, %[c].s[0]\n\t"        /* y0 = t1 - x2 + 4 x0 */ \
    "fmls " x3 ".4s, " x1 ".4s, %[c].s[0]\n\t"        /* t2 = x3 - 4 x1 */ \
    "fadd " y1 ".4s, " x4 ".4s, " x3 ".4s\n\t"        /* y1 = t1 + t2 */ \
    "fsub " y2 ".4s, " x4 ".4s, " x3 ".4s\n\t"        /* y2 = t1 - t2 */ \
    "fadd " y3 ".4s, " d31 ".4s, " d31 ".4s\n\t" \
    "fadd " y3 ".4s, " y3 ".4s, " t3 ".4s\n\t"        /* y3 = t3 + 2 d31 */ \
    "fmls " t3 ".4s, " d31 ".4s, %[c].s[2]\n\t"       /* y4 = t3 - 2 d31 */
/* input row r: its six columns (v6, v7: the next tiles' columns 2, 3, unused
 * until they take t3 and d31), B^T into v(8 + 3 r + j) for columns j = 0-2,
 * into the buffer as element (r, j) at ((j - 3) * 6 + r) vectors for 3-5 */
#define WINO_ROW4(r, y0, y1, y2) \
    "ld4 {v0.4s, v1.4s, v2.4s, v3.4s}, [%[p]], %[fs]\n\t" \
    "ld4 {v4.4s, v5.4s, v6.4s, v7.4s}, [%[p4]], %[fs]\n\t" \
    NEON_BT4("v0", "v1", "v2", "v3", "v4", "v5", y0, y1, y2, "v26", "v6", "v7") \
    "str q26, [%[tmp], #0*96+" #r "*16]\n\t" \
    "str q6, [%[tmp], #1*96+" #r "*16]\n\t" \
    "str q5, [%[tmp], #2*96+" #r "*16]\n\t"
/* column j's B^T of its six rows x0..x5 into V's elements (i, j), i = 0..5,
 * each xi_step on: %[q] from element (0, j) to (0, j + 1) */
#define WINO_COL4(x0, x1, x2, x3, x4, x5) \
    NEON_BT4(x0, x1, x2, x3, x4, x5, "v26", "v27", "v28", "v29", "v6", "v7") \
    "st1 {v26.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v27.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v28.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v29.4s}, [%[q]], %[s6]\n\t" \
    "st1 {v6.4s}, [%[q]], %[s6]\n\t" \
    "st1 {" x5 ".4s}, [%[q]], %[s6]\n\t" \
    "sub %[q], %[q], %[s35]\n\t"
#define WINO_COL4_BUFFERED(j) \
    "ldp q0, q1, [%[tmp], #" #j "*96-288]\n\t" \
    "ldp q2, q3, [%[tmp], #" #j "*96-256]\n\t" \
    "ldp q4, q5, [%[tmp], #" #j "*96-224]\n\t" \
    WINO_COL4("v0", "v1", "v2", "v3", "v4", "v5")

static inline void f32_wino_input_tiles4_neon(const float* frame, int64_t fs, int64_t tx, int64_t tiles, float* v,
                                              int64_t xi_step) {
    float tmp[18 * 4] __attribute__((aligned(16)));
    const float32x4_t c = {4.0f, 5.0f, 2.0f, 0.0f};
    const int64_t fs_bytes = fs * 4, s6 = 6 * xi_step * 4, s35 = 35 * xi_step * 4;
    for (int64_t g = 0; g < tiles; g += tx, frame += 4 * fs) {    /* a tile row: input rows 0 .. 5 on */
        for (int64_t t = 0; t < tx; t += 4) {
            const float* p = frame + 4 * t;
            const float* p4 = p + 4;
            float* q = v + g + t;
            __asm__ volatile(
                WINO_ROW4(0, "v8", "v9", "v10") WINO_ROW4(1, "v11", "v12", "v13")
                WINO_ROW4(2, "v14", "v15", "v16") WINO_ROW4(3, "v17", "v18", "v19")
                WINO_ROW4(4, "v20", "v21", "v22") WINO_ROW4(5, "v23", "v24", "v25")
                WINO_COL4("v8", "v11", "v14", "v17", "v20", "v23")
                WINO_COL4("v9", "v12", "v15", "v18", "v21", "v24")
                WINO_COL4("v10", "v13", "v16", "v19", "v22", "v25")
                WINO_COL4_BUFFERED(3) WINO_COL4_BUFFERED(4) WINO_COL4_BUFFERED(5)
                : [p] "+r"(p), [p4] "+r"(p4), [q] "+r"(q)
                : [tmp] "r"(tmp), [fs] "r"(fs_bytes), [s6] "r"(s6), [s35] "r"(s35), [c] "w"(c)
                : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13",
                  "v14", "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25",
                  "v26", "v27", "v28", "v29", "memory");
        }
    }
}

/* F(4x4)'s output transform of one vector of tiles (f32_wino_output_tiles_m's
 * loop body for M = 4) the same way, without a buffer: the 36 products
 * loaded in order by one register post-increment, A^T on the rows into 24
 * registers, then on the columns into v16-v31, pixel (i, j) of the tiles in
 * v(16 + 4 i + j), so that one ST4 stores output row i's tiles interleaved
 * (the C loop's zips and stores: 12 instructions a row).  The bias is added
 * to element (1, 1) (see the C loop).  Row r's results t(r, j) wait where
 * column j + 1's pixels go (columns 0-2 of rows 0-3: v17-v19, v21-v23, ...,
 * each free once column j has read it), the rest in v6-v14 and, for row 5,
 * in its own inputs: with the constants (v15) and the bias (v16 until
 * column 0) every register (a 24-vector buffer in memory took 36 stores and
 * loads of the 186 instructions a vector).
 * A^T of six vectors x0..x5 in 10 operations into y0..y3, none of them an
 * input, with x1 and x2 as temporaries s34 and d34 once read; the constants
 * 2, 4, 8 as lanes of v15: */
#define NEON_AT4(x0, x1, x2, x3, x4, x5, y0, y1, y2, y3) \
    "fadd " y2 ".4s, " x1 ".4s, " x2 ".4s\n\t"    /* s12 */ \
    "fsub " y1 ".4s, " x1 ".4s, " x2 ".4s\n\t"    /* d12 */ \
    "fadd " x1 ".4s, " x3 ".4s, " x4 ".4s\n\t"    /* s34 */ \
    "fsub " x2 ".4s, " x3 ".4s, " x4 ".4s\n\t"    /* d34 */ \
    "fadd " y0 ".4s, " x0 ".4s, " y2 ".4s\n\t" \
    "fadd " y0 ".4s, " y0 ".4s, " x1 ".4s\n\t"    /* y0 = x0 + s12 + s34 */ \
    "fadd " y3 ".4s, " x5 ".4s, " y1 ".4s\n\t" \
    "fmla " y3 ".4s, " x2 ".4s, v15.s[2]\n\t"     /* y3 = x5 + d12 + 8 d34 */ \
    "fmla " y1 ".4s, " x2 ".4s, v15.s[0]\n\t"     /* y1 = d12 + 2 d34 */ \
    "fmla " y2 ".4s, " x1 ".4s, v15.s[1]\n\t"     /* y2 = s12 + 4 s34 */
#define WINO_LOAD_PRODUCTS \
    "ld1 {v0.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v1.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v2.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v3.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v4.4s}, [%[p]], %[s]\n\t" \
    "ld1 {v5.4s}, [%[p]], %[s]\n\t"
/* row r's t(r, 0..3) from its products in v0-v5 */
#define WINO_AT_ROW4(y0, y1, y2, y3) WINO_LOAD_PRODUCTS NEON_AT4("v0", "v1", "v2", "v3", "v4", "v5", y0, y1, y2, y3)
#define WINO_STORE_ROW4(v) "st4 {" v "}, [%[o]], %[os]\n\t"

static inline void f32_wino_output_tiles4_neon(const float* mrow, int64_t xi_step, int64_t tiles, float bias,
                                             float* out, int64_t out_step) {
    static const float c[4] = {2.0f, 4.0f, 8.0f, 0.0f};
    const int64_t s = xi_step * 4, os = out_step * 4;
    for (int64_t t = 0; t < tiles; t += 4) {
        const float* p = mrow + t;
        float* o = out + t * 4;
        __asm__ volatile(
            "ldr q15, [%[c]]\n\t"
            "ld1r {v16.4s}, [%[b]]\n\t"
            WINO_AT_ROW4("v17", "v18", "v19", "v6")
            WINO_LOAD_PRODUCTS "fadd v1.4s, v1.4s, v16.4s\n\t"
            NEON_AT4("v0", "v1", "v2", "v3", "v4", "v5", "v21", "v22", "v23", "v7")
            WINO_AT_ROW4("v25", "v26", "v27", "v8")
            WINO_AT_ROW4("v29", "v30", "v31", "v9")
            WINO_AT_ROW4("v10", "v11", "v12", "v13")
            /* row 5 into its own inputs and v14: t(5, 0..3) in v0, v14, v1, v5 */
            WINO_LOAD_PRODUCTS
            "fsub v14.4s, v1.4s, v2.4s\n\t"      /* d12 */
            "fadd v1.4s, v1.4s, v2.4s\n\t"       /* s12 */
            "fadd v2.4s, v3.4s, v4.4s\n\t"       /* s34 */
            "fsub v4.4s, v3.4s, v4.4s\n\t"       /* d34 */
            "fadd v0.4s, v0.4s, v1.4s\n\t"
            "fadd v0.4s, v0.4s, v2.4s\n\t"
            "fadd v5.4s, v5.4s, v14.4s\n\t"
            "fmla v5.4s, v4.4s, v15.s[2]\n\t"
            "fmla v14.4s, v4.4s, v15.s[0]\n\t"
            "fmla v1.4s, v2.4s, v15.s[1]\n\t"
            /* the columns: t(0..5, j) into pixels (0..3, j) */
            NEON_AT4("v17", "v21", "v25", "v29", "v10", "v0", "v16", "v20", "v24", "v28")
            NEON_AT4("v18", "v22", "v26", "v30", "v11", "v14", "v17", "v21", "v25", "v29")
            NEON_AT4("v19", "v23", "v27", "v31", "v12", "v1", "v18", "v22", "v26", "v30")
            NEON_AT4("v6", "v7", "v8", "v9", "v13", "v5", "v19", "v23", "v27", "v31")
            WINO_STORE_ROW4("v16.4s, v17.4s, v18.4s, v19.4s")
            WINO_STORE_ROW4("v20.4s, v21.4s, v22.4s, v23.4s")
            WINO_STORE_ROW4("v24.4s, v25.4s, v26.4s, v27.4s")
            WINO_STORE_ROW4("v28.4s, v29.4s, v30.4s, v31.4s")
            : [p] "+r"(p), [o] "+r"(o)
            : [s] "r"(s), [os] "r"(os), [c] "r"(c), [b] "r"(&bias)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14",
              "v15", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
              "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory");
    }
}

/* F(2x2)'s input transform of one vector of tiles the same way (two LD2s
 * a row), without a buffer: the rows' B^T x (16 vectors) stay in v16-v31,
 * element (r, j) in v(16 + 4 r + j).  B^T of x0..x3 in 4 operations (GCC
 * took 105 instructions a vector from the frame, this 60). */
#define NEON_BT2(x0, x1, x2, x3, y0, y1, y2, y3) \
    "fsub " y0 ".4s, " x0 ".4s, " x2 ".4s\n\t" \
    "fadd " y1 ".4s, " x1 ".4s, " x2 ".4s\n\t" \
    "fsub " y2 ".4s, " x2 ".4s, " x1 ".4s\n\t" \
    "fsub " y3 ".4s, " x1 ".4s, " x3 ".4s\n\t"
/* input row r's four columns */
#define WINO_ROW2(y0, y1, y2, y3) \
    "ld2 {v0.4s, v1.4s}, [%[p]], %[fs]\n\t" \
    "ld2 {v2.4s, v3.4s}, [%[p2]], %[fs]\n\t" \
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
    const int64_t fs_bytes = fs * 4, s4 = 4 * xi_step * 4, s15 = 15 * xi_step * 4;
    for (int64_t g = 0; g < tiles; g += tx, frame += 2 * fs) {    /* a tile row: input rows 0 .. 3 on */
        for (int64_t t = 0; t < tx; t += 4) {
            const float* p = frame + 2 * t;
            const float* p2 = p + 2;
            float* q = v + g + t;
            __asm__ volatile(
                WINO_ROW2("v16", "v17", "v18", "v19") WINO_ROW2("v20", "v21", "v22", "v23")
                WINO_ROW2("v24", "v25", "v26", "v27") WINO_ROW2("v28", "v29", "v30", "v31")
                WINO_COL2("v16", "v20", "v24", "v28") WINO_COL2("v17", "v21", "v25", "v29")
                WINO_COL2("v18", "v22", "v26", "v30") WINO_COL2("v19", "v23", "v27", "v31")
                : [p] "+r"(p), [p2] "+r"(p2), [q] "+r"(q)
                : [fs] "r"(fs_bytes), [s4] "r"(s4), [s15] "r"(s15)
                : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7",
                  "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
                  "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31", "memory");
        }
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
#undef WINO_AT_ROW2
#undef WINO_AT_ROW4
#undef WINO_COL2
#undef WINO_COL4
#undef WINO_LOAD_PRODUCTS
#undef WINO_LOAD_PRODUCTS2
#undef WINO_COL4_BUFFERED
#undef WINO_ROW2
#undef WINO_ROW4
#undef WINO_STORE_ROW4

#endif
#endif
