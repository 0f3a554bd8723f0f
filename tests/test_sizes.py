"""Which input sizes a converted model holds for (engine/sizes.py): the guard
language and its evaluator, the domain in the model file, and Model.run
refusing sizes outside it."""
import json
import math

import numpy as np
import pytest

import engine
from engine import zoo
from engine.fileformat import parse, to_bytes, with_checksum
from engine.sizes import SizeDomain, evaluate_guard, parse_guard


@pytest.mark.parametrize('text, sizes, expected', [
    ('W <= 20', dict(N=1, H=5, W=20), True),
    ('W <= 20', dict(N=1, H=5, W=21), False),
    ('(1 + (((-1) + W) // 8)) != 1', dict(N=1, H=1, W=9), True),
    ('(1 + (((-1) + W) // 8)) != 1', dict(N=1, H=1, W=8), False),
    ('W >= 3 and H >= 3', dict(N=1, H=3, W=2), False),
    ('N == 1 or H % 2 == 0', dict(N=2, H=4, W=1), True),
    ('max(1, H - 3) * min(W, 2) == 2', dict(N=1, H=2, W=7), True),
    ('1 < 3*W*H < 10', dict(N=1, H=1, W=3), True),
    ('not -H < -3', dict(N=1, H=4, W=1), False),
    # a scale factor's output size (torch: math.trunc(0.5*torch.sym_float(...)))
    ('trunc(0.5*float(1 + (((-1) + W) // 2))) >= 1', dict(N=1, H=1, W=2), False),
    ('trunc(0.5*float(1 + (((-1) + W) // 2))) >= 1', dict(N=1, H=1, W=3), True),
    ('floor(1.7*float(W)) != 5 and ceil(0.5*float(H)) == 2', dict(N=1, H=3, W=3), False),
    ('floor(1.7*float(W)) != 5 and ceil(0.5*float(H)) == 2', dict(N=1, H=4, W=4), True),
])
def test_guards_evaluate_as_python_would(text, sizes, expected):
    assert evaluate_guard(parse_guard(text), sizes) is expected
    functions = {'max': max, 'min': min, 'trunc': math.trunc, 'floor': math.floor, 'ceil': math.ceil, 'float': float}
    assert eval(text, functions, dict(sizes)) == expected    # the oracle, on trusted text


@pytest.mark.parametrize('text', ["__import__('os').system('true')", 'H.bit_length() > 1', 'H ** 99999',
                                  "open('x')", 'lambda: 1', '[H][0]', 'H if W else N', 'x == 1',
                                  'max', 'math.trunc(H) > 1', 'float.fromhex("1") < H', '"a" < "b"',
                                  '(' * 300 + 'H' + ')' * 300, 'H' * 3000])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        evaluate_guard(parse_guard(text), dict(N=1, H=1, W=1))


def test_a_failing_evaluation_refuses_the_size():
    d = SizeDomain({'height': (1, None)}, ['H // (W - 1) >= 0'])
    assert d.problem(1, 4, 2) is None
    assert 'must satisfy' in d.problem(1, 4, 1)          # division by zero: refused, not raised
    for text in ('trunc(1e999 * float(H)) > 0', 'floor(float(H) * 1e999 - float(H) * 1e999) > 0'):
        assert 'must satisfy' in SizeDomain({}, [text]).problem(1, 4, 2)   # inf, NaN: refused


def model_with(domain):
    graph = zoo.shufflenet_v2('0.5', num_classes=10, input_size=32)
    graph.input_sizes = domain
    return engine.Model(graph, threads=1)


def test_the_domain_travels_in_the_file_and_refuses_sizes():
    domain = SizeDomain({'batch': (1, 4), 'height': (16, None), 'width': (16, 64)}, ['H % 2 == 0'],
                        'an example note')
    model = engine.Model(parse(to_bytes(model_with(domain).graph)), threads=1)
    assert model.graph.input_sizes.to_dict() == domain.to_dict()
    assert model(np.zeros((4, 3, 16, 64), np.float32)).shape == (4, 10)
    for shape, why in [((5, 3, 32, 32), 'its batch must be from 1 to 4'),
                       ((1, 3, 14, 32), 'its height must be at least 16'),
                       ((1, 3, 32, 65), 'its width must be from 16 to 64'),
                       ((1, 3, 33, 32), 'must satisfy H % 2 == 0')]:
        with pytest.raises(ValueError, match=f'{why}.*an example note'):
            model(np.zeros(shape, np.float32))


def test_a_graph_without_a_domain_runs_at_any_size():
    model = model_with(None)
    assert model(np.zeros((1, 3, 17, 41), np.float32)).shape == (1, 10)


@pytest.mark.parametrize('sizes', [
    {'ranges': {'depth': [1, 2]}}, {'ranges': {'height': [5, 2]}}, {'ranges': {'width': [-1, None]}},
    {'ranges': {'width': '1-5'}}, {'guards': ["__import__('os')"]}, {'guards': 'H > 1'},
    {'guards': ['H > 1'] * 1001}, {'note': 5}, {'extra': 1}, [1, 2],
])
def test_a_malformed_domain_in_a_file_is_a_model_file_error(sizes):
    data = to_bytes(model_with(None).graph)
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + n])
    graph = json.loads(header['__metadata__']['graph'])
    graph['input']['sizes'] = sizes
    header['__metadata__']['graph'] = json.dumps(graph)
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    with pytest.raises(engine.ModelFileError, match='input sizes'):
        parse(with_checksum(len(raw).to_bytes(8, 'little') + raw + data[8 + n:]))
