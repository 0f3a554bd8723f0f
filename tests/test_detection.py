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


def test_the_shipped_detector_s_detections_equal_pytorch_s():
    """The trained detector in weights/ (tools/train_detector.py): the
    engine's detections on held-out scenes, decoded and suppressed in NumPy,
    equal PyTorch's, decoded and suppressed by the training tool's own torch
    code, box for box."""
    import json
    import os
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, 'tools'))
    import train_detector as T
    with open(os.path.join(root, 'weights', 'shapes_result.json')) as f:
        result = json.load(f)
    images = np.stack([image for image, _, _ in T.scenes(result['held_out_seed'], 100)])
    net = T.build_net()
    net.load_state_dict(torch.load(os.path.join(root, 'weights', 'shapes_nanodet.pth'), weights_only=True))
    net.eval()
    model = engine.load(os.path.join(root, 'weights', 'shapes_nanodet.engine'), threads=2)
    theirs, ours = T.torch_found(net, images, threshold=0.3), T.engine_found(model, images, threshold=0.3)
    assert sum(map(len, ours)) >= len(images)
    for t, e in zip(theirs, ours):
        assert [c for _, _, c in t] == [c for _, _, c in e]
        np.testing.assert_allclose([s for _, s, _ in e], [s for _, s, _ in t], atol=1e-4)
        np.testing.assert_allclose(np.reshape([b for b, _, _ in e], (-1, 4)), np.reshape([b for b, _, _ in t], (-1, 4)),
                                   atol=1e-2)


@pytest.mark.parametrize('name', ['nanodet-plus-m_320', 'nanodet-m'])
@pytest.mark.parametrize('opset', [11, 17])
def test_nanodet_from_onnx_matches_onnxruntime(name, opset):
    """The detectors exported by torch.onnx (Resize for the upsampling, the
    head's Reshape/Concat/Transpose) convert and match ONNX Runtime at the
    file's size.  (Other sizes are pinned: at 321 pixels the levels no
    longer halve exactly and the file does not convert, which is all the
    ONNX path can tell of the sizes.)"""
    import contextlib
    import io
    import warnings
    from conftest import require_onnx
    _, ort = require_onnx()
    build, size, _ = DETECTORS[name]
    net = randomize(build(), seed=opset)
    f = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter('ignore')
        torch.onnx.export(net, (torch.randn(1, 3, size, size),), f, dynamo=False, opset_version=opset,
                          input_names=['x'], dynamic_axes={'x': {0: 'n', 2: 'h', 3: 'w'}})
    model = engine.from_onnx(f.getvalue(), input_shape=(1, 3, size, size), threads=2)
    session = ort.InferenceSession(f.getvalue(), providers=['CPUExecutionProvider'])
    for batch in (1, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
        ref = session.run(None, {'x': x})[0]
        out = model(x)
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert [n.op for n in model.graph.nodes].count('spatial_concat') == 1


def test_the_documented_recipe_makes_the_shipped_detector(tmp_path):
    """weights/README.md's conversion command for the detector, run as
    written (output to a temporary file), gives the shipped model, and the
    training script converts with the same arguments."""
    import os
    import shlex
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'weights', 'README.md')) as f:
        line = next(l for l in f if l.startswith('python tools/convert_pytorch.py tools.train_detector'))
    argv = shlex.split(line)
    sys.path.insert(0, os.path.join(root, 'tools'))
    from train_detector import convert_args
    assert argv[2:] == convert_args('weights')
    argv[argv.index('-o') + 1] = str(tmp_path / 'shapes.engine')
    r = subprocess.run([sys.executable] + argv[1:], cwd=root, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=root))
    assert r.returncode == 0, r.stdout + r.stderr
    made = engine.load(str(tmp_path / 'shapes.engine')).graph
    shipped = engine.load(os.path.join(root, 'weights', 'shapes_nanodet.engine')).graph
    assert made.meta == shipped.meta and made.input_shape == shipped.input_shape
    assert [(n.name, n.op, n.inputs, n.attrs) for n in made.nodes] == \
        [(n.name, n.op, n.inputs, n.attrs) for n in shipped.nodes]
    for a, b in zip(made.nodes, shipped.nodes):
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
