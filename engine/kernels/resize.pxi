"""Resizing planes, nearest and bilinear, through the tables the planner
computes once per plan (engine/ops/resize.py: PyTorch's source indices and
weights), so that one loop serves every scale, size and align_corners."""
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from engine.kernels.abi cimport RESIZE_NEAREST
from engine.kernels.common cimport (Op, ef, Ctx, VLEN, image_data, worker_scratch, vf, vf_loadu, vf_storeu, vf_set1,
                                    vf_mul, vf_fma)


cdef inline int64_t slot_floats(int64_t out_w) noexcept nogil:
    """Floats of one scratch slot: a source row resized across, and a vector's slack."""
    return out_w + VLEN


def resize_scratch_floats(int64_t out_w):
    """Scratch one worker needs: two slots (bilinear)."""
    return 2 * slot_floats(out_w)


cdef inline void across(const ef* a, const int64_t* col0, const int64_t* col1, const ef* wx0,
                        const ef* wx1, int64_t ow, ef* h) noexcept nogil:
    """h[x] = wx0[x] * a[col0[x]] + wx1[x] * a[col1[x]]: a source row resized across."""
    cdef int64_t x
    for x in range(ow):
        h[x] = wx0[x] * a[col0[x]] + wx1[x] * a[col1[x]]


cdef inline int64_t held(const int64_t* tags, int64_t row) noexcept nogil:
    """Which of the two slots holds source row `row` resized across, or -1."""
    return 0 if tags[0] == row else 1 if tags[1] == row else -1


cdef void resize_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels).  Bilinear: each output pixel
    is wy0 * (wx0 * a[x0] + wx1 * a[x1]) + wy1 * (wx0 * b[x0] + wx1 * b[x1]),
    a and b its two source rows, in PyTorch's order of operations: each
    source row resized across once into the scratch (an upsampling's
    neighbouring output rows share theirs), then the rows blended by
    vectors.  Nearest: a[x0], an output row like the one before it copied."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c, y, x, ia, ib
    cdef int64_t slot = slot_floats(op.p.out_w)
    cdef ef* base = image_data(ctx, job // op.p.jobs_per_image)
    cdef int64_t oh = op.p.out_h, ow = op.p.out_w
    cdef const int64_t* row0 = op.tap_off
    cdef const int64_t* row1 = row0 + oh
    cdef const int64_t* col0 = row1 + oh
    cdef const int64_t* col1 = col0 + ow
    cdef const ef* wy0 = op.aux
    cdef const ef* wy1 = wy0 + oh
    cdef const ef* wx0 = wy1 + oh
    cdef const ef* wx1 = wx0 + ow
    cdef ef* slots = worker_scratch(ctx, tid)     # two rows resized across, a slot apart
    cdef int64_t tags[2]                         # their source rows (offsets), -1: none
    cdef const ef* src
    cdef const ef* a
    cdef const ef* ha
    cdef const ef* hb
    cdef ef* out
    cdef vf fy0, fy1
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        src = base + op.in_off[c]
        tags[0] = tags[1] = -1
        for y in range(oh):
            out = base + op.out_off[c] + y * ow
            if op.p.mode == RESIZE_NEAREST:
                if y > 0 and row0[y] == row0[y - 1]:
                    memcpy(out, out - ow, ow * sizeof(ef))
                else:
                    a = src + row0[y]
                    for x in range(ow):
                        out[x] = a[col0[x]]
                continue
            ia = held(tags, row0[y])
            if ia < 0:
                ib = held(tags, row1[y])
                ia = 1 - ib if ib >= 0 else 0      # (not the slot of the other row)
                across(src + row0[y], col0, col1, wx0, wx1, ow, slots + ia * slot)
                tags[ia] = row0[y]
            ib = held(tags, row1[y])
            if ib < 0:
                ib = 1 - ia
                across(src + row1[y], col0, col1, wx0, wx1, ow, slots + ib * slot)
                tags[ib] = row1[y]
            ha, hb = slots + ia * slot, slots + ib * slot
            fy0, fy1 = vf_set1(wy0[y]), vf_set1(wy1[y])
            x = 0
            while x + VLEN <= ow:
                vf_storeu(out + x, vf_fma(fy1, vf_loadu(hb + x), vf_mul(fy0, vf_loadu(ha + x))))
                x += VLEN
            while x < ow:
                out[x] = wy0[y] * ha[x] + wy1[y] * hb[x]
                x += 1
