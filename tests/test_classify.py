"""The main job: classify images with the trained digits model in weights/,
from Python and from the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine.preprocess import to_array
from helpers import import_blocker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, 'weights')
MODEL = os.path.join(WEIGHTS, 'digits_shufflenet.engine')
SAMPLES = os.path.join(WEIGHTS, 'samples')
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


@pytest.fixture(scope='module')
def model():
    return engine.load(MODEL, threads=2)


@pytest.fixture(scope='module')
def held_out():
    return np.load(os.path.join(WEIGHTS, 'digits_test.npz'))


def test_predictions_equal_pytorchs_on_the_whole_held_out_set(model, held_out):
    spec = model.preprocessing
    x = np.stack([to_array(im, spec, 1) for im in held_out['images']])
    logits = model(x)
    ref = held_out['torch_logits']
    assert logits.shape == ref.shape == (360, 10)
    assert np.abs(logits - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    np.testing.assert_array_equal(logits.argmax(1), ref.argmax(1))
    accuracy = float((logits.argmax(1) == held_out['labels']).mean())
    with open(os.path.join(WEIGHTS, 'digits_result.json')) as f:
        assert accuracy == json.load(f)['accuracy_engine']
    with open(os.path.join(ROOT, 'README.md')) as f:
        assert f'{100 * accuracy:.2f} %' in f.read()          # the documented figure


def test_classify_paths_pil_images_and_arrays(model, held_out):
    from PIL import Image
    paths = [os.path.join(SAMPLES, f'digit_{d}.png') for d in range(10)]
    by_path = model.classify(paths, top_k=3)
    assert [r[0][0] for r in by_path] == [str(d) for d in range(10)]
    assert all(len(r) == 3 and 1 >= r[0][1] >= r[1][1] >= r[2][1] >= 0 for r in by_path)
    pil = [Image.open(p) for p in paths]
    arrays = [np.asarray(im) for im in pil]
    rgb = [np.repeat(a[:, :, None], 3, axis=2) for a in arrays]       # HxWx3 uint8 -> luma
    for other in (model.classify(pil, top_k=3), model.classify(arrays, top_k=3),
                  model.classify(rgb, top_k=3)):
        assert [r[0][0] for r in other] == [r[0][0] for r in by_path]
        assert np.allclose([p for r in other for _, p in r], [p for r in by_path for _, p in r], atol=1e-5)


def test_resizing_and_cropping_follow_torchvision(model):
    """A 64x48 image: shorter side to 32 (bilinear), then the centre 32x32."""
    from PIL import Image
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (48, 64), dtype=np.uint8))
    spec = model.preprocessing
    x = to_array(img, spec, 1)
    resized = np.asarray(img.resize((42, 32), Image.BILINEAR), np.float32)   # int(32 * 64 / 48) = 42
    expected = (resized[:, 5:37] / 255 - spec['mean'][0]) / spec['std'][0]
    np.testing.assert_allclose(x[0], expected, atol=1e-6)


def test_bad_images_are_named(model, tmp_path):
    bad = tmp_path / 'not_an_image.png'
    bad.write_bytes(b'hello')
    with pytest.raises(ValueError, match='not_an_image.png'):
        model.classify([str(bad)])
    with pytest.raises(ValueError, match='uint8'):
        model.classify([np.zeros((32, 32), np.float32)])
    with pytest.raises(TypeError, match='path, a PIL image or a uint8 array'):
        model.classify([42])


def run(args):
    return subprocess.run([sys.executable, '-m', 'engine'] + args, cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_cli_classifies_a_folder():
    r = run(['classify', MODEL, SAMPLES, '--json', '--top-k', '2'])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out) == 10
    for item in out:
        digit = os.path.basename(item['image'])[len('digit_'):-len('.png')]
        assert item['top'][0]['label'] == digit and len(item['top']) == 2
    assert '10/10' in r.stderr or '10/10' in r.stderr.replace(' ', '')     # progress shown for a folder
    r = run(['classify', MODEL, os.path.join(SAMPLES, 'digit_7.png')])
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[-1] == '7'


def test_cli_without_pillow_says_what_to_install(tmp_path):
    block = tmp_path / 'sitecustomize.py'
    block.write_text(import_blocker('PIL', 'tqdm'))
    env = dict(ENV, PYTHONPATH=str(tmp_path) + os.pathsep + ENV['PYTHONPATH'])
    r = subprocess.run([sys.executable, '-m', 'engine', 'classify', MODEL, SAMPLES], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert 'pip install Pillow' in r.stderr and 'Traceback' not in r.stderr


def test_info_shows_labels_and_checksum():
    r = run(['info', MODEL, '--json'])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['labels'] == 10 and d['preprocess']['crop'] == 32 and len(d['file_crc32']) == 8
    assert d['build']['isa']


def test_cli_progress_without_tqdm(tmp_path):
    block = tmp_path / 'sitecustomize.py'
    block.write_text(import_blocker('tqdm'))
    env = dict(ENV, PYTHONPATH=str(tmp_path) + os.pathsep + ENV['PYTHONPATH'])
    r = subprocess.run([sys.executable, '-m', 'engine', 'classify', MODEL, SAMPLES, '--batch-size', '4'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert '4/10 images' in r.stderr and '10/10 images' in r.stderr


def test_pytorch_itself_agrees_on_the_held_out_set(model, held_out):
    """The shipped state dict, run by PyTorch now, against the engine file."""
    from conftest import require_torch
    torch = require_torch()
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    from train_digits import build_net
    net = build_net()
    net.load_state_dict(torch.load(os.path.join(WEIGHTS, 'digits_shufflenet.pth'), weights_only=True))
    net.eval()
    x = np.stack([to_array(im, model.preprocessing, 1) for im in held_out['images']])
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = model(x)
    np.testing.assert_array_equal(out.argmax(1), ref.argmax(1))
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert np.abs(ref - held_out['torch_logits']).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_a_16_bit_png_is_scaled_not_clipped(model, tmp_path):
    """The same digit as 8 and as 16 bits per pixel: the same answer."""
    from PIL import Image
    eight = np.asarray(Image.open(os.path.join(SAMPLES, 'digit_3.png')))
    path16 = tmp_path / 'digit_3_16bit.png'
    Image.fromarray(eight.astype(np.uint16) * 257).save(path16)
    assert Image.open(path16).mode.startswith('I')
    by16, by8 = model.classify([str(path16), eight], top_k=1)
    assert by16[0][0] == by8[0][0] == '3'
    assert by16[0][1] == pytest.approx(by8[0][1], abs=1e-6)
    x16 = to_array(str(path16), model.preprocessing, 1)
    np.testing.assert_array_equal(x16, to_array(eight, model.preprocessing, 1))


def test_a_decompression_bomb_is_a_clear_error(model, tmp_path):
    """A small PNG declaring 20000x20000 pixels: a ValueError naming the file."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    path = tmp_path / 'bomb.png'
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 20000, 20000, 8, 0, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(bytes(48_000))) + chunk(b'IEND', b''))
    with pytest.raises(ValueError, match='bomb.png.*pixels'):
        model.classify([str(path)])


