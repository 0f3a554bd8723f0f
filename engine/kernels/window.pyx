# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-channel sliding-window ops: depthwise convolution (any kernel, stride,
padding, dilation, channel multiplier), max and average pooling (padding,
ceil_mode, count_include_pad both ways), and global average pooling.

A job computes one output plane row by row, reading the input planes in
place: rows under the padding read a row of the padding value (0 for
convolution and average, -inf for max), and the row kernels run vectors
wherever the window lies inside the input row."""
from libc.stdint cimport int64_t
from engine.kernels.common cimport (Op, Ctx, VLEN, WINDOW_CONV, WINDOW_MAX,
                                    WINDOW_AVG, f32_activation)

cdef extern from "simd.h" nogil:
    ctypedef float vf    # opaque to Cython: only passed between these calls
    vf vf_zero()
    vf vf_loadu(const float* p)
    vf vf_add(vf a, vf b)
    float vf_hsum(vf v)

cdef extern from "ukernels.h" nogil:
    ctypedef void (*f32_window_row_fn)(const float* const* rows, int64_t in_w, int64_t pw,
                                       int64_t out_w, const float* w, float init, float fill,
                                       const float* aux, float* out, float lo, float hi)
    f32_window_row_fn f32_window_row_special(int mode, int64_t kh, int64_t kw, int64_t sh,
                                             int64_t sw, int64_t dh, int64_t dw)
    void f32_window_row_any(const float* const* rows, int64_t in_w, int64_t pw, int64_t out_w,
                            const float* w, float init, float fill, const float* aux, float* out,
                            float lo, float hi, int64_t kh, int64_t kw, int64_t s, int64_t dw,
                            int mode)
    const int ENGINE_ROW_OVERREAD


ROW_OVERREAD = ENGINE_ROW_OVERREAD     # slack the arena keeps after its last plane


def scratch_floats(int64_t in_w, int64_t kh):
    """Scratch one worker needs: a row of the padding value, as wide as an
    input row and what the kernels read past it, and kh row pointers."""
    return in_w + ENGINE_ROW_OVERREAD + 16 + 2 * kh


cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, output channel): one row kernel per output row, given
    the input rows under the window (or the padding row)."""
    cdef int64_t image = job // op.jobs_per_image
    cdef int64_t c = job % op.jobs_per_image
    cdef float* base = ctx.arena + image * ctx.image_stride
    cdef float* fill_row = ctx.scratch + tid * ctx.scratch_stride
    cdef int64_t fill_len = op.in_w + ENGINE_ROW_OVERREAD + 16
    cdef const float** rows = <const float**>(fill_row + fill_len)
    cdef const float* src = base + op.in_off[c]
    cdef float* out = base + op.out_off[c]
    cdef const float* w = op.w + c * op.kh * op.kw if op.mode == WINDOW_CONV else NULL
    cdef float init = op.b[c] if op.mode == WINDOW_CONV else op.fill if op.mode == WINDOW_MAX else 0
    cdef const float* aux
    cdef int64_t oh, ki, ih, i
    cdef f32_window_row_fn row_fn = f32_window_row_special(op.mode, op.kh, op.kw, op.sh, op.sw,
                                                          op.dh, op.dw)
    for i in range(fill_len):
        fill_row[i] = op.fill
    for oh in range(op.out_h):
        for ki in range(op.kh):
            ih = oh * op.sh - op.ph + ki * op.dh
            rows[ki] = src + ih * op.in_w if 0 <= ih < op.in_h else fill_row
        aux = op.aux + oh * op.out_w if op.mode == WINDOW_AVG else NULL
        if row_fn != NULL:
            row_fn(rows, op.in_w, op.pw, op.out_w, w, init, op.fill, aux, out + oh * op.out_w,
                   op.lo, op.hi)
        else:
            f32_window_row_any(rows, op.in_w, op.pw, op.out_w, w, init, op.fill, aux,
                               out + oh * op.out_w, op.lo, op.hi, op.kh, op.kw, op.sw, op.dw,
                               op.mode)
        if op.act:
            f32_activation(out + oh * op.out_w, op.out_w, op.act)


cdef void global_avgpool_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, channel): the plane's mean into its 1x1 output plane."""
    cdef int64_t image = job // op.jobs_per_image
    cdef int64_t c = job % op.jobs_per_image
    cdef float* base = ctx.arena + image * ctx.image_stride
    cdef const float* src = base + op.in_off[c]
    cdef int64_t npix = op.in_h * op.in_w, full = npix - npix % VLEN, i
    cdef vf acc = vf_zero()
    cdef float total
    for i in range(full // VLEN):
        acc = vf_add(acc, vf_loadu(src + i * VLEN))
    total = vf_hsum(acc)
    for i in range(full, npix):
        total = total + src[i]
    base[op.out_off[c]] = total / npix
