"""Converted models against PyTorch outputs stored as files, so the same
check runs where torch is absent: tools/check_aarch64.sh makes the files with
torch on x86 (ENGINE_FIXTURES_WRITE) and runs this test under qemu
(ENGINE_FIXTURES).  Without either variable it makes them in a temporary
folder and checks them at once."""
import os

import numpy as np
import pytest

import engine

MODELS = ['shufflenet_v2_x0_5', 'shufflenet_v1_g3_0_5x', 'mobilenet_v3_small', 'nanodet_plus_m']
INPUT = (2, 3, 96, 96)


def _build(name):
    import detection_models
    import family_models
    import torch_models
    if name == 'shufflenet_v2_x0_5':
        return torch_models.shufflenet_v2_x0_5(num_classes=10)
    if name == 'shufflenet_v1_g3_0_5x':
        return family_models.ShuffleNetV1(n_class=10, model_size='0.5x', group=3, pool='mean')
    if name == 'nanodet_plus_m':       # bilinear upsampling, the head's points laid out
        return detection_models.nanodet_plus_m(num_classes=10)
    return family_models.MobileNetV3('small', num_classes=10)


def write_fixtures(folder):
    from conftest import require_torch
    torch = require_torch()
    from torch_models import randomize
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(MODELS):
        net = randomize(_build(name), seed=i)
        x = torch.randn(*INPUT, generator=torch.Generator().manual_seed(i))
        engine.from_torch(net, x[:1]).save(os.path.join(folder, f'{name}.engine'))
        with torch.no_grad():
            np.save(os.path.join(folder, f'{name}.output.npy'), net(x).numpy())
        np.save(os.path.join(folder, f'{name}.input.npy'), x.numpy())


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    given = os.environ.get('ENGINE_FIXTURES')
    if given:
        return given
    target = os.environ.get('ENGINE_FIXTURES_WRITE') or str(tmp_path_factory.mktemp('fixtures'))
    write_fixtures(target)
    return target


@pytest.mark.parametrize('name', MODELS)
def test_matches_the_stored_pytorch_output(folder, name):
    x = np.load(os.path.join(folder, f'{name}.input.npy'))
    ref = np.load(os.path.join(folder, f'{name}.output.npy'))
    model = engine.load(os.path.join(folder, f'{name}.engine'), threads=1)
    for threads in (1, 2, 3, 4):      # a Pi has 4 cores
        model.threads = threads
        out = model(x)
        assert out.shape == ref.shape
        err = float(np.abs(out - ref).max())
        assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), f'{name} threads={threads}: {err:.3g}'
