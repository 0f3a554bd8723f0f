"""Resizing planes, nearest and bilinear, through the tables the planner
computes once per plan (engine/ops/resize.py: PyTorch's source indices and
weights), so that one loop serves every scale, size and align_corners."""
from libc.stdint cimport int64_t
from engine.kernels.abi cimport RESIZE_NEAREST
from engine.kernels.common cimport Op, Ctx, f32_image


cdef void resize_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels).  Bilinear: each output pixel
    is wy0 * (wx0 * a[x0] + wx1 * a[x1]) + wy1 * (wx0 * b[x0] + wx1 * b[x1]),
    a and b its two source rows, in PyTorch's order of operations; nearest:
    a[x0]."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c, y, x
    cdef float* base = f32_image(ctx, job // op.p.jobs_per_image)
    cdef int64_t oh = op.p.out_h, ow = op.p.out_w
    cdef const int64_t* row0 = op.tap_off
    cdef const int64_t* row1 = row0 + oh
    cdef const int64_t* col0 = row1 + oh
    cdef const int64_t* col1 = col0 + ow
    cdef const float* wy0 = op.aux
    cdef const float* wy1 = wy0 + oh
    cdef const float* wx0 = wy1 + oh
    cdef const float* wx1 = wx0 + ow
    cdef const float* src
    cdef const float* a
    cdef const float* b
    cdef float* out
    cdef float fy0, fy1
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        src = base + op.in_off[c]
        for y in range(oh):
            a, b = src + row0[y], src + row1[y]
            out = base + op.out_off[c] + y * ow
            if op.p.mode == RESIZE_NEAREST:
                for x in range(ow):
                    out[x] = a[col0[x]]
            else:
                fy0, fy1 = wy0[y], wy1[y]
                for x in range(ow):
                    out[x] = (fy0 * (wx0[x] * a[col0[x]] + wx1[x] * a[col1[x]])
                              + fy1 * (wx0[x] * b[col0[x]] + wx1[x] * b[col1[x]]))
