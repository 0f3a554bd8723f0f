"""Every kernel against its NumPy reference over grids of awkward shapes:
odd sizes, H != W, 1x1 and 2x2 planes, channel counts that are not multiples
of the vector width or the GEMM tile, every stride/padding/dilation/group the
ops allow, batch 1 and 3, one and two threads.  No torch needed."""
import itertools
from dataclasses import replace

import numpy as np
import pytest

import engine
from engine import reference
from engine.graph import infer_shapes
from engine.kernels import isa
from engine.kernels.isa import TILE_PIXELS
from engine.ops.activations import NONLINEAR
from engine.plan import PlanOptions, compile_graph
from helpers import check_graph, one_op_graph, rand

BATCHES = (1, 3)


# Window ops run small stride-1 and stride-2 planes flat (several planes at a
# time; stride 2 through phase planes) and the others row by row in place:
# every window case runs each way the planner allows (flat where it applies),
# with jobs of one channel, of runs of several (groups short of the flat
# path's planes among them) and of all channels of an image.
NOT_3X3 = dict(framed_windows=False, interleaved_windows=False)
WINDOW_PATHS = {
    'direct': dict(NOT_3X3, flat_max_pixels=0, flat_s2_max_pixels=0, channel_jobs=1 << 30),
    'flat': dict(NOT_3X3, flat_max_pixels=1 << 30, flat_s2_max_pixels=1 << 30, channel_jobs=3),
    'direct-runs': dict(NOT_3X3, flat_max_pixels=0, flat_s2_max_pixels=0, channel_jobs=2),
    'framed': dict(framed_windows=True, interleaved_windows=False, channel_jobs=2),
    # (groups of VECTOR channels, one short where jobs are 2)
    'interleaved': dict(interleaved_windows=True, channel_jobs=2),
}


def plan_options(window_path=None, conv_path=None, **more):
    """PlanOptions for a window path (WINDOW_PATHS) and a convolution path
    ('direct': framed rows read in place, 'direct-panel': across rows through
    a panel (test_direct_panel), or 'im2col' panels; not Winograd,
    which test_winograd takes), or 'winograd2' / 'winograd4' (F(2x2) or
    F(4x4) for dense 3x3 stride-1 convolutions, direct for the others)."""
    if window_path:
        more = dict(WINDOW_PATHS[window_path], **more)
    if conv_path:
        more['direct_conv'] = conv_path != 'im2col'
        more['direct_panel'] = conv_path == 'direct-panel'
        more['winograd'] = int(conv_path[-1]) if conv_path.startswith('winograd') else 0
    return PlanOptions(**more)


@pytest.fixture(params=list(WINDOW_PATHS))
def window_path(request):
    return request.param


@pytest.fixture(params=['direct', 'im2col'])
def conv_path(request):
    return request.param


# The kernel cases run in both precisions: fp32, and fp16 on the fp16 module
# this CPU runs (neon_fp16 where it has fp16 arithmetic, else the scalar_fp16
# reference), to fp16's tolerance (check_graph's rtol: of the output's
# largest magnitude; neon_fp16 accumulates in fp16: 1.4e-2 on the
# 1024-long reduction of test_linear, scalar_fp16 in float: 2e-3 at most).
PRECISION_RTOL = {'fp32': 2e-5, 'fp16': 2e-2}


@pytest.fixture(params=list(PRECISION_RTOL))
def precision(request):
    return request.param


def run_in(precision):
    """check_graph's kernel module and tolerance for a precision."""
    return dict(kernels=isa.kernels(precision, allow_scalar=True), rtol=PRECISION_RTOL[precision])