def test_an_elongated_image_resizes_only_what_the_crop_keeps(model, tmp_path):
    """1x20000: resized whole (shorter side to 32) it would be 32x640000;
    only the part under the crop is resized, in a process that stays small,
    and a gradient's centre comes out as its centre."""
    from PIL import Image
    path = tmp_path / 'line.png'
    Image.fromarray((np.arange(20000) * 255 // 19999).astype(np.uint8)[None, :]).save(path)
    code = ('import re, sys, engine\n'
            'from engine.preprocess import MAX_RESIZED_PIXELS, to_array\n'
            'spec = dict(resize=256, crop=224, mean=[0.0], std=[1.0])\n'
            'x = to_array(sys.argv[1], spec, 1)\n'
            'assert 256 * 256 * 20000 > MAX_RESIZED_PIXELS\n'
            'print(x.shape, round(float(x.mean()), 3))\n'
            'print(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read()).group(1))\n')
    r = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True, text=True,
                       env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    shape, peak_kib = r.stdout.strip().splitlines()
    assert shape.startswith('(1, 224, 224) 0.49')
    assert int(peak_kib) < 300 << 10, f'peak RSS {int(peak_kib) >> 10} MiB'


def test_bad_api_arguments_are_value_errors(model):
    sample = os.path.join(SAMPLES, 'digit_3.png')
    for kwargs, match in ((dict(top_k=-3), 'top_k'), (dict(top_k=0), 'top_k'), (dict(top_k=2.5), 'top_k'),
                          (dict(batch_size=0), 'batch_size'), (dict(batch_size=-1), 'batch_size'),
                          (dict(preprocessing={'mena': [0.5]}), "unknown preprocessing setting.*'mena'")):
        with pytest.raises(ValueError, match=match):
            model.classify([sample], **kwargs)
    with pytest.raises(ValueError, match='list of images.*classify\\(\\[image\\]\\)'):
        model.classify(sample)
    with pytest.raises(ValueError, match='list of images'):
        model.classify(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match='empty'):
        model.classify([np.zeros((0, 0), np.uint8)])
    assert len(model.classify([sample], top_k=3)[0]) == 3


def test_a_folder_with_bad_files_reports_them_and_classifies_the_rest(tmp_path):
    import shutil
    folder = tmp_path / 'photos'
    (folder / 'b_sub').mkdir(parents=True)
    (folder / 'a_sub').mkdir()
    shutil.copy(os.path.join(SAMPLES, 'digit_7.png'), folder / 'b_sub' / 'seven.png')
    shutil.copy(os.path.join(SAMPLES, 'digit_2.png'), folder / 'a_sub' / 'two.png')
    shutil.copy(os.path.join(SAMPLES, 'digit_5.png'), folder / 'five.png')
    (folder / 'notes.jpg').write_text('not an image')
    os.symlink('loop.png', folder / 'loop.png')             # a link to itself
    r = run(['classify', MODEL, str(folder), '--json', '--top-k', '1', '--quiet'])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    names = [os.path.relpath(item['image'], folder) for item in out]
    assert names == ['five.png', 'loop.png', 'notes.jpg', 'a_sub/two.png', 'b_sub/seven.png']
    assert [item['top'][0]['label'] for item in out if 'top' in item] == ['5', '2', '7']
    errors = {os.path.basename(item['image']): item['error'] for item in out if 'error' in item}
    assert set(errors) == {'loop.png', 'notes.jpg'} and all(errors.values())
    assert sum('skipped' in line for line in r.stderr.splitlines()) == 2
    r = run(['classify', MODEL, str(folder / 'notes.jpg'), str(folder / 'loop.png'), str(folder / 'none.png')])
    assert r.returncode == 2 and 'none of the 3 images could be read' in r.stderr
    assert 'Traceback' not in r.stderr


def test_the_documented_recipe_makes_the_shipped_file(tmp_path):
    """weights/README.md's conversion command, run as written (output to a
    temporary file), gives the shipped model: the same graph, weights,
    labels and preprocessing, and the train script uses the same arguments."""
    from conftest import require_torch
    require_torch()
    import shlex
    with open(os.path.join(WEIGHTS, 'README.md')) as f:
        line = next(l for l in f if l.startswith('python tools/convert_pytorch.py tools.train_digits'))
    argv = shlex.split(line)
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    from train_digits import convert_args
    assert argv[2:] == convert_args('weights')
    argv[argv.index('-o') + 1] = str(tmp_path / 'digits.engine')
    r = subprocess.run([sys.executable] + argv[1:], cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    made, shipped = engine.load(tmp_path / 'digits.engine').graph, engine.load(MODEL).graph
    assert made.meta == shipped.meta and made.input_shape == shipped.input_shape
    assert made.input_sizes.to_dict() == shipped.input_sizes.to_dict()
    assert [(n.name, n.op, n.inputs, n.attrs) for n in made.nodes] == \
        [(n.name, n.op, n.inputs, n.attrs) for n in shipped.nodes]
    for a, b in zip(made.nodes, shipped.nodes):
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
