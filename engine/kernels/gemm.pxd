from libc.stdint cimport int64_t
from engine.kernels.common cimport Op, Ctx

cdef void gemm_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void conv_direct_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void conv_im2col_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
cdef void linear_job(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil
# how much of the reduction gemm_row_tiles computes
cdef enum:
    WHOLE_K = 0
    FIRST_HALF = 1     # of a K-split op (Op.k_splits)
    SECOND_HALF = 2

cdef void gemm_row_tiles(const Op* op, int64_t g, int64_t mt0, int64_t mt1,
                         const float* src, const int64_t* b_off, int64_t nb0,
                         float* dst, int64_t nc0, int64_t nvalid, int half) noexcept nogil
