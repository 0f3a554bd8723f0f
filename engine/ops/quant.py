"""quantize and dequantize: where a graph's values change between float32
and int8 (engine/int8.py), when the layer on one side cannot convert in its
epilogue (a value that float32 and int8 layers both read).  And the check of
the `quant` attribute any op's node may carry: its output is int8, with that
scale and zero point."""
import math

from engine.errors import ModelFileError
from engine.ops import OpDef, per_channel_shape, register
from engine.ops.checks import one_input

INT8_RANGE = (-128, 127)        # an int8 value's q; it means scale * (q - zero_point)
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


@register
class Dequantize(_Convert):
    """int8 -> float32."""
    name = 'dequantize'
    int8 = True
