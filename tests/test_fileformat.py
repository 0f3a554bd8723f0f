"""Model files: round trip, safetensors compatibility, and a clear
ModelFileError (never a crash) for truncated, corrupted or tampered files."""
import json

import numpy as np
import pytest

import engine
from engine import zoo
from engine.fileformat import parse

SIZE = 64


@pytest.fixture(scope='module')
def small_model():
    return engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=SIZE), threads=1)


@pytest.fixture(scope='module')
def blob(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp('m') / 'm.engine'
    small_model.save(path)
    return path.read_bytes()


def header_of(data):
    n = int.from_bytes(data[:8], 'little')
    return n, json.loads(data[8:8 + n])


def rebuild(header, body):
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    return len(raw).to_bytes(8, 'little') + raw + body


def test_round_trip(small_model, blob, tmp_path):
    path = tmp_path / 'a.engine'
    path.write_bytes(blob)
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    np.testing.assert_array_equal(engine.load(path, threads=1)(x), small_model(x))


def test_is_a_safetensors_container(blob):
    n, header = header_of(blob)
    assert header['__metadata__']['format'] == 'shufflenet-engine'
    assert all(isinstance(v, str) for v in header['__metadata__'].values())
    body = len(blob) - 8 - n
    spans = sorted(v['data_offsets'] for k, v in header.items() if k != '__metadata__')
    assert spans[0][0] == 0 and spans[-1][1] == body
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(v['dtype'] == 'F32' for k, v in header.items() if k != '__metadata__')


@pytest.mark.parametrize('cut', [0, 3, 8, 9, 100, -1, -4, -1000])
def test_truncated(blob, cut):
    data = blob[:cut] if cut >= 0 else blob[:len(blob) + cut]
    with pytest.raises(engine.ModelFileError):
        parse(data)


def test_every_truncation_of_the_header_is_refused(blob):
    n, _ = header_of(blob)
    for cut in range(0, 8 + n, max(1, n // 97)):
        with pytest.raises(engine.ModelFileError):
            parse(blob[:cut])


def test_byte_flips_in_the_header_never_crash(blob):
    n, _ = header_of(blob)
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, 8 + n, 300):
        data = bytearray(blob)
        data[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            parse(bytes(data))      # a flip in a name or a digit can leave a valid file
        except engine.ModelFileError:
            pass


def tamper(blob, edit):
    n, header = header_of(blob)
    edit(header)
    return rebuild(header, blob[8 + n:])


def first_tensor(header):
    return next(k for k in header if k != '__metadata__')


def edit_graph(fn):
    def edit(header):
        g = json.loads(header['__metadata__']['graph'])
        fn(g)
        header['__metadata__']['graph'] = json.dumps(g)
    return edit


def conv_node(g):
    return next(n for n in g['nodes'] if n['op'] == 'conv' and n['attrs']['groups'] == 1)


TAMPERING = {
    'huge header length': lambda b: (1 << 62).to_bytes(8, 'little') + b[8:],
    'header past the end': lambda b: (len(b)).to_bytes(8, 'little') + b[8:],
    'not json': lambda b: b[:8] + b'{' * int.from_bytes(b[:8], 'little') + b[8 + int.from_bytes(b[:8], 'little'):],
    'other format': lambda b: tamper(b, lambda h: h['__metadata__'].update(format='other')),
    'no metadata': lambda b: tamper(b, lambda h: h.pop('__metadata__')),
    'offsets outside the data': lambda b: tamper(b, lambda h: h[first_tensor(h)].update(data_offsets=[0, 1 << 40])),
    'negative offset': lambda b: tamper(b, lambda h: h[first_tensor(h)].update(data_offsets=[-8, 0])),
    'shape does not match bytes': lambda b: tamper(b, lambda h: h[first_tensor(h)].update(shape=[3, 1 << 30])),
    'float64 tensor': lambda b: tamper(b, lambda h: h[first_tensor(h)].update(dtype='F64')),
    'string shape': lambda b: tamper(b, lambda h: h[first_tensor(h)].update(shape='big')),
    'graph not json': lambda b: tamper(b, lambda h: h['__metadata__'].update(graph='{nodes')),
    'graph version': lambda b: tamper(b, edit_graph(lambda g: g.update(version=99))),
    'unknown op': lambda b: tamper(b, edit_graph(lambda g: g['nodes'][3].update(op='teleport'))),
    'dangling input': lambda b: tamper(b, edit_graph(lambda g: g['nodes'][3].update(inputs=['nowhere']))),
    'cycle': lambda b: tamper(b, edit_graph(lambda g: g['nodes'][0].update(inputs=[g['nodes'][5]['name']]))),
    'groups do not divide': lambda b: tamper(b, edit_graph(lambda g: conv_node(g)['attrs'].update(groups=7))),
    'zero stride': lambda b: tamper(b, edit_graph(lambda g: conv_node(g)['attrs'].update(stride=[0, 1]))),
    'huge kernel': lambda b: tamper(b, edit_graph(lambda g: conv_node(g)['attrs'].update(kernel=[1 << 40, 1]))),
    'missing tensor': lambda b: tamper(b, edit_graph(lambda g: conv_node(g)['params'].update(weight='nope'))),
    'no outputs': lambda b: tamper(b, edit_graph(lambda g: g.update(outputs=[]))),
    'bad input shape': lambda b: tamper(b, edit_graph(lambda g: g['input'].update(shape=[1, 3, -5, 2]))),
    'gather out of range': lambda b: tamper(b, edit_graph(
        lambda g: next(n for n in g['nodes'] if n['op'] == 'gather')['attrs'].update(indices=[10 ** 6]))),
}


@pytest.mark.parametrize('what', list(TAMPERING))
def test_tampered_files_are_refused(blob, what):
    with pytest.raises(engine.ModelFileError):
        parse(TAMPERING[what](blob))


def test_errors_name_the_file_and_problem(tmp_path, blob):
    path = tmp_path / 'cut.engine'
    path.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(engine.ModelFileError, match='cut.engine.*truncated'):
        engine.load(path)
    with pytest.raises(engine.ModelFileError, match='cannot read'):
        engine.load(tmp_path / 'missing.engine')
    assert issubclass(engine.ModelFileError, ValueError)


def test_checksum_catches_a_flipped_bit_in_the_weights(blob, tmp_path):
    data = bytearray(blob)
    data[-5] ^= 0x10                       # inside the last tensor
    with pytest.raises(engine.ModelFileError, match='checksum mismatch'):
        parse(bytes(data))
    graph = parse(bytes(data), verify=False)  # the caller may skip it
    assert graph.nodes
    path = tmp_path / 'flip.engine'
    path.write_bytes(bytes(data))
    with pytest.raises(engine.ModelFileError, match='checksum'):
        engine.load(path)
    assert engine.load(path, verify=False).graph.nodes


def test_missing_checksum_is_refused_unless_skipped(blob):
    data = tamper(blob, lambda h: h['__metadata__'].pop('data_crc32'))
    with pytest.raises(engine.ModelFileError, match='checksum'):
        parse(data)
    assert parse(data, verify=False).nodes
