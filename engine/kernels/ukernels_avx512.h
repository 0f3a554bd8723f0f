/* AVX-512 kernels beside the generic ones of ukernels.h (which includes this
 * in the AVX-512 module only, after the flat window path they replace). */
#ifndef ENGINE_UKERNELS_AVX512_H
#define ENGINE_UKERNELS_AVX512_H

/* AVX-512, convolutions whose taps are three rows of three adjacent offsets
 * (3x3, stride 1): an unaligned vector load crosses a cache line, which
 * costs about twice an aligned one, and the generic path makes nine of them
 * per output vector.  Here each tap row loads aligned vectors once per plane
 * and takes its three taps out of neighbouring pairs (valignd, the lane
 * flags as its zeroing mask). */
#define FLAT_ROWS_NB 2
#define FLAT_TAP(M, LO, HI, HI2, SHIFT) ((SHIFT) < VLEN ? \
    _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(M, HI, LO, (SHIFT) % VLEN)) : (SHIFT) == VLEN ? \
    _mm512_castsi512_ps(_mm512_maskz_mov_epi32(M, HI)) : \
    _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(M, HI2, HI, (SHIFT) % VLEN)))
#define FLAT_ROW_CASE(S) case S: \
    for (int c = 0; c < FLAT_CH; c++) { \
        const float* p = a->src[c] + base; \
        __m512i v[FLAT_ROWS_NB + 2]; \
        for (int b = 0; b < FLAT_ROWS_NB + 2; b++) v[b] = _mm512_loadu_si512((const void*)(p + b * VLEN)); \
        const float* w = a->w[c] + 3 * r; \
        for (int b = 0; b < FLAT_ROWS_NB; b++) { \
            acc[c][b] = vf_fma(vf_set1(w[0]), FLAT_TAP(m[b][0], v[b], v[b + 1], v[b + 2], S), acc[c][b]); \
            acc[c][b] = vf_fma(vf_set1(w[1]), FLAT_TAP(m[b][1], v[b], v[b + 1], v[b + 2], S + 1), acc[c][b]); \
            acc[c][b] = vf_fma(vf_set1(w[2]), FLAT_TAP(m[b][2], v[b], v[b + 1], v[b + 2], S + 2), acc[c][b]); \
        } \
    } \
    break;

#define ENGINE_DWCONV3X3_FLAT_ROWS f32_dwconv3x3_flat_rows_avx512
static void f32_dwconv3x3_flat_rows_avx512(const f32_window_flat_args* a, int64_t j) {
    const int32_t* blocks = a->lanes + (a->nvec + VLEN - 1) / VLEN * VLEN;
    vf acc[FLAT_CH][FLAT_ROWS_NB];
    for (int c = 0; c < FLAT_CH; c++)
        for (int b = 0; b < FLAT_ROWS_NB; b++) acc[c][b] = vf_set1(a->init[c]);
    for (int r = 0; r < 3; r++) {
        __mmask16 m[FLAT_ROWS_NB][3];
        for (int b = 0; b < FLAT_ROWS_NB; b++)
            for (int kj = 0; kj < 3; kj++)
                m[b][kj] = vf_mask(blocks + ((int64_t)a->lanes[j + b] * 9 + 3 * r + kj) * VLEN);
        const int64_t base = a->row_q[r] + j * VLEN;
        switch (a->row_s[r]) {
            FLAT_ROW_CASE(0) FLAT_ROW_CASE(1) FLAT_ROW_CASE(2) FLAT_ROW_CASE(3)
            FLAT_ROW_CASE(4) FLAT_ROW_CASE(5) FLAT_ROW_CASE(6) FLAT_ROW_CASE(7)
            FLAT_ROW_CASE(8) FLAT_ROW_CASE(9) FLAT_ROW_CASE(10) FLAT_ROW_CASE(11)
            FLAT_ROW_CASE(12) FLAT_ROW_CASE(13) FLAT_ROW_CASE(14) FLAT_ROW_CASE(15)
        }
    }
    const vf vlo = vf_set1(a->lo), vhi = vf_set1(a->hi);
    for (int b = 0; b < FLAT_ROWS_NB; b++)
        for (int c = 0; c < FLAT_CH; c++)
            vf_storeu(a->out[c] + (j + b) * VLEN, vf_min(vhi, vf_max(vlo, acc[c][b])));
}

#endif
