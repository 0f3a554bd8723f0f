"""What the planner (engine/plan.py) hands the kernels: one typed record per
compiled op, a class per kernel kind (abi.h's OpKind).

A class's fields are the values its kind's jobs read, named as in the
compiled Op record (kernels/common.pxd); the planner must give every one
(a misspelt or missing field is a TypeError where the record is built), and
Program refuses a field the Op record does not have.  Fields an Op has and a
kind does not use are zero there.  Arrays are typed by what they hold:
Planes (int64 offsets of planes in bytes, from the start of an image's
slice of the arena, or of a worker's scratch for the ops a fused op runs
there), Offsets (int64 offsets in elements: taps within a plane, rows of a
scratch panel), Floats (weights, bias, divisors: float32, held as the kernel
module's element type), Flags (int32 lane
flags of the window kernels), Counts (int64 numbers of table entries),
Int8s and Int32s (the int8 kinds' weights and bias).  Optional arrays default to None.  Every
record says the element type of the tensors it reads and writes (dtype):
Program turns its Planes into element offsets of that type, the kernels'
unit, and refuses a type it has no kernels for."""
from dataclasses import dataclass

import numpy as np

from engine.kernels.abi import Act, DType, EltwiseMode, Int8Mode, OpKind, ResizeMode, WindowMode, WindowPath


class Planes(np.ndarray):
    """int64 plane offsets in bytes (a type for annotations: the arrays are plain)."""


class Offsets(np.ndarray):
    """int64 offsets in elements."""


class Floats(np.ndarray):
    """float32 values (Program holds them as its module's elements)."""


class Int8s(np.ndarray):
    """int8 values (the int8 kinds' weights)."""


class Int32s(np.ndarray):
    """int32 values (the int8 kinds' bias)."""


class Flags(np.ndarray):
    """int32 lane flags."""


class Counts(np.ndarray):
    """int64 counts of table entries."""


ARRAY_DTYPES = {Planes: np.int64, Offsets: np.int64, Floats: np.float32, Flags: np.int32,
                Counts: np.int64, Int8s: np.int8, Int32s: np.int32}


@dataclass(frozen=True, kw_only=True)
class Step:
    """What every op has: its output channels and plane stride, its jobs per
    image, the planes it reads and writes, and its epilogue: the output
    clamped to [lo, hi], then act (act_w: its number per output channel, for
    a parametric one).  plane: in elements."""
    n_out: int
    plane: int
    jobs_per_image: int
    in_off: Planes
    out_off: Planes
    lo: float
    hi: float
    act: Act
    act_w: Floats = None
    dtype: DType = DType.DTYPE_F32


@dataclass(frozen=True, kw_only=True)
class Spatial:
    """Input and output plane sizes."""
    in_h: int
    in_w: int
    out_h: int
    out_w: int


@dataclass(frozen=True, kw_only=True)
class Kernel:
    """A sliding window: size, stride, padding and dilation."""
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int


@dataclass(frozen=True, kw_only=True)
class Gemm(Step, Spatial):
    """1x1 convolution: weights packed in m_tiles row tiles per group, of
    tile_rows output channels but the last short_tiles of short_rows
    (lowering.row_tiles, pack_gemm; kernels/gemm.pxi), pixels in tiles of
    tile_pixels; jobs of m_per_job row tiles by per_job pixel tiles.
    The B table (in_off here, in2_off for the convolutions below) is in the
    order of the reduction (lowering.reduction_order), the weights packed in
    the same order; k_runs: its runs of equally spaced entries.
    k_splits 2: the reduction in two halves, the second into part_off."""
    KIND = OpKind.OP_GEMM
    groups: int
    cin_g: int
    cout_g: int
    K: int
    tile_rows: int
    m_tiles: int
    short_rows: int
    short_tiles: int
    m_per_job: int
    per_job: int
    n_tiles: int
    tile_pixels: int
    w: Floats
    b: Floats
    k_runs: Counts
    res_off: Planes = None
    k_splits: int = 1
    part_off: Planes = None


@dataclass(frozen=True, kw_only=True)
class ConvDirect(Gemm, Kernel):
    """Dense convolution, stride 1 or 2, read from framed rows in place:
    jobs of per_job output rows, each over its rows m_block row tiles at a
    time (lowering.weight_block); in2_off is each tap's offset in the frame.
    panel 1: jobs of per_job pixels across rows, each tap's pixels copied
    from the frame into a panel (rows too narrow for the tiles' lanes)."""
    KIND = OpKind.OP_CONV_DIRECT
    in2_off: Offsets
    m_block: int
    panel: int = 0


@dataclass(frozen=True, kw_only=True)
class ConvIm2col(Gemm, Kernel):
    """Any other convolution, through im2col panels: jobs of per_job pixel
    tiles; in2_off is each panel row's offset (k * pixels per tile)."""
    KIND = OpKind.OP_CONV_IM2COL
    in2_off: Offsets


@dataclass(frozen=True, kw_only=True)
class ConvWinograd(Gemm, Kernel):
    """Dense 3x3 stride-1 convolution by Winograd F(wino x wino, 3x3)
    (kernels/winograd.pxi): w holds the transformed weights packed as
    (wino + 2)^2 groups of cout_g x K (K = cin); b the plain bias; jobs of
    per_job tile rows by m_per_job row tiles; in2_off[r] = r * the rows'
    stride in the job's transform buffers (winograd_stride)."""
    KIND = OpKind.OP_CONV_WINOGRAD
    wino: int
    in2_off: Offsets


