# Declarations shared by every kernel module: the SIMD layer, the compiled
# operator record the executor walks, and the signature of a unit of work.
from libc.stdint cimport int8_t, int32_t, int64_t

cdef extern from "simd.h" nogil:
    const char* ENGINE_SIMD_ISA
    const int VLEN
    const int GEMM_MR
    const int GEMM_NR
    const int ENGINE_PLANE_ALIGN
    ctypedef float ef    # the element type of tensors, weights and scratch (simd.h): float or _Float16
    ctypedef float vf    # opaque to Cython: only passed between these calls
    vf vf_zero()
    vf vf_set1(float x)
    vf vf_loadu(const ef* p)
    void vf_storeu(ef* p, vf v)
    vf vf_fma(vf a, vf b, vf c)
    vf vf_add(vf a, vf b)
    vf vf_mul(vf a, vf b)
    vf vf_max(vf a, vf b)
    vf vf_min(vf a, vf b)
    float vf_hsum(vf v)


cdef extern from "ukernels.h" nogil:
    void f32_activation(ef* p, int64_t n, int act, float param)


cdef struct Op

# A compiled operator's numbers: the fields of its kind's record in
# descriptors.py (the planner's side of this contract); fields a kind does
# not use are 0.  Program fills it from the record by field name.
cdef struct OpParams:
    int kind                 # OpKind (abi.h)
    int mode                 # WindowMode, EltwiseMode or ResizeMode
    float lo                 # output clamp: the fused activation
    float hi
    int act                  # then this activation (Act), ACT_NONE for none
    float fill               # padding value of window ops
    int64_t groups
    int64_t cin_g            # input channels per group
    int64_t cout_g           # output channels per group
    int64_t n_out            # output channels in all
    int64_t in_h
    int64_t in_w
    int64_t out_h
    int64_t out_w
    int64_t kh
    int64_t kw
    int64_t sh
    int64_t sw
    int64_t ph
    int64_t pw
    int64_t dh
    int64_t dw
    int64_t path             # window ops: WINDOW_DIRECT, WINDOW_FLAT or WINDOW_FRAMED
    int64_t K                # GEMM reduction length per group
    int64_t tile_rows        # GEMM rows per tile: GEMM_MR, GEMM_MR_SHORT or GEMM_MR_NARROW
    int64_t m_tiles          # GEMM row tiles per group
    int64_t short_rows       # GEMM rows of the last short_tiles row tiles (shorter than tile_rows)
    int64_t short_tiles
    int64_t m_per_job        # row tiles one job computes
    int64_t m_block          # OP_CONV_DIRECT: row tiles a job runs over all its rows before the next
    int64_t panel            # OP_CONV_DIRECT: 1: jobs of per_job pixels across rows, through a panel
    int64_t per_job          # channels (per-channel ops), pixel tiles (1x1, im2col), output
                             # rows (direct convolution; a fused op's band; with a panel
                             # pixels) or tile rows (Winograd) one job computes
    int64_t n_tiles          # GEMM pixel tiles per plane
    int64_t tile_pixels      # GEMM pixels per tile: GEMM_NR, or the whole plane (GEMM_TAIL_PIXELS)
    int64_t plane            # padded plane stride of the output
    int64_t k_splits         # OP_GEMM: 2 when the reduction runs in two halves (the second
                             # into part_off; an ELTWISE_ADD_SPLIT op sums them)
    int64_t jobs_per_image
    int64_t wino             # OP_CONV_WINOGRAD: output tile side m (2 or 4)
    int64_t wino_stride      # OP_CONV_WINOGRAD: floats from one row of its transform buffers to the next
    # the int8 kinds (OP_I8_*, kernels/int8.pxi; engine/int8.py: the arithmetic)
    int in_zero              # the input's zero point (I8_ADD: the first operand's)
    float in_scale           # I8_ADD: the first operand's multiplier; I8_QUANTIZE 1 / scale, I8_DEQUANTIZE scale
    int in2_zero             # the residual's or I8_ADD's second operand's zero point
    float in2_scale          # ... and its multiplier (its scale / the output's)
    int out_zero             # the output's zero point
    int qlo                  # the output's clamp, in q
    int qhi
    int out_f32              # OP_I8_CONV: writes float32 (sums times mult, clamped to [lo, hi])

# One compiled operator: its numbers, then its tables.  Plane offsets are in
# elements (of the op's dtype: the module's element, or int8's bytes for the
# int8 kinds, whose inputs or outputs may be float32) from the start of one
# image's slice of the arena (Program converts the records' bytes); every
# channel of every tensor is one plane there.
cdef struct Op:
    OpParams p
    const int64_t* in_off    # plane offset of each input channel
    const int64_t* in2_off   # second operand (add), or the B rows of im2col panels and of
                             # direct convolutions' frames
    const int64_t* out_off   # plane offset of each output channel
    const int64_t* res_off   # convolutions: a residual added to each output channel, or NULL
    const int64_t* part_off  # OP_GEMM with k_splits: planes of the second half's partial sums
    const int64_t* k_runs    # GEMMs, fully connected: per entry of the B table (in_off, or
                             # in2_off), how many entries from it are equally spaced
                             # (f32_gemm_tile's b_run)
    const ef* w           # prepacked weights
    const ef* b           # bias, padded to the tile
    const ef* aux         # per-pixel reciprocal counts of average pooling; OP_RESIZE: weights
    const ef* act_w       # the activation's number per output channel (parametric ones), or NULL
    const int8_t* qw         # OP_I8_CONV: int8 weights, [n_out][cin_g][kh][kw] (OP_I8_GEMM: packed;
                             # OP_I8_WINDOW average: the window's, all 1)
    const int32_t* qb        # OP_I8_CONV: int32 bias per output channel, in the sums' scale (OP_I8_GEMM:
                             # per padded row, the panel's offset taken off)
    const float* mult        # OP_I8_CONV, OP_I8_GEMM: per output channel, OP_I8_WINDOW average: per output
                             # pixel, the multiplier of the sums (engine/int8.py)
    const int64_t* tap_off   # WINDOW_FLAT: input offset of each tap; OP_RESIZE: source rows, columns
    const int* lanes         # WINDOW_FLAT: valid lanes per (output vector, tap)
    const Op* then           # OP_EXPAND_DW: the depthwise op that reads this op's output


# What one run of a program works on: bytes, so that tensors of any dtype
# share the arena; a job takes its image's and its worker's slices typed.
cdef struct Ctx:
    char* arena
    int64_t image_bytes      # per image
    char* scratch
    int64_t scratch_bytes    # per thread
    int nthreads


cdef inline ef* image_data(const Ctx* ctx, int64_t image) noexcept nogil:
    """Image `image`'s slice of the arena, as elements (ef)."""
    return <ef*>(ctx.arena + image * ctx.image_bytes)


cdef inline ef* worker_scratch(const Ctx* ctx, int tid) noexcept nogil:
    """Worker tid's scratch, as elements (ef)."""
    return <ef*>(ctx.scratch + tid * ctx.scratch_bytes)


# A unit of work: job index within the op's (images x jobs_per_image) jobs,
# tid the worker's index, for its slice of scratch.
ctypedef void (*job_fn)(const Op* op, const Ctx* ctx, int64_t job, int tid) noexcept nogil


cdef inline float act_param(const Op* op, int64_t c) noexcept nogil:
    """Output channel c's number for the op's activation (0 for the others)."""
    return op.act_w[c] if op.act_w != NULL else 0
