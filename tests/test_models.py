"""Whole models converted from PyTorch match PyTorch: ShuffleNetV2 at every
width torchvision has, batch 1 and 4, two input sizes, one and two threads;
saving and loading changes nothing."""
import numpy as np
import pytest

from conftest import require_torch

torch = require_torch()

import engine                                   # noqa: E402
import torch_models                             # noqa: E402
from engine.plan import compile_graph           # noqa: E402

WIDTHS = ['0.5', '1.0', '1.5', '2.0']
CASES = [(1, 224), (4, 160)]
DATA_MOVEMENT = {'gather', 'concat', 'flatten', 'shuffle', 'split', 'copy', 'transpose', 'permute'}


def tolerance(ref):
    return 1e-4 * max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope='module', params=WIDTHS)
def converted(request):
    width = request.param
    net = torch_models.randomize(getattr(torch_models, f'shufflenet_v2_x{width.replace(".", "_")}')(),
                                 seed=int(float(width) * 10))
    model = engine.from_torch(net, torch.randn(1, 3, 224, 224), threads=1)
    return width, net, model


@pytest.mark.parametrize('batch,size', CASES)
def test_shufflenet_v2_matches_pytorch(converted, batch, size):
    width, net, model = converted
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch * size))
    with torch.no_grad():
        ref = net(x).numpy()
    for threads in (1, 2):
        model.threads = threads
        out = model(x.numpy())
        assert out.shape == ref.shape
        err = float(np.abs(out - ref).max())
        assert err <= tolerance(ref), f'x{width} {batch}x{size} threads={threads}: error {err:.3g}'


def test_save_load_roundtrip(converted, tmp_path):
    width, net, model = converted
    path = tmp_path / f'x{width}.engine'
    model.save(path)
    loaded = engine.load(path, threads=1)      # (the same threads: the same plan, bit for bit)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    model.threads = 1
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.input_shape == (1, 3, 224, 224)
    assert loaded.output_shapes == [(1, 1000)]


def test_no_data_movement_layer_runs(converted):
    """Channel split, concat and shuffle compile to offset tables."""
    _, _, model = converted
    kinds = {layer.kind for layer in compile_graph(model.graph, 224, 224).layers}
    assert not kinds & DATA_MOVEMENT, kinds
    assert {'conv1x1', 'dwconv3x3', 'dwconv3x3s2', 'conv3x3s2', 'maxpool3x3s2', 'linear'} <= kinds


def test_builtin_benchmark_model_is_what_the_converter_makes(converted):
    """engine.zoo (used by `python -m engine bench`, no torch) builds the
    same compiled layers as converting torchvision's model."""
    from engine import zoo
    width, _, model = converted
    ours = compile_graph(zoo.shufflenet_v2(width), 224, 224).layers
    theirs = compile_graph(model.graph, 224, 224).layers
    assert [(l.name, l.kind, l.shape) for l in ours] == [(l.name, l.kind, l.shape) for l in theirs]
