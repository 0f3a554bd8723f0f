"""The command line: tools/convert_pytorch.py, python -m engine bench / info,
and running a converted file where torch cannot be imported."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import import_blocker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
BLOCK_TORCH = import_blocker('torch')


def run(args, **kw):
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=600, **kw)


def test_converted_file_runs_without_torch(tmp_path):
    """convert_pytorch.py with a checkpoint; the file then runs in a process
    that cannot import torch and gives PyTorch's answer."""
    from conftest import require_torch
    torch = require_torch()
    import torch_models
    net = torch_models.randomize(torch_models.shufflenet_v2_x0_5(), seed=7)
    torch.save(net.state_dict(), tmp_path / 'w.pth')
    out = tmp_path / 'x05.engine'
    r = run(['tools/convert_pytorch.py', 'tests.torch_models:shufflenet_v2_x0_5', '-o', str(out),
             '--checkpoint', str(tmp_path / 'w.pth'), '--input-shape', '1,3,96,96', '--check'])
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'check: max |engine - torch|' in r.stdout and 'OK' in r.stdout
    assert 'M MACs' in r.stdout

    x = torch.randn(3, 3, 80, 80, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net(x).numpy()
    np.save(tmp_path / 'x.npy', x.numpy())
    code = BLOCK_TORCH + (
        "import numpy as np, engine\n"
        f"y = engine.load({str(out)!r})(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "assert not any(k == 'torch' or k.startswith('torch.') for k in sys.modules)\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit('torch imported')\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y)\n")
    r = run(['-c', code])
    assert r.returncode == 0, r.stdout + r.stderr
    y = np.load(tmp_path / 'y.npy')
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() <= 1e-4 * max(1, np.abs(ref).max())


def test_convert_rejects_a_checkpoint_that_does_not_fit(tmp_path):
    from conftest import require_torch
    torch = require_torch()
    import torch_models
    state = torch_models.shufflenet_v2_x0_5().state_dict()
    state.pop('fc.bias')
    state['extra.weight'] = torch.zeros(1)
    state['conv5.0.weight'] = torch.zeros(3, 3)
    torch.save(state, tmp_path / 'bad.pth')
    r = run(['tools/convert_pytorch.py', 'tests.torch_models:shufflenet_v2_x0_5', '-o',
             str(tmp_path / 'x.engine'), '--checkpoint', str(tmp_path / 'bad.pth')])
    assert r.returncode != 0
    assert 'missing (1): fc.bias' in r.stderr
    assert 'unexpected (1): extra.weight' in r.stderr
    assert 'mis-shaped (1): conv5.0.weight' in r.stderr


def test_import_engine_does_not_import_torch():
    r = run(['-c', BLOCK_TORCH + "import engine, engine.model, engine.plan, engine.bench, engine.zoo\n"
                                 "m = engine.Model(engine.zoo.shufflenet_v2('0.5', input_size=32))\n"
                                 "import numpy as np; print(m(np.zeros((1, 3, 32, 32), np.float32)).shape)"])
    assert r.returncode == 0, r.stderr
    assert '(1, 1000)' in r.stdout


def test_bench_prints_its_latency_table():
    r = run(['-m', 'engine', 'bench', '--runs', '5', '--warmup', '1', '--threads', '1'])
    assert r.returncode == 0, r.stderr
    assert 'shufflenet_v2_x1_0' in r.stdout and 'random weights' in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith('latency'))
    lo, med, hi = (float(v) for v in line.split()[1:4])
    assert 0 < lo <= med <= hi


def test_bench_json_and_profile(tmp_path):
    r = run(['-m', 'engine', 'bench', '--arch', 'shufflenet_v2_x0_5', '--size', '64', '--runs', '4',
             '--warmup', '1', '--json', '--profile'])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['input_shape'] == [1, 3, 64, 64] and d['runs'] == 4
    assert d['ms']['min'] <= d['ms']['median'] <= d['ms']['max']
    kinds = {row['kind'] for row in d['profile']}
    assert 'conv1x1' in kinds and not kinds & {'gather', 'concat', 'shuffle'}


