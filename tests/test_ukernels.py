"""Every microkernel driven alone on NumPy buffers, XNNPACK-tester style,
against a NumPy formula over awkward shapes: tiles cut short by rows and by
pixels, K of 1, offset tables with gaps and out of order, every tile height
and width the build has; the window and element-wise kernels through
records built by hand (kernels/descriptors.py) and Program, no graph or
planner in between.  Each test checks what the kernel writes and that it
writes nothing else.  CI runs this file once per ISA module (ENGINE_ISA)."""
import itertools

import numpy as np
import pytest

from engine.kernels import isa
from engine.kernels.abi import Act, EltwiseMode, WindowMode, WindowPath
from engine.kernels.descriptors import Eltwise, Window
from engine.model import aligned_bytes
from engine.ops.activations import NONLINEAR
from engine.ops.conv import conv2d
from engine.ops.pool import avgpool_divisors

VLEN = isa.VECTOR
SENTINEL = 1234.5        # in every float a kernel must not write


def planes(rng, n, size, gap=7):
    """Offsets of n planes of `size` floats, out of order, gaps between them."""
    starts = np.arange(n) * (size + gap) + 3
    return rng.permutation(starts).astype(np.int64)


def pixel_counts(rows):
    """The pixel counts the tiles of `rows` rows take."""
    counts = list(range(1, isa.TILE_PIXELS + isa.EXTRA_PIXELS + 1))
    if rows == isa.NARROW_ROWS:
        counts += [p for p in (isa.WIDE_PIXELS, isa.TAIL_PIXELS) if p]
    return counts


def b_table(rng, K, size, kind):
    """(B offsets, b_run) of K planes of `size` floats: out of order with the
    runs the planner would give them ('shuffled') or runs of one ('one_by_one'),
    or sorted in runs of 1 to 5 with different gaps, a plane read twice among
    them ('runs')."""
    if kind != 'runs':
        b_off = planes(rng, K, size)
        return b_off, None if kind == 'shuffled' else np.ones(K, np.int64)
    # (repeat counts as a list: np.repeat refuses int64 counts where intp is 32 bits, armv7)
    steps = np.repeat(rng.choice([0, size, size + 3, 2 * size + 1], K), rng.integers(1, 6, K).tolist())[:K]
    b_off = 3 + np.concatenate([[0], np.cumsum(steps[:-1])]).astype(np.int64)
    return b_off, None


