"""Hostile model files: loading any mutation of a valid file either works or
raises ModelFileError; a file that loads either runs or raises a clear
ValueError.  Never a crash, a hang, another exception or a MemoryError.

Two fuzzers, both bounded for CI (ENGINE_FUZZ_EXAMPLES raises the count for a
long session): a seeded corpus of byte flips, truncations, and header numbers
replaced by extreme values; and hypothesis, mutating the graph description."""
import json
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.fileformat import parse, to_bytes, with_checksum
from engine.graph import Graph, Node

EXAMPLES = int(os.environ.get('ENGINE_FUZZ_EXAMPLES', '400'))
EXTREMES = [0, -1, 1, 3, 4097, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 63 - 1, -2 ** 63, 10 ** 30,
            1e308, -1e308, 0.5]


def small_model_bytes():
    """A little of everything: conv, depthwise, pooling, shuffle, concat, add, linear."""
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    conv = dict(stride=[1, 1], dilation=[1, 1], clamp=[0.0, None])
    nodes = [
        Node('c1', 'conv', ['input'], dict(conv, in_channels=3, out_channels=8, kernel=[3, 3], padding=[1, 1],
                                           groups=1), {'weight': w(8, 3, 3, 3), 'bias': w(8)}),
        Node('dw', 'conv', ['c1'], dict(conv, in_channels=8, out_channels=8, kernel=[3, 3], padding=[1, 1],
                                        groups=8), {'weight': w(8, 1, 3, 3)}),
        Node('pw', 'conv', ['dw'], dict(conv, in_channels=8, out_channels=8, kernel=[1, 1], padding=[0, 0],
                                        groups=2, act='hardswish'), {'weight': w(8, 4, 1, 1)}),
        Node('pool', 'maxpool', ['pw'], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1], dilation=[1, 1],
                                             ceil_mode=True)),
        Node('avg', 'avgpool', ['c1'], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1], ceil_mode=True,
                                            count_include_pad=False)),
        Node('cat', 'concat', ['pool', 'avg']),
        Node('shuf', 'gather', ['cat'], {'indices': [int(i) for i in np.arange(16).reshape(2, 8).T.ravel()]}),
        Node('sum', 'add', ['shuf', 'shuf'], {'clamp': None}),
        Node('gap', 'global_avgpool', ['sum'], {'keepdims': False}),
        Node('fc', 'linear', ['gap'], dict(in_features=16, out_features=5, clamp=None), {'weight': w(5, 16)}),
    ]
    return to_bytes(engine.Model(Graph('input', (1, 3, 12, 12), nodes, ['fc']), threads=1).graph)


SEED = small_model_bytes()
X = np.random.default_rng(1).standard_normal((2, 3, 12, 12)).astype(np.float32)


def check(data):
    """The property: a clear error or a working model, nothing else.  The
    checksum is made to fit the mutation, so that what is behind it, the
    checks of every number and name, is what gets fuzzed."""
    try:
        graph = parse(with_checksum(data))
    except engine.ModelFileError:
        return 'refused'
    try:
        out = engine.Model(graph, threads=2)(X)
    except (ValueError, TypeError) as e:
        assert str(e), 'an error without a message'
        return 'refused at run'
    assert isinstance(out, np.ndarray)
    return 'ran'


def test_the_seed_runs():
    assert check(SEED) == 'ran'


def header_span(data):
    n = int.from_bytes(data[:8], 'little')
    return 8, 8 + n


def test_seeded_corpus():
    rng = np.random.default_rng(2024)
    h0, h1 = header_span(SEED)
    header = SEED[h0:h1].decode()
    numbers = [m.span() for m in re.finditer(r'-?\d+(\.\d+)?', header)]
    outcomes = {}
    for i in range(EXAMPLES * 5):
        kind = i % 4
        data = bytearray(SEED)
        if kind == 0:           # flip bits, mostly in the header
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, h1 if rng.random() < 0.8 else len(data)))
                data[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:         # truncate
            data = data[:int(rng.integers(0, len(data)))]
        elif kind == 2:         # a number of the header (lengths, offsets, shapes, attributes) made extreme
            a, b = numbers[int(rng.integers(0, len(numbers)))]
            text = header[:a] + repr(EXTREMES[int(rng.integers(0, len(EXTREMES)))]) + header[b:]
            raw = text.encode()
            data = bytearray(len(raw).to_bytes(8, 'little') + raw + SEED[h1:])
        else:                   # the 8-byte header length made extreme
            data[:8] = int(EXTREMES[int(rng.integers(0, 10))] % (1 << 64)).to_bytes(8, 'little')
        outcome = check(bytes(data))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get('refused', 0) > 0


def _graph_json(data):
    h0, h1 = header_span(data)
    header = json.loads(data[h0:h1])
    return header, json.loads(header['__metadata__']['graph'])


def _rebuild(header, graph):
    header['__metadata__']['graph'] = json.dumps(graph)
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    h0, h1 = header_span(SEED)
    return len(raw).to_bytes(8, 'little') + raw + SEED[h1:]


VALUES = st.one_of(st.sampled_from(EXTREMES), st.integers(-10, 10), st.none(), st.booleans(),
                   st.text(max_size=3), st.lists(st.integers(-3, 5000), max_size=3),
                   st.floats(allow_nan=False))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(node=st.integers(0, 9), field=st.sampled_from(['attrs', 'inputs', 'op', 'params', 'name']),
       key=st.integers(0, 8), value=VALUES, also_input_shape=st.booleans())
def test_mutated_graphs(node, field, key, value, also_input_shape):
    header, graph = _graph_json(SEED)
    nd = graph['nodes'][node]
    if field == 'attrs' and nd['attrs']:
        name = sorted(nd['attrs'])[key % len(nd['attrs'])]
        nd['attrs'][name] = value
    elif field == 'inputs':
        nd['inputs'] = [value] if not isinstance(value, list) else value
    elif field == 'params' and nd['params']:
        name = sorted(nd['params'])[key % len(nd['params'])]
        nd['params'][name] = value if key % 2 else graph['nodes'][(node + 1) % 10]['params'].get('weight', value)
    else:
        nd[field] = value
    if also_input_shape:
        graph['input']['shape'] = [1, 3, value, 12] if isinstance(value, int) else value
    check(_rebuild(header, graph))