def test_bench_and_info_on_a_model_file(tmp_path):
    import engine
    from engine import zoo
    path = tmp_path / 'z.engine'
    engine.Model(zoo.shufflenet_v2('0.5', input_size=64)).save(path)
    r = run(['-m', 'engine', 'bench', '--model', str(path), '--runs', '3', '--warmup', '1', '--profile'])
    assert r.returncode == 0, r.stderr
    assert 'conv1x1' in r.stdout and 'total' in r.stdout
    r = run(['-m', 'engine', 'info', str(path), '--json'])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['input_shape'] == [1, 3, 64, 64] and d['output_shapes'] == [[1, 1000]]
    assert d['macs'] > 0 and d['parameters'] > 0


def test_bench_reports_a_detectors_decoding_and_nms(tmp_path):
    """On a detector, bench also times decoding and NMS of one image's
    output, on --image's detections: as many as Model.detect finds there."""
    import engine
    model, image = os.path.join(ROOT, 'weights', 'shapes_nanodet.engine'), os.path.join(
        ROOT, 'weights', 'detect_samples', 'scene_1.png')
    r = run(['-m', 'engine', 'bench', '--model', model, '--image', image, '--runs', '3', '--warmup', '1',
             '--threads', '1', '--json'])
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)['postprocess']
    found = engine.load(model).detect([image])[0]
    assert p['detections'] == len(found) > 0 and p['candidates'] >= p['detections']
    assert 0 < p['ms']['min'] <= p['ms']['median'] <= p['ms']['max']
    r = run(['-m', 'engine', 'bench', '--model', model, '--runs', '2', '--warmup', '0', '--threads', '1'])
    assert r.returncode == 0, r.stderr
    assert 'decoding + NMS' in r.stdout
    r = run(['-m', 'engine', 'bench', '--image', image, '--runs', '2'])
    assert r.returncode == 2 and '--image is for detectors' in r.stderr


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / 'bad.engine'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    r = run(['-m', 'engine', 'bench', '--model', str(bad)])
    assert r.returncode == 2 and 'error:' in r.stderr and 'Traceback' not in r.stderr
    r = run(['-m', 'engine', 'bench', '--threads', '0'])
    assert r.returncode == 2 and '--threads' in r.stderr


@pytest.mark.parametrize('args, what', [
    (['bench', '--size', '0'], '--size'), (['bench', '--warmup', '-5'], '--warmup'),
    (['bench', '--runs', '0'], '--runs'), (['bench', '--batch', '0'], '--batch'),
    (['bench', '--threads', '2.7'], '--threads'), (['bench', '--arch', 'nope'], '--arch'),
    (['classify', 'm.engine', 'x.png', '--top-k', '-3'], '--top-k'),
    (['classify', 'm.engine', 'x.png', '--batch-size', '0'], '--batch-size'),
    (['classify', 'm.engine', 'x.png', '--crop', '0'], '--crop'),
])
def test_bad_command_line_values_are_usage_errors(args, what):
    """argparse's usage line and `error: argument --x: ...`, exit status 2."""
    from engine.cli import main
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert 'usage:' in err.getvalue() and f'error: argument {what}' in err.getvalue()


def test_every_command_line_option_has_help():
    import argparse
    from engine.cli import main
    parsers = []
    real = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        parsers.append(self)
        return real(self, *a, **k)
    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            main(['--help'])
    finally:
        argparse.ArgumentParser.parse_args = real
    subparsers = [a for a in parsers[0]._actions if isinstance(a, argparse._SubParsersAction)][0]
    for name, parser in subparsers.choices.items():
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f'{name} {action.option_strings or action.dest} has no help text'


FAMILY = ['torch_models:shufflenet_v2_x1_0', 'family_models:shufflenet_v1_g3',
          'family_models:shufflenet_v1_g8', 'family_models:shufflenet_v2_plus',
          'family_models:mobilenet_v2', 'family_models:mobilenet_v3_large',
          'family_models:mobilenet_v3_small', 'family_models:mnasnet1_0',
          'family_models:resnet18', 'family_models:squeezenet1_1']


@pytest.mark.parametrize('source', FAMILY)
def test_convert_tool_on_the_family(source, tmp_path, monkeypatch, capsys):
    """module:callable plus a checkpoint of non-default weights, --check."""
    from conftest import require_torch
    torch = require_torch()
    import importlib
    import torch_models
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import convert_pytorch
    module, fn = source.split(':')
    net = torch_models.randomize(getattr(importlib.import_module(module), fn)(), seed=11)
    torch.save(net.state_dict(), tmp_path / 'w.pth')
    monkeypatch.chdir(ROOT)
    rc = convert_pytorch.main([f'tests.{source}', '-o', str(tmp_path / 'm.engine'),
                               '--checkpoint', str(tmp_path / 'w.pth'), '--check'])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert 'OK' in out and 'layers' in out and 'M parameters' in out and 'M MACs' in out and 'MB' in out