@pytest.mark.parametrize('rows', sorted(isa.TILE_ROWS))
@pytest.mark.parametrize('K', [1, 2, 7, 33])
@pytest.mark.parametrize('table', ['shuffled', 'runs', 'one_by_one'])
def test_gemm_tile(rows, K, table):
    """One call of one row tile, and of three (the last whole or cut short);
    of one pixel tile, of three whole ones one after another, and of one
    more than a block of them (gemm_block_tiles: each row tile runs over a
    block before the next row tile)."""
    rng = np.random.default_rng(rows * 100 + K)
    whole = [isa.TILE_PIXELS] + ([isa.WIDE_PIXELS] if rows == isa.NARROW_ROWS and isa.WIDE_PIXELS else [])
    runs = [(n, q) for n in whole for q in sorted({3, isa.gemm_block_tiles(K, n // VLEN) + 1})]
    for nvalid, pixel_tiles in [(n, 1) for n in pixel_counts(rows)] + runs:
        cases = [(1, m) for m in sorted({1, rows - 1, rows} - {0})] + [(3, 2 * rows + 1), (3, 3 * rows)]
        n = nvalid * pixel_tiles        # pixels written
        for (tiles, mr), residual, leaky in itertools.product(cases, (False, True), (False, True)):
            reach = 4 * VLEN + isa.EXTRA_PIXELS
            a = rng.standard_normal(tiles * K * rows + VLEN).astype(np.float32)
            bias = rng.standard_normal(tiles * rows + VLEN).astype(np.float32)
            b_off, b_run = b_table(rng, K, n + reach, table)
            src = rng.standard_normal(int(b_off.max()) + n + 3 * reach).astype(np.float32)
            c_off = planes(rng, mr, n + reach)
            # (past the last output plane's n + reach floats: the tiles' order must not matter)
            r_off = c_off.max() + n + reach + planes(rng, mr, n + reach) if residual else None
            top = int(max(c_off.max(), r_off.max() if residual else 0)) + n + 3 * reach
            dst = np.full(top, SENTINEL, np.float32)
            if residual:
                for r in range(mr):
                    dst[r_off[r] + 5:r_off[r] + 5 + n] = rng.standard_normal(n)
            expected = dst.copy()
            nb0, nc0, lo, hi = 2, 5, -1.5, 2.0
            # leaky ReLU after the clamp: slopes per row, one of them above 1 and one negative
            slope = rng.uniform(-0.5, 1.5, mr).astype(np.float32) if leaky else None
            b = np.stack([src[o + nb0:o + nb0 + n] for o in b_off]).astype(np.float64)
            # tile t's weights [K][rows] after the tiles before it
            w = a[:tiles * K * rows].reshape(tiles, K, rows).transpose(1, 0, 2).reshape(K, tiles * rows)
            y = bias[:mr, None] + w[:, :mr].T.astype(np.float64) @ b
            for r in range(mr):
                if residual:
                    y[r] += dst[r_off[r] + nc0:r_off[r] + nc0 + n]
                z = np.clip(y[r], lo, hi)
                expected[c_off[r] + nc0:c_off[r] + nc0 + n] = np.where(z >= 0, z, z * slope[r]) if leaky else z
            isa.ukernel_gemm_tile(rows, nvalid, a, bias, src, b_off, nb0, dst, c_off, r_off, nc0, mr, lo, hi,
                                  b_run=b_run, tiles=tiles, pixel_tiles=pixel_tiles, slope=slope)
            np.testing.assert_allclose(dst, expected, rtol=2e-5, atol=2e-5,
                                       err_msg=f'{tiles} tiles of {rows} rows x {pixel_tiles} x {nvalid} '
                                               f'pixels, mr {mr}, residual {residual}, leaky {leaky}')


def test_plane_runs():
    """A run is the entries from one on, in its group, equally spaced; a
    group's last entry is a run of one, any two entries a run of two."""
    table = np.array([[0, 4, 8, 12, 20, 28, 29, 29, 29],
                      [9, 5, 1, 2, 3, 100, 0, 0, 7]])
    np.testing.assert_array_equal(isa.plane_runs(table), [4, 3, 2, 3, 2, 2, 3, 2, 1,
                                                          3, 2, 3, 2, 2, 2, 2, 2, 1])


def test_gemm_tile_refuses_buffers_it_would_overrun():
    a, bias = np.zeros(64, np.float32), np.zeros(32, np.float32)
    zero = np.zeros(1, np.int64)        # (int64 tables: a plain np.array([0]) is int32 on armv7)
    with pytest.raises(ValueError, match='src has'):
        isa.ukernel_gemm_tile(isa.NARROW_ROWS, 3, a, bias, np.zeros(1, np.float32), zero, 0,
                              np.zeros(256, np.float32), zero, None, 0, 1, -1, 1)
    with pytest.raises(ValueError, match=r'b_run\[0\] = 3'):
        isa.ukernel_gemm_tile(isa.NARROW_ROWS, 3, a, bias, np.zeros(64, np.float32),
                              np.array([0, 1, 3], np.int64), 0, np.zeros(256, np.float32), zero, None,
                              0, 1, -1, 1, b_run=np.array([3, 2, 1], np.int64))
    with pytest.raises(ValueError, match='no tile'):
        isa.ukernel_gemm_tile(isa.NARROW_ROWS, 10 ** 6, a, bias, np.zeros(8, np.float32), zero, 0,
                              np.zeros(256, np.float32), zero, None, 0, 1, -1, 1)


# a sum's error allowed: fp32 sums' (1e-5, growing as sqrt(K) past 64 terms),
# and in fp16 the output's rounding too (half an fp16 step, 2**-11 of the
# value): the tile sums in fp32 there (fp16 sums of K = 67 standard normal
# products err about 50 times that)
LINEAR_RTOL = {'fp32': 1e-5, 'fp16': 2 ** -11 + 1e-5}


@pytest.mark.parametrize('K', [0, 1, 2, 3, 5, 64, 67, 1027])
@pytest.mark.parametrize('layout', ['scattered', 'planes', 'two runs'])
@pytest.mark.parametrize('precision', list(LINEAR_RTOL))
def test_linear_tile(K, layout, precision):
    """The fully connected tile over inputs anywhere (runs of one), in
    equally spaced planes (one run: global pooling's output), and in two
    runs of different steps (a concatenation), odd lengths among them; in
    each precision's module (fp16: on the CPU's fp16 arithmetic where it
    has it), against the sum in float64 of the same (rounded) numbers."""
    kernels = isa.kernels(precision, allow_scalar=True)
    rng = np.random.default_rng(K)
    no = kernels.LINEAR_OUTPUTS
    w = rng.standard_normal(K * no + no * 33).astype(kernels.ELEMENT)
    bias = rng.standard_normal(no).astype(kernels.ELEMENT)
    src = rng.standard_normal(16 * K + 5).astype(kernels.ELEMENT)
    if layout == 'scattered':
        x_off = rng.permutation(3 * K + 5)[:K].astype(np.int64)
    elif layout == 'planes':
        x_off = 3 + 16 * np.arange(K, dtype=np.int64)
    else:
        x_off = np.concatenate([16 * np.arange(K // 2), 8 * K + 1 + 5 * np.arange(K - K // 2)]).astype(np.int64)
    y = kernels.ukernel_linear_tile(w, bias, src, x_off, -2.0, 1.5)
    assert y.dtype == kernels.ELEMENT
    ref = bias + w[:K * no].reshape(K, no).T.astype(np.float64) @ src[x_off]
    np.testing.assert_allclose(y, np.clip(ref, -2.0, 1.5), rtol=LINEAR_RTOL[precision],
                               atol=1e-5 * max(1.0, np.sqrt(K / 64)))


@pytest.mark.parametrize('name', sorted(NONLINEAR))
@pytest.mark.parametrize('n', [0, 1, VLEN - 1, VLEN, 3 * VLEN + 5])
def test_activation(name, n):
    """Each activation on a channel's values, NaN and infinities among them."""
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 4
    x[:3] = [np.nan, np.inf, -np.inf][:n]
    y = x.copy()
    isa.ukernel_activation(y, Act['ACT_' + name.upper()], 0.3)
    with np.errstate(invalid='ignore', over='ignore'):
        ref = NONLINEAR[name](x.astype(np.float64), 0.3)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('s', [1, 2, 3])
def test_copy_strided(s):
    rng = np.random.default_rng(s)
    for n in range(0, 3 * VLEN + 3):
        src = rng.standard_normal(n * s + 2 * VLEN + 1).astype(np.float32)
        dst = np.full(n + VLEN, SENTINEL, np.float32)
        isa.ukernel_copy_strided(dst, src, n, s)
        np.testing.assert_array_equal(dst[:n], src[:n * s:s])
        if s > 2:       # strides 1 and 2 may store a part-full vector's lanes past n
            assert (dst[n:] == SENTINEL).all()


@pytest.mark.parametrize('s', [1, 2])
@pytest.mark.parametrize('in_w', [1, 2, 7, 16, 33])
def test_frame_row(s, in_w):
    """The direct convolution's framed rows: padding zeros, the row, zeros;
    at stride 2 the even columns, then the odd ones."""
    row = np.arange(1, in_w + 2 * VLEN + 1, dtype=np.float32)
    for pl in range(0, 4):
        fw = in_w + 2 * pl
        framed = np.concatenate([np.zeros(pl), row[:in_w], np.zeros(pl)]).astype(np.float32)
        expected = framed if s == 1 else np.concatenate([framed[0::2], framed[1::2]])
        for given in (row, None):
            dst = np.full(fw + VLEN, SENTINEL, np.float32)
            isa.ukernel_frame_row(dst, given, in_w, pl, fw, s)
            np.testing.assert_array_equal(dst[:fw], expected if given is not None else np.zeros(fw))
            assert (dst[fw:] == SENTINEL).all()         # nothing past the frame row


@pytest.mark.parametrize('out_w', [1, 2, 3, 7, VLEN, VLEN + 1, 13])
def test_direct_panel(out_w):
    """The direct convolution's panel: each tap's pixels p0 .. p1 - 1 of the
    output plane one after another, from the rows of the frame (runs that
    start and end inside rows, one pixel, whole rows); nothing written past
    the K rows but their VLEN floats of slack."""
    rng = np.random.default_rng(out_w)
    row_step, out_h = out_w + 5, 4
    frame = rng.standard_normal(3 * row_step * out_h + 4 * VLEN).astype(np.float32)
    for tap in ([0], [3, row_step + 1, 2, 2 * row_step]):
        K = len(tap)
        for p0, p1 in ((0, out_w * out_h), (out_w - 1, out_w + 1), (1, 1 + out_w), (2, 3),
                       (out_w, 3 * out_w - 1), (0, 1)):
            p1 = min(p1, out_w * out_h)
            if p0 >= p1:
                continue
            oh0 = p0 // out_w
            stride = p1 - p0 + 3
            panel = np.full(K * stride + 2 * VLEN, SENTINEL, np.float32)
            isa.ukernel_direct_panel(panel, stride, frame, tap, p0, p1, out_w, oh0, row_step)
            p = np.arange(p0, p1)
            for k, t in enumerate(tap):
                np.testing.assert_array_equal(panel[k * stride:k * stride + p1 - p0],
                                              frame[t + (p // out_w - oh0) * row_step + p % out_w])
            # (a row's last vector may run VLEN - 1 floats past it)
            assert (panel[(K - 1) * stride + p1 - p0 + VLEN - 1:] == SENTINEL).all()


@pytest.mark.parametrize('hw', [(1, 1), (2, 2), (5, 7), (8, 3), (13, 16)])
def test_phase_planes(hw):
    h, w = hw
    rows, cols = (h + 1) // 2, (w + 1) // 2
    src = np.arange(h * w + 2 * cols + 2 * VLEN + 1, dtype=np.float32)
    ps = rows * cols + VLEN
    dst = np.full(3 * ps + rows * cols + VLEN, SENTINEL, np.float32)
    isa.ukernel_phase_planes(src, h, w, dst, ps, rows, cols)
    plane = src[:h * w].reshape(h, w)
    for a, b in itertools.product((0, 1), (0, 1)):
        got = dst[(2 * a + b) * ps:(2 * a + b) * ps + rows * cols].reshape(rows, cols)
        part = plane[a::2, b::2]
        np.testing.assert_array_equal(got[:part.shape[0], :part.shape[1]], part)


# -- Winograd F(m x m, 3x3): the transforms alone

def test_winograd_matrices_compute_the_convolution():
    """winograd.h's B^T and A^T with the weights' G (ops/conv.py) give each
    output tile of a 3x3 correlation exactly (float64): in one dimension and
    in two, A^T [(G g G^T) . (B^T d B)] A."""
    from engine.ops.conv import WINOGRAD_G
    rng = np.random.default_rng(0)
    for m in (2, 4):
        bt, at = isa.winograd_matrices(m)
        g = WINOGRAD_G[m]
        assert bt.shape == (m + 2, m + 2) and at.shape == (m, m + 2) and g.shape == (m + 2, 3)
        d, k = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
        y = at @ ((g @ k @ g.T) * (bt @ d @ bt.T)) @ at.T
        ref = np.array([[(d[i:i + 3, j:j + 3] * k).sum() for j in range(m)] for i in range(m)])
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match='2 or 4'):
        isa.winograd_matrices(3)


# output planes (out_h, out_w) of a 3x3 stride-1 convolution: 1x1 and 2x2,
# one row, one column, H != W, widths of one tile short of a vector, of one
# past, of several vectors (AVX-512: 16 tiles)
WINO_PLANES = [(1, 1), (2, 2), (1, 9), (9, 1), (5, 7), (7, 13), (3, 4 * VLEN - 3), (6, 4 * VLEN + 5),
               (2, 9 * VLEN + 1)]


@pytest.mark.parametrize('m', [2, 4])
@pytest.mark.parametrize('plane', WINO_PLANES)
def test_wino_frame_band_and_input_tiles(m, plane):
    """B^T d B of every tile of a band of tile rows, d its a x a inputs of
    the padded plane (zeros outside; padding 0 and 1), from a frame of the
    band's rows as the ISA's input transform reads it: bands of one tile row,
    of the first and of the last rows, and of all; at most VLEN - 1 floats
    written past the band's tiles."""
    a = m + 2
    out_h, out_w = plane
    bt, _ = isa.winograd_matrices(m)
    for pad in (0, 1):
        in_h, in_w = out_h + 2 - 2 * pad, out_w + 2 - 2 * pad
        if in_h < 1 or in_w < 1:
            continue
        x = np.random.default_rng(in_h * in_w + m).standard_normal((in_h, in_w)).astype(np.float32)
        tx, ty = -(-out_w // m), -(-out_h // m)
        padded = np.zeros((ty * m + 2, tx * m + 2))
        padded[pad:pad + in_h, pad:pad + in_w] = x
        for ty0, ty1 in sorted({(0, ty), (0, 1), (ty - 1, ty), (ty // 2, ty)}):
            frame, fs = isa.ukernel_wino_frame_band(x, pad, pad, ty0, ty1, tx, m)
            tiles = (ty1 - ty0) * tx
            xi_step = tiles + VLEN + 2
            v = np.full(a * a * xi_step, SENTINEL, np.float32)
            isa.ukernel_wino_input_tiles(frame, fs, tx, tiles, v, xi_step, m)
            got = v.reshape(a * a, xi_step)
            for g in range(tiles):
                q, t = ty0 + g // tx, g % tx
                d = padded[q * m:q * m + a, t * m:t * m + a]
                np.testing.assert_allclose(got[:, g], (bt @ d @ bt.T).ravel(), rtol=1e-5, atol=1e-5)
            assert (got[:, tiles + VLEN - 1:] == SENTINEL).all()
    with pytest.raises(ValueError, match='do not hold'):     # more columns than the tiles read
        isa.ukernel_wino_frame_band(np.zeros((3, m + 2), np.float32), 1, 1, 0, 1, 1, m)
    frame, fs = isa.ukernel_wino_frame_band(np.zeros((3, 3), np.float32), 1, 1, 0, 1, 1, m)
    with pytest.raises(ValueError, match='not the frame'):
        isa.ukernel_wino_input_tiles(frame, fs + 1, 1, 1, np.zeros(a * a * 2 * VLEN, np.float32), 2 * VLEN, m)


@pytest.mark.parametrize('m', [2, 4])
@pytest.mark.parametrize('tiles', sorted({1, 2, max(1, VLEN - 1), VLEN, VLEN + 1, 2 * VLEN + 3}))
def test_wino_output_tiles(m, tiles):
    """bias + A^T M A of each tile, its m x m pixels interleaved into m
    output rows; whole vectors of tiles written, nothing past them."""
    rng = np.random.default_rng(tiles * m + 1)
    a, span = m + 2, -(-tiles // VLEN) * VLEN
    xi_step, out_step = span + 3, span * m + 7
    mrow = rng.standard_normal(a * a * xi_step).astype(np.float32)
    out = np.full(m * out_step, SENTINEL, np.float32)
    isa.ukernel_wino_output_tiles(mrow, xi_step, tiles, 0.25, out, out_step, m)
    _, at = isa.winograd_matrices(m)
    rows = out.reshape(m, out_step)
    for t in range(tiles):
        y = at @ mrow.reshape(a * a, xi_step)[:, t].astype(np.float64).reshape(a, a) @ at.T + 0.25
        np.testing.assert_allclose(rows[:, t * m:(t + 1) * m], y, rtol=1e-5, atol=1e-5)
    assert (rows[:, span * m:] == SENTINEL).all()


@pytest.mark.parametrize('n', sorted({0, 1, VLEN - 1, VLEN, 2 * VLEN + 1, 3 * VLEN + 2}))
@pytest.mark.parametrize('spill', [False, True])
def test_wino_store_rows(n, spill):
    """Output rows into their plane: the residual added (or not), the clamp
    by each way of its bounds (both, ReLU's lower only, a finite upper only,
    none), NaN kept; nothing written past n in a row, or with rows that
    spill (their tails stored whole into the next rows, written after them:
    rows end to end, all but those the last 2 VLEN - 1 floats need) past the
    last.  src and res are read to whole vectors (NaN there reaches
    nothing); shorter ones are refused."""
    rng = np.random.default_rng(n)
    rows, span = 3 + 2 * VLEN, -(-n // VLEN) * VLEN
    src_step, dst_step = span + 2 * VLEN, n if spill else n + 3
    spills = rows - -(-(2 * VLEN - 1) // n) if spill and n else 0
    src = np.full(rows * src_step, np.nan, np.float32)
    res = np.full(rows * dst_step + span + 2 * VLEN, np.nan, np.float32)
    for r in range(rows):
        src[r * src_step:r * src_step + n] = rng.standard_normal(n)
        res[r * dst_step:r * dst_step + n] = rng.standard_normal(n)
    if n:
        src[src_step + n // 2] = np.nan
    inf = np.float32(np.inf)
    for lo, hi in ((-0.5, 0.75), (0.0, inf), (-inf, 0.75), (-inf, inf)):
        for given in (None, res):
            dst = np.full(rows * dst_step + VLEN, SENTINEL, np.float32)
            isa.ukernel_wino_store_rows(dst, dst_step, src, src_step, given, rows, spills, n, lo, hi)
            for r in range(rows):
                y = src[r * src_step:r * src_step + n] + (0 if given is None else res[r * dst_step:r * dst_step + n])
                got = dst[r * dst_step:(r + 1) * dst_step]
                np.testing.assert_array_equal(got[:n], np.where(np.isnan(y), y, np.clip(y, lo, hi)))
                assert (got[n:] == SENTINEL).all()
            assert (dst[rows * dst_step:] == SENTINEL).all()
    if span > n:
        with pytest.raises(ValueError, match='src'):
            isa.ukernel_wino_store_rows(dst, dst_step, src[:(rows - 1) * src_step + n], src_step, None, rows, 0, n,
                                        -0.5, 0.75)
    if n and VLEN > 1:
        with pytest.raises(ValueError, match='spill'):       # the last rows would spill past the plane
            isa.ukernel_wino_store_rows(dst, n, src, src_step, None, rows, rows, n, -0.5, 0.75)


# -- window and element-wise kernels: hand-made records through Program

def run_records(records, arena_floats, fill, scratch_bytes=1 << 16):
    """Run records on one image's arena of `fill` (floats); the arena after,
    as floats.  (The records' plane offsets are bytes: 4 * the floats'.)"""
    image_bytes = -(-4 * arena_floats // 64) * 64        # whole cache lines
    arena = aligned_bytes(image_bytes)
    arena.view(np.float32)[:arena_floats] = fill(arena_floats)
    scratch_bytes = -(-scratch_bytes // 64) * 64
    isa.Program(records, image_bytes, scratch_bytes).run(arena, 1, aligned_bytes(scratch_bytes), 1)
    return arena.view(np.float32)[:arena_floats]


WINDOWS = [  # mode, k, s, p, d, (h, w): shapes with a special kernel and without
    (WindowMode.WINDOW_CONV, 3, 1, 1, 1, (5, 7)), (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (9, 6)),
    (WindowMode.WINDOW_CONV, 5, 1, 2, 1, (6, 6)), (WindowMode.WINDOW_CONV, 7, 2, 3, 1, (13, 11)),
    (WindowMode.WINDOW_CONV, 3, 1, 2, 2, (7, 9)), (WindowMode.WINDOW_CONV, 3, 3, 1, 1, (10, 8)),
    (WindowMode.WINDOW_CONV, 4, 1, 1, 1, (2, 2)), (WindowMode.WINDOW_CONV, 3, 1, 1, 1, (1, 1)),
    (WindowMode.WINDOW_MAX, 3, 2, 1, 1, (8, 8)), (WindowMode.WINDOW_MAX, 2, 2, 0, 1, (7, 5)),
    (WindowMode.WINDOW_MAX, 3, 1, 1, 2, (6, 9)), (WindowMode.WINDOW_AVG, 3, 2, 1, 1, (7, 7)),
    (WindowMode.WINDOW_AVG, 3, 1, 0, 1, (4, 17)), (WindowMode.WINDOW_AVG, 5, 3, 2, 1, (10, 13)),
    (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (2, 2)), (WindowMode.WINDOW_CONV, 3, 1, 1, 1, (3, 14)),
    (WindowMode.WINDOW_MAX, 3, 1, 1, 1, (7, 28)), (WindowMode.WINDOW_CONV, 3, 2, 0, 1, (7, 10)),
    # framed rows whose end is copied as an overlapping last vector (pair), odd and even widths
    (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (5, 37)), (WindowMode.WINDOW_MAX, 3, 2, 1, 1, (4, 11)),
    (WindowMode.WINDOW_CONV, 3, 1, 1, 1, (3, 35)), (WindowMode.WINDOW_AVG, 3, 2, 1, 1, (3, 34)),
    # interleaved: rows of exactly one block of 4 outputs, of 1 to 3, a last block of 1, 2 or 3
    # pixels (two rows at a time and one), H != W
    (WindowMode.WINDOW_CONV, 3, 1, 1, 1, (6, 4)), (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (7, 5)),
    (WindowMode.WINDOW_CONV, 3, 1, 0, 1, (4, 5)), (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (1, 4)),
    (WindowMode.WINDOW_MAX, 3, 2, 1, 1, (3, 2)), (WindowMode.WINDOW_AVG, 3, 1, 1, 1, (2, 9)),
    (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (6, 12)), (WindowMode.WINDOW_CONV, 3, 2, 1, 1, (4, 9)),
    # 5x5 (interleaved too): planes smaller than the window, a last block of 1 to 3, H != W,
    # stride 2 with odd and even sides, no padding
    (WindowMode.WINDOW_CONV, 5, 1, 2, 1, (1, 1)), (WindowMode.WINDOW_CONV, 5, 1, 2, 1, (2, 3)),
    (WindowMode.WINDOW_CONV, 5, 1, 2, 1, (9, 6)), (WindowMode.WINDOW_CONV, 5, 1, 2, 1, (5, 11)),
    (WindowMode.WINDOW_CONV, 5, 2, 2, 1, (7, 10)), (WindowMode.WINDOW_CONV, 5, 2, 2, 1, (2, 2)),
    (WindowMode.WINDOW_CONV, 5, 2, 2, 1, (12, 9)), (WindowMode.WINDOW_CONV, 5, 1, 0, 1, (6, 13)),
    (WindowMode.WINDOW_MAX, 5, 1, 2, 1, (7, 8)), (WindowMode.WINDOW_AVG, 5, 2, 2, 1, (9, 5)),
    # 7x7 (interleaved too: rows of 13 frame pixels under a stride-2 block), as 5x5, and a plane
    # of 14x14 (ShuffleNetV2+'s) and 56x56 to 28x28 at stride 2
    (WindowMode.WINDOW_CONV, 7, 1, 3, 1, (1, 1)), (WindowMode.WINDOW_CONV, 7, 1, 3, 1, (3, 2)),
    (WindowMode.WINDOW_CONV, 7, 1, 3, 1, (14, 14)), (WindowMode.WINDOW_CONV, 7, 1, 3, 1, (6, 11)),
    (WindowMode.WINDOW_CONV, 7, 2, 3, 1, (9, 14)), (WindowMode.WINDOW_CONV, 7, 2, 3, 1, (2, 2)),
    (WindowMode.WINDOW_CONV, 7, 2, 3, 1, (56, 56)), (WindowMode.WINDOW_CONV, 7, 1, 0, 1, (9, 13)),
    (WindowMode.WINDOW_MAX, 7, 1, 3, 1, (8, 5)), (WindowMode.WINDOW_AVG, 7, 2, 3, 1, (10, 9)),
    # 3x3 pooling at stride 2 (the row path's columns of one and two vectors, walking down):
    # no padding, 1x1 and 2x2 planes, rows of several vectors inside and a part-vector at the end
    (WindowMode.WINDOW_MAX, 3, 2, 0, 1, (9, 21)), (WindowMode.WINDOW_MAX, 3, 2, 1, 1, (1, 1)),
    (WindowMode.WINDOW_AVG, 3, 2, 1, 1, (2, 2)), (WindowMode.WINDOW_MAX, 3, 2, 1, 1, (23, 70)),
    (WindowMode.WINDOW_AVG, 3, 2, 0, 1, (13, 36)),
]


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def flat_ok(k, s, p, d, hw):
    """Whether the flat path has tables for the shape (else the planner runs it direct)."""
    oh, ow = out_size(hw[0], k, s, p, d), out_size(hw[1], k, s, p, d)
    return s in (1, 2) and isa.flat_tables(*hw, oh, ow, k, k, p, p, d, d, s) is not None


def framed_ok(k, s, p, d, hw):
    """Whether the framed path takes the window (3x3, strides 1 and 2, no dilation)."""
    return k == 3 and s in (1, 2) and d == 1


def interleaved_ok(k, s, p, d, hw):
    """Whether the interleaved path takes the window (3x3, 5x5 and 7x7, strides 1 and 2, no dilation)."""
    return k in isa.INTERLEAVABLE_SIDES and s in (1, 2) and d == 1


WINDOW_CASES = [(case, WindowPath.WINDOW_DIRECT) for case in WINDOWS] + [
    (case, WindowPath.WINDOW_FLAT) for case in WINDOWS if flat_ok(*case[1:])] + [
    (case, WindowPath.WINDOW_FRAMED) for case in WINDOWS if framed_ok(*case[1:])] + [
    (case, WindowPath.WINDOW_INTERLEAVED) for case in WINDOWS if interleaved_ok(*case[1:])]


@pytest.mark.parametrize('case,path', WINDOW_CASES,
                         ids=[f'{m.name}{k}s{s}p{p}d{d}_{h}x{w}_{path.name}'
                              for (m, k, s, p, d, (h, w)), path in WINDOW_CASES])
def test_window(case, path):
    """Depthwise convolution and pooling of 5 channels, planes at scattered
    offsets, by the row kernels (strides above 2: one output at a time),
    flat where the path has tables for the shape, framed (3x3) and
    interleaved (3x3, 5x5 and 7x7; groups of VLEN channels, short ones too)."""
    mode, k, s, p, d, hw = case
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    c, (h, w) = 5, hw
    oh, ow = out_size(h, k, s, p, d), out_size(w, k, s, p, d)
    plane = -(-max(h * w, oh * ow) // 16) * 16 + 16
    slack = isa.ARENA_SLACK
    in_off = slack + planes(rng, c, plane, gap=16 + 16 * int(rng.integers(0, 3)))
    out_off = int(in_off.max()) + plane + 16 + planes(rng, c, plane, gap=32)
    top = int(out_off.max()) + plane + 2 * slack
    extra = {}
    if path == WindowPath.WINDOW_FLAT:
        tables = isa.flat_tables(h, w, oh, ow, k, k, p, p, d, d, s)
        extra.update(tap_off=tables[0], lanes=tables[1])
    elif s <= 2:
        extra.update(lanes=isa.row_tables(w, ow, k, s, p, d))
    weight = rng.standard_normal((c, k * k)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    if mode == WindowMode.WINDOW_CONV:
        extra.update(w=weight, b=bias)
    if mode == WindowMode.WINDOW_AVG:
        div = avgpool_divisors(h, w, oh, ow, (k, k), (s, s), (p, p), False)   # a divisor per pixel
        extra.update(aux=np.concatenate([div.ravel(), np.zeros(16, np.float32)]))
    record = Window(n_out=c, plane=plane, jobs_per_image=2, per_job=4 if path == WindowPath.WINDOW_FLAT else 3,
                    in_off=4 * in_off, out_off=4 * out_off, lo=-2.5, hi=3.0, act=Act.ACT_NONE,
                    in_h=h, in_w=w, out_h=oh, out_w=ow, kh=k, kw=k, sh=s, sw=s, ph=p, pw=p, dh=d, dw=d,
                    mode=mode, path=path, fill=-np.inf if mode == WindowMode.WINDOW_MAX else 0.0, **extra)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)

    def fill(n):
        a = np.full(n, SENTINEL, np.float32)
        for ch in range(c):
            a[in_off[ch]:in_off[ch] + h * w] = x[0, ch].ravel()
        return a
    need = 4 * isa.scratch_floats(w, oh, ow, k, p, s, path)
    if need > 64:       # a program with less scratch than the path needs is refused
        with pytest.raises(ValueError, match='bytes of scratch'):
            isa.Program([record], 64, (need - 1) // 64 * 64)
    arena = run_records([record], top, fill, max(need, 1 << 16))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)),
                constant_values=-np.inf if mode == WindowMode.WINDOW_MAX else 0)
    if mode == WindowMode.WINDOW_CONV:
        ref = conv2d(x, weight.reshape(c, 1, k, k), bias, (s, s), (p, p), (d, d), c)[0]
    else:
        taps = [xp[0, :, i * d:i * d + s * (oh - 1) + 1:s, j * d:j * d + s * (ow - 1) + 1:s]
                for i in range(k) for j in range(k)]
        ref = np.max(taps, axis=0) if mode == WindowMode.WINDOW_MAX else np.sum(taps, axis=0) * div
    for ch in range(c):
        got = arena[out_off[ch]:out_off[ch] + oh * ow].reshape(oh, ow)
        np.testing.assert_allclose(got, np.clip(ref[ch], -2.5, 3.0), rtol=2e-5, atol=2e-5)
    # nothing written but the output planes (and the lanes of their last vector)
    written = np.zeros(top, bool)
    for ch in range(c):
        written[out_off[ch]:out_off[ch] + -(-oh * ow // VLEN) * VLEN] = True
    assert (arena[~written] == fill(top)[~written]).all()


@pytest.mark.parametrize('mode', list(EltwiseMode))
def test_eltwise(mode):
    rng = np.random.default_rng(int(mode))
    c, pixels = 3, 37
    plane = -(-pixels // 16) * 16
    in_off, in2_off = planes(rng, c, plane, 16), 200 + planes(rng, c, plane, 16)
    out_off = 400 + planes(rng, c, plane, 16)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    split = mode == EltwiseMode.ELTWISE_ADD_SPLIT
    record = Eltwise(n_out=c, plane=plane, jobs_per_image=plane // VLEN if split else c,
                     per_job=1, in_off=4 * in_off, out_off=4 * out_off, lo=-1.0, hi=1.2, act=Act.ACT_NONE,
                     mode=mode, in2_off=4 * in2_off, w=w, b=b)
    arena = run_records([record], 640, lambda n: rng.standard_normal(n).astype(np.float32))
    # the inputs are where the kernel does not write: read them back
    a = np.stack([arena[o:o + plane] for o in in_off]).astype(np.float64)
    b2 = np.stack([arena[o:o + plane] for o in in2_off]).astype(np.float64)
    y = {EltwiseMode.ELTWISE_ADD: a + b2, EltwiseMode.ELTWISE_ADD_SPLIT: a + b2,
         EltwiseMode.ELTWISE_AFFINE: a * w[:, None] + b[:, None], EltwiseMode.ELTWISE_CLAMP: a,
         EltwiseMode.ELTWISE_MUL: a * b2, EltwiseMode.ELTWISE_MUL_CHANNEL: a * b2[:, :1]}[mode]
    got = np.stack([arena[o:o + plane] for o in out_off])
    np.testing.assert_allclose(got, np.clip(y, -1.0, 1.2), rtol=1e-6, atol=1e-6)


def test_fma_peak_loop_is_timed_not_optimised_away():
    # the plain C loop was once dropped by GCC (its result unread): the
    # timing doubled its iterations until they overflowed and returned 0
    assert 0 < isa.fma_peak_gflops(0.01) < 1e4
