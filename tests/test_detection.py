"""NanoDet detectors as their authors build them from their config files
(tests/detection_models.py, seeded weights with calibrated BatchNorm
statistics): converted from PyTorch and matching it within 1e-4 x max(1,
max|ref|) at batch 1 and 2, at the config's input size and at another
(the bilinear up- and downsampling at every level), the head's points laid
out by the copy out with no data-movement layer."""
import numpy as np
import pytest

from conftest import require_torch

torch = require_torch()

import engine                                   # noqa: E402
import detection_models as D                    # noqa: E402
from engine.plan import compile_graph           # noqa: E402
from torch_models import randomize              # noqa: E402

DATA_MOVEMENT = {'gather', 'concat', 'flatten', 'shuffle', 'split', 'copy', 'transpose', 'permute'}

# name: (builder, the config's input size, another size it runs at)
DETECTORS = {
    'nanodet-plus-m_320': (D.nanodet_plus_m, 320, 416),
    'nanodet-plus-m_416': (D.nanodet_plus_m, 416, 256),
    'nanodet-plus-m-1.5x_320': (lambda: D.nanodet_plus_m(model_size='1.5x'), 320, 352),
    'nanodet-m': (D.nanodet_m, 320, 416),
}


def points(size, strides):
    return sum((-(-size // s)) ** 2 for s in strides)


@pytest.mark.parametrize('name', list(DETECTORS))
def test_nanodet_matches_pytorch(name):
    build, size, other = DETECTORS[name]
    net = randomize(build(), seed=len(name))
    model = engine.from_torch(net, torch.randn(1, 3, size, size), threads=2)
    gen = torch.Generator().manual_seed(1)
    strides = net.head.strides
    for s, batch in ((size, 1), (size, 2), (other, 1)):
        x = torch.randn(batch, 3, s, s, generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        out = model(x.numpy())
        assert out.shape == ref.shape == (batch, points(s, strides), 80 + 32)
        err = float(np.abs(out - ref).max())
        assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), f'{s}px batch {batch}: error {err:.3g}'
    kinds = {layer.kind for layer in compile_graph(model.graph, size, size).layers}
    assert 'resize_bilinear' in kinds and not kinds & DATA_MOVEMENT, kinds
    assert [n.op for n in model.graph.nodes].count('spatial_concat') == 1


def test_module_names_are_the_authors():
    """A sample of the keys of the authors' NanoDet-Plus checkpoints (the
    model's own, without the training-only aux_fpn and aux_head)."""
    keys = set(D.nanodet_plus_m().state_dict())
    for key in ['backbone.conv1.0.weight', 'backbone.stage2.0.branch1.0.weight', 'backbone.stage4.3.branch2.6.bias',
                'fpn.reduce_layers.2.conv.weight', 'fpn.reduce_layers.0.bn.running_var',
                'fpn.top_down_blocks.1.blocks.0.ghost1.primary_conv.0.weight',
                'fpn.top_down_blocks.0.blocks.0.ghost2.cheap_operation.1.weight',
                'fpn.bottom_up_blocks.1.blocks.0.shortcut.2.weight', 'fpn.downsamples.0.depthwise.weight',
                'fpn.downsamples.1.pwnorm.bias', 'fpn.extra_lvl_in_conv.0.dwnorm.weight',
                'fpn.extra_lvl_out_conv.0.pointwise.weight', 'head.cls_convs.3.1.depthwise.weight',
                'head.gfl_cls.3.bias']:
        assert key in keys, key
    legacy = set(D.nanodet_m().state_dict())
    assert {'fpn.lateral_convs.0.conv.bias', 'head.cls_convs.2.1.pwnorm.weight', 'head.gfl_reg.0.weight'} <= legacy


NANODET_CONFIG = """\
model:
  arch:
    name: NanoDetPlus
    head:
      name: NanoDetPlusHead
      num_classes: 80
      input_channel: 96
      strides: [8, 16, 32, 64]
      reg_max: 7
data:
  val:
    input_size: [320,320] #[w,h]
    keep_ratio: False
    pipeline:
      normalize: [[103.53, 116.28, 123.675], [57.375, 57.12, 58.395]]
class_names: [{}]
"""


def test_convert_with_the_authors_config(tmp_path):
    """`convert --task detect --detect-config` takes the sizes, strides,
    normalisation and class names from a NanoDet YAML config; the model file
    then detects by itself."""
    import subprocess
    import sys
    names = [f'class{i}' for i in range(80)]
    config = tmp_path / 'nanodet-plus-m_320.yml'
    config.write_text(NANODET_CONFIG.format(', '.join(names)))
    out = tmp_path / 'nanodet.engine'
    tests = str(D.__file__).rsplit('/', 1)[0]
    run = subprocess.run([sys.executable, '-m', 'engine', 'convert', 'detection_models:nanodet_plus_m', '-o', str(out),
                          '--task', 'detect', '--detect-config', str(config), '--check'],
                         capture_output=True, text=True, cwd=tests, timeout=600)
    assert run.returncode == 0, run.stderr
    assert 'check: max |engine - torch|' in run.stdout and 'OK' in run.stdout
    model = engine.load(str(out))
    assert model.input_shape == (1, 3, 320, 320) and model.labels == names
    settings = model.graph.meta['detect']
    assert settings['strides'] == [8, 16, 32, 64] and settings['bgr'] and not settings['keep_ratio']
    assert settings['mean'] == [103.53, 116.28, 123.675]
    found = model.detect([np.zeros((200, 300, 3), np.uint8)], score_threshold=0.0, max_detections=7)
    assert len(found[0]) == 7
    bad = subprocess.run([sys.executable, '-m', 'engine', 'convert', 'detection_models:nanodet_plus_m', '-o',
                          str(tmp_path / 'x.engine'), '--task', 'detect'], capture_output=True, text=True, cwd=tests,
                         timeout=600)
    assert bad.returncode == 2 and '--task detect needs --detect-config' in bad.stderr