def test_bench_warns_about_governor_and_throttling(monkeypatch):
    from engine import device
    monkeypatch.setattr(device, 'governor', lambda: 'ondemand')
    monkeypatch.setattr(device, 'throttled', lambda: 0x50005)
    facts, warnings = device.report()
    assert facts['governor'] == 'ondemand' and facts['cpu']
    assert any("'ondemand', not 'performance'" in w for w in warnings)
    assert any('0x50005' in w for w in warnings)
    monkeypatch.setattr(device, 'governor', lambda: 'performance')
    monkeypatch.setattr(device, 'throttled', lambda: 0)
    assert device.report()[1] == []


def test_cpu_model_on_a_pi(monkeypatch):
    from engine import device
    files = {'/proc/device-tree/model': 'Raspberry Pi 4 Model B Rev 1.4\x00',
             '/proc/cpuinfo': 'processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n'}
    monkeypatch.setattr(device, '_read', lambda p: files.get(p, '').strip().strip('\x00') or None)
    assert device.cpu_model() == 'Raspberry Pi 4 Model B Rev 1.4'


def test_convert_stores_labels_and_preprocessing(tmp_path):
    from conftest import require_torch
    require_torch()
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(f'class {i}' for i in range(1000)) + '\n')
    out = tmp_path / 'l.engine'
    r = run(['tools/convert_pytorch.py', 'tests.torch_models:shufflenet_v2_x0_5', '-o', str(out),
             '--input-shape', '1,3,96,96', '--labels', str(labels), '--mean', '0.5', '0.5', '0.5',
             '--std', '0.25', '0.25', '0.25'])
    assert r.returncode == 0, r.stderr
    assert '1000 labels' in r.stdout
    import engine
    m = engine.load(out)
    assert m.labels[:2] == ['class 0', 'class 1'] and len(m.labels) == 1000
    assert m.preprocessing == {'resize': 110, 'crop': 96, 'mean': [0.5] * 3, 'std': [0.25] * 3}
    r = run(['tools/convert_pytorch.py', 'tests.torch_models:shufflenet_v2_x0_5', '-o', str(out),
             '--mean', '0.5'])
    assert r.returncode != 0 and 'mean' in r.stderr


