"""The int8 kernels (kernels/int8.pxi, ukernels_int8.h) against their exact
oracle (engine/int8.py: integer_node), bit for bit, over grids of awkward
shapes and arithmetic, on the kernel module this process runs (CI runs this
file with every ISA, and under qemu with the ARM ones); then whole int8
models.  NumPy only: no torch, no ONNX.

Each case is a small graph: the float32 input quantized, the layer under
test, its int8 output dequantized (an exact map: equal floats are equal q).
A layer's input is quantized by the kernels too, so the kernels and the
oracle start from the same q."""
import numpy as np
import pytest

import engine
from engine import int8, zoo
from engine.errors import ModelFileError
from engine.graph import Graph, Node

IN_QUANT = [0.05, -7]           # input values in about [-6.0, 6.7]
RES_QUANT = [0.03, 11]
OUT_QUANT = [0.11, 5]
RELU, RELU6 = [0.0, None], [0.0, 6.0]


def graph_of(layers, channels, outputs=None):
    """A graph: the input (channels planes) quantized to IN_QUANT as 'x', to
    RES_QUANT as 'r', then `layers`; its outputs (default: the last layer's)
    dequantized where int8."""
    nodes = [Node('x', 'quantize', ['input'], {'quant': IN_QUANT}),
             Node('r', 'quantize', ['input'], {'quant': RES_QUANT})] + layers
    outs = []
    for name in outputs or [layers[-1].name]:
        node = next(n for n in nodes if n.name == name)
        if 'quant' in node.attrs or node.op in ('maxpool',):
            nodes.append(Node(f'{name}.f', 'dequantize', [name]))
            name = f'{name}.f'
        outs.append(name)
    return Graph('input', (1, channels, 8, 8), nodes, outs)


