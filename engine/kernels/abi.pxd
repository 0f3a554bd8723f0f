# The planner-kernel codes of abi.h, for Cython (cimport) and, as enums of
# the module engine.kernels.abi, for Python.
cdef extern from "abi.h":
    cpdef enum OpKind:
        OP_GEMM
        OP_CONV_IM2COL
        OP_WINDOW
        OP_GLOBAL_AVGPOOL
        OP_LINEAR
        OP_ELTWISE
        OP_CONV_DIRECT
        OP_EXPAND_DW
        OP_RESIZE
        OP_CONV_WINOGRAD
        OP_I8_CONV
        OP_I8_GEMM
        OP_I8_WINDOW
        OP_I8_ELTWISE
        OP_KIND_END
    cpdef enum WindowMode:
        WINDOW_CONV
        WINDOW_MAX
        WINDOW_AVG
    cpdef enum WindowPath:
        WINDOW_DIRECT
        WINDOW_FLAT
        WINDOW_FRAMED
        WINDOW_INTERLEAVED
    cpdef enum EltwiseMode:
        ELTWISE_ADD
        ELTWISE_AFFINE
        ELTWISE_CLAMP
        ELTWISE_MUL
        ELTWISE_MUL_CHANNEL
        ELTWISE_ADD_SPLIT
    cpdef enum Int8Mode:
        I8_ADD
        I8_QUANTIZE
        I8_DEQUANTIZE
    cpdef enum ResizeMode:
        RESIZE_NEAREST
        RESIZE_BILINEAR
    enum: ACT_END
    enum: ACT_LEAKY_RELU    # (the one the GEMM tile applies in its store)
    const char* const ENGINE_ACT_NAMES[]
    enum: DTYPE_END
    const char* const ENGINE_DTYPE_CODES[]
    const char* const ENGINE_DTYPE_NAMES[]
    const int ENGINE_DTYPE_SIZES[]
