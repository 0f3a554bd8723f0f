/* The codes a compiled op carries from the planner (engine/plan.py) to the
 * kernels, defined here once: C includes this header, Cython declares it in
 * abi.pxd, and Python reads the same values as enums from engine.kernels.abi.
 * They live in compiled programs only, never in model files, so they may
 * change between versions. */
#ifndef ENGINE_ABI_H
#define ENGINE_ABI_H

enum OpKind {
    OP_GEMM = 1,          /* 1x1 stride-1 convolution, any groups */
    OP_CONV_IM2COL,       /* any other dense or grouped convolution */
    OP_WINDOW,            /* depthwise convolution, max and average pooling */
    OP_GLOBAL_AVGPOOL,
    OP_LINEAR,            /* fully connected (or 1x1 convolution on 1x1 planes) */
    OP_ELTWISE,           /* add, mul, per-channel affine, activation */
    OP_CONV_DIRECT,       /* dense convolution, stride 1 or 2, no dilation */
    OP_EXPAND_DW,         /* 1x1 convolution, then the depthwise one reading it, band by band */
    OP_RESIZE,            /* planes resized (upsampled) through tables of source rows and columns */
    OP_CONV_WINOGRAD,     /* dense 3x3 stride-1 convolution, Winograd F(2x2) or F(4x4) */
    OP_I8_CONV,           /* int8 convolution (any) or fully connected, int32 sums */
    OP_I8_GEMM,           /* int8 1x1 stride-1 convolution, any groups: packed panels */
    OP_I8_WINDOW,         /* int8 max and average pooling (global too) */
    OP_I8_ELTWISE,        /* int8 add; float32 <-> int8 conversions */
    OP_KIND_END
};

enum WindowMode { WINDOW_CONV = 0, WINDOW_MAX, WINDOW_AVG };

/* how an OP_WINDOW walks a plane */
enum WindowPath {
    WINDOW_DIRECT = 0,    /* rows read in place, border lanes replaced by the padding value */
    WINDOW_FLAT,          /* small planes as flat vectors with lane masks (stride 2: phase planes) */
    WINDOW_FRAMED,        /* 3x3, stride 1 or 2: rows copied into frames with the padding, no masks */
    WINDOW_INTERLEAVED    /* 3x3, 5x5, 7x7, stride 1 or 2: VLEN channels' rows interleaved into one frame */
};

enum EltwiseMode {
    ELTWISE_ADD = 0,
    ELTWISE_AFFINE,
    ELTWISE_CLAMP,
    ELTWISE_MUL,          /* a * b, same shapes */
    ELTWISE_MUL_CHANNEL,  /* a * b[c], b one value per channel (squeeze-excitation) */
    ELTWISE_ADD_SPLIT     /* a + b: the halves of a K-split 1x1 convolution, split by pixels */
};

enum Int8Mode {
    I8_ADD = 0,           /* int8 a + b, each rescaled to the output's scale */
    I8_QUANTIZE,          /* float32 -> int8 */
    I8_DEQUANTIZE         /* int8 -> float32 */
};

enum ResizeMode {
    RESIZE_NEAREST = 0,   /* each output pixel a copy of one input pixel */
    RESIZE_BILINEAR       /* weighted sum of two input rows by two columns */
};

/* Nonlinearities applied after an op's clamp, by the names the graph gives
 * them (engine/ops/activations.py); Python reads this list as the enum Act.
 * Adding one: a line here, its code in ukernels.h's f32_activation.  A
 * parametric one reads a number per output channel (Op.act_w). */
#define ENGINE_ACTIVATIONS(X) \
    X(ACT_NONE, "none") \
    X(ACT_HARDSWISH, "hardswish") \
    X(ACT_HARDSIGMOID, "hardsigmoid") \
    X(ACT_SIGMOID, "sigmoid") \
    X(ACT_SILU, "silu") \
    X(ACT_LEAKY_RELU, "leaky_relu") \
    X(ACT_TANH, "tanh")

/* Element types of tensors: the graph's dtype names and their sizes.  The
 * planner lays out each tensor by its size (engine/plan.py: offsets in
 * bytes); the kernel modules compute on their element type (float32 or
 * float16), and the fp32 ones on int8 too (the OP_I8_ kinds). */
#define ENGINE_DTYPES(X) \
    X(DTYPE_F32, "float32", 4) \
    X(DTYPE_F16, "float16", 2) \
    X(DTYPE_I8, "int8", 1)
#define ENGINE_DTYPE_CODE(code, name, size) code,
#define ENGINE_DTYPE_NAME(code, name, size) name,
#define ENGINE_DTYPE_SIZE(code, name, size) size,
#define ENGINE_DTYPE_CODE_NAME(code, name, size) #code,
enum DType { ENGINE_DTYPES(ENGINE_DTYPE_CODE) DTYPE_END };
static const char* const ENGINE_DTYPE_CODES[] = { ENGINE_DTYPES(ENGINE_DTYPE_CODE_NAME) };
static const char* const ENGINE_DTYPE_NAMES[] = { ENGINE_DTYPES(ENGINE_DTYPE_NAME) };
static const int ENGINE_DTYPE_SIZES[] = { ENGINE_DTYPES(ENGINE_DTYPE_SIZE) };

#define ENGINE_ACT_CODE(code, name) code,
#define ENGINE_ACT_NAME(code, name) name,
enum Act { ENGINE_ACTIVATIONS(ENGINE_ACT_CODE) ACT_END };
static const char* const ENGINE_ACT_NAMES[] = { ENGINE_ACTIVATIONS(ENGINE_ACT_NAME) };

#endif
