"""Element-wise ops over whole planes: add (residuals), multiply (gating,
also by one value per channel as squeeze-excitation does), per-channel affine
(a BatchNorm or scalar arithmetic with no convolution to fold into) and a
standalone activation.  Plane strides are multiples of ENGINE_PLANE_ALIGN, so every plane is
whole vectors; the padding lanes compute garbage that nothing reads."""
from libc.stdint cimport int64_t
from engine.kernels.abi cimport (ELTWISE_ADD, ELTWISE_AFFINE, ELTWISE_MUL, ELTWISE_MUL_CHANNEL,
                                 ELTWISE_ADD_SPLIT)
from engine.kernels.common cimport Op, ef, Ctx, VLEN, act_param, f32_activation, image_data

from engine.kernels.common cimport vf, vf_set1, vf_loadu, vf_storeu, vf_fma, vf_add, vf_mul, vf_max, vf_min

cdef void eltwise_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil:
    """job = (image, run of per_job channels), or for ELTWISE_ADD_SPLIT
    (image, run of per_job vectors of every plane): split by pixels, as the
    1x1 convolutions reading its output are."""
    cdef int64_t c0 = job % op.p.jobs_per_image * op.p.per_job, c
    cdef ef* base = image_data(ctx, job // op.p.jobs_per_image)
    cdef int64_t nvec = op.p.plane // VLEN
    if op.p.mode == ELTWISE_ADD_SPLIT:
        for c in range(op.p.n_out):
            eltwise_vectors(op, base, c, c0, min(c0 + op.p.per_job, nvec))
        return
    for c in range(c0, min(c0 + op.p.per_job, op.p.n_out)):
        eltwise_vectors(op, base, c, 0, nvec)


cdef inline void eltwise_vectors(const Op* op, ef* base, int64_t c, int64_t v0,
                                 int64_t v1) noexcept nogil:
    """Vectors [v0, v1) of channel c."""
    cdef const ef* a = base + op.in_off[c]
    cdef const ef* b
    cdef ef* out = base + op.out_off[c]
    cdef vf vlo = vf_set1(op.p.lo), vhi = vf_set1(op.p.hi), scale, shift, y
    cdef int64_t i, v
    if op.p.mode == ELTWISE_ADD or op.p.mode == ELTWISE_ADD_SPLIT:
        b = base + op.in2_off[c]
        for v in range(v0, v1):
            i = v * VLEN
            y = vf_add(vf_loadu(a + i), vf_loadu(b + i))
            vf_storeu(out + i, vf_min(vhi, vf_max(vlo, y)))
    elif op.p.mode == ELTWISE_MUL or op.p.mode == ELTWISE_MUL_CHANNEL:
        b = base + op.in2_off[c]
        scale = vf_set1(b[0])
        for v in range(v0, v1):
            i = v * VLEN
            y = vf_mul(vf_loadu(a + i), scale if op.p.mode == ELTWISE_MUL_CHANNEL else vf_loadu(b + i))
            vf_storeu(out + i, vf_min(vhi, vf_max(vlo, y)))
    elif op.p.mode == ELTWISE_AFFINE:
        scale = vf_set1(op.w[c])
        shift = vf_set1(op.b[c])
        for v in range(v0, v1):
            i = v * VLEN
            y = vf_fma(vf_loadu(a + i), scale, shift)
            vf_storeu(out + i, vf_min(vhi, vf_max(vlo, y)))
    else:
        for v in range(v0, v1):
            i = v * VLEN
            vf_storeu(out + i, vf_min(vhi, vf_max(vlo, vf_loadu(a + i))))
    if op.p.act:
        f32_activation(out + v0 * VLEN, (v1 - v0) * VLEN, op.p.act, act_param(op, c))
