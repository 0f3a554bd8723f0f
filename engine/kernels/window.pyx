# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-channel sliding-window ops: depthwise convolution (any kernel, stride,
padding, dilation, channel multiplier), max and average pooling (padding,
ceil_mode, count_include_pad both ways), and global average pooling.

A job computes one output plane row by row with a row kernel that runs
vectors wherever the window lies inside the input row and handles the
borders one output at a time.  Wide planes are read in place (rows under the
padding read a row of the padding value: 0 for convolution and average, -inf
for max); narrow planes, where the borders would be much of the work, are
first copied into a frame of padding in scratch so every output is inside."""
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
    ctypedef struct f32_window_args:
        const float* src
        int64_t in_h, in_w, ph, pw, out_h, out_w
        const float* w
        float init, fill, lo, hi
        const float* aux
        float* out
        const float* fill_row
        const float** rows
    ctypedef void (*f32_window_plane_fn)(const f32_window_args* a)
    f32_window_plane_fn f32_window_plane_special(int mode, int64_t kh, int64_t kw, int64_t sh,
                                                 int64_t sw, int64_t dh, int64_t dw)
    void f32_window_plane_any(const f32_window_args* a, int mode, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t dh, int64_t dw)
    void f32_frame_plane(const float* src, int64_t in_h, int64_t in_w, int64_t pt, int64_t pl,
                         float fill, float* dst, int64_t rows, int64_t cols)
    const int ENGINE_ROW_OVERREAD


ROW_OVERREAD = ENGINE_ROW_OVERREAD     # slack the arena keeps after its last plane
FRAME_BELOW_WIDTH = 64                 # frame stride-1 input planes narrower than this


cdef inline int64_t frame_width(const Op* op) noexcept nogil:
    return (op.out_w - 1) * op.sw + (op.kw - 1) * op.dw + 1


cdef inline int64_t frame_height(const Op* op) noexcept nogil:
    return (op.out_h - 1) * op.sh + (op.kh - 1) * op.dh + 1


def scratch_floats(int64_t in_w, int64_t out_h, int64_t out_w, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t dh, int64_t dw, bint framed):
    """Scratch one worker needs: the padding row or the framed plane, what
    the kernels read past its end, and kh row pointers."""
    cdef int64_t data = in_w
    if framed:
        data = ((out_w - 1) * sw + (kw - 1) * dw + 1) * ((out_h - 1) * sh + (kh - 1) * dh + 1)
    return data + ENGINE_ROW_OVERREAD + 16 + 2 * kh


cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, output channel)."""
    cdef int64_t image = job // op.jobs_per_image
    cdef int64_t c = job % op.jobs_per_image
    cdef float* base = ctx.arena + image * ctx.image_stride
    cdef float* buf = ctx.scratch + tid * ctx.scratch_stride
    cdef f32_window_args a
    cdef int64_t i
    a.src, a.in_h, a.in_w, a.ph, a.pw = base + op.in_off[c], op.in_h, op.in_w, op.ph, op.pw
    a.out_h, a.out_w, a.out = op.out_h, op.out_w, base + op.out_off[c]
    a.w = op.w + c * op.kh * op.kw if op.mode == WINDOW_CONV else NULL
    a.init = op.b[c] if op.mode == WINDOW_CONV else op.fill if op.mode == WINDOW_MAX else 0
    a.fill, a.lo, a.hi, a.aux, a.fill_row = op.fill, op.lo, op.hi, op.aux, buf
    cdef int64_t data = op.in_w
    if op.framed:       # the padding is in the frame now
        f32_frame_plane(a.src, op.in_h, op.in_w, op.ph, op.pw, op.fill, buf,
                        frame_height(op), frame_width(op))
        a.src, a.in_h, a.in_w, a.ph, a.pw = buf, frame_height(op), frame_width(op), 0, 0
        data = a.in_h * a.in_w
    else:
        for i in range(op.in_w + ENGINE_ROW_OVERREAD):
            buf[i] = op.fill
    a.rows = <const float**>(buf + (data + ENGINE_ROW_OVERREAD + 16) // 2 * 2)
    cdef f32_window_plane_fn plane_fn = f32_window_plane_special(op.mode, op.kh, op.kw, op.sh,
                                                                op.sw, op.dh, op.dw)
    if plane_fn != NULL:
        plane_fn(&a)
    else:
        f32_window_plane_any(&a, op.mode, op.kh, op.kw, op.sh, op.sw, op.dh, op.dw)
    if op.act:
        f32_activation(a.out, op.out_h * op.out_w, op.act)


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
