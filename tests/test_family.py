"""The ShuffleNet family and its cousins, converted from PyTorch, match
PyTorch at batch 1 and batch > 1; ShuffleNet V1 runs no data-movement layer."""
import numpy as np
import pytest

from conftest import require_torch

torch = require_torch()

import engine                                   # noqa: E402
import family_models as F                       # noqa: E402
from torch_models import randomize              # noqa: E402

DATA_MOVEMENT = {'gather', 'concat', 'flatten', 'shuffle', 'split', 'copy', 'transpose', 'permute'}

POOLS = ('avgpool7', 'adaptive', 'mean')
V1 = [(g, w, POOLS[i % 3]) for i, (g, w) in enumerate(
    (g, w) for g in (1, 2, 3, 4, 8) for w in ('0.5x', '1.0x', '1.5x', '2.0x'))]

OTHERS = {
    'shufflenet_v2_plus': F.ShuffleNetV2Plus,
    'mobilenet_v2': F.MobileNetV2,
    'mobilenet_v3_small': F.mobilenet_v3_small,
    'mobilenet_v3_large': F.mobilenet_v3_large,
    'mnasnet1_0': F.MNASNet,
    'resnet18': F.ResNet18,
    'squeezenet1_1': F.SqueezeNet11,
}


def check(net, sizes=(224,), batches=(1, 3), seed=0):
    net = randomize(net, seed=seed)
    model = engine.from_torch(net, torch.randn(1, 3, 224, 224), threads=2)
    gen = torch.Generator().manual_seed(seed)
    for size in sizes:
        for batch in batches:
            x = torch.randn(batch, 3, size, size, generator=gen)
            with torch.no_grad():
                ref = net(x).numpy()
            out = model(x.numpy())
            assert out.shape == ref.shape
            err = float(np.abs(out - ref).max())
            assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), f'{size}px batch {batch}: error {err:.3g}'
    return model


@pytest.mark.parametrize('groups,size,pool', V1, ids=[f'g{g}_{s}_{p}' for g, s, p in V1])
def test_shufflenet_v1(groups, size, pool):
    net = F.ShuffleNetV1(group=groups, model_size=size, pool=pool)
    # AvgPool2d(7) fixes the input at 224; the others also run at 160
    model = check(net, sizes=(224,) if pool == 'avgpool7' else (224, 160), batches=(1, 2), seed=groups)
    kinds = {row['kind'] for row in model.profile(np.zeros((1, 3, 224, 224), np.float32), runs=1)}
    assert not kinds & DATA_MOVEMENT, kinds
    if groups > 1:
        assert f'conv1x1g{groups}' in kinds


@pytest.mark.parametrize('name', list(OTHERS))
def test_cousins(name):
    check(OTHERS[name](), sizes=(224, 160), batches=(1, 2))


def test_dropout_and_identity_disappear():
    from engine.convert import convert
    graph = convert(randomize(F.MobileNetV2()), torch.randn(1, 3, 64, 64))
    ops = {n.op for n in graph.nodes}
    assert ops <= {'conv', 'add', 'global_avgpool', 'flatten', 'linear'}, ops
    # every BatchNorm folded, every ReLU6 fused
    assert all(n.attrs.get('clamp') in (None, [0.0, 6.0]) for n in graph.nodes)


def test_residual_adds_are_fused_into_convolutions():
    from engine.convert import convert
    for net in (F.ShuffleNetV1(group=3, pool='mean'), F.ResNet18(), F.MobileNetV2()):
        graph = convert(randomize(net), torch.randn(1, 3, 64, 64))
        assert not [n for n in graph.nodes if n.op == 'add'], type(net).__name__
        assert [n for n in graph.nodes if n.op == 'conv' and len(n.inputs) == 2]


@pytest.mark.parametrize('winograd', [None, 0, 2, 4])
def test_dense3x3_ladder_by_every_path(winograd):
    """The dense 3x3 stride-1 layers the path model is fitted to (3-384
    channels, 112x112 to 7x7 planes, batch 2), by the path it picks (None),
    direct (0: narrow planes too), F(2x2) and F(4x4), against PyTorch on
    every output pixel."""
    from engine.convert import convert
    from engine.lowering import PlanOptions
    net = randomize(F.dense3x3_ladder(), seed=1)[:-2]      # the feature maps, not their means
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x).numpy()
    options = PlanOptions(winograd=winograd, direct_conv=True if winograd == 0 else None)
    model = engine.Model(convert(net, x[:1]), threads=2, options=options)
    out = model(x.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    kinds = [row['kind'] for row in model.layers(x[:1].numpy()) if row['kind'].startswith('conv')]
    assert len(kinds) == 10
    if winograd == 0:
        assert all(k == 'conv3x3' for k in kinds), kinds
    elif winograd:
        assert all(k == f'conv3x3_winograd{winograd}' for k in kinds), kinds