@dataclass(frozen=True, kw_only=True)
class ExpandDepthwise(Gemm):
    """A 1x1 convolution writing its output to scratch, planes `plane`
    floats apart, and the depthwise `then` reading it there: jobs of
    m_per_job row tiles (channels of both), each in bands of per_job rows
    of then's output (kernels/fused.pxi)."""
    KIND = OpKind.OP_EXPAND_DW
    then: 'Window'


@dataclass(frozen=True, kw_only=True)
class Linear(Step):
    """Fully connected: weights packed in tiles of LINEAR_OUTPUTS outputs;
    k_runs: in_off's runs of equally spaced entries."""
    KIND = OpKind.OP_LINEAR
    K: int
    w: Floats
    b: Floats
    k_runs: Counts
    res_off: Planes = None


@dataclass(frozen=True, kw_only=True)
class Window(Step, Spatial, Kernel):
    """Depthwise convolution (w, b per channel), max or average pooling (aux:
    per-pixel divisors), by `path`; fill is the padding value.  Jobs of
    per_job channels."""
    KIND = OpKind.OP_WINDOW
    mode: WindowMode
    path: WindowPath
    per_job: int
    fill: float
    w: Floats = None
    b: Floats = None
    aux: Floats = None
    lanes: Flags = None
    tap_off: Offsets = None


@dataclass(frozen=True, kw_only=True)
class GlobalAvgPool(Step):
    """Each plane's mean; jobs of per_job channels."""
    KIND = OpKind.OP_GLOBAL_AVGPOOL
    in_h: int
    in_w: int
    per_job: int


@dataclass(frozen=True, kw_only=True)
class Eltwise(Step):
    """Add, multiply, affine (w, b per channel) or clamp; jobs of per_job
    channels (ELTWISE_ADD_SPLIT: of per_job vectors of every plane)."""
    KIND = OpKind.OP_ELTWISE
    mode: EltwiseMode
    per_job: int
    in2_off: Planes = None
    w: Floats = None
    b: Floats = None


@dataclass(frozen=True, kw_only=True)
class Resize(Step, Spatial):
    """Planes resized through tables (engine/ops/resize.py): tap_off holds
    each output row's two source rows (offsets in the plane: oh, then oh
    more), then each output column's two source columns (ow, ow); aux their
    weights in the same order.  RESIZE_NEAREST reads the first of each only.
    Jobs of per_job channels."""
    KIND = OpKind.OP_RESIZE
    mode: ResizeMode
    per_job: int
    tap_off: Offsets
    aux: Floats


@dataclass(frozen=True, kw_only=True)
class Int8Step(Step):
    """What the int8 kinds share (engine/int8.py: the arithmetic): dtype
    int8, their plane offsets in bytes whatever a plane holds; the input's
    zero point, the output's, and the output's clamp in q [qlo, qhi]."""
    dtype: DType = DType.DTYPE_I8
    in_zero: int
    out_zero: int
    qlo: int
    qhi: int
    per_job: int


@dataclass(frozen=True, kw_only=True)
class Int8Layer(Int8Step, Spatial):
    """What int8 convolutions share: each output channel's int32 sums of
    (q - in_zero) * qw over its group's cin_g planes, plus qb; times mult
    (per output channel), plus a residual's (q - in2_zero) * in2_scale
    (res_off), rounded to int8; or with out_f32, float32 clamped to [lo, hi]."""
    groups: int
    cin_g: int
    cout_g: int
    qw: Int8s
    qb: Int32s
    mult: Floats
    out_f32: int
    res_off: Planes = None
    in2_zero: int = 0
    in2_scale: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Int8Conv(Int8Layer, Kernel):
    """int8 convolution (any kernel, stride, padding, dilation, groups) or
    fully connected layer (1x1 planes), directly: qw [n_out][cin_g][kh][kw].
    Jobs of per_job output channels; scratch: int8_conv_scratch."""
    KIND = OpKind.OP_I8_CONV


@dataclass(frozen=True, kw_only=True)
class Int8Gemm(Int8Layer):
    """int8 1x1 stride-1 convolution (kernels/int8.pxi: i8_gemm_job): per
    group, m_tiles tiles of INT8_TILE_ROWS output channels over panels of
    INT8_TILE_PIXELS pixels (n_tiles per plane), K the input channels per
    group rounded up to INT8_K_GROUP; qw packed per tile [K /
    INT8_K_GROUP][rows][INT8_K_GROUP], qb per padded row with the panel's
    offset taken off (ops/quant.py: pack_int8_tiles).  Jobs of m_per_job row
    tiles by per_job pixel tiles; scratch: a panel and a tile's sums
    (int8_gemm_scratch)."""
    KIND = OpKind.OP_I8_GEMM
    K: int
    m_tiles: int
    m_per_job: int
    n_tiles: int


@dataclass(frozen=True, kw_only=True)
class Int8Window(Int8Step, Spatial, Kernel):
    """int8 max pooling (the output keeps the input's quantization) or
    average pooling (qw: the window's weights, all 1; mult per output
    pixel).  Jobs of per_job channels; scratch: a plane of int32 sums."""
    KIND = OpKind.OP_I8_WINDOW
    mode: WindowMode
    qw: Int8s = None
    mult: Floats = None


@dataclass(frozen=True, kw_only=True)
class Int8Eltwise(Int8Step):
    """int8 add (in_scale, in2_scale: each operand's scale over the
    output's), float32 -> int8 (in_scale: 1 / scale) or int8 -> float32
    (in_scale: scale), over whole padded planes; jobs of per_job channels."""
    KIND = OpKind.OP_I8_ELTWISE
    mode: Int8Mode
    in_scale: float
    in2_off: Planes = None
    in2_zero: int = 0
    in2_scale: float = 0.0
