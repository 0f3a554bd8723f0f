"""conv: 2-D convolution, any kernel, stride, padding, dilation and groups
(depthwise with a channel multiplier too).  A second input, when present, is
a residual added before the epilogue (a fused add; not on depthwise
convolutions).

Lowered by shape: depthwise -> the window kernels; 1x1 on a 1x1 plane -> the
fully connected tile; 1x1 -> GEMM over planes; dense 3x3 stride 1 -> Winograd
F(2x2) or F(4x4) where it costs less; dense stride 1/2 -> direct (framed rows
read in place) unless its rows are too narrow for the tiles; any other ->
im2col panels."""
import numpy as np

from engine.errors import ModelFileError
from engine.kernels.abi import WindowMode
from engine.kernels.descriptors import ConvDirect, ConvIm2col, ConvWinograd, Gemm
from engine.lowering import (gemm_jobs, kernel_fields, linear_record, name_kernel, pack_gemm, pixel_tiles, reduction_order,
                             row_tiles, runs, weight_block, window_op)
from engine.ops import OpDef, register
from engine.ops.activations import check_epilogue
from engine.ops.aten import arg, converts, pair as pair_of
from engine.ops.checks import integer, one_input, pair, param
from engine.ops.quant import int8_layer_record


def conv_out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def windows(xp, kernel, stride, dilation, out_hw):
    """Yield (i, j, view) of the padded input under each kernel tap."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]


def conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """The NumPy reference convolution (float64)."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = conv_out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_out_size(w, kw, stride[1], padding[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = np.asarray(weight[g * og:(g + 1) * og], np.float64)
        for i, j, patch in windows(xs, (kh, kw), stride, dilation, (oh, ow)):
            out[:, g * og:(g + 1) * og] += np.einsum('nchw,oc->nohw', patch, ws[:, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


# Winograd F(m x m, 3x3): the weights' transform G (a x 3, a = m + 2) of the
# points of winograd.h's B^T and A^T (kernels.winograd_matrices), exact in float64
WINOGRAD_G = {
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}
# A model of the time of a dense 3x3 stride-1 convolution by each path, in ns,
# per kernel module: (per multiply-add of its GEMM tiles, per element they store,
# per element of the transformed input, per weight read (Winograd's bands
# each read all the transformed weights; the direct path reads its row tile's
# weights per output row), per op).  Winograd's transforms cost more per
# element the larger the tile, so F(4x4) wins on large planes, F(2x2) on small
# ones (F(4x4)'s weights are 2.25x F(2x2)'s), the direct path on few channels.
# x86: fitted to single-layer timings (AVX2, Zen 3, 1 thread, 23 shapes of
# 3-512 channels on 7x7 to 224x224 planes, within about 20 % on that noisy
# machine; its pick was within 12 % of the fastest measured, 1 % on average).
# neon: fitted by tools/fit_path_costs.py to tools/estimate_pi.py's Pi 4 time
# of each layer (its instructions at the cell's core cycles per instruction)
# counted under qemu as a Cortex-A72 by each path, one thread
# (tools/count_aarch64.py --plan winograd=0, 2, 4; ResNet-18, SqueezeNet 1.1,
# dense3x3_ladder: 31 layers of 3-512 channels, in relative error); its pick
# was the fastest counted on all 31 (the direct path's op term capped at the
# Winograd paths': fitted, 0.35 ms, it sent a 4-channel 9x70 layer to
# F(4x4)).  The estimate adds no time for cache
# misses (fitted to ncnn's published Pi 4 times, it weighed them at zero), so
# F(4x4) wins everywhere but on the fewest channels, 7x7 planes of 512
# channels too, as ncnn takes them.
_X86_COSTS = {0: (0.0198, 0.4345, 0.0, 0.0, 16e3), 2: (0.0279, 0.2808, 0.0955, 0.1066, 28.6e3),
              4: (0.0145, 0.5481, 0.5882, 0.4522, 39.4e3)}
_NEON_COSTS = {0: (0.1999, 1.558, 0.0, 0.09425, 128.6e3), 2: (0.2281, 2.038, 0.0, 0.1533, 162.5e3),
               4: (0.2237, 2.743, 0.847, 0.1328, 128.6e3)}
# per kernel module (engine.kernels.variants.PREFERENCE, FP16_PREFERENCE):
# AVX-512 and the scalar kernels have no fit of their own and take x86's;
# neon_dot NEON's.  The fp16 modules take their ISA's fp32 costs (not refit
# for halves) without F(4x4): its transforms grow values up to 100-fold,
# and fp16 keeps 11 bits.
PATH_COST_NS = {'avx512': _X86_COSTS, 'avx2': _X86_COSTS, 'neon_dot': _NEON_COSTS, 'neon': _NEON_COSTS,
                'scalar': _X86_COSTS,
                'neon_fp16': {m: c for m, c in _NEON_COSTS.items() if m != 4},
                'scalar_fp16': {m: c for m, c in _X86_COSTS.items() if m != 4}}


def path_costs(kernels):
    """PATH_COST_NS of a kernel module."""
    return PATH_COST_NS[kernels.ISA]


def winograd_weights(weight, m):
    """(cout, cin, 3, 3) -> ((m + 2)^2, cout, cin): G g G^T of every kernel,
    element xi = i * (m + 2) + j first."""
    g = WINOGRAD_G[m]
    u = np.einsum('ik,ockl,jl->ijoc', g, np.asarray(weight, np.float64), g)
    return u.reshape(-1, *weight.shape[:2]).astype(np.float32)


def winograd_tiles(m, out_h, out_w):
    """Tiles of m x m outputs across and down an output plane."""
    return -(-out_w // m), -(-out_h // m)


def winograd_bands(kernels, m, cin, tiles, out_h, out_w, options):
    """The fewest bands of tile rows whose transform buffers fit
    options.winograd_bytes (in a one-thread plan: or the transformed weights'
    bytes, which each band reads all of, if more; but at least a GEMM tile of
    tiles), or one band where the transformed weights are larger than all
    the tiles' buffers (each band reads them all: at 14x14 with 512
    channels, bands made F(2x2) slower than the direct path)."""
    tx, ty = winograd_tiles(m, out_h, out_w)
    rows = tiles['m_tiles'] * tiles['tile_rows']
    size = kernels.ELEMENT_BYTES
    per_row = kernels.winograd_scratch_floats(m, cin, rows, 1, tx) * size
    weights = (m + 2) ** 2 * cin * rows * size
    budget = max(options.winograd_bytes, weights) if options.single_thread else options.winograd_bytes
    band = max(1, -(-ty // max(1, -(-per_row * ty // budget))))
    if weights >= per_row * ty:
        band = ty
    while band * tx < kernels.TILE_PIXELS and band < ty:
        band += 1
    return -(-ty // band)


def winograd_layout(kernels, m, cin, tiles, out_h, out_w, options):
    """(band_rows, m_per_job, jobs_per_image) of a Winograd op: its fewest
    bands (winograd_bands), as equal as whole tile rows make them
    (kernels.winograd_band_rows; band_rows the largest).  Several bands in a
    several-thread plan an even number of them, so that two threads get
    equal halves (28x28 in bands of 5 and 2 tile rows ran 1.45x as fast on
    two threads as on one, in 4 and 3 1.9x); one band: row tiles split into
    chunks until an image gives 2 jobs (each chunk transforms the band's
    input again).  A one-thread plan: bands neither evened nor chunked (x86,
    one thread, ResNet-18 0.963-0.969x the time, SqueezeNet 0.956-0.968x; a
    Cortex-A72's count 3.7 M instructions fewer on ResNet-18), but up to
    twice as many where the path model (PATH_COST_NS, a one-vector GEMM
    tile costing a whole tile's stores: winograd_terms) says their GEMM
    tiles cost less than the weights' extra reads: NEON's 56x56x64 F(4x4)
    in 7 bands of 28 tiles (3 whole GEMM tiles and a full vector), not 5 of
    28-42 (half-empty vectors), 0.32 M instructions fewer as a Cortex-A72;
    its 55x55 16 -> 64 kept in 4 of 42-56 tiles (in 7: 0.075 M more)."""
    tx, ty = winograd_tiles(m, out_h, out_w)
    rows = tiles['m_tiles'] * tiles['tile_rows']
    bands = winograd_bands(kernels, m, cin, tiles, out_h, out_w, options)
    costs = path_costs(kernels).get(m)
    if options.single_thread:
        if costs:
            bands = min(range(bands, min(ty, 2 * bands) + 1), key=lambda n: sum(
                c * t for c, t in zip(costs, winograd_terms(kernels, m, cin, rows, tx, ty, n, whole_tiles=True))))
    elif bands % 2 and 1 < bands < ty:
        bands += 1
    chunks = 1 if options.single_thread else min(tiles['m_tiles'], -(-2 // bands))
    m_per_job = -(-tiles['m_tiles'] // chunks)
    return -(-ty // bands), m_per_job, bands * -(-tiles['m_tiles'] // m_per_job)


def path_terms(kernels, m, cin, cout, out_h, out_w, options):
    """What PATH_COST_NS's five costs multiply for this convolution by
    Winograd F(m x m), or by the direct path for m = 0: (multiply-adds of
    its GEMM tiles, elements they store, elements of the transformed input,
    weights read, 1).  The direct path's tiles cover each output row in whole
    tiles; Winograd's the tiles of each band (tools/fit_path_costs.py fits
    the costs to counted layers by these)."""
    tiles = row_tiles(kernels, cout)
    rows = tiles['m_tiles'] * tiles['tile_rows']
    if m == 0:
        nr = kernels.TILE_PIXELS
        pixels = out_h * -(-out_w // nr) * nr
        return 9 * cin * rows * pixels, rows * pixels, 0, 9 * cin * rows * out_h, 1
    tx, ty = winograd_tiles(m, out_h, out_w)
    _, m_per_job, jobs = winograd_layout(kernels, m, cin, tiles, out_h, out_w, options)
    return winograd_terms(kernels, m, cin, rows, tx, ty, jobs // -(-tiles['m_tiles'] // m_per_job))


def winograd_terms(kernels, m, cin, rows, tx, ty, bands, whole_tiles=False):
    """path_terms of Winograd F(m x m) over tx x ty tiles in `bands` bands
    of tile rows, rows output channels in row tiles; whole_tiles: a band's
    last GEMM tile of one vector stores as much as a whole tile (its call,
    loads and stores: a NEON 12x1v tile takes 213 instructions besides its
    FMAs' loop, a 12x2v 121), which the path costs were not fitted with."""
    a, nr, runs = m + 2, kernels.TILE_PIXELS, [n * tx for n in kernels.winograd_band_rows(ty, bands)]
    padded = sum(kernels.gemm_covered_pixels(n) for n in runs)
    stored = sum(-(-n // nr) * nr for n in runs) if whole_tiles else padded
    return a * a * cin * rows * padded, a * a * rows * stored, a * a * cin * tx * ty, bands * a * a * cin * rows, 1


def path_cost(kernels, m, cin, cout, out_h, out_w, options):
    """PATH_COST_NS's time of this convolution by Winograd F(m x m), or by
    the direct path for m = 0."""
    return sum(c * t for c, t in zip(path_costs(kernels)[m], path_terms(kernels, m, cin, cout, out_h, out_w, options)))


def winograd_tile(kernels, attrs, spatial, options):
    """m for a Winograd F(m x m) lowering of this convolution, or 0 (not
    one Winograd runs: 3x3, stride 1, no dilation or groups, padding 0 or
    1; or the direct path costs less: path_cost)."""
    a = attrs
    if not (options.winograd != 0 and a['groups'] == 1 and tuple(a['kernel']) == (3, 3)
            and tuple(a['stride']) == (1, 1) and tuple(a['dilation']) == (1, 1)
            and tuple(a['padding']) in ((0, 0), (1, 1))):
        return 0
    if options.winograd:
        return options.winograd
    shape = a['in_channels'], a['out_channels'], spatial['out_h'], spatial['out_w']
    return min(path_costs(kernels), key=lambda m: path_cost(kernels, m, *shape, options))


# im2col's time per pixel its tiles compute, relative to the direct path's
# (its panels' copies): AVX-512, ResNet-18's 3x3 stride-2 layers, 1 thread:
# at 28x28 the direct path was 3-4 % faster computing 14 % more pixels, at
# 14x14 (8 % more) as fast, at 7x7 (75 % more) 1.6x slower
IM2COL_COST = 1.15


def direct_pays(kernels, out_h, out_w, plane):
    """Whether a dense convolution runs direct rather than by im2col: the
    direct path's tiles cover each output row on its own, so narrow rows
    leave lanes empty (7 wide in 16-pixel tiles), where im2col's run over
    the whole plane (`plane` pixels) at the price of its copies."""
    covered = kernels.gemm_covered_pixels
    return out_h * covered(out_w) <= IM2COL_COST * covered(plane)


# A direct convolution's pixels run across rows through a panel (gemm.pxi:
# direct_panel_job) where its rows in whole tiles cover this many times the
# pixels the plane's tiles do (ResNet-18's 14x14 and 7x7 stride-2 outputs in
# 8-pixel NEON tiles: 1.14x); each tap's pixels copied once pay for a few per cent.
# By default in one-thread plans only (several threads' jobs are laid out for two;
# a Pi's four-thread counts under qemu varied 8 % between runs of one plan, too
# much to tell).
PANEL_GAIN = 1.05


def panel_pays(kernels, out_h, out_w, options):
    """Whether a direct convolution takes its pixels across rows through a
    panel (options.direct_panel, or None: in a one-thread plan, by PANEL_GAIN)."""
    if options.direct_panel is not None:
        return options.direct_panel
    covered = kernels.gemm_covered_pixels
    return options.single_thread and out_h * covered(out_w) > PANEL_GAIN * covered(out_h * out_w)


def is_pointwise(node):
    """A 1x1 stride-1 unpadded convolution without groups: a plain GEMM."""
    a = node.attrs
    return (node.op == 'conv' and a['groups'] == 1 and tuple(a['kernel']) == (1, 1)
            and tuple(a['stride']) == (1, 1) and tuple(a['padding']) == (0, 0))


def is_depthwise(node):
    """A convolution with one input and one output channel per group."""
    a = node.attrs
    return node.op == 'conv' and a['groups'] == a['in_channels'] == a['out_channels']


@register
class Conv(OpDef):
    name = 'conv'
    int8 = True

    def check(self, node, ins):
        c, _ = one_input(node, ins[:1], 4)
        a = node.attrs
        cin, cout = integer(a, 'in_channels', node.name), integer(a, 'out_channels', node.name)
        groups = integer(a, 'groups', node.name)
        kh, kw = pair(a, 'kernel', node.name, 1)
        pair(a, 'stride', node.name, 1)
        pair(a, 'padding', node.name, 0)
        pair(a, 'dilation', node.name, 1)
        check_epilogue(node, cout)
        if cin != c:
            raise ModelFileError(f'node {node.name!r}: in_channels {cin} but its input has {c} channels')
        if cin % groups or cout % groups:
            raise ModelFileError(f'node {node.name!r}: groups {groups} does not divide channels {cin} -> {cout}')
        param(node, 'weight', (cout, cin // groups, kh, kw))
        if 'bias' in node.params:
            param(node, 'bias', (cout,))
        if len(ins) > 2 or (len(ins) == 2 and (ins[1] != (cout, 4) or cin // groups == 1)):
            raise ModelFileError(f'node {node.name!r}: a convolution takes its input and at most one residual '
                                 f'of {cout} channels (not on depthwise convolutions), got {ins}')
        return cout, 4

    def shape(self, node, ins):
        (_, h, w), a = ins[0], node.attrs
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = a['kernel'], a['stride'], a['padding'], a['dilation']
        out = (a['out_channels'], conv_out_size(h, kh, sh, ph, dh), conv_out_size(w, kw, sw, pw, dw))
        if len(ins) == 2 and ins[1] != out:
            raise ValueError(f'layer {node.name!r}: residual of shape {ins[1]} for an output of {out}')
        return out

    def reference(self, node, ins):
        a, p = node.attrs, node.params
        out = conv2d(ins[0], p['weight'], p.get('bias'), a['stride'], a['padding'], a['dilation'],
                     a['groups'])
        return out + ins[1] if len(ins) == 2 else out

    def macs(self, node, shapes):
        oc, oh, ow = shapes[node.name]
        return int(node.params['weight'][0].size) * oc * oh * ow

    def lower(self, node, ctx):
        a, p, options, kernels = node.attrs, node.params, ctx.options, ctx.kernels
        kernel, stride = tuple(a['kernel']), tuple(a['stride'])
        if 'weight_scale' in p:         # an int8 layer
            depthwise = a['in_channels'] == a['groups']
            kind = (name_kernel('dwconv' if depthwise else 'conv', kernel, stride)
                    + ('' if depthwise or a['groups'] == 1 else f"g{a['groups']}"))
            return int8_layer_record(node, ctx, dict(ctx.spatial(node), **kernel_fields(a, kernel)), a['groups'],
                                     kind)
        step, spatial = ctx.step(node), ctx.spatial(node)
        residual = ctx.offsets(node.inputs[1]) if len(node.inputs) == 2 else None
        groups, cin, cout = a['groups'], a['in_channels'], a['out_channels']
        cin_g, cout_g = cin // groups, cout // groups
        weight = np.asarray(p['weight'], np.float32)
        bias = p.get('bias')
        bias = np.zeros(cout, np.float32) if bias is None else np.asarray(bias, np.float32)
        padding = tuple(a['padding'])

        if cin_g == 1:      # depthwise, possibly with a channel multiplier
            step = dict(step, in_off=step['in_off'][np.arange(cout) // cout_g])
            record, need = window_op(kernels, step, spatial, a, kernel, WindowMode.WINDOW_CONV, options,
                                     ctx.direct_only, fill=0.0, w=weight.reshape(cout, -1), b=bias)
            return record, name_kernel('dwconv', kernel, stride), need

        pixels = spatial['out_h'] * spatial['out_w']
        pointwise = kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)
        if pointwise and groups == 1 and pixels == 1:
            return (linear_record(kernels, weight.reshape(cout, cin), bias, step, residual), 'conv1x1',
                    kernels.LINEAR_OUTPUTS)

        K = cin_g * kernel[0] * kernel[1]
        k = kernel_fields(a, kernel)
        m = winograd_tile(kernels, a, spatial, options)
        if m:
            return self.lower_winograd(kernels, m, weight, bias, step, spatial, k, residual, options)
        direct = (not pointwise and groups == 1 and k['sh'] == k['sw'] and k['sh'] in (1, 2)
                  and (k['dh'], k['dw']) == (1, 1)
                  and (options.direct_conv if options.direct_conv is not None
                       else direct_pays(kernels, spatial['out_h'], spatial['out_w'], step['plane'])))
        tail = pointwise and options.tail_tiles and pixels == kernels.TAIL_PIXELS
        tiles = row_tiles(kernels, cout_g, kernels.NARROW_ROWS if tail else None)
        m_tiles = tiles['m_tiles']
        # the B table, per group: the input planes of a 1x1, the taps of a
        # direct convolution's frame, the rows of an im2col panel (every group's)
        # (a direct convolution's taps column by column: each column one run)
        column = None
        if pointwise:
            table = step['in_off'].reshape(groups, K)
        elif direct:
            # bands of output rows, few where the weights pass the block (each band reads them all);
            # with a panel, runs of whole pixel tiles across rows
            m_block = weight_block(kernels, tiles, K, spatial['out_h'], options)
            panel = panel_pays(kernels, spatial['out_h'], spatial['out_w'], options)
            if panel:
                jobs = runs(-(-pixels // kernels.TILE_PIXELS), 1 if options.single_thread else options.panel_jobs)
                jobs['per_job'] *= kernels.TILE_PIXELS
                rows = kernels.direct_panel_rows(jobs['per_job'], spatial['out_w'], spatial['out_h'])
            else:
                jobs = runs(spatial['out_h'],
                            options.planned_channel_jobs if m_block == m_tiles else options.weight_block_bands)
                rows = jobs['per_job']
            table, column = kernels.direct_tap_offsets(cin, spatial['in_w'], k['pw'], k['kh'], k['kw'], k['sw'])
            table, column = table[None], column[None]
        else:
            table = np.arange(K, dtype=np.int64)[None] * kernels.TILE_PIXELS
        order, k_runs = reduction_order(kernels, table, column)
        weight = np.take_along_axis(weight.reshape(groups, cout_g, K),
                                    np.broadcast_to(order[:, None, :], (groups, cout_g, K)), axis=2)
        table = np.take_along_axis(table, order, axis=1).ravel()
        w_packed, b_packed = pack_gemm(kernels, weight, bias.reshape(groups, cout_g), tiles)
        nr = kernels.TILE_PIXELS
        tile_pixels, n_tiles = (pixel_tiles(kernels, pixels, step['plane'], tiles['tile_rows'], K, tail, options)
                                if pointwise else (nr, -(-step['plane'] // nr)))
        gemm = dict(step, **spatial, **tiles, groups=groups, cin_g=cin_g, cout_g=cout_g, K=K,
                    n_tiles=n_tiles, tile_pixels=tile_pixels, w=w_packed, b=b_packed,
                    res_off=residual, k_runs=k_runs)
        if pointwise:
            gemm.update(in_off=table)
            record = Gemm(**gemm, **gemm_jobs(m_tiles, n_tiles, groups, options,
                                              weight_block(kernels, tiles, K, n_tiles, options)))
            return record, 'conv1x1' + ('' if groups == 1 else f'g{groups}'), 0
        name = name_kernel('conv', kernel, stride) + ('' if groups == 1 else f'g{groups}')
        if direct:
            record = ConvDirect(**gemm, **k, **jobs, m_per_job=m_tiles, m_block=m_block, in2_off=table,
                                panel=int(panel))
            return record, name, kernels.direct_scratch_floats(cin, spatial['in_w'], k['pw'], k['kh'], k['sh'],
                                                                 rows, K, jobs['per_job'] if panel else 0)
        jobs = runs(n_tiles, max(1, -(-options.planned_channel_jobs // groups)))
        record = ConvIm2col(**gemm, **k, m_per_job=m_tiles, per_job=jobs['per_job'],
                            jobs_per_image=groups * jobs['jobs_per_image'], in2_off=table)
        return record, name + '_im2col', kernels.im2col_scratch_floats(K, k['kw'])

    def lower_winograd(self, kernels, m, weight, bias, step, spatial, k, residual, options):
        cout, cin = weight.shape[:2]
        tiles = row_tiles(kernels, cout)
        band, m_per_job, jobs = winograd_layout(kernels, m, cin, tiles, spatial['out_h'], spatial['out_w'], options)
        tx, ty = winograd_tiles(m, spatial['out_h'], spatial['out_w'])
        w_packed, _ = pack_gemm(kernels, winograd_weights(weight, m), np.zeros(((m + 2) ** 2, cout), np.float32),
                                tiles)
        table = np.arange(max(cin, cout), dtype=np.int64) * kernels.winograd_stride(band, tx)
        record = ConvWinograd(**step, **spatial, **tiles, **k, groups=1, cin_g=cin, cout_g=cout, K=cin,
                              n_tiles=tx * ty, tile_pixels=kernels.TILE_PIXELS, w=w_packed,
                              b=np.concatenate([bias, np.zeros(kernels.WEIGHT_OVERREAD, np.float32)]),
                              res_off=residual, k_runs=kernels.plane_runs(table[None, :cin]), wino=m,
                              in2_off=table, per_job=band, m_per_job=m_per_job, jobs_per_image=jobs)
        need = kernels.winograd_scratch_floats(m, cin, m_per_job * tiles['tile_rows'], band, tx)
        return record, f'conv3x3_winograd{m}', need


@converts('conv2d', 'convolution')
def from_aten(cv, fx, args, kw):
    x = args[0]
    weight, bias = cv.param(args[1]), cv.param(arg(args, kw, 2, 'bias', None))
    if getattr(fx.target, '_opname', '') == 'convolution':
        # aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)
        stride, padding, dilation = args[3], args[4], args[5]
        if args[6]:
            return cv.fail(fx, 'transposed convolution')
        groups = args[8]
    else:
        stride = arg(args, kw, 3, 'stride', [1, 1])
        padding = arg(args, kw, 4, 'padding', [0, 0])
        dilation = arg(args, kw, 5, 'dilation', [1, 1])
        groups = arg(args, kw, 6, 'groups', 1)
    kernel = list(weight.shape[2:])
    if isinstance(padding, str):
        if padding == 'valid':
            padding = [0, 0]
        else:
            total = [d * (k - 1) for d, k in zip(pair_of(dilation), kernel)]
            if any(t % 2 for t in total) or pair_of(stride) != [1, 1]:
                return cv.fail(fx, "padding='same' that needs uneven padding")
            padding = [t // 2 for t in total]
    if weight.ndim != 4:
        return cv.fail(fx, f'convolution with {weight.ndim - 2}-D kernel (only 2-D is supported)')
    attrs = dict(in_channels=int(x.shape[1]), out_channels=int(weight.shape[0]), kernel=kernel,
                 stride=pair_of(stride), padding=pair_of(padding), dilation=pair_of(dilation),
                 groups=int(groups), clamp=None)
    params = {'weight': weight}
    if bias is not None:
        params['bias'] = bias
    return cv.add(fx, 'conv', [x], attrs, params)
