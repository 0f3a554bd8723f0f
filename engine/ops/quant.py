"""quantize and dequantize: where a graph's values change between float32
and int8 (engine/int8.py), when the layer on one side cannot convert in its
epilogue (a value that float32 and int8 layers both read).  And what every
int8 op shares: the check of the `quant` attribute any op's node may carry
(its output is int8, with that scale and zero point), the numbers of the
int8 kernels' arithmetic (defined here once, for the planner and for the
kernels' oracle in engine/int8.py), and the int8 kinds' records."""
import math

import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import DType, Int8Mode
from engine.kernels.descriptors import Int8Conv, Int8Eltwise, Int8Gemm, Kernel
from engine.lowering import channel_runs, gemm_jobs
from engine.ops import OpDef, per_channel_shape, register
from engine.ops.activations import clamp_bounds
from engine.ops.checks import one_input

INT8_RANGE = (-128, 127)        # an int8 value's q; it means scale * (q - zero_point)
FLOAT_OUTPUT_OPS = ('conv', 'linear', 'dequantize')     # ops that read int8 and may write float32
WEIGHT_RANGE = (-127, 127)      # an int8 layer's weights (symmetric: -128 left out)


def check_quant(node):
    """The node's (scale, zero_point), or None when it has none."""
    q = node.attrs.get('quant')
    if q is None:
        return None
    if (not isinstance(q, (list, tuple)) or len(q) != 2 or isinstance(q[0], bool)
            or not isinstance(q[0], (int, float)) or not math.isfinite(q[0]) or not q[0] > 0
            or not isinstance(q[1], int) or isinstance(q[1], bool)
            or not INT8_RANGE[0] <= q[1] <= INT8_RANGE[1]):
        raise ModelFileError(f'node {node.name!r}: quant must be [scale > 0, zero point in '
                             f'{list(INT8_RANGE)}], got {q!r}')
    return float(q[0]), q[1]


# -- the int8 arithmetic (the kernels' and their oracle's: engine/int8.py) ------------

def q_bounds(clamp, quant):
    """An int8 output's clamp in q: the epilogue's [lo, hi] on quant's grid,
    within int8."""
    lo, hi = clamp_bounds(clamp)
    so, zo = quant
    qlo = max(INT8_RANGE[0], zo + int(np.rint(lo / so))) if np.isfinite(lo) else INT8_RANGE[0]
    qhi = min(INT8_RANGE[1], zo + int(np.rint(hi / so))) if np.isfinite(hi) else INT8_RANGE[1]
    return qlo, qhi


def multipliers32(values, what):
    """values as the float32 multipliers the kernels take; a ValueError
    naming `what` if any is not finite in float32 (scales far apart: a
    kernel's sums times it would have no int8 answer)."""
    with np.errstate(over='ignore'):
        m = np.asarray(values, np.float64).astype(np.float32)
    if not np.isfinite(m).all():
        raise ValueError(f'{what}: its scales give a multiplier beyond float32')
    return m


def sums_fit(qb, k):
    """Whether int32 sums hold a layer's bias qb (in the sums' scale) and k
    products of the largest size: an input difference (q - zero point; the
    AVX-512 panel's q + 128) of at most 255 times a weight of at most 127."""
    return np.abs(qb).max(initial=0) + k * 255 * 127 < 1 << 31


def layer_arithmetic(node, in_quant):
    """An int8 convolution's or fully connected layer's numbers, as its
    kernel takes them: (bias in the sums' scale (int32), multiplier per
    output channel (float32): input scale * weight scale / output scale,
    or without one (a float32 output) input scale * weight scale)."""
    sx, _ = in_quant
    sw = node.params['weight_scale'].astype(np.float64)
    bias = node.params.get('bias')
    qb = np.zeros(len(sw), np.int64) if bias is None else np.rint(np.asarray(bias, np.float64) / (sx * sw))
    if not sums_fit(qb, node.params['weight'][0].size):
        raise ValueError(f'layer {node.name!r}: its bias and sums overflow int32 at its scales')
    quant = node.attrs.get('quant')
    mult = sx * sw / (1.0 if quant is None else quant[0])
    return qb.astype(np.int32), multipliers32(mult, f'layer {node.name!r}')


