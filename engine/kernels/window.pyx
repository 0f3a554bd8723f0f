# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-channel sliding-window ops: depthwise convolution (any kernel, stride,
padding, dilation, channel multiplier), max and average pooling (padding,
ceil_mode, count_include_pad both ways), and global average pooling.

A job copies one input plane into the worker's scratch with its padding
filled in (0 for convolution and average, -inf for max), so the inner loop
has no border cases and runs vectors across an output row whatever the
kernel, stride or plane size."""
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from engine.kernels.common cimport (Op, Ctx, VLEN, WINDOW_CONV, WINDOW_MAX,
                                    WINDOW_AVG)

cdef extern from "simd.h" nogil:
    ctypedef float vf    # opaque to Cython: only passed between these calls
    vf vf_set1(float x)
    vf vf_zero()
    vf vf_loadu(const float* p)
    void vf_storeu(float* p, vf v)
    void vf_store_partial(float* p, vf v, int n)
    vf vf_load_strided(const float* p, int64_t s)
    vf vf_fma(vf a, vf b, vf c)
    vf vf_add(vf a, vf b)
    vf vf_mul(vf a, vf b)
    vf vf_max(vf a, vf b)
    vf vf_min(vf a, vf b)
    float vf_hsum(vf v)


cdef inline int64_t padded_width(const Op* op) noexcept nogil:
    return (op.out_w - 1) * op.sw + (op.kw - 1) * op.dw + 1


cdef inline int64_t padded_height(const Op* op) noexcept nogil:
    return (op.out_h - 1) * op.sh + (op.kh - 1) * op.dh + 1


def scratch_floats(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                   int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                   int64_t dh, int64_t dw):
    """Scratch one worker needs: the padded plane plus the over-read of the
    last vector of the last row."""
    cdef int64_t rows = (out_h - 1) * sh + (kh - 1) * dh + 1
    cdef int64_t cols = (out_w - 1) * sw + (kw - 1) * dw + 1
    return rows * cols + VLEN * max(sw, 2) + 16


cdef void fill_padded(const Op* op, const float* src, float* dst) noexcept nogil:
    """dst = the input plane src framed by op.fill, rows x cols as the
    windows need (ceil_mode may need more than the padding, or less)."""
    cdef int64_t rows = padded_height(op), cols = padded_width(op)
    cdef int64_t r, c, ih, left = min(op.pw, cols)
    cdef int64_t ncopy = max(<int64_t>0, min(op.in_w, cols - op.pw))
    cdef float* d
    for r in range(rows):
        d = dst + r * cols
        ih = r - op.ph
        if ih < 0 or ih >= op.in_h:
            for c in range(cols):
                d[c] = op.fill
            continue
        for c in range(left):
            d[c] = op.fill
        memcpy(d + left, src + ih * op.in_w, ncopy * sizeof(float))
        for c in range(left + ncopy, cols):
            d[c] = op.fill


cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, output channel)."""
    cdef int64_t image = job // op.jobs_per_image
    cdef int64_t c = job % op.jobs_per_image
    cdef float* base = ctx.arena + image * ctx.image_stride
    cdef float* pad = ctx.scratch + tid * ctx.scratch_stride
    cdef float* out = base + op.out_off[c]
    cdef int64_t cols = padded_width(op)
    cdef const float* w = op.w + c * op.kh * op.kw
    cdef float bias = op.b[c] if op.mode == WINDOW_CONV else 0
    cdef vf acc, x, vlo = vf_set1(op.lo), vhi = vf_set1(op.hi)
    cdef int64_t oh, ow, t, ki, kj, n
    cdef const float* row
    fill_padded(op, base + op.in_off[c], pad)
    for oh in range(op.out_h):
        for t in range((op.out_w + VLEN - 1) // VLEN):
            ow = t * VLEN
            if op.mode == WINDOW_MAX:
                acc = vf_set1(op.fill)
            else:
                acc = vf_set1(bias)
            for ki in range(op.kh):
                row = pad + (oh * op.sh + ki * op.dh) * cols + ow * op.sw
                for kj in range(op.kw):
                    x = vf_load_strided(row + kj * op.dw, op.sw)
                    if op.mode == WINDOW_CONV:
                        acc = vf_fma(vf_set1(w[ki * op.kw + kj]), x, acc)
                    elif op.mode == WINDOW_MAX:
                        acc = vf_max(x, acc)
                    else:
                        acc = vf_add(acc, x)
            if op.mode == WINDOW_AVG:
                acc = vf_mul(acc, vf_loadu(op.aux + oh * op.out_w + ow))
            acc = vf_min(vhi, vf_max(vlo, acc))
            n = op.out_w - ow
            if n >= VLEN:
                vf_storeu(out + oh * op.out_w + ow, acc)
            else:
                vf_store_partial(out + oh * op.out_w + ow, acc, <int>n)


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
