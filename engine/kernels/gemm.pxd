from libc.stdint cimport int64_t
from engine.kernels.common cimport Op, Ctx

cdef void gemm_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void conv_direct_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void conv_im2col_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void linear_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