def ratio(quant, out_quant):
    """float32(scale / output scale): what an operand's (q - zero point) is
    multiplied by; a float32 output's: the scale itself."""
    return np.float32(multipliers32(quant[0] / (1.0 if out_quant is None else out_quant[0]), 'a requantization'))


def pool_multipliers(divisors, in_quant, out_quant):
    """An int8 average pooling's multiplier per output pixel: its divisor
    (1 / count) times input scale / output scale, float32."""
    return multipliers32(np.asarray(divisors, np.float64) * in_quant[0] / out_quant[0], 'an average pooling')


def quantize_multiplier(quant):
    """float32 -> int8 multiplies by float32(1 / scale)."""
    return np.float32(multipliers32(1 / quant[0], 'a quantize'))


def requantize(y, quant, bounds):
    """float32 y to q: rounded half to even, plus the zero point, clamped to
    bounds; NaN to the low bound (the kernels clamp y before rounding, and
    NaN fails the low end's test)."""
    y = np.nan_to_num(np.asarray(y, np.float32), nan=-np.inf)
    return np.clip(np.rint(y) + quant[1], *bounds).astype(np.int8)


def fma32(a, b, c):
    """float32 a * b + c rounded once (the kernels' fmaf): exact in float64
    for the operands the kernels give it (a an int8 difference)."""
    return (np.asarray(a, np.float64) * np.float64(b) + np.asarray(c, np.float32)).astype(np.float32)


# -- the int8 kinds' records ---------------------------------------------------------

def int8_step(node, ctx):
    """The fields every int8 record has (descriptors.Int8Step) for node: the
    input's zero point, the output's quantization and its clamp in q (a
    float32 output: zero point 0 and int8's range, unused)."""
    in_quant, quant = ctx.quants[node.inputs[0]], node.attrs.get('quant')
    qlo, qhi = INT8_RANGE if quant is None else q_bounds(node.attrs.get('clamp'), quant)
    return dict(ctx.step(node), dtype=DType.DTYPE_I8, in_zero=0 if in_quant is None else in_quant[1],
                out_zero=0 if quant is None else quant[1], qlo=qlo, qhi=qhi,
                **channel_runs(ctx.shapes[node.name][0], ctx.options))


