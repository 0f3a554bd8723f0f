from libc.stdint cimport int64_t
from engine.kernels.common cimport Op, Ctx

cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void global_avgpool_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
