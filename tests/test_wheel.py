"""The package as users install it: a wheel built from this checkout,
installed into a new virtualenv, converts an ONNX file with
`python -m engine convert` from a folder outside the checkout (a wheel has
no tools/ and no tests/)."""
import os
import subprocess
import sys

import numpy as np

from conftest import require_onnx

onnx, ort = require_onnx()

from onnx import TensorProto, helper, numpy_helper   # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(args, cwd, timeout=1200):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONHOME')}
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f'{" ".join(map(str, args))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return r.stdout


def test_convert_from_an_installed_wheel(tmp_path):
    sh([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp_path / 'dist'), ROOT], tmp_path)
    wheel, = (tmp_path / 'dist').iterdir()
    sh([sys.executable, '-m', 'venv', str(tmp_path / 'venv')], tmp_path)
    python = str(tmp_path / 'venv' / 'bin' / 'python')
    sh([python, '-m', 'pip', 'install', '-q', str(wheel), 'onnx', 'onnxruntime'], tmp_path)

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    w = np.random.default_rng(0).standard_normal((5, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]), helper.make_node('Relu', ['c'], ['y'])],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 5, 'H', 'W'])],
        [numpy_helper.from_array(w, 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 10
    (elsewhere / 'm.onnx').write_bytes(model.SerializeToString())

    out = sh([python, '-m', 'engine', 'convert', 'm.onnx', '-o', 'm.engine', '--check'], elsewhere)
    assert out.rstrip().endswith('OK'), out
    where = sh([python, '-c', 'import engine; print(engine.__file__)'], elsewhere)
    assert 'site-packages' in where and not where.startswith(ROOT), where