def test_gemm_row_tiles_are_the_cheapest_mix():
    """A GEMM's rows are covered by tiles of one height, or of a taller then
    a shorter one, whichever mix of the heights compiled costs least, empty
    rows included; the packing holds the weights tile by tile, zero past m."""
    from engine.lowering import pack_gemm, row_tiles
    kernels = isa.kernels()
    TILE_ROWS, WEIGHT_OVERREAD = kernels.TILE_ROWS, kernels.WEIGHT_OVERREAD
    rng = np.random.default_rng(2)
    mixed = set()
    for m in range(1, 90):
        tiles = row_tiles(kernels, m)
        tall, n_tall = tiles['tile_rows'], tiles['m_tiles'] - tiles['short_tiles']
        short, n_short = tiles['short_rows'], tiles['short_tiles']
        heights = [tall] * n_tall + [short] * n_short
        assert sum(heights[:-1]) < m <= sum(heights) and (n_short == 0 or short < tall)
        cost = sum(r * TILE_ROWS[r] for r in heights)
        # no cheaper: one height, or any taller height then up to three of a shorter one
        singles = [-(-m // r) * r * c for r, c in TILE_ROWS.items()]
        pairs = [-(-(m - n * s) // t) * t * TILE_ROWS[t] + n * s * TILE_ROWS[s]
                 for t in TILE_ROWS for s in TILE_ROWS if s < t for n in (1, 2, 3) if m > n * s]
        assert cost <= min(singles + pairs) + 1e-9
        if n_short:
            mixed.add(m)
        w, b = rand(rng, (2, m, 5)), rand(rng, (2, m))
        wp, bp = pack_gemm(kernels, w, b, tiles)
        rows = sum(heights)
        assert wp.size == 2 * rows * 5 + WEIGHT_OVERREAD and bp.size == 2 * rows + WEIGHT_OVERREAD
        # the packed tiles, each [K][its rows], then the floats a tile may read past them
        unpacked, at = [], 0
        for g in range(2):
            for r in heights:
                unpacked.append(wp[at:at + 5 * r].reshape(5, r).T)
                at += 5 * r
        unpacked = np.concatenate(unpacked).reshape(2, rows, 5)
        np.testing.assert_array_equal(unpacked[:, :m], w)
        np.testing.assert_array_equal(bp[:-WEIGHT_OVERREAD].reshape(2, -1)[:, :m], b)
        assert not unpacked[:, m:].any()
        # a height asked for is the only one
        narrow = min(TILE_ROWS)
        assert row_tiles(kernels, m, narrow) == dict(tile_rows=narrow, m_tiles=-(-m // narrow), short_rows=0,
                                            short_tiles=0)
    # every build's tallest and shortest heights make some row counts a mix
    assert len(TILE_ROWS) > 1 and mixed


@pytest.mark.parametrize('groups', [1, 2])
def test_gemm_jobs_take_the_weights_in_blocks(groups):
    """A 1x1 convolution whose packed weights pass options.weight_block_bytes
    runs in chunks of row tiles that fit it (each chunk's jobs over the
    plane: the weights read once, not once per pixel tile), and the chunks'
    outputs are right; one pixel tile reads each weight once anyway, so its
    row tiles stay whole."""
    kernels = isa.kernels()
    rng = np.random.default_rng(11)
    cin, cout = 48, 96
    params = {'weight': rand(rng, (cout, cin // groups, 1, 1), 0.3), 'bias': rand(rng, cout)}
    block = PlanOptions(weight_block_bytes=4096, min_jobs=1, thread_jobs=1)
    # several pixel tiles; one (but for the scalar build's planes of 16 in tiles of 2)
    for hw in ((9, 2 * kernels.TILE_PIXELS // 9 + 1), (1, kernels.TILE_PIXELS)):
        graph = one_op_graph('conv', (1, cin) + hw, _pointwise_attrs(cin, cout, groups, clamp=None), params)
        op, _, _ = lower(graph.nodes[0], infer_shapes(graph, *hw), block)
        whole, _, _ = lower(graph.nodes[0], infer_shapes(graph, *hw), PlanOptions(min_jobs=1, thread_jobs=1))
        per_tile = op.tile_rows * op.K * kernels.ELEMENT_BYTES
        assert whole.m_per_job == op.m_tiles
        if op.n_tiles > 1:
            assert op.m_per_job == min(op.m_tiles, max(1, 4096 // per_tile)) < op.m_tiles
            assert op.jobs_per_image == groups * -(-op.m_tiles // op.m_per_job) * -(-op.n_tiles // op.per_job)
        else:
            assert op.m_per_job == op.m_tiles
        for n in BATCHES:
            x = rand(rng, (n, cin) + hw)
            check_graph(one_op_graph('conv', x.shape, graph.nodes[0].attrs, params), x, options=block)


@pytest.mark.parametrize('thread_jobs', [1, 2, 3])
def test_several_thread_plans_take_thread_jobs_times_the_jobs(thread_jobs):
    """A plan for several threads splits a 1x1 convolution into
    options.thread_jobs times a one-thread plan's jobs: runs of pixel tiles
    (channel_jobs) on a large plane, chunks of row tiles (min_jobs) where the
    pixel tiles are few; and its outputs are right at 1 and 2 threads."""
    kernels = isa.kernels()
    rng = np.random.default_rng(13)
    # 96 pixel tiles; one (the scalar build: its padded plane's 8)
    for cin, cout, hw in ((8, 8, (12, 8 * kernels.TILE_PIXELS)), (16, 400, (1, kernels.TILE_PIXELS))):
        params = {'weight': rand(rng, (cout, cin, 1, 1), 0.3), 'bias': rand(rng, cout)}
        graph = one_op_graph('conv', (1, cin) + hw, _pointwise_attrs(cin, cout, 1, clamp=None), params)
        several = PlanOptions(thread_jobs=thread_jobs)
        one, _, _ = lower(graph.nodes[0], infer_shapes(graph, *hw), replace(several, single_thread=True))
        op, _, _ = lower(graph.nodes[0], infer_shapes(graph, *hw), several)

        def chunks(jobs):       # row chunks that make `jobs` jobs with the pixel tiles
            return min(op.m_tiles, -(-jobs // op.n_tiles))
        assert one.m_per_job == -(-op.m_tiles // chunks(several.min_jobs))
        assert op.m_per_job == -(-op.m_tiles // chunks(thread_jobs * several.min_jobs))
        if op.n_tiles == 96:
            assert (one.jobs_per_image, op.jobs_per_image) == (several.channel_jobs, thread_jobs * several.channel_jobs)
        x = rand(rng, (2, cin) + hw)
        check_graph(graph, x, options=several)


@pytest.mark.parametrize('stride', [1, 2])
def test_direct_conv_takes_the_weights_in_blocks(stride):
    """A direct convolution whose packed weights pass the block runs in
    weight_block_bands bands of output rows, each over its rows a block of
    row tiles at a time (m_block), and its outputs are right; under the
    block, one block and options.channel_jobs bands."""
    kernels = isa.kernels()
    rng = np.random.default_rng(12)
    cin, cout, hw = 5, 40, (11, 2 * kernels.TILE_PIXELS + 3)
    attrs = dict(in_channels=cin, out_channels=cout, kernel=[3, 3], stride=[stride] * 2, padding=[1, 1],
                 dilation=[1, 1], groups=1, clamp=[0.0, 6.0], act=None)
    params = {'weight': rand(rng, (cout, cin, 3, 3), 0.3), 'bias': rand(rng, cout)}
    graph = one_op_graph('conv', (1, cin) + hw, attrs, params)
    shapes = infer_shapes(graph, *hw)
    block = PlanOptions(direct_conv=True, direct_panel=False, winograd=0, weight_block_bytes=2048,
                        weight_block_bands=3)
    op, kind, _ = lower(graph.nodes[0], shapes, block)
    assert kind == f'conv3x3{"s2" if stride == 2 else ""}' and op.out_h > 3
    assert op.m_block == min(op.m_tiles, max(1, 2048 // (op.tile_rows * op.K * kernels.ELEMENT_BYTES))) < op.m_tiles
    assert op.jobs_per_image == 3 and op.per_job == -(-op.out_h // 3)
    options = PlanOptions(direct_conv=True, direct_panel=False, winograd=0, weight_block_bytes=1 << 30)
    whole, _, _ = lower(graph.nodes[0], shapes, options)
    assert whole.m_block == whole.m_tiles and whole.per_job == -(-whole.out_h // options.planned_channel_jobs)
    for n in BATCHES:
        x = rand(rng, (n, cin) + hw)
        check_graph(one_op_graph('conv', x.shape, attrs, params), x, options=block)


# Direct convolutions through a panel: output rows that leave the tiles'
# lanes empty (odd widths, 1x1 and 2x2 planes, H != W, one row or column),
# stride 1 and 2, kernels 1x1 (stride 2) to 7x7, padding 0 to 3, channels off
# the tile rows; jobs of pixel runs that start and end inside rows (3 of
# them), with and without weight blocks.
DIRECT_PANEL_CASES = [
    # cin, cout, k, stride, pad, h, w
    (3, 8, 3, 2, 1, 13, 13), (5, 13, 3, 2, 1, 27, 27), (4, 25, 3, 1, 1, 7, 7), (2, 3, 3, 1, 1, 1, 1),
    (3, 5, 3, 1, 1, 2, 2), (6, 7, 5, 1, 2, 9, 11), (5, 6, 7, 2, 3, 15, 13), (7, 12, 3, 2, 0, 9, 20),
    (4, 9, 1, 2, 0, 7, 5), (8, 31, 3, 1, 1, 3, 40), (17, 16, 3, 1, 1, 40, 3), (3, 4, 3, 2, 1, 1, 9),
]


@pytest.mark.parametrize('blocks', [False, True])
@pytest.mark.parametrize('case', DIRECT_PANEL_CASES, ids=lambda c: '{}to{}_k{}s{}p{}_{}x{}'.format(*c))
def test_direct_panel(case, blocks, precision):
    """A direct convolution through a panel: jobs of whole pixel tiles
    across rows (panel_jobs of them), against the reference at
    batch 1 and 3, one and two threads."""
    cin, cout, k, stride, pad, h, w = case
    rng = np.random.default_rng(cin * 7 + w)
    attrs = dict(in_channels=cin, out_channels=cout, kernel=[k, k], stride=[stride] * 2, padding=[pad] * 2,
                 dilation=[1, 1], groups=1, clamp=[0.0, 6.0] if cout % 2 else None)
    params = {'weight': rand(rng, (cout, cin, k, k), (cin * k * k) ** -0.5), 'bias': rand(rng, cout)}
    options = PlanOptions(direct_conv=True, direct_panel=True, winograd=0, panel_jobs=3,
                          weight_block_bytes=1 if blocks else 1 << 30)
    kernels = run_in(precision)['kernels']
    graph = one_op_graph('conv', (1, cin, h, w), attrs, params)
    op, _, _ = lower(graph.nodes[0], infer_shapes(graph, h, w), options, kernels)
    pixels = op.out_h * op.out_w
    assert op.panel == 1 and op.per_job % kernels.TILE_PIXELS == 0
    assert op.jobs_per_image == -(-pixels // op.per_job) <= 3
    assert (op.m_block < op.m_tiles) == (blocks and op.m_tiles > 1 and op.out_h > 1)   # (one row: read once)
    for n in BATCHES:
        x = rand(rng, (n, cin, h, w))
        check_graph(one_op_graph('conv', x.shape, attrs, params), x, options=options, **run_in(precision))


def test_direct_panel_takes_the_residual_and_activation():
    """conv(x) + r, then the activation, through a panel (the tiles' store)."""
    from engine.graph import Graph, Node
    rng = np.random.default_rng(16)
    c, hw = 10, (9, 7)
    attrs = dict(in_channels=c, out_channels=c, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                 dilation=[1, 1], groups=1, clamp=[0.0, None], act='hardswish')
    nodes = [Node('r', 'affine', ['input'], {'clamp': None}, {'scale': rand(rng, c), 'shift': rand(rng, c)}),
             Node('conv', 'conv', ['input', 'r'], attrs,
                  {'weight': rand(rng, (c, c, 3, 3), 0.3), 'bias': rand(rng, c)})]
    options = plan_options(conv_path='direct-panel')
    for n in BATCHES:
        x = rand(rng, (n, c) + hw)
        check_graph(Graph('input', x.shape, nodes, ['conv']), x, options=options)


def test_direct_panel_where_rows_leave_lanes_empty():
    """By default a one-thread plan's direct convolution takes a panel, in
    one job, where its rows in whole tiles cover PANEL_GAIN times the pixels
    the plane's tiles do, not where the rows fill them; several threads'
    plans take none."""
    from engine.ops.conv import PANEL_GAIN
    kernels = isa.kernels()
    covered, nr = kernels.gemm_covered_pixels, kernels.TILE_PIXELS
    for h, w in ((7, 7), (14, 14), (nr + 1, nr + 1), (5, 2 * nr), (9, 1), (1, 9)):
        attrs = dict(in_channels=4, out_channels=8, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                     dilation=[1, 1], groups=1)
        graph = one_op_graph('conv', (1, 4, h, w), attrs, {'weight': np.ones((8, 4, 3, 3), np.float32)})
        shapes = infer_shapes(graph, h, w)
        op, _, _ = lower(graph.nodes[0], shapes, PlanOptions(direct_conv=True, winograd=0, single_thread=True))
        assert op.panel == (h * covered(w) > PANEL_GAIN * covered(h * w))
        assert not op.panel or op.jobs_per_image == 1
        assert not lower(graph.nodes[0], shapes, PlanOptions(direct_conv=True, winograd=0))[0].panel
    assert not covered(2 * nr) * 5 > PANEL_GAIN * covered(5 * 2 * nr)    # (whole rows: no panel)


def _pointwise_attrs(cin, cout, groups, **extra):
    return dict(in_channels=cin, out_channels=cout, kernel=[1, 1], stride=[1, 1], padding=[0, 0],
                dilation=[1, 1], groups=groups, **extra)


def lower(node, shapes, options, kernels=None):
    """A node's (record, layer kind, scratch) with zero offset tables, for
    a kernel module (None: fp32's)."""
    from engine.lowering import Lowering
    from engine.ops import REGISTRY
    kernels = kernels or isa.kernels()
    return REGISTRY[node.op].lower(node, Lowering(shapes, dict.fromkeys(shapes, kernels.ELEMENT),
                                                  dict.fromkeys(shapes), lambda v: np.zeros(shapes[v][0], np.int64),
                                                  options,
                                                  kernels))


def _tail_shapes():
    """Planes the GEMM's tiles with extra pixels take: TAIL_PIXELS (7x7 on
    AVX-512, 5x5 on AVX2; as a square where there is one, and as a row), and
    1 to EXTRA_PIXELS pixels past whole tiles (14x14 on AVX-512)."""
    from engine.kernels.isa import EXTRA_PIXELS, TAIL_PIXELS, TILE_PIXELS
    side = int(round(TAIL_PIXELS ** 0.5))
    return ([(side, side)] if side * side == TAIL_PIXELS else []) + [(1, TAIL_PIXELS), (5, 9), (14, 13)] + [
        (1, TILE_PIXELS * n + extra) for n, extra in zip((1, 2, 6, 1), range(1, EXTRA_PIXELS + 1))]


def test_tail_tile_takes_its_planes():
    """A 1x1 convolution on a plane of TAIL_PIXELS pixels runs as one tile
    per plane (narrow rows); a plane 1 to EXTRA_PIXELS pixels past whole
    tiles as whole tiles, its last one taking them; any other plane and with
    the switch off, as tiles of TILE_PIXELS to the padded plane's end."""
    from engine.graph import infer_shapes
    from engine.kernels.isa import EXTRA_PIXELS, NARROW_ROWS, TAIL_PIXELS, TILE_PIXELS as NR
    for pixels, on in [(TAIL_PIXELS, True), (TAIL_PIXELS, False), (2 * NR + EXTRA_PIXELS, True),
                       (2 * NR + EXTRA_PIXELS, False), (2 * NR + EXTRA_PIXELS + 1, True)]:
        g = one_op_graph('conv', (1, 20, 1, pixels), _pointwise_attrs(20, 30, 1),
                         {'weight': np.ones((30, 20, 1, 1), np.float32)})
        op, kind, _ = lower(g.nodes[0], infer_shapes(g, 1, pixels), PlanOptions(tail_tiles=on))
        if on and pixels == TAIL_PIXELS:
            assert (op.tile_pixels, op.n_tiles, op.tile_rows) == (TAIL_PIXELS, 1, NARROW_ROWS)
        elif on and 0 < pixels % NR <= EXTRA_PIXELS:
            assert (op.tile_pixels, op.n_tiles) == (NR, pixels // NR)
        else:
            assert (op.tile_pixels, op.n_tiles) == (NR, -(-op.plane // NR))


def test_wide_tiles_take_narrow_rows_of_long_reductions():
    """Narrow row tiles are three vectors wide (WIDE_PIXELS, where the build
    has them) from WIDE_MIN_K on, two below it, on other rows and with the
    switch off."""
    from engine.graph import infer_shapes
    from engine.kernels.isa import NARROW_ROWS, TILE_PIXELS as NR, WIDE_PIXELS
    min_k = PlanOptions().wide_min_k
    for cin, cout, on in [(min_k, 16, True), (min_k - 1, 16, True),
                          (min_k, 16, False), (min_k, 24 * NARROW_ROWS, True)]:
        # 80 pixels: whole vectors on every build, no remainder for the last tile
        g = one_op_graph('conv', (1, cin, 8, 10), _pointwise_attrs(cin, cout, 1),
                         {'weight': np.ones((cout, cin, 1, 1), np.float32)})
        op, kind, _ = lower(g.nodes[0], infer_shapes(g, 8, 10), PlanOptions(wide_tiles=on))
        wide = on and cin >= min_k and op.tile_rows == NARROW_ROWS and WIDE_PIXELS
        assert op.tile_pixels == (WIDE_PIXELS if wide else NR)
        assert op.n_tiles == -(-op.plane // op.tile_pixels)


@pytest.mark.parametrize('cin,cout,groups', [(2, 1, 1), (5, 7, 1), (13, 8, 1), (17, 9, 1), (40, 96, 1),
                                             (24, 36, 3), (12, 40, 4), (64, 16, 1), (70, 7, 1), (128, 34, 2)])
def test_tail_tile(cin, cout, groups):
    """The GEMM tiles past two vectors (extra pixels with the rows as lanes;
    narrow rows three vectors wide where K >= WIDE_MIN_K) against the
    reference: row counts below, at and past each tile height, groups, the
    clamp, a fused residual add and activation, batch 1 and 3."""
    from engine.graph import Graph, Node
    rng = np.random.default_rng(cin * 100 + cout)
    for hw in _tail_shapes():
        attrs = _pointwise_attrs(cin, cout, groups, clamp=[-0.5, 0.8])
        params = {'weight': rand(rng, (cout, cin // groups, 1, 1), 0.5), 'bias': rand(rng, cout)}
        for n in BATCHES:
            x = rand(rng, (n, cin) + hw)
            check_graph(one_op_graph('conv', x.shape, attrs, params), x)
        nodes = [Node('r', 'affine', ['input'], {'clamp': None}, {'scale': rand(rng, cin), 'shift': rand(rng, cin)}),
                 Node('conv', 'conv', ['input', 'r'], _pointwise_attrs(cin, cin, groups, clamp=[0.0, None],
                                                                         act='hardswish'),
                      {'weight': rand(rng, (cin, cin // groups, 1, 1), 0.3), 'bias': rand(rng, cin)})]
        x = rand(rng, (3, cin) + hw)
        check_graph(Graph('input', x.shape, nodes, ['conv']), x)


def test_flat_path_takes_the_family_shapes():
    """The flat path has tables for the depthwise and pooling shapes of the
    ShuffleNet/MobileNet family at strides 1 and 2, and none where a tap
    inside the input would land outside its phase plane (the direct path
    takes those)."""
    from engine.kernels.isa import flat_tables
    for hw in (7, 14, 28, 56):
        assert flat_tables(hw, hw, hw, hw, 3, 3, 1, 1, 1, 1, 1) is not None
        assert flat_tables(2 * hw, 2 * hw, hw, hw, 3, 3, 1, 1, 1, 1, 2) is not None
        assert flat_tables(2 * hw + 1, 2 * hw + 1, hw + 1, hw + 1, 3, 3, 1, 1, 1, 1, 2) is not None
    assert flat_tables(13, 11, 6, 5, 5, 5, 2, 2, 1, 1, 2) is None


def test_conv_path_switch(conv_path):
    """The switch the conv_path fixture turns does choose the kernel."""
    attrs = dict(in_channels=3, out_channels=8, kernel=[3, 3], stride=[2, 2], padding=[1, 1],
                 dilation=[1, 1], groups=1)
    g = one_op_graph('conv', (1, 3, 9, 9), attrs, {'weight': np.ones((8, 3, 3, 3), np.float32)})
    kind = compile_graph(g, 9, 9, plan_options(conv_path=conv_path)).layers[0].kind
    assert kind == {'direct': 'conv3x3s2', 'im2col': 'conv3x3s2_im2col'}[conv_path]


def conv_case(cin, cout, k, stride, pad, dil, groups, h, w, bias=True, clamp=None):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    return dict(cin=cin, cout=cout, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                dilation=(dil, dil), groups=groups, hw=(h, w), bias=bias, clamp=clamp)


CONV_CASES = [
    # pointwise (GEMM path): channels around the 12-row tile and 16/32-pixel tiles
    *[conv_case(cin, cout, 1, 1, 0, 1, 1, h, w, bias=b)
      for (cin, cout), (h, w), b in zip(
          [(3, 1), (5, 12), (13, 13), (24, 25), (58, 58), (70, 37), (16, 48), (1, 7)],
          itertools.cycle([(7, 7), (5, 9), (1, 1), (2, 2), (14, 13), (1, 17), (28, 28), (3, 1)]),
          itertools.cycle([True, False]))],
    conv_case(24, 36, 1, 1, 0, 1, 3, 9, 7),        # grouped pointwise
    conv_case(12, 8, 1, 1, 0, 1, 4, 6, 5, clamp=[0.0, None]),
    conv_case(40, 20, 1, 1, 0, 1, 2, 1, 1),
    # dense 3x3 and larger (im2col path)
    conv_case(3, 24, 3, 2, 1, 1, 1, 17, 15, clamp=[0.0, None]),
    conv_case(3, 5, 3, 1, 1, 1, 1, 2, 2),
    conv_case(4, 13, 3, 1, 0, 1, 1, 3, 3),
    conv_case(6, 7, 5, 1, 2, 1, 1, 9, 11),
    conv_case(5, 6, 7, 2, 3, 1, 1, 15, 13, clamp=[0.0, 6.0]),
    conv_case(4, 4, 3, 3, 1, 1, 1, 10, 8),
    conv_case(6, 6, 3, 1, 2, 2, 1, 9, 9),
    conv_case(5, 3, 3, 2, 3, 3, 1, 13, 12),
    conv_case(8, 8, 3, (1, 2), (0, 1), 1, 1, 7, 9),
    conv_case(4, 6, (1, 3), 1, (0, 1), 1, 1, 5, 6),
    conv_case(8, 12, 3, 1, 1, 1, 4, 6, 7),           # grouped 3x3
    conv_case(9, 6, 3, 2, 1, 1, 3, 8, 8, bias=False),
    conv_case(3, 2, 1, 2, 0, 1, 1, 7, 5),            # strided 1x1
    conv_case(2, 3, 1, 1, 1, 1, 1, 4, 4),            # padded 1x1
    conv_case(3, 4, 2, 1, 0, 1, 1, 2, 2),
    # depthwise (window path), with channel multipliers
    *[conv_case(c, c * m, k, s, p, d, c, h, w, bias=b)
      for c, m, k, s, p, d, (h, w), b in [
          (1, 1, 3, 1, 1, 1, (1, 1), True), (17, 1, 3, 1, 1, 1, (28, 28), True),
          (24, 1, 3, 2, 1, 1, (56, 56), False), (58, 1, 3, 2, 1, 1, (14, 13), True),
          (5, 1, 3, 1, 1, 1, (2, 2), True), (7, 1, 3, 2, 1, 1, (7, 7), True),
          (9, 1, 5, 1, 2, 1, (11, 9), True), (6, 1, 7, 2, 3, 1, (15, 16), True),
          (4, 1, 3, 3, 1, 1, (10, 11), True), (4, 1, 3, 1, 2, 2, (9, 8), True),
          (3, 1, 3, 2, 3, 3, (12, 13), False), (3, 2, 3, 1, 1, 1, (6, 5), True),
          (4, 3, 5, 2, 2, 1, (9, 9), True), (33, 1, 3, 1, 0, 1, (40, 37), True),
          (2, 1, 3, 1, 1, 1, (1, 40), True), (2, 1, 3, 2, 1, 1, (33, 1), True),
      ]],
    conv_case(8, 8, 3, 1, 1, 1, 8, 6, 6, clamp=[0.0, None]),
]


def conv_id(c):
    return (f'{c["cin"]}to{c["cout"]}_k{c["kernel"][0]}x{c["kernel"][1]}_s{c["stride"][0]}{c["stride"][1]}'
            f'_p{c["padding"][0]}{c["padding"][1]}_d{c["dilation"][0]}_g{c["groups"]}_{c["hw"][0]}x{c["hw"][1]}')


@pytest.mark.parametrize('case', CONV_CASES, ids=conv_id)
def test_conv(case, window_path, conv_path, precision):
    rng = np.random.default_rng(len(conv_id(case)))
    cin, cout, g = case['cin'], case['cout'], case['groups']
    kh, kw = case['kernel']
    params = {'weight': rand(rng, (cout, cin // g, kh, kw), (cin // g * kh * kw) ** -0.5)}
    if case['bias']:
        params['bias'] = rand(rng, cout)
    attrs = dict(in_channels=cin, out_channels=cout, kernel=list(case['kernel']),
                 stride=list(case['stride']), padding=list(case['padding']),
                 dilation=list(case['dilation']), groups=g, clamp=case['clamp'])
    for n in BATCHES:
        x = rand(rng, (n, cin) + case['hw'])
        check_graph(one_op_graph('conv', x.shape, attrs, params), x,
                    options=plan_options(window_path, conv_path), **run_in(precision))


# Winograd: planes of 1x1, 2x2 and one row or column, H != W, sides that are
# not multiples of the tile (tiles cut short) or of VLEN tiles, channels off
# the vector width and the GEMM tile's rows, padding 0 and 1; each with the
# default bands, with bands of one tile row (winograd_bytes 1) and with row
# tiles split into chunks (one band: two jobs).
WINOGRAD_CASES = [
    # cin, cout, h, w, pad, bias, clamp
    (2, 1, 1, 1, 1, True, None), (3, 5, 2, 2, 1, False, None), (2, 7, 1, 19, 1, True, [0.0, None]),
    (5, 3, 23, 1, 1, True, None), (4, 9, 6, 5, 0, True, [-0.5, 0.5]), (8, 13, 9, 11, 1, False, None),
    (17, 6, 7, 7, 1, True, [0.0, 6.0]), (16, 25, 14, 13, 1, True, None), (7, 31, 30, 17, 1, True, None),
    (33, 16, 3, 34, 0, False, None),
]


@pytest.mark.parametrize('m,precision', [(2, 'fp32'), (4, 'fp32'), (2, 'fp16')])     # (fp16: not F(4x4))
@pytest.mark.parametrize('layout', ['default', 'one_row_bands'])
@pytest.mark.parametrize('case', WINOGRAD_CASES, ids=lambda c: f'{c[0]}to{c[1]}_{c[2]}x{c[3]}_p{c[4]}')
def test_winograd(case, m, precision, layout):
    """Dense 3x3 stride-1 convolutions by Winograd F(m x m) against the
    reference, batch 1 and 3, one and two threads."""
    cin, cout, h, w, pad, bias, clamp = case
    rng = np.random.default_rng(cin * 31 + w)
    params = {'weight': rand(rng, (cout, cin, 3, 3), (cin * 9) ** -0.5)}
    if bias:
        params['bias'] = rand(rng, cout)
    attrs = dict(in_channels=cin, out_channels=cout, kernel=[3, 3], stride=[1, 1], padding=[pad, pad],
                 dilation=[1, 1], groups=1, clamp=clamp)
    options = PlanOptions(winograd=m, winograd_bytes=1 if layout == 'one_row_bands' else 1 << 20)
    graph = one_op_graph('conv', (1, cin, h, w), attrs, params)
    kernels = run_in(precision)['kernels']
    op, _, _ = lower(graph.nodes[0], infer_shapes(graph, h, w), options, kernels)
    # bands of one tile row, or as few as make a GEMM tile of tiles (fewer
    # where that evens the bands: test_winograd_bands_halve_evenly; or one
    # band, where the weights outweigh the buffers: test_winograd_bands)
    tiles_x, tiles_y = -(-(w + 2 * pad - 2) // m), -(-(h + 2 * pad - 2) // m)
    nr = kernels.TILE_PIXELS
    band = 1 if tiles_x >= nr else min(tiles_y, -(-nr // tiles_x))
    assert op.wino == m and (layout == 'default' or op.per_job <= band or op.per_job == tiles_y)
    for n in BATCHES:
        x = rand(rng, (n, cin, h, w))
        check_graph(one_op_graph('conv', x.shape, attrs, params), x, options=options, **run_in(precision))


def test_winograd_bands():
    """Bands of tile rows: as many as keep each band's transform buffers
    within winograd_bytes, but at least a GEMM tile of tiles; one band where
    the transformed weights outweigh all the tiles' buffers (each band reads
    them all)."""
    from engine.lowering import row_tiles
    from engine.ops.conv import winograd_layout
    small, k = PlanOptions(winograd_bytes=1), isa.kernels()
    assert winograd_layout(k, 4, 8, row_tiles(k, 8), 112, 112, small)[0] == -(-TILE_PIXELS // 28)  # 28 across
    # 5x5 tiles: bands of a GEMM tile of tiles, then evened (AVX2: 4 + 1 tile rows -> 3 + 2)
    rows = min(5, -(-TILE_PIXELS // 5))
    bands = -(-5 // rows)
    bands += 1 if bands % 2 and 1 < bands < 5 else 0
    assert winograd_layout(k, 4, 8, row_tiles(k, 8), 20, 20, small)[0] == -(-5 // bands)
    assert winograd_layout(k, 4, 8, row_tiles(k, 8), 112, 112, PlanOptions())[0] > 1
    # 2048 -> 2048 channels (64 MB of weights, 3-16x the tiles' buffers on every ISA): one band
    assert winograd_layout(k, 2, 2048, row_tiles(k, 2048), 14, 14, small)[0] == 7


def test_winograd_bands_hold_as_much_as_the_weights():
    """A one-thread plan's bands of transform buffers take winograd_bytes or
    as many bytes as the transformed weights, which each band reads all of,
    whichever is more (ResNet-18's 28x28 layers, 2.3 MB of weights), and are
    neither evened nor chunked for two threads; several threads' take
    winograd_bytes."""
    from engine.lowering import row_tiles
    from engine.ops.conv import winograd_bands, winograd_layout, winograd_tiles
    k = isa.kernels()
    for m, cin, hw in ((4, 128, 28), (4, 128, 56), (2, 256, 56), (4, 64, 56), (4, 16, 55), (2, 48, 13)):
        tiles = row_tiles(k, cin)
        weights = (m + 2) ** 2 * cin * tiles['m_tiles'] * tiles['tile_rows'] * k.ELEMENT_BYTES
        ty = winograd_tiles(m, hw, hw)[1]

        def options(nbytes, single_thread):
            return k, m, cin, tiles, hw, hw, PlanOptions(winograd_bytes=nbytes, single_thread=single_thread)
        band, m_per_job, jobs = winograd_layout(*options(1 << 20, True))
        assert m_per_job == tiles['m_tiles'] and band == -(-ty // jobs)
        fewest = winograd_bands(*options(1 << 20, True))
        assert fewest <= winograd_bands(*options(max(1 << 20, weights), False))
        assert winograd_bands(*options(1 << 20, False)) >= winograd_bands(*options(max(1 << 20, weights), False))
        assert winograd_layout(*options(1, True)) == winograd_layout(*options(weights, True))
        assert winograd_bands(*options(max(4 * weights, 1 << 20), True)) <= fewest


def test_winograd_one_thread_bands_waste_fewer_lanes():
    """A one-thread plan takes up to twice its fewest bands where their GEMM
    tiles cover fewer padded pixels or fewer whole tiles (the path model
    weighs those against the weights' extra reads): never fewer bands than
    the fewest, nor more bands without fewer of either; NEON's 56x56
    F(4x4), 14 tiles across in GEMM tiles of 8, in bands of 2 tile rows (28
    tiles: 3 whole GEMM tiles and a vector), not 5 bands of 2-3 rows (42
    tiles: 5 and half a vector)."""
    from engine.lowering import row_tiles
    from engine.ops.conv import winograd_bands, winograd_layout, winograd_tiles
    k = isa.kernels()

    def covered(tx, ty, bands):      # (pixels the tiles cover, whole tiles' pixels)
        runs = [n * tx for n in k.winograd_band_rows(ty, bands)]
        return (sum(k.gemm_covered_pixels(n) for n in runs),
                sum(-(-n // k.TILE_PIXELS) * k.TILE_PIXELS for n in runs))
    taken = {}
    for m, cin, hw in itertools.product((2, 4), (16, 64, 128, 512), (7, 13, 27, 28, 55, 56, 57, 112)):
        tiles, options = row_tiles(k, cin), PlanOptions(single_thread=True)
        tx, ty = winograd_tiles(m, hw, hw)
        fewest = winograd_bands(k, m, cin, tiles, hw, hw, options)
        band, _, bands = winograd_layout(k, m, cin, tiles, hw, hw, options)
        assert fewest <= bands <= 2 * fewest and band == -(-ty // bands)
        more, fewer = covered(tx, ty, bands), covered(tx, ty, fewest)
        assert bands == fewest or any(x < y for x, y in zip(more, fewer))
        taken[m, cin, hw] = k.winograd_band_rows(ty, bands)
    if k.ISA.startswith('neon'):
        assert taken[4, 64, 56] == [2] * 7
        # SqueezeNet's 16 -> 64 at 55x55 kept in 4 bands (K = 16: a tile's call weighs more than its lanes)
        options = PlanOptions(single_thread=True)
        assert winograd_layout(k, 4, 16, row_tiles(k, 64), 55, 55, options)[2] == 4


@pytest.mark.parametrize('m', [2, 4])
def test_winograd_bands_halve_evenly(m):
    """Several bands are an even number (or one tile row each), their tile
    rows as equal as whole rows make them: two threads' contiguous halves of
    the jobs differ by at most one tile row (but for one-row bands, odd in
    number)."""
    from engine.lowering import row_tiles
    from engine.ops.conv import winograd_layout, winograd_tiles
    k = isa.kernels()
    for cin, hw in itertools.product([8, 64, 128, 256], [5, 13, 28, 56, 57, 112]):
        for options in (PlanOptions(), PlanOptions(winograd_bytes=1 << 16)):
            tiles = row_tiles(k, cin)
            band, m_per_job, jobs = winograd_layout(k, m, cin, tiles, hw, hw, options)
            ty = winograd_tiles(m, hw, hw)[1]
            bands = jobs // -(-tiles['m_tiles'] // m_per_job)
            rows = k.winograd_band_rows(ty, bands)
            assert sum(rows) == ty and max(rows) == band and max(rows) - min(rows) <= 1
            if bands > 1 and band > 1:
                assert bands % 2 == 0 and abs(sum(rows[:bands // 2]) - sum(rows[bands // 2:])) <= 1


def test_winograd_jobs_split_row_tiles_when_bands_are_few():
    """One band of tile rows gives two jobs by chunks of row tiles (each
    transforms the input again), and the chunks' outputs are right."""
    rng = np.random.default_rng(8)
    cin, cout, hw = 6, 40, (7, 7)
    attrs = dict(in_channels=cin, out_channels=cout, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                 dilation=[1, 1], groups=1, clamp=None, act='hardswish')
    params = {'weight': rand(rng, (cout, cin, 3, 3), 0.3), 'bias': rand(rng, cout)}
    options = PlanOptions(winograd=2)
    graph = one_op_graph('conv', (1, cin) + hw, attrs, params)
    op, _, _ = lower(graph.nodes[0], infer_shapes(graph, *hw), options)
    assert op.jobs_per_image == 2 and op.m_per_job < op.m_tiles
    for n in BATCHES:
        x = rand(rng, (n, cin) + hw)
        check_graph(one_op_graph('conv', x.shape, attrs, params), x, options=options)


def test_winograd_accuracy_against_the_direct_path():
    """Winograd's rounding on ResNet-18's layer shapes (inputs >= 0, as after
    a ReLU; weights of variance 1 / fan-in): the largest error relative to
    the largest output, against the float64 reference, for F(2x2), F(4x4)
    and the direct path (README, "Winograd"): F(4x4) rounds more, within 10x
    the direct path's and the kernels' tolerance of 2e-5."""
    from engine import reference
    for cin, hw in [(64, 28), (256, 14), (512, 7)]:
        rng = np.random.default_rng(cin)
        attrs = dict(in_channels=cin, out_channels=64, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                     dilation=[1, 1], groups=1, clamp=None)
        params = {'weight': rand(rng, (64, cin, 3, 3), (cin * 9) ** -0.5), 'bias': rand(rng, 64)}
        x = np.abs(rand(rng, (1, cin, hw, hw)))
        graph = one_op_graph('conv', x.shape, attrs, params)
        ref = reference.run_graph(graph, x)[0]
        err = {m: float(np.abs(engine.Model(graph, options=PlanOptions(winograd=m))(x) - ref).max()
                        / np.abs(ref).max()) for m in (0, 2, 4)}
        assert err[2] <= 10 * err[0] and err[4] <= 10 * err[0] and max(err.values()) <= 2e-5, err


def test_winograd_takes_the_shapes_it_wins():
    """By default (PlanOptions.winograd None) the cost model gives ResNet's
    3x3 stride-1 layers Winograd, F(4x4) on large planes and on x86 F(2x2)
    on 7x7 (NEON's model, fitted to instruction counts, F(4x4) there too),
    a stem on 3 channels the direct path, and leaves stride 2, dilation and
    groups to the other paths."""
    def kind(cin, cout, hw, **more):
        attrs = dict(dict(in_channels=cin, out_channels=cout, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                          dilation=[1, 1], groups=1, clamp=None), **more)
        weight = np.ones((cout, cin // attrs['groups'], *attrs['kernel']), np.float32)
        return compile_graph(one_op_graph('conv', (1, cin, hw, hw), attrs, {'weight': weight}),
                             hw, hw).layers[0].kind
    assert kind(64, 64, 56) == 'conv3x3_winograd4'
    if TILE_PIXELS >= 8:    # (F(4x4)'s 4 tiles of a 7x7 plane fill half a GEMM tile of 8)
        assert kind(512, 512, 7) == ('conv3x3_winograd4' if isa.kernels().ISA.startswith('neon')
                                     else 'conv3x3_winograd2')
    assert kind(3, 32, 224) == 'conv3x3'
    assert kind(64, 64, 56, stride=[2, 2]) == 'conv3x3s2'
    # a 7x7 output's rows fill 7 of a 16-lane tile (AVX-512): im2col's run
    # over the whole plane; 8-lane tiles and narrower take the rows as they are
    assert kind(256, 64, 14, stride=[2, 2]) == ('conv3x3s2_im2col' if isa.VECTOR >= 16 else 'conv3x3s2')
    assert kind(256, 64, 14, stride=[2, 2], kernel=[1, 1], padding=[0, 0]) == (
        'conv1x1s2_im2col' if isa.VECTOR >= 16 else 'conv1x1s2')
    assert kind(64, 64, 56, dilation=[2, 2], padding=[2, 2]) == 'conv3x3_im2col'
    assert kind(64, 64, 56, groups=2) == 'conv3x3g2_im2col'
    assert kind(64, 64, 56, **{'padding': [2, 2]}) == 'conv3x3'


def test_every_kernel_module_has_path_costs():
    """The path model has costs for every ISA a build may run (a new one
    without them would fail at its first 3x3 convolution)."""
    from engine.kernels.variants import FP16_PREFERENCE, PREFERENCE
    from engine.ops.conv import PATH_COST_NS
    assert set(PATH_COST_NS) == set(PREFERENCE + FP16_PREFERENCE)
    assert all(set(PATH_COST_NS[isa]) == {0, 2, 4} for isa in PREFERENCE)
    assert all(set(PATH_COST_NS[isa]) == {0, 2} for isa in FP16_PREFERENCE)     # no F(4x4) in fp16


@pytest.mark.parametrize('w', range(1, 19))
def test_flat_depthwise_every_row_alignment(w):
    """The flat path's 3x3 stride-1 convolution, whose tap rows start at any
    offset from a vector boundary (AVX-512 takes their taps out of aligned
    vectors, one case per offset): widths 1-18 give every offset, with H != W,
    channel counts off the group of planes, padding rows 0 and 1."""
    options = PlanOptions(flat_max_pixels=1 << 30, channel_jobs=3)
    rng = np.random.default_rng(w)
    for c, h, ph in [(7, w + 3, 1), (5, 2 * w + 1, 0)]:
        attrs = dict(in_channels=c, out_channels=c, kernel=[3, 3], stride=[1, 1], padding=[ph, 1],
                     dilation=[1, 1], groups=c, clamp=[-1.0, 1.5])
        params = {'weight': rand(rng, (c, 1, 3, 3), 0.5), 'bias': rand(rng, c)}
        x = rand(rng, (2, c, h, w))
        graph = one_op_graph('conv', x.shape, attrs, params)
        assert compile_graph(graph, h, w, options).layers[0].kind == 'dwconv3x3'
        check_graph(graph, x, options=options)


POOL_CASES = [
    # op, kernel, stride, padding, ceil_mode, count_include_pad, (h, w)
    ('maxpool', 3, 2, 1, False, None, (112, 112)),
    ('maxpool', 3, 2, 1, False, None, (7, 9)),
    ('maxpool', 3, 2, 0, True, None, (8, 8)),
    ('maxpool', 2, 2, 0, False, None, (5, 7)),
    ('maxpool', 3, 1, 1, False, None, (1, 1)),
    ('maxpool', 2, 2, 1, True, None, (2, 3)),
    ('maxpool', 5, 3, 2, True, None, (13, 11)),
    ('avgpool', 3, 2, 1, False, True, (14, 14)),
    ('avgpool', 3, 2, 1, False, False, (14, 15)),
    ('avgpool', 3, 2, 1, True, True, (8, 8)),
    ('avgpool', 3, 2, 1, True, False, (8, 9)),
    ('avgpool', 2, 2, 0, True, True, (5, 5)),
    ('avgpool', 7, 7, 0, False, True, (7, 7)),
    ('avgpool', 3, 1, 1, False, False, (2, 2)),
    ('avgpool', 5, 3, 2, True, False, (10, 13)),
]


@pytest.mark.parametrize('op,k,s,p,ceil,cip,hw', POOL_CASES)
def test_pool(op, k, s, p, ceil, cip, hw, window_path, precision):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    attrs = dict(kernel=[k, k], stride=[s, s], padding=[p, p], ceil_mode=ceil)
    if op == 'maxpool':
        attrs['dilation'] = [1, 1]
    else:
        attrs['count_include_pad'] = cip
    for n in BATCHES:
        x = rand(rng, (n, 19) + hw)
        check_graph(one_op_graph(op, x.shape, attrs), x, options=plan_options(window_path), **run_in(precision))


@pytest.mark.parametrize('k,s', [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_maxpool_keeps_nan(k, s, window_path):
    """A NaN anywhere in a window makes its maximum NaN (as PyTorch), on
    every window path: the interleaved one takes each row's maximum across
    before the maxima down."""
    x = np.linspace(-3, 3, 2 * 6 * 11 * 13, dtype=np.float32).reshape(2, 6, 11, 13)
    x[0, 0, 0, 0] = x[0, 5, 4, 7] = x[1, 3, 10, 12] = x[1, 2, 6, 1] = np.nan
    attrs = dict(kernel=[k, k], stride=[s, s], padding=[k // 2] * 2, dilation=[1, 1], ceil_mode=False)
    graph = one_op_graph('maxpool', x.shape, attrs)
    ref = reference.run_graph(graph, x)[0]
    out = engine.Model(graph, threads=1, options=plan_options(window_path))(x)
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(out[~np.isnan(ref)], ref[~np.isnan(ref)])


def test_maxpool_dilation(window_path):
    rng = np.random.default_rng(1)
    attrs = dict(kernel=[3, 3], stride=[1, 1], padding=[1, 1], dilation=[2, 2], ceil_mode=False)
    x = rand(rng, (2, 5, 9, 10))
    check_graph(one_op_graph('maxpool', x.shape, attrs), x, options=plan_options(window_path))


@pytest.mark.parametrize('k', [3, 5, 7])
@pytest.mark.parametrize('s', [1, 2])
def test_default_window_path_by_stride(k, s):
    """With no path asked for, a k x k depthwise convolution of stride s runs
    interleaved exactly where the kernels' INTERLEAVED_SIDES[s] holds k (AVX-512:
    5x5 and 7x7 only), and a 3x3 max pool of stride 2 never does (row by
    row, separably); the others flat or row by row."""
    from engine.kernels.abi import WindowPath
    kernels = isa.kernels()
    assert set(kernels.INTERLEAVED_SIDES) == {1, 2}
    hw = 40         # (out 20x20 at stride 2: past flat_s2_max_pixels)
    dw = dict(in_channels=16, out_channels=16, kernel=[k, k], stride=[s, s], padding=[k // 2] * 2,
              dilation=[1, 1], groups=16)
    pool = dict(kernel=[k, k], stride=[s, s], padding=[k // 2] * 2, dilation=[1, 1], ceil_mode=False)
    for op, attrs, params in [('conv', dw, {'weight': np.ones((16, 1, k, k), np.float32)}), ('maxpool', pool, {})]:
        g = one_op_graph(op, (1, 16, hw, hw), attrs, params)
        record, _, _ = lower(g.nodes[0], infer_shapes(g, hw, hw), PlanOptions())
        interleaved = k in kernels.INTERLEAVED_SIDES[s] and not (op == 'maxpool' and (k, s) == (3, 2))
        assert (record.path == WindowPath.WINDOW_INTERLEAVED) == interleaved, (op, k, s, record.path)


@pytest.mark.parametrize('cin,cout', [(1, 1), (7, 3), (64, 64), (65, 100), (300, 129), (1024, 1000)])
def test_linear(cin, cout, precision):
    rng = np.random.default_rng(cin + cout)
    params = {'weight': rand(rng, (cout, cin), cin ** -0.5), 'bias': rand(rng, cout)}
    attrs = dict(in_features=cin, out_features=cout, clamp=[0.0, None] if cin % 2 else None)
    # a rank-2 input comes from global pooling in real models
    from engine.graph import Graph, Node
    for n in BATCHES:
        x = rand(rng, (n, cin, 3, 2))
        g = Graph('input', x.shape, [Node('pool', 'global_avgpool', ['input'], {'keepdims': False}),
                                     Node('fc', 'linear', ['pool'], attrs, params)], ['fc'])
        check_graph(g, x, **run_in(precision))


@pytest.mark.parametrize('hw', [(1, 1), (2, 2), (3, 5), (7, 7), (4, 4), (17, 3), (14, 14)])
@pytest.mark.parametrize('keepdims', [True, False])
def test_global_avgpool(hw, keepdims):
    rng = np.random.default_rng(hw[0] * 31 + hw[1])
    for n in BATCHES:
        x = rand(rng, (n, 21) + hw)
        check_graph(one_op_graph('global_avgpool', x.shape, {'keepdims': keepdims}), x)


# (mode, align_corners, size, scale, input planes): up and down, by sizes and
# by scales (whole, fractional, different per side), 1x1 and 2x2 planes,
# 1-pixel outputs, H != W
RESIZE_CASES = [
    ('bilinear', False, None, [2.0, 2.0], (5, 7)),
    ('bilinear', False, None, [2.0, 2.0], (1, 1)),
    ('bilinear', False, None, [2.0, 2.0], (2, 2)),
    ('bilinear', True, None, [2.0, 2.0], (10, 10)),
    ('bilinear', True, [1, 1], None, (4, 3)),
    ('bilinear', True, [9, 13], None, (1, 5)),
    ('bilinear', False, [3, 11], None, (7, 4)),
    ('bilinear', False, [1, 2], None, (5, 5)),
    ('bilinear', False, None, [0.5, 1.5], (13, 5)),
    ('bilinear', False, None, [3.3, 1.0], (3, 6)),
    ('nearest', False, None, [2.0, 2.0], (20, 20)),
    ('nearest', False, None, [3.0, 1.5], (3, 7)),
    ('nearest', False, None, [0.3, 0.7], (11, 9)),
    ('nearest', False, [5, 9], None, (7, 5)),
    ('nearest', False, [1, 1], None, (6, 6)),
    ('nearest_exact', False, [5, 9], None, (7, 4)),
    ('nearest_exact', False, None, [0.5, 2.5], (9, 3)),
]


@pytest.mark.parametrize('mode,align,size,scale,hw', RESIZE_CASES)
@pytest.mark.parametrize('channel_jobs', [1, 3, 1 << 30])
def test_resize(mode, align, size, scale, hw, channel_jobs):
    """Every case with jobs of one channel, of runs of several and of all
    channels of an image (an odd count)."""
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    attrs = dict(mode=mode, align_corners=align, **({'size': size} if size else {'scale': scale}))
    for n in BATCHES:
        x = rand(rng, (n, 13) + hw)
        check_graph(one_op_graph('resize', x.shape, attrs), x, options=PlanOptions(channel_jobs=channel_jobs))


@pytest.mark.parametrize('hw', [(1, 1), (3, 7), (16, 16), (5, 4)])
def test_eltwise(hw):
    from engine.graph import Graph, Node
    rng = np.random.default_rng(hw[0])
    c = 11
    for n in BATCHES:
        x = rand(rng, (n, c) + hw)
        nodes = [
            Node('a', 'affine', ['input'], {'clamp': None},
                 {'scale': rand(rng, c), 'shift': rand(rng, c)}),
            Node('r', 'act', ['a'], {'clamp': [0.0, 6.0]}),
            Node('sum', 'add', ['r', 'input'], {'clamp': [-0.5, None]}),
            Node('bn', 'batchnorm', ['sum'], {'eps': 1e-3},
                 {'weight': rand(rng, c), 'bias': rand(rng, c), 'running_mean': rand(rng, c),
                  'running_var': np.abs(rand(rng, c)) + 0.5}),
        ]
        check_graph(Graph('input', x.shape, nodes, ['bn']), x)


def test_views_move_no_data():
    """gather / concat / flatten compile to offset tables, not kernels, and
    read the right channels."""
    from engine.graph import Graph, Node
    rng = np.random.default_rng(5)
    w = rand(rng, (6, 6, 1, 1))
    nodes = [
        Node('c', 'conv', ['input'], dict(in_channels=6, out_channels=6, kernel=[1, 1], stride=[1, 1],
                                           padding=[0, 0], dilation=[1, 1], groups=1, clamp=None), {'weight': w}),
        Node('cat', 'concat', ['c', 'input']),
        Node('shuf', 'gather', ['cat'], {'indices': [11, 0, 5, 6, 3, 3, 8]}),
        Node('pool', 'global_avgpool', ['shuf'], {'keepdims': True}),
        Node('flat', 'flatten', ['pool']),
    ]
    g = Graph('input', (2, 6, 5, 3), nodes, ['flat'])
    x = rand(rng, (2, 6, 5, 3))
    check_graph(g, x)
    kinds = [layer.kind for layer in compile_graph(g, 5, 3).layers]
    assert kinds == ['conv1x1', 'global_avgpool']


@pytest.mark.parametrize('transpose', [False, True])
def test_spatial_concat_lays_planes_end_to_end_at_the_output(transpose):
    """A detection head's output (N, pixels, C) or (N, C, pixels): made by
    the copy out of the arena from the levels' planes, no layer runs for it;
    a node reading it is refused."""
    from engine.errors import ModelFileError
    from engine.graph import Graph, Node, validate
    rng = np.random.default_rng(3)

    def conv(name, src, cin, k, s):
        return Node(name, 'conv', [src], dict(in_channels=cin, out_channels=5, kernel=[k, k], stride=[s, s],
                                              padding=[k // 2, k // 2], dilation=[1, 1], groups=1, clamp=None),
                    {'weight': rand(rng, (5, cin, k, k))})
    nodes = [conv('a', 'input', 3, 3, 2), conv('b', 'a', 5, 3, 2), conv('c', 'b', 5, 1, 1), conv('d', 'a', 5, 1, 1),
             Node('points', 'spatial_concat', ['d', 'c', 'b'], {'transpose': transpose})]
    g = Graph('input', (1, 3, 9, 7), nodes, ['points'])
    for n, hw in ((1, (9, 7)), (3, (2, 2)), (2, (16, 5))):
        x = rand(rng, (n, 3) + hw)
        ref = check_graph(g, x)
        pixels = sum(h * w for h, w in [((hw[0] + 1) // 2, (hw[1] + 1) // 2)] + [((hw[0] + 3) // 4, (hw[1] + 3) // 4)] * 2)
        assert ref.shape == ((n, pixels, 5) if transpose else (n, 5, pixels))
    # (the 3x3s may run direct or by im2col: their planes are narrow)
    kinds = [layer.kind.removesuffix('_im2col') for layer in compile_graph(g, 9, 7).layers]
    assert kinds == ['conv3x3s2', 'conv3x3s2', 'conv1x1', 'conv1x1']
    reader = Graph('input', (1, 3, 9, 7), nodes + [Node('r', 'act', ['points'], {'clamp': [0.0, None]})], ['r'])
    with pytest.raises(ModelFileError, match="reads 'points', the layout of an output"):
        validate(reader)


def test_build_info_reports_the_chosen_path():
    """The kernels this process runs: the best the CPU has among those built,
    or the ones ENGINE_ISA names (CI runs these tests once per ISA)."""
    import os
    info = engine.build_info()
    assert info['isa'] in info['built'] and 'scalar' in info['built']
    assert info['vector_floats'] == {'avx512': 16, 'avx2': 8, 'neon_dot': 4, 'neon': 4, 'scalar': 1}[info['isa']]
    forced = os.environ.get('ENGINE_ISA')
    if forced:
        assert info['isa'] == forced and info['forced']
    else:
        assert info['isa'] == next(i for i in isa.PREFERENCE if i in info['built'] and isa.supports(i))
    assert isa.supports('scalar') and not isa.supports('sse9')


def test_fp16_kernels_only_where_the_cpu_computes_in_fp16():
    """precision 'fp16' runs neon_fp16 where the CPU has fp16 arithmetic (a
    Cortex-A76 under qemu), scalar_fp16 under ENGINE_ISA=scalar, and is a
    clear error elsewhere (x86 here, a Cortex-A72) unless the scalar
    reference is allowed; a model says which
    precision it computes in, and its plans lay every tensor out as float16."""
    import os
    from engine import zoo
    hardware = [i for i in isa.FP16_PREFERENCE if i != 'scalar_fp16' and i in isa.built() and isa.supports(i)]
    if os.environ.get('ENGINE_ISA') == 'scalar':      # the scalar modules, asked for
        assert isa.kernels('fp16').ISA == 'scalar_fp16'
    elif hardware:
        assert isa.kernels('fp16').ISA == hardware[0]
    else:
        with pytest.raises(ValueError, match="precision 'fp16' needs a CPU with fp16 arithmetic"):
            engine.Model(zoo.shufflenet_v2('0.5'), precision='fp16')
    kernels = isa.kernels('fp16', allow_scalar=True)
    assert kernels.ELEMENT == 'float16' and kernels.ELEMENT_BYTES == 2
    model = engine.Model(zoo.shufflenet_v2('0.5', input_size=64), kernels=kernels)
    assert model.precision == 'fp16' and engine.Model(model.graph).precision == 'fp32'
    plan = compile_graph(model.graph, 64, 64, kernels=kernels)
    assert plan.kernels is kernels and plan.program.image_bytes < compile_graph(model.graph, 64, 64).image_bytes
    with pytest.raises(ValueError, match='precision'):
        engine.Model(model.graph, precision='fp64')


def _grid():
    """Generated convolution cases: kernel 1-7 (square and not), stride 1-3,
    dilation 1-3, any padding, groups from 1 to the channel count, channels
    per group off the vector width, tiny and H != W planes."""
    rng = np.random.default_rng(2024)
    cases = []
    for i in range(90):
        kh, kw = int(rng.integers(1, 8)), int(rng.integers(1, 8)) if i % 3 == 0 else None
        kw = kh if kw is None else kw
        dil = int(rng.integers(1, 4)) if i % 2 else 1
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
        groups = int(rng.choice([1, 2, 3, 5]))
        cin_g = int(rng.choice([1, 2, 3, 7, 17]))
        cout_g = int(rng.choice([1, 2, 5, 13, 19]))
        h = max(1, (kh - 1) * dil + 1 - 2 * pad[0] + int(rng.integers(0, 12)))
        w = max(1, (kw - 1) * dil + 1 - 2 * pad[1] + int(rng.integers(0, 12)))
        cases.append(conv_case(cin_g * groups, cout_g * groups, (kh, kw), stride, pad, dil, groups,
                               h, w, bias=bool(i % 4), clamp=[0.0, None] if i % 5 == 0 else None))
    return cases


@pytest.mark.parametrize('case', _grid(), ids=conv_id)
def test_conv_grid(case, window_path, conv_path, precision):
    test_conv(case, window_path, conv_path, precision)


@pytest.mark.parametrize('act', sorted(NONLINEAR))
@pytest.mark.parametrize('where', ['gemm', 'direct', 'im2col', 'winograd', 'dwconv', 'linear', 'eltwise',
                                   'whole_plane_pool'])
def test_fused_nonlinear_activations(act, where):
    """Every activation the graph knows, fused into every kind of kernel; a
    parametric one with a different number per output channel."""
    from engine.graph import Graph, Node
    from engine.ops.activations import ACT_PARAM, PARAMETRIC
    rng = np.random.default_rng(3)
    c = 10
    conv = dict(in_channels=c, out_channels=c, stride=[1, 1], dilation=[1, 1], clamp=None, act=act)
    if where == 'gemm':
        node = Node('n', 'conv', ['input'], dict(conv, kernel=[1, 1], padding=[0, 0], groups=1),
                    {'weight': rand(rng, (c, c, 1, 1), 0.5)})
    elif where in ('direct', 'im2col'):       # dense stride 2, grouped
        groups = 1 if where == 'direct' else 2
        node = Node('n', 'conv', ['input'], dict(conv, kernel=[3, 3], padding=[1, 1], groups=groups,
                                                 stride=[2, 2]),
                    {'weight': rand(rng, (c, c // groups, 3, 3), 0.3)})
    elif where == 'winograd':       # dense 3x3 stride 1
        node = Node('n', 'conv', ['input'], dict(conv, kernel=[3, 3], padding=[1, 1], groups=1),
                    {'weight': rand(rng, (c, c, 3, 3), 0.3)})
    elif where == 'dwconv':
        node = Node('n', 'conv', ['input'], dict(conv, kernel=[3, 3], padding=[1, 1], groups=c),
                    {'weight': rand(rng, (c, 1, 3, 3), 0.5), 'bias': rand(rng, c)})
    elif where == 'eltwise':
        node = Node('n', 'act', ['input'], {'act': act})
    elif where == 'whole_plane_pool':     # runs as a global average pool, clamp and act included
        node = Node('n', 'avgpool', ['input'], dict(kernel=[7, 9], stride=[7, 9], padding=[0, 0],
                                                     ceil_mode=False, count_include_pad=True,
                                                     clamp=[-0.2, 0.3], act=act))
    if where == 'linear':
        nodes = [Node('p', 'global_avgpool', ['input'], {'keepdims': False}),
                 Node('n', 'linear', ['p'], dict(in_features=c, out_features=37, clamp=None, act=act),
                      {'weight': rand(rng, (37, c)) * 2})]
    else:
        nodes = [node]
    if act in PARAMETRIC:
        nodes[-1].params[ACT_PARAM] = rand(rng, 37 if where == 'linear' else c)
    options = PlanOptions(winograd=2) if where == 'winograd' else None   # (F(4x4) rounds more: test_winograd)
    for n in BATCHES:
        x = rand(rng, (n, c, 7, 9), 3.0)
        check_graph(Graph('input', x.shape, nodes, [nodes[-1].name]), x, options=options)
    if where == 'whole_plane_pool':
        layers = compile_graph(Graph('input', x.shape, nodes, ['n']), 7, 9).layers
        assert [l.kind for l in layers] == ['global_avgpool']


@pytest.mark.parametrize('gate_hw', [(1, 1), (6, 5)])
def test_mul(gate_hw):
    """x * gate, the gate one value per channel (squeeze-excitation) or full."""
    from engine.graph import Graph, Node
    rng = np.random.default_rng(4)
    c = 19
    for n in BATCHES:
        x = rand(rng, (n, c, 6, 5))
        nodes = [Node('g', 'avgpool' if gate_hw == (1, 1) else 'act', ['input'],
                      dict(kernel=[6, 5], stride=[6, 5], padding=[0, 0], ceil_mode=False,
                           count_include_pad=True, act='sigmoid') if gate_hw == (1, 1) else {'act': 'sigmoid'}),
                 Node('m', 'mul', ['input', 'g'], {'clamp': [None, 0.5]})]
        check_graph(Graph('input', x.shape, nodes, ['m']), x)


@pytest.mark.parametrize('path', ['gemm', 'grouped', 'direct', 'im2col', 'linear', 'winograd2', 'winograd4'])
def test_fused_residual_add(path):
    """conv(x) + r, then the activation, inside the convolution's tile."""
    from engine.graph import Graph, Node
    rng = np.random.default_rng(6)
    c, hw = 14, ((1, 1) if path == 'linear' else (7, 9))
    k, groups = {'gemm': (1, 1), 'grouped': (1, 2), 'direct': (3, 1), 'im2col': (3, 2),
                 'linear': (1, 1), 'winograd2': (3, 1), 'winograd4': (3, 1)}[path]
    attrs = dict(in_channels=c, out_channels=c, kernel=[k, k], stride=[1, 1], padding=[k // 2] * 2,
                 dilation=[1, 1], groups=groups, clamp=[0.0, None],
                 act='hardswish' if k == 3 else None)
    nodes = [Node('r', 'affine', ['input'], {'clamp': None}, {'scale': rand(rng, c), 'shift': rand(rng, c)}),
             Node('conv', 'conv', ['input', 'r'], attrs,
                  {'weight': rand(rng, (c, c // groups, k, k), 0.3), 'bias': rand(rng, c)})]
    options = plan_options(conv_path=path if path in ('direct', 'winograd2', 'winograd4') else None)
    kind = compile_graph(Graph('input', (1, c) + hw, nodes, ['conv']), *hw, options).layers[-1].kind
    assert kind == {'direct': 'conv3x3', 'winograd2': 'conv3x3_winograd2',
                    'winograd4': 'conv3x3_winograd4'}.get(path, kind)
    for n in BATCHES:
        x = rand(rng, (n, c) + hw)
        check_graph(Graph('input', x.shape, nodes, ['conv']), x, options=options)


def test_residual_is_refused_on_depthwise_convolutions():
    from engine.graph import Graph, Node, validate
    attrs = dict(in_channels=4, out_channels=4, kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                 dilation=[1, 1], groups=4, clamp=None)
    g = Graph('input', (1, 4, 5, 5), [Node('c', 'conv', ['input', 'input'], attrs,
                                           {'weight': np.ones((4, 1, 3, 3), np.float32)})], ['c'])
    with pytest.raises(engine.ModelFileError, match='residual'):
        validate(g)


@pytest.mark.parametrize('act', ['hardswish', 'hardsigmoid', 'sigmoid', 'silu'])
def test_activations_keep_nan(act):
    """Every lane, vector body and scalar tail alike, keeps NaN (as PyTorch)."""
    from engine.graph import Graph, Node
    x = np.linspace(-5, 5, 2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    x[0, 0, 0, :] = np.nan
    x[1, 2, 4, 6] = np.nan
    dw = dict(in_channels=3, out_channels=3, kernel=[1, 1], stride=[1, 1], padding=[0, 0], dilation=[1, 1],
              groups=3, clamp=None, act=act)       # rows of 7: the activation's scalar tail
    for node in (Node('a', 'act', ['input'], {'act': act}),
                 Node('a', 'conv', ['input'], dw, {'weight': np.ones((3, 1, 1, 1), np.float32)})):
        g = Graph('input', x.shape, [node], ['a'])
        ref = reference.run_graph(g, x)[0]
        out = engine.Model(g, threads=1)(x)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))


EXPAND_DW_CASES = [
    # cin, expanded, kernel, stride, padding, (h, w)
    (3, 8, 3, 1, 1, (9, 7)),
    (5, 12, 3, 2, 1, (11, 14)),
    (4, 7, 5, 2, 2, (13, 10)),
    (2, 16, 3, 1, 0, (6, 6)),
    (6, 5, 3, 2, 1, (2, 3)),
    (3, 9, 5, 1, 2, (1, 8)),
    # stride 1 on rows of whole vectors (16 floats) or bands of an even
    # number of rows of 24: the depthwise runs flat, band by band
    (3, 10, 3, 1, 1, (13, 16)),
    (2, 6, 5, 1, 2, (9, 32)),
    (4, 5, 3, 1, 1, (11, 24)),
    # more row tiles than jobs, the last tiles short: blocks of channels
    (3, 44, 3, 2, 1, (10, 9)),
    (4, 30, 3, 1, 1, (8, 16)),
]


@pytest.mark.parametrize('band_bytes', [1, 8 << 10, 1 << 30])
@pytest.mark.parametrize('cin,e,k,s,p,hw', EXPAND_DW_CASES)
def test_fused_expand_depthwise(cin, e, k, s, p, hw, band_bytes, window_path, precision):
    """A 1x1 convolution and the depthwise one reading it run as one op,
    blocks of channels band by band (one output row per band, a few rows, or
    the whole plane), with activations on both; the unfused pair gives the
    same.  The depthwise runs flat where
    the bands allow it and the window_path fixture lets it, else row by row."""
    from engine.graph import Graph, Node
    options = plan_options(window_path, fuse_min_bytes=0, fuse_band_bytes=band_bytes)
    rng = np.random.default_rng(cin * 100 + e * 10 + k)
    nodes = [Node('expand', 'conv', ['input'], dict(in_channels=cin, out_channels=e, kernel=[1, 1],
                                                     stride=[1, 1], padding=[0, 0], dilation=[1, 1],
                                                     groups=1, clamp=[0.0, 6.0]),
                  {'weight': rand(rng, (e, cin, 1, 1), 0.7), 'bias': rand(rng, e)}),
             Node('dw', 'conv', ['expand'], dict(in_channels=e, out_channels=e, kernel=[k, k],
                                                  stride=[s, s], padding=[p, p], dilation=[1, 1],
                                                  groups=e, clamp=None, act='hardswish'),
                  {'weight': rand(rng, (e, 1, k, k), 0.5), 'bias': rand(rng, e)})]
    for n in BATCHES:
        x = rand(rng, (n, cin) + hw)
        g = Graph('input', x.shape, nodes, ['dw'])
        kernels = run_in(precision)['kernels']
        assert [l.kind for l in compile_graph(g, *hw, options, kernels=kernels).layers] == \
            [f'conv1x1+dwconv{k}x{k}' + ('s2' if s == 2 else '')]
        check_graph(g, x, options=options, **run_in(precision))


@pytest.mark.parametrize('e', [12, 24, 44, 48, 64, 144, 240])
@pytest.mark.parametrize('interleaved', [False, True])
@pytest.mark.parametrize('single_thread', [False, True])
def test_fused_jobs_are_whole_vector_groups(e, interleaved, single_thread):
    """An interleaved depthwise takes VECTOR channels at a time from its job's
    first: a fused op's jobs are then whole groups (but the last), as many as
    options.fuse_min_jobs asks or fewer, yet two at least in a plan for
    several threads where row tiles were enough for two; otherwise blocks
    of row tiles, as many as fuse_min_jobs asks."""
    from engine.graph import Node
    from engine.lowering import tile_starts
    from engine.kernels.abi import WindowPath
    options = PlanOptions(fuse_min_bytes=0, interleaved_windows=interleaved, single_thread=single_thread)
    conv = dict(stride=[2, 2], dilation=[1, 1], clamp=None)
    pw = Node('pw', 'conv', ['input'], dict(conv, in_channels=16, out_channels=e, kernel=[1, 1], stride=[1, 1],
                                            padding=[0, 0], groups=1), {'weight': np.ones((e, 16, 1, 1), np.float32)})
    dw = Node('dw', 'conv', ['pw'], dict(conv, in_channels=e, out_channels=e, kernel=[3, 3], padding=[1, 1],
                                         groups=e), {'weight': np.ones((e, 1, 3, 3), np.float32)})
    node = Node('dw', 'expand_depthwise', ['input'], {'expand': pw, 'depthwise': dw, 'label': 'pw+dw'})
    record, _, _ = lower(node, {'input': (16, 28, 28), 'dw': (e, 14, 14)}, options)
    assert (record.then.path == WindowPath.WINDOW_INTERLEAVED) == interleaved
    first = tile_starts({f: getattr(record, f) for f in ('tile_rows', 'm_tiles', 'short_rows', 'short_tiles')})
    blocks = np.diff(np.minimum(list(first[:-1][::record.m_per_job]) + [e], e))
    assert blocks.sum() == e and len(blocks) == record.jobs_per_image
    wanted = -(-record.m_tiles // options.fuse_min_jobs)
    vector = isa.kernels().VECTOR
    whole_groups = all(b % vector == 0 for b in blocks[:-1])
    if not interleaved:
        assert record.m_per_job == wanted
    elif single_thread:
        assert whole_groups, blocks
        assert record.m_per_job <= max(wanted, vector // np.gcd(record.tile_rows, vector))     # no larger
    else:
        assert len(blocks) >= min(2, record.m_tiles)
        assert whole_groups or record.m_per_job == wanted, blocks


def depthwise_then_pointwise(rng, c, m, residual=False, act=None):
    """A depthwise convolution and the 1x1 one reading it (MobileNetV2's
    projection), with a residual added to the 1x1 if asked."""
    from engine.graph import Node
    conv = dict(stride=[1, 1], dilation=[1, 1])
    nodes = [Node('dw', 'conv', ['input'], dict(conv, in_channels=c, out_channels=c, kernel=[3, 3],
                                                 padding=[1, 1], groups=c, clamp=[0.0, 6.0]),
                  {'weight': rand(rng, (c, 1, 3, 3), 0.5), 'bias': rand(rng, c)}),
             Node('pw', 'conv', ['dw', 'r'] if residual else ['dw'],
                  dict(conv, in_channels=c, out_channels=m, kernel=[1, 1], padding=[0, 0], groups=1,
                       clamp=[-1.0, 2.0] if act else None, act=act),
                  {'weight': rand(rng, (m, c, 1, 1), 0.3), 'bias': rand(rng, m)})]
    if residual:        # m channels from the input
        nodes.insert(0, Node('r', 'conv', ['input'], dict(conv, in_channels=c, out_channels=m, kernel=[1, 1],
                                                           padding=[0, 0], groups=1, clamp=None),
                             {'weight': rand(rng, (m, c, 1, 1), 0.3)}))
    return nodes


@pytest.mark.parametrize('act', [None, 'hardswish'])
@pytest.mark.parametrize('residual', [False, True])
@pytest.mark.parametrize('c,m,hw', [(21, 13, (7, 9)), (8, 30, (2, 3)), (40, 7, (5, 16))])
def test_k_split_pointwise(c, m, hw, residual, act):
    """A 1x1 convolution after a depthwise one reduces in two halves (odd
    channel counts: unequal ones), the first with the bias and residual, and
    an op sums them, clamps and activates.  A model of several threads
    plans the split whatever threads a run gets: with 2 and 3 the same
    results, bit for bit.  A model of one thread plans without it.  Batch 1
    and 3."""
    from engine.graph import Graph
    options = PlanOptions(k_split_min_k=1, k_split_pixels=(2, 1 << 30))
    rng = np.random.default_rng(c * 10 + m)
    nodes = depthwise_then_pointwise(rng, c, m, residual, act)
    for n in BATCHES:
        x = rand(rng, (n, c) + hw)
        g = Graph('input', x.shape, nodes, ['pw'])
        assert [l.kind for l in compile_graph(g, *hw, options).layers][-3:] == ['dwconv3x3', 'conv1x1',
                                                                              'k_halves_sum']
        kinds = {t: [l['kind'] for l in engine.Model(g, threads=t, options=options).layers(x)][-1]
                 for t in (1, 2)}
        assert kinds == {1: 'conv1x1', 2: 'k_halves_sum'}
        out = [engine.Model(g, threads=t, options=options)(x) for t in (2, 3)]
        np.testing.assert_array_equal(out[0], out[1])
        check_graph(g, x, threads=(1, 2, 3), options=options)


def test_k_split_chooses_mobilenet_v2_projections():
    """By default: MobileNetV2's projections at 14x14 and 28x28 (192 input
    channels and more), not at 7x7, not narrower ones, not after a fused
    expansion (split by rows, not channels)."""
    from engine.graph import Graph, Node, infer_shapes
    from engine.optimize import optimize_for_size
    rng = np.random.default_rng(3)
    for c, hw, split in [(192, 28, True), (384, 14, True), (160, 14, False), (960, 7, False)]:
        nodes = [Node('expand', 'conv', ['input'], dict(in_channels=c, out_channels=c, kernel=[1, 1],
                                                        stride=[1, 1], padding=[0, 0], dilation=[1, 1],
                                                        groups=1, clamp=[0.0, 6.0]),
                      {'weight': rand(rng, (c, c, 1, 1), 0.1)})] + depthwise_then_pointwise(rng, c, 8)
        nodes[1].inputs = ['expand']
        g = Graph('input', (1, c, hw, hw), nodes, ['pw'])
        shapes = infer_shapes(g, hw, hw)
        for fuse in (False, True):
            options = PlanOptions(fuse_expand_dw=fuse, fuse_min_bytes=0)
            ops = [n.op for n in optimize_for_size(g, shapes, options)[0].nodes]
            assert ops == (['expand_depthwise'] if fuse else ['conv', 'conv']) + (
                ['conv_k_halves', 'add_halves'] if split and not fuse else ['conv'])


@pytest.mark.parametrize('residual', [False, True])
def test_size_passes_keep_the_graph_s_meaning(residual):
    """fuse_expand_depthwise and split_reductions, checked on the IR: the
    NumPy reference of the rewritten graph (its plan-only ops' references)
    equals the original's; the original's nodes are left as they were."""
    import copy
    from engine.graph import Graph, Node, infer_shapes
    from engine.optimize import optimize_for_size
    from engine.reference import run_graph
    rng = np.random.default_rng(11)
    c = 12
    nodes = [Node('expand', 'conv', ['input'], dict(in_channels=c, out_channels=c, kernel=[1, 1],
                                                    stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1,
                                                    clamp=[0.0, 6.0]),
                  {'weight': rand(rng, (c, c, 1, 1), 0.3), 'bias': rand(rng, c)})]
    nodes += depthwise_then_pointwise(rng, c, 7, residual, 'hardswish')
    nodes[-2].inputs = ['expand']                 # dw reads the expansion
    # (dilated: not fused with pw)
    nodes.append(Node('dw2', 'conv', ['pw'], dict(in_channels=7, out_channels=7, kernel=[3, 3], stride=[1, 1],
                                                  padding=[2, 2], dilation=[2, 2], groups=7, clamp=None),
                      {'weight': rand(rng, (7, 1, 3, 3), 0.5)}))
    nodes.append(Node('pw2', 'conv', ['dw2'], dict(in_channels=7, out_channels=5, kernel=[1, 1], stride=[1, 1],
                                                   padding=[0, 0], dilation=[1, 1], groups=1, clamp=[-1.0, 1.0]),
                      {'weight': rand(rng, (5, 7, 1, 1), 0.3), 'bias': rand(rng, 5)}))
    g = Graph('input', (2, c, 6, 5), nodes, ['pw2'])
    before = copy.deepcopy(g.nodes)
    options = PlanOptions(fuse_min_bytes=0, k_split_min_k=1, k_split_pixels=(1, 1 << 30))
    rewritten, shapes = optimize_for_size(g, infer_shapes(g, 6, 5), options)
    assert [n.op for n in rewritten.nodes][-5:] == ['expand_depthwise', 'conv', 'conv', 'conv_k_halves',
                                                    'add_halves']
    assert shapes['pw2/k-halves'] == (10, 6, 5)
    x = rand(rng, (2, c, 6, 5))
    for a, b in zip(run_graph(g, x), run_graph(rewritten, x)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert repr(g.nodes) == repr(before)
    check_graph(g, x, options=options)


def test_plan_only_ops_are_refused_in_files():
    from engine.errors import ModelFileError
    from engine.graph import Graph, Node, validate
    g = Graph('input', (1, 4, 3, 3), [Node('s', 'add_halves', ['input'], {})], ['s'])
    with pytest.raises(ModelFileError, match="unknown op 'add_halves'"):
        validate(g)


def test_expand_read_elsewhere_is_not_fused():
    from engine.graph import Graph, Node
    options = PlanOptions(fuse_min_bytes=0)
    rng = np.random.default_rng(5)
    conv = dict(stride=[1, 1], dilation=[1, 1], clamp=None)
    nodes = [Node('expand', 'conv', ['input'], dict(conv, in_channels=3, out_channels=6, kernel=[1, 1],
                                                     padding=[0, 0], groups=1),
                  {'weight': rand(rng, (6, 3, 1, 1))}),
             Node('dw', 'conv', ['expand'], dict(conv, in_channels=6, out_channels=6, kernel=[3, 3],
                                                  padding=[1, 1], groups=6),
                  {'weight': rand(rng, (6, 1, 3, 3))}),
             Node('sum', 'add', ['dw', 'expand'], {})]
    x = rand(rng, (2, 3, 8, 9))
    g = Graph('input', x.shape, nodes, ['sum'])
    assert [l.kind for l in compile_graph(g, 8, 9, options).layers] == ['conv1x1', 'dwconv3x3', 'add']
    check_graph(g, x, options=options)