def check(graph, shape, threads, seed=0, distinct=8):
    """The compiled graph on inputs of `shape` against integer_values, exactly;
    and not a degenerate case (at least `distinct` different outputs)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6.5, 7.0, shape).astype(np.float32)
    got = engine.Model(graph, threads=threads).run(x)
    got = got if isinstance(got, list) else [got]
    want = int8.integer_values(graph, x)
    for out, name in zip(got, graph.outputs):
        np.testing.assert_array_equal(out, want[name].reshape(out.shape), err_msg=name)
        assert len(np.unique(out)) >= min(distinct, out.size), 'a degenerate case: too few distinct outputs'


def conv(cin, cout, k=(1, 1), stride=1, pad=0, dilation=1, groups=1, clamp=None, quant=OUT_QUANT,
         residual=False, seed=0, name='layer'):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((cout, cin // groups) + tuple(k))
    scale = int8.weight_scales(w)
    attrs = dict(in_channels=cin, out_channels=cout, groups=groups, kernel=list(k), stride=[stride] * 2,
                 padding=[pad] * 2 if np.isscalar(pad) else list(pad), dilation=[dilation] * 2, clamp=clamp)
    if quant is not None:
        attrs['quant'] = quant
    params = {'weight': int8.int8_weights(w, scale), 'weight_scale': scale,
              'bias': rng.standard_normal(cout).astype(np.float32)}
    return Node(name, 'conv', ['x', 'r'] if residual else ['x'], attrs, params, 'int8')


# -- convolutions: (cin, cout, kernel, stride, padding, dilation, groups), plane (H, W) --------------------

CONVS = {
    '1x1': (16, 24, (1, 1), 1, 0, 1, 1),
    '1x1_odd': (5, 7, (1, 1), 1, 0, 1, 1),
    '1x1_g3': (12, 9, (1, 1), 1, 0, 1, 3),      # ShuffleNet V1's grouped 1x1s
    '1x1_g2_wide': (8, 34, (1, 1), 1, 0, 1, 2),
    '1x1_deep': (300, 40, (1, 1), 1, 0, 1, 1),   # many steps of the reduction
    '1x1_many_rows': (16, 100, (1, 1), 1, 0, 1, 1),   # row tiles split among jobs
    '3x3s1p1': (6, 10, (3, 3), 1, 1, 1, 1),
    '3x3s2p1': (3, 8, (3, 3), 2, 1, 1, 1),       # the image's first convolution
    '3x3d2p2': (4, 5, (3, 3), 1, 2, 2, 1),
    '5x5s2p2': (3, 4, (5, 5), 2, 2, 1, 1),
    '7x7s2p3': (3, 6, (7, 7), 2, 3, 1, 1),
    '1x3p01': (4, 6, (1, 3), 1, (0, 1), 1, 1),
    '3x3s1p1_g2': (8, 6, (3, 3), 1, 1, 1, 2),
    'dw3x3s1': (12, 12, (3, 3), 1, 1, 1, 12),
    'dw3x3s2': (17, 17, (3, 3), 2, 1, 1, 17),
    'dw5x5s1': (9, 9, (5, 5), 1, 2, 1, 9),
    'dw5x5s2': (9, 9, (5, 5), 2, 2, 1, 9),
    'dw7x7s1': (5, 5, (7, 7), 1, 3, 1, 5),
    'dw7x7s2': (5, 5, (7, 7), 2, 3, 1, 5),
    'dw3x3_x2': (6, 12, (3, 3), 1, 1, 1, 6),     # a channel multiplier of 2
}
PLANES = {'13x9': (13, 9), '1x1': (1, 1), '2x2': (2, 2), '7x16': (7, 16)}


@pytest.mark.parametrize('plane', PLANES)
@pytest.mark.parametrize('layer', CONVS)
def test_convolution(layer, plane):
    cin, cout, k, stride, pad, dilation, groups = CONVS[layer]
    node = conv(cin, cout, k, stride, pad, dilation, groups, seed=len(layer))
    check(graph_of([node], cin), (2, cin) + PLANES[plane], threads=1 + len(plane) % 2, seed=len(plane))


EPILOGUES = [(layer, output) for layer in ('1x1', '3x3s1p1', 'dw3x3s1')
             for output in ('int8', 'saturating', 'float32', 'residual', 'residual_saturating', 'residual_float32')
             if not (layer.startswith('dw') and output.startswith('residual'))]   # (none on depthwise)
SATURATING_QUANT = [1e-30, 5]       # y ~ sums x 1e27: beyond int32, let alone int8


@pytest.mark.parametrize('clamp', [None, RELU, RELU6], ids=['none', 'relu', 'relu6'])
@pytest.mark.parametrize('layer, output', EPILOGUES)
def test_convolution_epilogues(layer, output, clamp):
    """Clamps in q, outputs saturating far beyond int8 (and int32), a
    float32 output (sums times scales), a residual added (to int8 and
    float32 outputs: MobileNetV2's and ShuffleNet V1's adds fused into the
    convolution)."""
    cin, _, k, stride, pad, dilation, groups = CONVS[layer]
    quant = None if output.endswith('float32') else SATURATING_QUANT if output.endswith('saturating') else OUT_QUANT
    node = conv(cin, cin, k, stride, pad, dilation, groups, clamp=clamp, residual=output.startswith('residual'),
                quant=quant, seed=3)
    check(graph_of([node], cin), (2, cin, 9, 11), threads=2, distinct=2 if output.endswith('saturating') else 8)


@pytest.mark.parametrize('output', ['int8', 'float32'])
@pytest.mark.parametrize('features', [(10, 7), (1, 3), (64, 33), (37, 5)])
def test_linear(features, output):
    """Fully connected (the classifier: float32 out), after a global pool."""
    cin, cout = features
    rng = np.random.default_rng(cin)
    w = rng.standard_normal((cout, cin))
    scale = int8.weight_scales(w)
    attrs = dict(in_features=cin, out_features=cout)
    if output == 'int8':
        attrs['quant'] = OUT_QUANT
    pool = Node('pool', 'global_avgpool', ['x'], {'keepdims': False, 'quant': IN_QUANT})
    fc = Node('fc', 'linear', ['pool'], attrs, {'weight': int8.int8_weights(w, scale), 'weight_scale': scale,
                                                'bias': rng.standard_normal(cout).astype(np.float32)}, 'int8')
    check(graph_of([pool, fc], cin), (3, cin, 5, 4), threads=2, distinct=min(cout, 3))


# -- pooling, add, conversions ------------------------------------------------------------

def pool(op, k, stride, pad, ceil_mode=False, other=None, quant=None, clamp=None):
    attrs = dict(kernel=[k, k], stride=[stride] * 2, padding=[pad] * 2, ceil_mode=ceil_mode, clamp=clamp)
    if op == 'maxpool':
        attrs['dilation'] = [other or 1] * 2
        attrs['quant'] = IN_QUANT       # (max pooling keeps its input's quantization)
    else:
        attrs['count_include_pad'] = bool(other)
        attrs['quant'] = quant or OUT_QUANT
    return Node('layer', op, ['x'], attrs)


POOLS = {
    'max3x3s2p1': ('maxpool', 3, 2, 1),
    'max3x3s2p1_ceil': ('maxpool', 3, 2, 1, True),
    'max2x2s2': ('maxpool', 2, 2, 0),
    'max3x3s1p1_d2': ('maxpool', 3, 1, 1, False, 2),
    'max3x3s2_relu': ('maxpool', 3, 2, 1, False, None, None, RELU),
    'avg3x3s2p1': ('avgpool', 3, 2, 1),                  # ShuffleNet V1's shortcut
    'avg3x3s2p1_incl': ('avgpool', 3, 2, 1, False, True),
    'avg3x3s2p1_ceil': ('avgpool', 3, 2, 1, True, True),
    'avg2x2s2': ('avgpool', 2, 2, 0),
    'avg3x3s1p1_relu6': ('avgpool', 3, 1, 1, False, False, None, RELU6),
}


def fits(layer, plane):
    """The window fits the plane (a 2x2 unpadded one does not fit 1x1)."""
    from engine.ops.pool import pool_out_size
    _, k, stride, pad, ceil_mode, dilation = (POOLS[layer] + (False, 1))[:6]
    return min(pool_out_size(n, k, stride, pad, dilation or 1, ceil_mode) for n in PLANES[plane]) >= 1


@pytest.mark.parametrize('layer, plane', [(layer, plane) for layer in POOLS for plane in PLANES if fits(layer, plane)])
def test_pooling(layer, plane):
    check(graph_of([pool(*POOLS[layer])], 7), (2, 7) + PLANES[plane], threads=1 + len(layer) % 2,
          distinct=2 if PLANES[plane] == (1, 1) else 8)


@pytest.mark.parametrize('keepdims', [True, False])
@pytest.mark.parametrize('plane', [(7, 7), (1, 1), (5, 12)])
def test_global_average_pooling(plane, keepdims):
    node = Node('layer', 'global_avgpool', ['x'], {'keepdims': keepdims, 'quant': OUT_QUANT})
    check(graph_of([node], 19), (2, 19) + plane, threads=2)


@pytest.mark.parametrize('clamp', [None, RELU], ids=['none', 'relu'])
def test_add(clamp):
    """Two int8 values of different quantizations into a third."""
    check(graph_of([Node('layer', 'add', ['x', 'r'], {'quant': OUT_QUANT, 'clamp': clamp})], 6),
          (2, 6, 9, 5), threads=2)


@pytest.mark.parametrize('quant', [[0.125, -3], IN_QUANT], ids=['exact_ties', 'inexact'])
def test_quantize_rounds_half_to_even_and_saturates(quant):
    """float32 -> int8 -> float32 on ties, values beyond the range, NaN and
    infinities, against the oracle; and against the scheme's rounding in
    real numbers: exactly where x * (1 / scale) is exact in float32 (a
    power-of-two scale: every tie a tie, rounded to even), within a step
    elsewhere."""
    s, z = quant
    ties = (np.arange(-40, 40) + 0.5) * s
    x = np.concatenate([ties, [1e30, -1e30, np.inf, -np.inf, np.nan, 200 * s, -200 * s, 0.0], np.linspace(-7, 7, 37)])
    x = np.resize(x.astype(np.float32), (1, 2, 8, 10))
    graph = Graph('input', (1, 2, 8, 10), [Node('x', 'quantize', ['input'], {'quant': quant}),
                                           Node('y', 'dequantize', ['x'])], ['y'])
    got = engine.Model(graph, threads=1).run(x)
    np.testing.assert_array_equal(got, int8.integer_values(graph, x)['y'])
    q = np.rint(got / s).astype(int) + z
    assert q.min() == -128 and q.max() == 127
    assert (q[np.isnan(x)] == -128).all()        # (NaN: the low end, as the oracle says)
    finite = ~np.isnan(x)
    steps = np.abs(q - int8.to_int8(np.where(finite, x, 0), quant))[finite]
    assert steps.max() == 0 if s == 0.125 else steps.max() <= int8.KERNEL_STEPS


def test_an_int8_output_is_refused():
    graph = Graph('input', (1, 2, 8, 8), [Node('x', 'quantize', ['input'], {'quant': IN_QUANT})], ['x'])
    with pytest.raises(ModelFileError, match="output 'x' is int8"):
        engine.Model(graph)


# -- whole models --------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shufflenet():
    graph = zoo.shufflenet_v2('0.5', input_size=64)
    x = np.random.default_rng(3).uniform(-1, 1, (10, 3, 64, 64)).astype(np.float32)
    return graph, x[:6], x[6:]


@pytest.mark.parametrize('threads', [1, 2])
def test_int8_shufflenet_equals_its_oracle(shufflenet, threads):
    """The image quantized too (nothing kept float32): every layer int8,
    the logits float32, equal to the oracle's bit for bit; and a copy-free
    plan (no kernel for a shuffle, split or concat)."""
    graph, xc, xt = shufflenet
    q, _ = int8.quantize_graph(graph, int8.calibrate(graph, xc), keep=[])
    model = engine.Model(q, threads=threads)
    np.testing.assert_array_equal(model.run(xt), int8.integer_values(q, xt)[q.outputs[0]])
    kinds = [layer['kind'] for layer in model.layers(xt)]
    assert all(k.startswith('i8_') for k in kinds) and kinds.count('i8_quantize') == 1


def test_int8_shufflenet_with_its_first_convolution_float32(shufflenet):
    """The default: the first convolution float32, then quantized (its
    float32 sums may round a step apart from the oracle's float64 ones, so
    this compares with the real arithmetic: within what quantization costs)."""
    from engine.reference import run_graph
    graph, xc, xt = shufflenet
    q, reasons = int8.quantize_graph(graph, int8.calibrate(graph, xc))
    assert list(reasons) == ['conv1.0']
    model = engine.Model(q, threads=2)
    got, ref, exact = model.run(xt), run_graph(q, xt)[0], run_graph(graph, xt)[0]
    assert int8.sqnr_db(exact, got) > int8.sqnr_db(exact, ref) - 1.0
    assert int8.sqnr_db(ref, got) > 20
    names = [(layer['name'], layer['kind']) for layer in model.layers(xt)][:2]
    assert names == [('conv1.0', 'conv3x3s2'), ('conv1.0', 'i8_quantize')]


# -- the microkernels alone --------------------------------------------------------------

@pytest.mark.parametrize('K', [1, 3, 4, 5, 17, 64, 301])
@pytest.mark.parametrize('rows', [1, 5, 'all'])
def test_gemm_tile(K, rows):
    """The 1x1 tile of this module (INT8_TILE_ROWS x INT8_TILE_PIXELS) over
    a panel it packs, with weights packed as the planner packs them: the
    sums of (q - zero point) * w plus the bias, at the extremes of int8."""
    from engine.kernels import isa
    from engine.ops.quant import pack_int8_tiles
    mr, nr = isa.INT8_TILE_ROWS, isa.INT8_TILE_PIXELS
    rows = mr if rows == 'all' else min(rows, mr)
    rng = np.random.default_rng(K * 7 + rows)
    w = rng.integers(-127, 128, (1, rows, K))
    w[0, 0, :] = 127            # (a row of the largest products)
    x = rng.integers(-128, 128, (K, 3 * nr + 5)).astype(np.int8)
    x[:, 0] = -128
    zero, qb = -9, rng.integers(-1000, 1000, (1, rows))
    packed, bias, m_tiles, _ = pack_int8_tiles(isa, w, qb, zero)
    assert m_tiles == 1
    for p0 in (0, 1, nr + 5):
        got = isa.ukernel_i8_gemm_tile(x, p0, packed, bias)
        want = qb[0, :, None] + w[0] @ (x[:, p0:p0 + nr].astype(np.int64) - zero)
        np.testing.assert_array_equal(got[:rows], want)


@pytest.mark.parametrize('n', ['all', 5])
@pytest.mark.parametrize('epilogue', ['full', 'relu', 'residual', 'residual_relu'])
@pytest.mark.parametrize('rows', [1, 5, 6, 'all'])
def test_gemm_tile_store(rows, epilogue, n):
    """The tile's requantizing store (a whole tile's pixels from its
    registers where the module can, a tile cut short through its sums):
    each row's multiplier, the zero point, the clamp (none where it is all
    of int8), the residual's q added by a fused multiply-add; nothing
    written past a row's n pixels."""
    from engine.kernels import isa
    from engine.ops.quant import fma32, pack_int8_tiles, requantize
    mr, nr = isa.INT8_TILE_ROWS, isa.INT8_TILE_PIXELS
    rows = mr if rows == 'all' else min(rows, mr)
    n = nr if n == 'all' else n
    K, zero, out_zero = 37, 3, -4
    rng = np.random.default_rng(rows * 5 + n)
    w = rng.integers(-127, 128, (1, rows, K))
    x = rng.integers(-128, 128, (K, 2 * nr + 3)).astype(np.int8)
    qb = rng.integers(0, 40000, (1, rows))      # (most outputs above the ReLU's clamp)
    mult = rng.uniform(1e-4, 4e-4, rows).astype(np.float32)
    mult[-1] = 0.25 if rows > 1 else mult[-1]      # (a row that saturates)
    packed, bias, _, _ = pack_int8_tiles(isa, w, qb, zero)
    bounds = (-128, 127) if epilogue in ('full', 'residual') else (-128 if out_zero < -128 else out_zero, 127)
    res, res_zero, res_mult = None, 0, 0.0
    if epilogue.startswith('residual'):
        res, res_zero, res_mult = rng.integers(-128, 128, (rows, x.shape[1])).astype(np.int8), -7, 0.37
    seen = set()
    for p0 in (0, nr + 3):
        got = isa.ukernel_i8_gemm_tile(x, p0, packed, bias, mult, out_zero, *bounds, res, res_zero, res_mult, n)
        acc = qb[0, :, None] + w[0] @ (x[:, p0:p0 + n].astype(np.int64) - zero)
        y = acc.astype(np.float32) * mult[:, None]
        if res is not None:
            y = fma32(res[:, p0:p0 + n].astype(np.int32) - res_zero, res_mult, y)
        np.testing.assert_array_equal(got[:, :n], requantize(y, (None, out_zero), bounds))
        assert (got[:, n:] == 0x5a).all(), 'the store ran past its pixels'
        seen.update(got[:, :n].ravel().tolist())
    assert len(seen) >= min(6, rows * n), 'a degenerate case'