def test_bench_peers_ratio_range_is_per_round():
    """bench_peers reports the lowest and highest of the per-round ratios of
    medians (the peer's over the engine's), not of single runs."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('bench_peers', os.path.join(ROOT, 'tools', 'bench_peers.py'))
    bench_peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_peers)
    engine = [[1.0, 1.0, 9.0], [2.0, 2.0, 2.0], [1.0, 1.1, 1.2]]
    peer = [[1.1, 1.1, 0.1], [2.0, 1.8, 1.9], [1.5, 1.5, 1.5]]
    assert bench_peers.round_ratio_range(peer, engine) == pytest.approx([0.95, 1.5 / 1.1])


def test_bench_peers_layer_models(tmp_path):
    """A model conv:CIN-COUT-HW-K-S is one convolution (then a ReLU) on a
    CIN x HW x HW input; every peer's files are made from it and the
    engine's agrees with PyTorch; a malformed name is a clear error."""
    import importlib.util
    import engine
    spec = importlib.util.spec_from_file_location('bench_peers', os.path.join(ROOT, 'tools', 'bench_peers.py'))
    bench_peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_peers)
    net, shape = bench_peers.layer_model('conv:8-12-9-3-2')
    conv = net.conv
    assert shape == (1, 8, 9, 9) and (conv.in_channels, conv.out_channels) == (8, 12)
    assert conv.kernel_size == (3, 3) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert bench_peers.layer_model('shufflenet_v2_x1_0') is None
    files, ref = bench_peers.prepare('conv:8-12-9-3-2', 224, str(tmp_path))
    x = np.load(files['input'])
    assert x.shape == shape and os.path.exists(files['onnx'])
    out = engine.load(files['engine'])(x)
    assert out.shape == (1, 12, 5, 5)
    np.testing.assert_allclose(out.ravel()[:ref.size], ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(SystemExit, match='five integers'):
        bench_peers.layer_model('conv:8-12-9')


def test_bench_peers_worker_protocol_survives_a_runtime_that_prints(tmp_path):
    """A bench_peers worker answers on a stdout of its own: what a runtime
    prints there while it loads (MNN's banner; here the engine's loader
    made to print, from Python and from C) goes to stderr, and the driver
    reads the output, then the times of the runs it asks for and how many
    of them ran on one thread."""
    import engine
    path = os.path.join(ROOT, 'weights', 'digits_shufflenet.engine')
    model = engine.load(path)
    x = np.random.default_rng(0).random((1,) + tuple(model.input_shape[1:]), np.float32)
    np.save(tmp_path / 'x.npy', x)
    files = json.dumps({'engine': path, 'input': str(tmp_path / 'x.npy')})
    code = ("import importlib.util, os, sys\n"
            f"spec = importlib.util.spec_from_file_location('bench_peers', {os.path.join(ROOT, 'tools', 'bench_peers.py')!r})\n"
            "bp = importlib.util.module_from_spec(spec); spec.loader.exec_module(bp)\n"
            "load = bp._load_runner\n"
            "def noisy(*a):\n"
            "    print('a banner'); os.write(1, b'a banner from C\\n')\n"
            "    return load(*a)\n"
            "bp._load_runner = noisy\n"
            f"bp.main(['--worker', 'engine', '--threads', '1', '--files', {files!r}])\n")
    proc = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate('{"runs": 3}\n{"quit": true}\n', timeout=120)
    assert proc.returncode == 0, err
    assert 'a banner' in err and 'a banner from C' in err
    ready, timed = (json.loads(line) for line in out.splitlines())
    np.testing.assert_allclose(ready['output'], model(x).ravel()[:1000], rtol=1e-6)
    assert len(timed['times']) == 3 and min(timed['times']) > 0
    assert timed['one_thread'] == 3         # runs its thread choice gave one thread: all, at --threads 1


@pytest.fixture
def convert_tool(monkeypatch):
    """tools/convert_pytorch.py's main, run in this process from the project folder."""
    from conftest import require_torch
    require_torch()
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import convert_pytorch
    monkeypatch.chdir(ROOT)
    return convert_pytorch


def two_heads():
    """A model with two outputs, for --check."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 2)

        def forward(self, x):
            y = torch.relu(self.conv(x)).mean((2, 3))
            return self.a(y), self.b(y)
    return Net()


SMALL = ['tests.torch_models:shufflenet_v2_x0_5', '--input-shape', '1,3,32,32']


@pytest.mark.parametrize('extra, message', [
    (['-o', '{tmp}'], 'is a folder: give a file name'),
    (['-o', '{tmp}/no/such/folder/m.engine'], 'does not exist'),
    (['-o', '{tmp}/m.engine', '--checkpoint', '{tmp}/missing.pth'], '--checkpoint .*missing.pth: no such file'),
    (['-o', '{tmp}/m.engine', '--labels', '{tmp}/missing.txt'], '--labels .*missing.txt: no such file'),
    (['-o', '{tmp}/m.engine', '--labels', '{tmp}/three.txt'],
     '3 labels for a model whose output is \\(1, 1000\\): one label per class'),
    (['-o', '{tmp}/m.engine', '--checkpoint', '{tmp}/three.txt'], 'cannot load it as a state dict'),
    (['-o', '{tmp}/m.engine', '--input-shape', '1,1,32,32'], 'cannot convert.*channels'),
])
def test_convert_tool_errors_are_one_line_each(convert_tool, tmp_path, capsys, extra, message):
    (tmp_path / 'three.txt').write_text('a\nb\nc\n')
    args = [a.format(tmp=tmp_path) for a in SMALL + extra]
    assert convert_tool.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'Traceback' not in err
    import re
    assert re.search(message, err), err
    assert not [f for f in os.listdir(tmp_path) if '.tmp' in f]         # no stray temporary file


def test_convert_tool_sources_that_do_not_exist(convert_tool, capsys):
    for source, message in (('torchvision:nonexistent', 'torchvision'), ('tests.nope:net', "cannot import 'tests.nope'"),
                            ('tests.torch_models:nope', "has no callable 'nope'"), ('nocolon', 'SOURCE must be')):
        assert convert_tool.main([source, '-o', 'x.engine']) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and message in err and 'Traceback' not in err


def test_convert_check_on_a_model_with_two_outputs(convert_tool, tmp_path, capsys):
    out = tmp_path / 'two.engine'
    assert convert_tool.main(['tests.test_tools:two_heads', '-o', str(out), '--input-shape', '1,3,8,8',
                              '--check']) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('check:')]
    assert len(lines) == 2 and all(line.endswith('OK') for line in lines)
    assert 'output 0' in lines[0] and 'output 1' in lines[1]


def test_check_measures_relative_error(convert_tool):
    """Tiny outputs (torchvision's untrained MobileNetV2 gives ~3e-9) are
    judged by their own scale, and an all-zero output fails."""
    ref = np.random.default_rng(0).standard_normal((2, 10)) * 3e-9
    assert convert_tool.relative_error(ref * (1 + 1e-6), ref) == pytest.approx(1e-6, rel=0.01)
    assert convert_tool.relative_error(np.zeros_like(ref), ref) == pytest.approx(1.0)
    assert convert_tool.relative_error(ref + 1e-10, ref) > convert_tool.TOLERANCE
    assert convert_tool.relative_error(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])) == 0
    assert convert_tool.relative_error(np.array([0.0, 1.0]), np.array([np.nan, 1.0])) == np.inf


def load_tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_count_aarch64_reads_the_probe_output(tmp_path):
    """count_aarch64.py: marks become per-thread differences; blocks keep their
    executions, classes and words (the format tools/arm/probe.c writes)."""
    count = load_tool('count_aarch64')
    probe = tmp_path / 'p.probe'
    probe.write_text('counts insns ldst fmla_f32\n'
                     'mark 10 0:100,10,5\n'
                     'mark 11 0:300,50,25 2:70,7,0\n'
                     'block 4000a0 6 3,1,2 4f821000,3dc00000,54fffe01\n')
    names, marks, blocks = count.parse_probe(str(probe))
    assert names == ['insns', 'ldst', 'fmla_f32']
    per_thread = count.between(marks, 10, 11)
    assert per_thread == {0: [200, 40, 20], 2: [70, 7, 0]}
    assert count.total(per_thread, 3) == [270, 47, 20]
    assert blocks == [(0x4000a0, 6, [3, 1, 2], ('4f821000', '3dc00000', '54fffe01'))]


def test_count_aarch64_core_cycles():
    """Core cycles = mca's cycles per modelled block x its executions, the rest
    of the instructions at the modelled blocks' cycles per instruction."""
    count = load_tool('count_aarch64')
    cpu = count.CPUS['cortex-a72']
    hot = {('a', 'b'): 1000.0, ('c',): 100.0}     # words -> executions per inference; both above MCA_COVER
    mca = {}
    for words, cycles in ((('a', 'b'), 3.0), (('c',), 2.0)):
        mca[count.mca_key(words, cpu.mca_cpu)] = cycles
    e = count.core_cycles(dict(insns=2100 + 900), hot, cpu, mca)
    modelled_insns, modelled_cycles = 2 * 1000 + 100, 3.0 * 1000 + 2.0 * 100
    assert e['core_cycles'] == pytest.approx(modelled_cycles + 900 * modelled_cycles / modelled_insns)
    assert e['mca_share'] == pytest.approx(2100 / 3000)


def test_estimate_pi_scales_the_core_cycles_and_takes_the_busiest_thread():
    """estimate_pi: the core cycles at the board's core_scale and clock, the
    busiest thread's share of them; misses are not added."""
    est = load_tool('estimate_pi')
    pi4, pi5 = est.BOARDS['cortex-a72'], est.BOARDS['cortex-a76']
    counts = dict(insns=3000, l1d_access=500, l1d_miss=40, l2_miss=10, l3_miss=4)
    cell = dict(cpu='cortex-a72', counts=counts, core_cycles=4000.0, threads_insns=[2000, 1000])
    assert est.estimate(cell)['ms'] == pytest.approx(4000 * pi4.core_scale * 2 / 3 / pi4.ghz / 1e6)
    missing = dict(cell, counts=dict(counts, l1d_miss=400, l2_miss=300))
    assert est.estimate(missing)['ms'] == est.estimate(cell)['ms']
    assert est.estimate(dict(cell, cpu='cortex-a76'))['ms'] == pytest.approx(
        4000 * pi5.core_scale * 2 / 3 / pi5.ghz / 1e6)


def test_estimate_pi_fits_the_core_scale_to_the_published_figures():
    """--fit: the least-squares scale of ncnn's one-thread core cycles onto
    PUBLISHED_NCNN, per board; other engines, thread counts and models are
    left out."""
    est = load_tool('estimate_pi')
    pi4 = est.BOARDS['cortex-a72']
    published = {m: ms for (cpu, m, precision), ms in est.PUBLISHED_NCNN.items()
                 if (cpu, precision) == ('cortex-a72', 'fp32')}
    (a, ms_a), (b, ms_b) = list(published.items())[:2]

    def cell(model, seconds, engine='ncnn', threads=1):
        return dict(model=model, cpu='cortex-a72', engine=engine, threads=threads, precision='fp32',
                    core_cycles=seconds * pi4.ghz * 1e9)
    # a at 1/2 of its published time, b at 1/4: scale = (x . y) / (x . x)
    x, y = np.array([ms_a / 2, ms_b / 4]), np.array([ms_a, ms_b])
    cells = [cell(a, ms_a / 2e3), cell(b, ms_b / 4e3), cell(a, 1.0, engine='engine'), cell(a, 1.0, threads=4),
             cell('not_published', 1.0)]
    scale, errors = est.fit_core_scale(cells)['cortex-a72']
    assert scale == pytest.approx(x @ y / (x @ x))
    assert errors == pytest.approx({a: scale / 2 - 1, b: scale / 4 - 1})
    assert 'cortex-a76' not in est.fit_core_scale(cells)


def test_fit_path_costs_least_squares_stay_non_negative():
    """fit_path_costs.nnls: the least squares where they are >= 0 already;
    else the non-negative optimum (Karush-Kuhn-Tucker: the residual's
    gradient 0 on the coefficients above 0, pointing below 0 on those at 0)."""
    fit = load_tool('fit_path_costs')
    rng = np.random.default_rng(5)
    a = rng.uniform(0.5, 2.0, (40, 3))
    x = np.array([0.3, 1.5, 0.7])
    np.testing.assert_allclose(fit.nnls(a, a @ x), x, rtol=1e-9)
    b = a @ np.array([0.3, -1.0, 0.7]) + rng.normal(0, 0.01, 40)
    got = fit.nnls(a, b)
    w = a.T @ (b - a @ got)
    assert (got >= 0).all() and (got == 0).any()
    assert np.abs(w[got > 0]).max() < 1e-8 and (w[got == 0] < 0).all()


def test_count_aarch64_replaces_model_files_whole(tmp_path):
    """A model file is written under another name and renamed into place (a
    count beside it may be reading it): a writer that fails leaves the old
    file as it was, and no temporary file behind."""
    count = load_tool('count_aarch64')
    path = tmp_path / 'input.npy'
    count.replace_file(str(path), lambda name: np.save(name, np.arange(3)))
    np.testing.assert_array_equal(np.load(path), np.arange(3))

    def fails(name):
        with open(name, 'wb') as f:
            f.write(b'half')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        count.replace_file(str(path), fails)
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['input.npy']


def test_count_aarch64_takes_one_layer_models():
    """--models: a counted model, or one layer conv:CIN-COUT-HW-K-S (bench_peers'),
    its input that layer's; another name is refused on the host."""
    count = load_tool('count_aarch64')
    net, shape = count.model_and_shape('conv:8-12-9-3-2')
    assert shape == (1, 8, 9, 9) and (net.conv.in_channels, net.conv.out_channels) == (8, 12)
    assert count.model_name('conv:8-12-9-3-2') == 'conv:8-12-9-3-2'
    assert count.model_name('resnet18') == 'resnet18'
    assert count.model_and_shape('resnet18')[1] == (1, 3, 224, 224)
    with pytest.raises(argparse.ArgumentTypeError, match='nor a layer'):
        count.model_name('resnet19')


def test_count_aarch64_checks_plan_options_before_counting():
    """--plan OPTION=VALUE: a PlanOptions field and a Python literal, refused
    on the host (not minutes later in the emulated process)."""
    count = load_tool('count_aarch64')
    parser = argparse.ArgumentParser()
    count.check_plan(parser, ['winograd=4', 'direct_conv=False', 'winograd_bytes=1048576'])
    for bad in (['winogard=4'], ['winograd'], ['winograd=four']):
        with pytest.raises(SystemExit):
            count.check_plan(parser, bad)
