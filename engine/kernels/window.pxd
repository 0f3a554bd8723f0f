from libc.stdint cimport int64_t
from engine.kernels.common cimport Op, Ctx

cdef void window_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void global_avgpool_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void window_rows(const Op* op, const float* in_base, float* out_base, float* buf,
                      int64_t c0, int64_t c1, int64_t ih_lo, int64_t ih_hi,
                      int64_t oh0, int64_t oh1) noexcept nogil
cdef void flat_planes(const Op* op, const float* in_base, float* out_base, float* buf,
                      int64_t c0, int64_t c1, int64_t j0, int64_t j1) noexcept nogil