WINDOWS = [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)), ((5, 5), (2, 2), (2, 2), (1, 1)),
           ((7, 7), (1, 1), (3, 3), (1, 1)), ((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (1, 1), (2, 2), (2, 2)),
           ((3, 3), (3, 3), (1, 1), (1, 1)), ((1, 3), (1, 1), (0, 1), (1, 1)), ((3, 3), (2, 2), (0, 0), (1, 1))]


def window_out(window, plane):
    from engine.ops.conv import conv_out_size
    kernel, stride, pad, dil = window
    return tuple(conv_out_size(n, k, s, p, d) for n, k, s, p, d in zip(plane, kernel, stride, pad, dil))


@pytest.mark.parametrize('window, plane', [(w, p) for w in WINDOWS for p in [(1, 1), (2, 2), (9, 13), (14, 14), (20, 7)]
                                           if min(window_out(w, p)) >= 1],      # (those the window fits)
                         ids=lambda v: 'x'.join(map(str, v)) if isinstance(v[0], int) else
                         'k{}s{}p{}d{}'.format(*[a[0] for a in v]))
@pytest.mark.parametrize('weights', [True, False], ids=['sums', 'max'])
def test_window_sums(window, plane, weights):
    """One plane's window sums or maxima (frames for strides 1 and 2, the
    generic loops for the others) against NumPy, padding adding nothing."""
    from engine.kernels import isa
    (kh, kw), stride, pad, dil = window
    h, w = plane
    out_h, out_w = window_out(window, plane)
    rng = np.random.default_rng(h * 31 + kh)
    x = rng.integers(-128, 128, plane).astype(np.int8)
    wt = rng.integers(-127, 128, (kh, kw)) if weights else None
    zero = 13
    got = isa.ukernel_i8_window_sums(x, wt, zero, out_h, out_w, (kh, kw), stride, pad, dil)
    np.testing.assert_array_equal(got, window_reference(x, wt, zero, window))


