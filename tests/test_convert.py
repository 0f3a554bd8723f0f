"""The converter: shape-op chains, the error for unsupported ops, inference no-ops."""
import numpy as np
import pytest

from conftest import require_torch

torch = require_torch()
from torch import nn                                  # noqa: E402
import torch.nn.functional as F                       # noqa: E402

import engine                                         # noqa: E402
from engine.convert import convert                    # noqa: E402
from engine.plan import compile_graph                 # noqa: E402


def assert_matches(net, shape=(2, 12, 9, 7), seed=0):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = net.eval()(x).numpy()
    out = engine.from_torch(net, x[:1], threads=2)(x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


class Shuffle(nn.Module):
    """A pointwise conv, a channel shuffle written by `style`, another conv."""

    def __init__(self, style, groups=3):
        super().__init__()
        self.a = nn.Conv2d(12, 12, 1)
        self.b = nn.Conv2d(12, 6, 1)
        self.style, self.g = style, groups

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        if self.style == 'torchvision':
            x = x.view(n, self.g, c // self.g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        elif self.style == 'inverse':        # (N, C/g, g) then permute: the inverse permutation
            x = x.reshape(n, c // self.g, self.g, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
        elif self.style == 'flatten':
            x = x.unflatten(1, (self.g, c // self.g)).transpose(1, 2).flatten(1, 2)
        elif self.style == 'shuffle_split':  # the ShuffleNetV2 authors' shuffle-and-split
            x = x.reshape(n * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, n, c // 2, h, w)
            return self.b(torch.cat((x[1], x[0]), 1))
        return self.b(x)


@pytest.mark.parametrize('style', ['torchvision', 'inverse', 'flatten', 'shuffle_split'])
def test_every_spelling_of_a_shuffle(style):
    net = Shuffle(style)
    assert_matches(net)
    graph = convert(net, torch.randn(1, 12, 9, 7))
    assert [n.op for n in graph.nodes] == ['conv', 'gather', 'conv']


class SplitSelect(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(12, 12, 1)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        y = x.reshape(n, 2, c // 2, h, w)
        left, right = y[:, 0], y.select(1, 1)     # select on the channel-group dim
        l2, r2 = torch.split(right, [2, 4], dim=1)
        return torch.cat((r2, left, l2), 1)


def test_select_and_split():
    assert_matches(SplitSelect())


class PixelMixer(nn.Module):
    def __init__(self, style):
        super().__init__()
        self.style = style

    def forward(self, x):
        n, c, h, w = x.shape
        if self.style == 'pixels':
            x = x.reshape(n, c, h * w).transpose(1, 2).reshape(n, c, h, w)
        else:       # channels of one image moved into another
            x = x.reshape(n, 2, c // 2, h, w).transpose(0, 1).reshape(n, c, h, w)
        return F.relu(x)


@pytest.mark.parametrize('style', ['pixels', 'images'])
def test_a_chain_that_is_not_a_channel_reorder_is_refused(style):
    # the export runs with a batch of 2 even for a batch-1 example, so a chain
    # that is only a channel reorder when N == 1 is caught too
    with pytest.raises(engine.UnsupportedModelError, match='mix channels'):
        engine.from_torch(PixelMixer(style), torch.randn(1, 4, 4, 4))


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())
        self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Softplus())

    def forward(self, x):
        return self.head(self.body(x))


def test_unsupported_ops_are_listed_together_with_module_paths():
    with pytest.raises(engine.UnsupportedModelError) as e:
        engine.from_torch(Unsupported(), torch.randn(1, 3, 8, 8))
    msg = str(e.value)
    assert '2 unsupported' in msg
    assert 'gelu' in msg and "'body.1'" in msg
    assert 'softplus' in msg and "'head.1'" in msg


class Head(nn.Module):
    """Inference no-ops and the other common heads."""

    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU6(inplace=True)
        self.drop = nn.Dropout(0.3)
        self.ident = nn.Identity()
        self.pool = pool
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.ident(self.act(self.bn(self.conv(x))))
        if self.pool == 'adaptive':
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        elif self.pool == 'mean_keepdim':
            x = x.mean((-1, -2), keepdim=True).view(x.size(0), -1)
        else:
            x = x.mean([2, 3])
        return self.fc(self.drop(x))


@pytest.mark.parametrize('pool', ['adaptive', 'mean_keepdim', 'mean'])
def test_heads_and_inference_noops(pool):
    net = Head(pool)
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    assert_matches(net)
    graph = convert(net, torch.randn(1, 12, 9, 7))
    assert [n.op for n in graph.nodes if n.op not in ('flatten',)] == ['conv', 'global_avgpool', 'linear']
    assert graph.nodes[0].attrs['clamp'] == [0.0, 6.0]     # BN folded, ReLU6 fused


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(6, 6, 3, padding=1)
        self.b = nn.BatchNorm2d(6)

    def forward(self, x):
        return F.relu(self.a(x) + x) + self.b(x)     # add+relu, standalone BatchNorm


def test_residual_add_and_standalone_batchnorm():
    assert_matches(Residual(), shape=(3, 6, 5, 8))


class NanNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)

    def forward(self, x):
        return self.dw(self.pool(F.relu(self.conv(x)))).clamp(-1, 1) + 0.5


def test_nan_and_inf_give_the_same_outputs_as_pytorch():
    net = NanNet().eval()
    x = torch.randn(2, 3, 20, 19)
    x[0, 1, 4, 5] = float('nan')
    x[1, 0, 10, 10] = float('inf')
    x[1, 2, 0, 18] = float('-inf')
    with torch.no_grad():
        ref = net(x).numpy()
    out = engine.from_torch(net, x[:1].nan_to_num(), threads=2)(x.numpy())
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
    ok = np.isfinite(ref)
    assert np.abs(out[ok] - ref[ok]).max() <= 1e-5
    assert np.isnan(ref).any()


class TwoClamps(nn.Module):
    def __init__(self, first, then):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.first, self.then = first, then

    def forward(self, x):
        return torch.clamp(torch.clamp(self.conv(x) * 8, *self.first), *self.then)


@pytest.mark.parametrize('first, then', [((0, 6), (10, 20)), ((0, 6), (-5, -1)), ((0, 6), (2, 4)),
                                         ((None, 6), (10, None)), ((-1, None), (None, -3)),
                                         ((0, 6), (3, None)), ((-2, 2), (None, 1))])
def test_a_clamp_of_a_clamp_is_their_composition(first, then):
    """Fused into one clamp, two clamps must give what PyTorch's two give,
    also when their ranges do not overlap (a constant)."""
    assert_matches(TwoClamps(first, then), shape=(2, 3, 6, 5))


class DivideBy(nn.Module):
    def __init__(self, divisor):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.divisor = divisor

    def forward(self, x):
        return self.conv(x) / self.divisor


@pytest.mark.parametrize('divisor', [0.0, -0.0])
def test_division_by_zero_gives_signed_infinities(divisor):
    net = DivideBy(divisor).eval()
    with torch.no_grad():
        net.conv.weight[1] = 0          # a channel of exact zeros: 0 / 0 is NaN
        net.conv.bias[1] = 0
        x = torch.randn(2, 3, 6, 5)
        ref = net(x).numpy()
    out = engine.from_torch(net, x[:1])(x.numpy())
    assert np.isinf(ref).any() and np.isnan(ref).any()
    np.testing.assert_array_equal(out, ref)


def test_division_by_a_number_without_a_float32_reciprocal_is_refused():
    with pytest.raises(engine.UnsupportedModelError, match='reciprocal'):
        engine.from_torch(DivideBy(1e-40), torch.randn(1, 3, 6, 5))


def test_from_torch_gives_the_module_back_in_its_mode():
    net = Residual()
    net.train()
    net.b.eval()                        # modes may differ between submodules
    engine.from_torch(net, torch.randn(1, 6, 5, 8))
    assert net.training and net.a.training and not net.b.training


class BranchOnSize(nn.Module):
    """Code that takes another path at widths above 20."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.wide = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if x.shape[-1] > 20:
            y = self.wide(y)
        return y.mean((2, 3))


def torch_out(net, x):
    with torch.no_grad():
        return net.eval()(x).numpy()


def test_a_model_branching_on_its_size_refuses_the_other_branch():
    """Converted at 16x16 it is right up to width 20 and refuses wider
    inputs instead of answering for the branch it was not traced down."""
    net = BranchOnSize()
    model = engine.from_torch(net, torch.randn(1, 3, 16, 16))
    for shape in [(1, 3, 16, 16), (2, 3, 9, 20), (3, 3, 40, 5)]:
        x = torch.randn(*shape)
        np.testing.assert_allclose(model(x.numpy()), torch_out(net, x), atol=1e-5)
    with pytest.raises(ValueError, match='32x32 is outside the inputs this model was converted for: its width '
                                         'must be from 1 to 20'):
        model(torch.randn(1, 3, 32, 32).numpy())
    assert model.graph.input_sizes.ranges['width'] == (1, 20)


class PoolThenView(nn.Module):
    """view(-1, C) after a fixed pool: one row per image only where the
    pool's output is 1x1 (ShuffleNet V1 writes its head so)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).view(-1, 8))


def test_a_view_that_holds_at_some_sizes_only_is_guarded():
    net = PoolThenView()
    model = engine.from_torch(net, torch.randn(1, 3, 4, 4))
    for hw in (4, 5, 7):
        x = torch.randn(2, 3, hw, hw)
        np.testing.assert_allclose(model(x.numpy()), torch_out(net, x), atol=1e-5)
    with pytest.raises(ValueError, match='8x8 is outside the inputs.*must satisfy'):
        model(torch.randn(1, 3, 8, 8).numpy())


class ViewOneRow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)).view(1, -1))


def test_a_model_written_for_one_image_converts_for_a_batch_of_one():
    """.view(1, -1) fails at the export's batch of 2: the export at the
    example's batch works, and the model says it takes one image at a time."""
    net = ViewOneRow()
    model = engine.from_torch(net, torch.randn(1, 3, 8, 8))
    x = torch.randn(1, 3, 11, 8)
    np.testing.assert_allclose(model(x.numpy()), torch_out(net, x), atol=1e-5)
    with pytest.raises(ValueError, match='its batch must be 1.*converted for a batch of 1 only'):
        model(torch.randn(2, 3, 8, 8).numpy())


class KernelFromSize(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), x.shape[-1])


def test_an_attribute_computed_from_the_size_pins_it():
    net = KernelFromSize()
    model = engine.from_torch(net, torch.randn(1, 3, 6, 6))
    x = torch.randn(2, 3, 6, 6)
    np.testing.assert_allclose(model(x.numpy()), torch_out(net, x), atol=1e-5)
    with pytest.raises(ValueError, match='its width must be 6'):
        model(torch.randn(1, 3, 6, 12).numpy())


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x, y):
        return self.conv(x) + self.conv(y)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize('net, match', [
    (TwoInputs(), "forward takes 2 inputs \\(x, y\\); the engine runs models of one image input"),
    (DataDependent(), 'torch.export cannot trace the model at input shape \\(1, 3, 8, 8\\).*data-dependent'),
])
def test_export_failures_are_unsupported_model_errors_without_logs(net, match, capfd):
    with pytest.raises(engine.UnsupportedModelError, match=match):
        engine.from_torch(net, torch.randn(1, 3, 8, 8))
    out, err = capfd.readouterr()
    assert out == '' and err == ''


def test_every_family_member_keeps_its_sizes_dynamic():
    """The usual networks are not pinned to their example: dynamic sizes
    are what lets one file run at any size."""
    from torch_models import shufflenet_v2_x0_5
    graph = convert(shufflenet_v2_x0_5(), torch.randn(1, 3, 64, 64))
    assert graph.input_sizes.ranges == {'batch': (1, None), 'height': (1, None), 'width': (1, None)}
    assert graph.input_sizes.note == ''


class Activations(nn.Module):
    """An activation after a convolution (fused into it), after a linear
    layer, and standalone after an add (an element-wise op)."""

    def __init__(self, make):
        super().__init__()
        self.conv = nn.Conv2d(12, 12, 3, padding=1)
        self.fc = nn.Linear(12, 10)
        self.a, self.b, self.c = make(12), make(12), make(10)

    def forward(self, x):
        y = self.a(self.conv(x))
        y = self.b(y + x)
        return self.c(self.fc(y.mean((2, 3))))


@pytest.mark.parametrize('slope', [0.01, 0.2, -0.5, 1.7])
def test_leaky_relu(slope):
    net = Activations(lambda c: nn.LeakyReLU(slope))
    assert_matches(net, shape=(2, 12, 9, 7))
    graph = convert(net, torch.randn(1, 12, 9, 7))
    assert sum(n.attrs.get('act') == 'leaky_relu' for n in graph.nodes) == 3
    assert not [n for n in graph.nodes if n.op == 'act' and n.inputs[0].startswith('conv')]   # fused


@pytest.mark.parametrize('per_channel', [False, True])
def test_prelu(per_channel):
    """PReLU's learned slopes, one for all channels or one per channel."""
    net = Activations(lambda c: nn.PReLU(c if per_channel else 1))
    with torch.no_grad():
        for m in (net.a, net.b, net.c):
            m.weight.copy_(torch.linspace(-0.8, 1.5, m.weight.numel()))
    assert_matches(net, shape=(2, 12, 9, 7))


def test_tanh():
    net = Activations(lambda c: nn.Tanh())
    assert_matches(net, shape=(2, 12, 9, 7))
    graph = convert(net, torch.randn(1, 12, 9, 7))
    assert sum(n.attrs.get('act') == 'tanh' for n in graph.nodes) == 3


class Upsampling(nn.Module):
    """A detection neck's top-down step: a strided convolution, resized by
    nn.Upsample(**kw) or F.interpolate, concatenated with another tensor and
    read by a convolution."""

    def __init__(self, module=True, **kw):
        super().__init__()
        self.down = nn.Conv2d(12, 8, 3, stride=2, padding=1)
        self.up = nn.Upsample(**kw) if module else None
        self.kw = kw
        self.side = nn.Conv2d(8, 4, 1)
        self.mix = nn.Conv2d(12, 6, 3, padding=1)

    def forward(self, x):
        y = self.down(x)
        y = self.up(y) if self.up is not None else F.interpolate(y, **self.kw)
        return self.mix(torch.cat([y, self.side(y)], 1))


RESIZES = [
    dict(scale_factor=2, mode='bilinear'),
    dict(scale_factor=2, mode='bilinear', align_corners=True),
    dict(scale_factor=(1.5, 0.5), mode='bilinear'),
    dict(size=(11, 6), mode='bilinear'),
    dict(size=(11, 6), mode='bilinear', align_corners=True),
    dict(size=(1, 3), mode='bilinear'),
    dict(scale_factor=2, mode='nearest'),
    dict(scale_factor=(3, 1.7), mode='nearest'),
    dict(size=(4, 13), mode='nearest'),
    dict(size=(4, 13), mode='nearest-exact'),
    dict(scale_factor=0.6, mode='nearest-exact'),
]


@pytest.mark.parametrize('kw', RESIZES, ids=lambda kw: '-'.join(f'{k}={v}' for k, v in kw.items()))
@pytest.mark.parametrize('module', [True, False], ids=['Upsample', 'interpolate'])
def test_resize(kw, module):
    """Every mode against PyTorch, at the example's size and at others (a
    scale factor holds at every size that gives no empty plane: torch's
    guards, float arithmetic among them, travel with the model), the concat
    of the resized planes with another tensor moving no data."""
    net = Upsampling(module, **kw).eval()
    model = engine.from_torch(net, torch.randn(1, 12, 9, 7))
    for shape in [(1, 12, 9, 7), (2, 12, 9, 7), (2, 12, 16, 5), (1, 12, 1, 2)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[2]))
        if 'size' in kw and shape[2:] != (9, 7):
            continue        # (sizes of the input pinned: tests/test_sizes.py)
        try:
            with torch.no_grad():
                ref = net(x).numpy()
        except RuntimeError:        # an empty output: the engine refuses the size too
            with pytest.raises(ValueError, match='outside the inputs'):
                model(x.numpy())
            continue
        out = model(x.numpy())
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), shape
    # (the 3x3s run direct or by im2col: their planes are narrow)
    kinds = [layer.kind.removesuffix('_im2col') for layer in compile_graph(model.graph, 9, 7).layers]
    assert kinds == ['conv3x3s2', f'resize_{kw["mode"].replace("-", "_")}', 'conv1x1', 'conv3x3'], kinds