def int8_layer_record(node, ctx, geometry, groups, kind):
    """(record, layer kind, scratch) of an int8 convolution or fully
    connected layer (geometry: Spatial and Kernel fields): 1x1 stride-1 ones
    on planes of more than a pixel through packed panels (int8_gemm_record),
    the others directly."""
    in_quant, quant = ctx.quants[node.inputs[0]], node.attrs.get('quant')
    weight = np.asarray(node.params['weight'])
    cout, taps = len(weight), geometry['kh'] * geometry['kw']
    qb, mult = layer_arithmetic(node, in_quant)
    fields = dict(int8_step(node, ctx), **geometry, groups=groups, cin_g=weight[0].size // taps,
                  cout_g=cout // groups, mult=mult, out_f32=int(quant is None))
    if len(node.inputs) == 2:
        r_quant = ctx.quants[node.inputs[1]]
        fields.update(res_off=ctx.offsets(node.inputs[1]), in2_zero=r_quant[1], in2_scale=float(ratio(r_quant, quant)))
    pixels = geometry['out_h'] * geometry['out_w']
    pointwise = taps == 1 and (geometry['sh'], geometry['sw'], geometry['ph'], geometry['pw']) == (1, 1, 0, 0)
    if pointwise and pixels > 1:
        record, need = int8_gemm_record(ctx, fields, weight.reshape(groups, cout // groups, -1), qb, in_quant[1])
    else:
        record = Int8Conv(**fields, qw=weight.reshape(cout, -1).astype(np.int8), qb=qb)
        need = ctx.kernels.int8_conv_scratch(record)
    return record, 'i8_' + kind, need


def int8_gemm_record(ctx, fields, weight, qb, in_zero):
    """An Int8Gemm: weight (groups, rows, K) packed in tiles of the module's
    INT8_TILE_ROWS rows, K padded to INT8_K_GROUP (zeros), each tile
    [K / group][rows][group]; the bias per padded row with the panel's
    offset and the input's zero point taken off (ukernels_int8.h)."""
    kernels, options = ctx.kernels, ctx.options
    groups, rows, _ = weight.shape
    packed, bias, m_tiles, kp = pack_int8_tiles(kernels, weight, qb.reshape(groups, rows), in_zero)
    n_tiles = -(-fields['out_h'] * fields['out_w'] // kernels.INT8_TILE_PIXELS)
    fields = {k: v for k, v in fields.items() if k not in Kernel.__annotations__}     # (1x1, stride 1)
    record = Int8Gemm(**dict(fields, **gemm_jobs(m_tiles, n_tiles, groups, options)), K=kp, m_tiles=m_tiles,
                      n_tiles=n_tiles, qw=packed, qb=bias)
    return record, kernels.int8_gemm_scratch(kp)


def pack_int8_tiles(kernels, weight, qb, in_zero):
    """(weights, bias, row tiles per group, K padded) of a 1x1's weight
    (groups, rows, K) and bias qb (groups, rows) for the module's int8 tile:
    per group, tiles of INT8_TILE_ROWS rows (zero rows past the last), K
    padded to INT8_K_GROUP (zeros), each tile [K / group][rows][group] of
    INT8_ELEMENT_BYTES-byte integers, as bytes; the bias per padded row less (zero point + the panel's offset) * the row's
    weights (ukernels_int8.h)."""
    groups, rows, k = weight.shape
    mr, kg = kernels.INT8_TILE_ROWS, kernels.INT8_K_GROUP
    m_tiles, kp = -(-rows // mr), -(-k // kg) * kg
    w = np.zeros((groups, m_tiles * mr, kp), np.int64)
    w[:, :rows, :k] = weight
    bias = np.zeros((groups, m_tiles * mr), np.int64)
    bias[:, :rows] = qb - (in_zero + kernels.INT8_PANEL_OFFSET) * w[:, :rows].sum(axis=2)
    packed = w.reshape(groups, m_tiles, mr, kp // kg, kg).transpose(0, 1, 3, 2, 4)
    element = {1: np.int8, 2: np.int16}[kernels.INT8_ELEMENT_BYTES]        # (int16 on AVX2: its bytes)
    return packed.astype(element).ravel().view(np.int8), bias.astype(np.int32).ravel(), m_tiles, kp


def int8_eltwise_record(node, ctx, mode, **fields):
    return Int8Eltwise(**int8_step(node, ctx), mode=mode, **fields), f'i8_{node.op}', 0


# -- the ops ---------------------------------------------------------------------------

class _Convert(OpDef):
    epilogue = False

    def check(self, node, ins):
        return one_input(node, ins)

    def shape(self, node, ins):
        return per_channel_shape(node, ins)

    def reference(self, node, ins):
        """The value itself: the reference rounds a quantized node's output
        to its grid (engine/reference.py)."""
        return ins[0]


@register
class Quantize(_Convert):
    """float32 -> int8 (attrs quant)."""
    name = 'quantize'

    def check(self, node, ins):
        if check_quant(node) is None:
            raise ModelFileError(f'node {node.name!r}: quantize needs its quant')
        return super().check(node, ins)

    def lower(self, node, ctx):
        return int8_eltwise_record(node, ctx, Int8Mode.I8_QUANTIZE,
                                   in_scale=float(quantize_multiplier(node.attrs['quant'])))


@register
class Dequantize(_Convert):
    """int8 -> float32."""
    name = 'dequantize'
    int8 = True

    def lower(self, node, ctx):
        return int8_eltwise_record(node, ctx, Int8Mode.I8_DEQUANTIZE,
                                   in_scale=float(np.float32(ctx.quants[node.inputs[0]][0])))