def window_reference(x, wt, zero, window):
    """NumPy's window sums of (x - zero) * wt (wt None: maxima of x), the
    padding adding nothing."""
    (kh, kw), stride, pad, dil = window
    (h, w), (out_h, out_w) = x.shape, window_out(window, x.shape)
    fill = 0 if wt is not None else -10 ** 6
    xp = np.full((h + 2 * pad[0], w + 2 * pad[1]), fill, np.int64)
    xp[pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x.astype(np.int64) - (zero if wt is not None else 0)
    want = np.zeros((out_h, out_w), np.int64) if wt is not None else np.full((out_h, out_w), -128, np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[i * dil[0]:i * dil[0] + stride[0] * (out_h - 1) + 1:stride[0],
                       j * dil[1]:j * dil[1] + stride[1] * (out_w - 1) + 1:stride[1]]
            want = want + patch * wt[i, j] if wt is not None else np.maximum(want, patch)
    return want


# strides 1 and 2 undilated: straight from the plane on NEON (the taps in
# registers up to 7 x 7); the others through the window sums everywhere
PLANE_WINDOWS = WINDOWS + [((5, 5), (1, 1), (2, 2), (1, 1)), ((7, 7), (2, 2), (3, 3), (1, 1)),
                           ((7, 7), (1, 1), (0, 0), (1, 1)), ((9, 9), (1, 1), (4, 4), (1, 1))]
WINDOW_PLANES = [(1, 1), (2, 2), (7, 7), (9, 8), (5, 9), (14, 14), (4, 16), (3, 17), (11, 33)]


@pytest.mark.parametrize('window, plane', [(w, p) for w in PLANE_WINDOWS for p in WINDOW_PLANES
                                           if min(window_out(w, p)) >= 1],
                         ids=lambda v: 'x'.join(map(str, v)) if isinstance(v[0], int) else
                         'k{}s{}p{}d{}'.format(*[a[0] for a in v]))
@pytest.mark.parametrize('bounds', [(-128, 127), (3, 127)], ids=['full', 'relu'])
@pytest.mark.parametrize('weights', [True, False], ids=['conv', 'max'])
def test_window_plane(window, plane, bounds, weights):
    """One plane to int8 by i8_window_planes (depthwise, max pooling; on
    NEON, AVX2 and AVX-512 straight from a padded copy of the plane for
    strides 1 and 2)
    against NumPy: sums plus bias, times the multiplier in float32, rounded
    half to even, plus the zero point, clamped (maxima: clamped); at the
    extremes of int8 (the largest sums saturating), and not a byte past the
    plane written; as a job's first plane, and as its next (the padding
    the first left in the scratch reused)."""
    from engine.kernels import isa
    from engine.ops.quant import requantize
    (kh, kw), stride, pad, dil = window
    out_h, out_w = window_out(window, plane)
    rng = np.random.default_rng(plane[0] * 31 + plane[1] * 7 + kh)
    x = rng.integers(-128, 128, plane).astype(np.int8)
    x[0, :] = -128
    wt = rng.integers(-127, 128, (kh, kw)) if weights else None
    if weights:
        wt[0, :] = 127              # (with the row above: the largest products)
    else:                           # (sorted in a snake: maxima that differ from window to window)
        x = np.sort(x, axis=None).reshape(plane)
        x[1::2] = x[1::2, ::-1]
    in_zero, zero = 13, 3
    sums = window_reference(x, wt, in_zero, window)
    bias = 1000 - int(np.median(sums))      # (about half below the zero point)
    mult = np.float32(160 / max(np.abs(sums + bias).max(), 1))        # (the largest sums saturate)
    want = (requantize((sums + bias).astype(np.float32) * mult, [None, zero], bounds) if weights else
            np.clip(sums, *bounds).astype(np.int8))
    for before in (None, rng.integers(-128, 128, plane)):       # (a job's first channel, and its next)
        got = isa.ukernel_i8_window_plane(x, wt, in_zero, bias, mult, zero, *bounds, out_h, out_w, (kh, kw), stride,
                                          pad, dil, before)
        np.testing.assert_array_equal(got[:out_h * out_w].reshape(out_h, out_w), want)
        np.testing.assert_array_equal(got[out_h * out_w:], 0x5a)
    assert len(np.unique(want)) >= min(4, want.size // 8 + 1) and (not weights or set(bounds) & set(want.ravel()))
