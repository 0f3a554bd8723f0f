from libc.stdint cimport int64_t
from engine.kernels.common cimport Op, Ctx

cdef void expand_dw_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