def test_resize_by_a_size_read_from_a_tensor_is_pinned_to_the_example():
    """interpolate(x, size=other.shape[2:]) (NanoDet's PAN): the size holds
    at the example's input only, and other sizes are refused clearly."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.side = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return F.interpolate(self.down(x), size=x.shape[2:], mode='bilinear') + self.side(x)

    net = Net().eval()
    x = torch.randn(2, 3, 13, 10)
    model = engine.from_torch(net, x[:1])
    with torch.no_grad():
        assert np.abs(model(x.numpy()) - net(x).numpy()).max() <= 1e-5
    with pytest.raises(ValueError, match=r'height must be 13.*upsample_bilinear2d'):
        model(np.zeros((1, 3, 15, 10), np.float32))


class Points(nn.Module):
    """A detection head: a 1x1 convolution per level (strides 8, 16 and 32),
    each level's planes flattened, concatenated and permuted to (N, points,
    channels) in one of the spellings found in the wild."""

    def __init__(self, spelling):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, stride=8, padding=1)
        self.down = nn.ModuleList([nn.Conv2d(6, 6, 3, stride=2, padding=1) for _ in range(2)])
        self.gfl_cls = nn.ModuleList([nn.Conv2d(6, 7, 1) for _ in range(3)])
        self.spelling = spelling

    def forward(self, x):
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(feats[-1]))
        outs = [head(f) for head, f in zip(self.gfl_cls, feats)]
        if self.spelling == 'nanodet':        # flatten(start_dim=2), cat on 2, permute
            return torch.cat([o.flatten(start_dim=2) for o in outs], dim=2).permute(0, 2, 1)
        if self.spelling == 'view-transpose':
            n, c = outs[0].shape[:2]
            return torch.cat([o.view(n, c, -1) for o in outs], -1).transpose(1, 2).contiguous()
        if self.spelling == 'points-last':    # (N, C, points): no permute
            return torch.cat([o.flatten(2) for o in outs], 2)
        if self.spelling == 'permute-first':  # each level to (N, HW, C), then cat on 1
            return torch.cat([o.permute(0, 2, 3, 1).reshape(o.shape[0], -1, o.shape[1]) for o in outs], 1)
        if self.spelling == 'reversed':       # the coarsest level first
            return torch.cat([o.flatten(2) for o in outs[::-1]], 2).permute(0, 2, 1)
        return outs[0].flatten(2).permute(0, 2, 1)       # 'one-level'


@pytest.mark.parametrize('spelling', ['nanodet', 'view-transpose', 'points-last', 'permute-first', 'reversed',
                                      'one-level'])
def test_a_detection_head_s_points_are_laid_out_by_the_copy_out(spelling):
    """Every spelling against PyTorch at several sizes, as one spatial_concat
    of the levels' planes: no layer moves data."""
    net = Points(spelling).eval()
    model = engine.from_torch(net, torch.randn(1, 3, 64, 48))
    for shape in [(1, 3, 64, 48), (2, 3, 64, 48), (1, 3, 80, 33)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[3]))
        with torch.no_grad():
            ref = net(x).numpy()
        out = model(x.numpy())
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    assert [n.op for n in model.graph.nodes if n.op not in ('conv',)] == ['spatial_concat']
    assert all(layer.kind.startswith('conv') for layer in compile_graph(model.graph, 64, 48).layers)


def test_a_concatenation_along_pixels_inside_the_network_is_refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.a(x)
            return self.b(torch.cat([y, y], 2))      # along H, then a layer

    with pytest.raises(engine.UnsupportedModelError, match="only a model's outputs"):
        engine.from_torch(Net(), torch.randn(1, 3, 8, 8))


def test_antialiased_resizing_is_refused():
    net = Upsampling(False, scale_factor=0.5, mode='bilinear', antialias=True)
    with pytest.raises(engine.UnsupportedModelError, match='upsample_bilinear2d_aa'):
        engine.from_torch(net, torch.randn(1, 12, 9, 7))
