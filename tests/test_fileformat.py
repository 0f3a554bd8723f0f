"""Model files: round trip, safetensors compatibility, and a clear
ModelFileError (never a crash) for truncated, corrupted or tampered files."""
import json

import numpy as np
import pytest

import engine
from engine import zoo
from engine.fileformat import parse, to_bytes, with_checksum

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
    """A file from an edited header, its checksum made to fit (so that the
    checks behind the checksum are what is tested)."""
    raw = json.dumps(header).encode()
    raw += b' ' * (-len(raw) % 8)
    return with_checksum(len(raw).to_bytes(8, 'little') + raw + body)


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
    data = tamper(blob, lambda h: h['__metadata__'].pop('file_crc32'))
    with pytest.raises(engine.ModelFileError, match='no file_crc32 checksum'):
        parse(data)
    assert parse(data, verify=False).nodes


DIGITS = 'weights/digits_shufflenet.engine'


def edited(data, old, new):
    """The file with one string of its header replaced, length kept or not."""
    n = int.from_bytes(data[:8], 'little')
    head = data[8:8 + n].replace(old, new, 1)
    assert head != data[8:8 + n], f'{old!r} is not in the header'
    return len(head).to_bytes(8, 'little') + head + data[8 + n:]


@pytest.mark.parametrize('old, new', [(b'\\"stride\\": [1, 1]', b'\\"stride\\": [3, 1]'),     # the graph
                                      (b'\\"3\\", \\"4\\"', b'\\"8\\", \\"4\\"'),          # a label
                                      (b'\\"mean\\": [0.25]', b'\\"mean\\": [0.35]'),        # preprocessing
                                      (b'"shape": [', b'"shape":  [')])                     # the tensor table
def test_an_edited_header_is_refused(old, new):
    """The checksum covers the header, the graph and the metadata, not only
    the tensors: a stride, a label or a mean changed in a text editor."""
    with open(DIGITS, 'rb') as f:
        data = f.read()
    with pytest.raises(engine.ModelFileError, match='checksum mismatch'):
        parse(edited(data, old, new))


def test_every_byte_of_the_header_is_covered():
    """One bit flipped in each byte of the header (a random bit per byte,
    the length field included): no such file loads.  A small model, so that
    the test stays quick under emulation; the edits above are the digits
    model's."""
    from helpers import one_op_graph
    rng = np.random.default_rng(1)
    graph = one_op_graph('conv', (1, 3, 8, 8), dict(in_channels=3, out_channels=4, kernel=[3, 3],
                                                    stride=[1, 1], padding=[1, 1], dilation=[1, 1],
                                                    groups=1, clamp=[0.0, 6.0]),
                         {'weight': rng.standard_normal((4, 3, 3, 3)).astype(np.float32)})
    graph.meta.update(labels=['a', 'b', 'c', 'd'], preprocess=dict(resize=8, crop=8, mean=[0.5] * 3,
                                                                   std=[0.25] * 3))
    data = to_bytes(graph)
    n = int.from_bytes(data[:8], 'little')
    bits = np.random.default_rng(0).integers(0, 8, 8 + n)
    for pos in range(8 + n):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(bits[pos])
        with pytest.raises(engine.ModelFileError):
            parse(bytes(flipped))


def test_a_deeply_nested_header_is_a_model_file_error(tmp_path):
    raw = b'[' * 100_000
    path = tmp_path / 'nested.engine'
    path.write_bytes(len(raw).to_bytes(8, 'little') + raw)
    with pytest.raises(engine.ModelFileError, match='nested too deeply'):
        engine.load(path)
    graph = json.dumps({'version': 1, 'nodes': 'X'}).replace('"X"', '[' * 100_000 + ']' * 100_000)
    with pytest.raises(engine.ModelFileError, match='nested too deeply'):
        parse(rebuild({'__metadata__': {'file_crc32': '00000000', 'format': 'shufflenet-engine',
                                        'graph': graph}}, b''))
    from engine.__main__ import main
    assert main(['info', str(path)]) == 2


def test_devices_folders_and_fifos_are_refused_without_reading(tmp_path):
    import os
    import threading
    fifo = tmp_path / 'fifo.engine'
    os.mkfifo(fifo)
    errors = []

    def load(path):
        try:
            engine.load(path)
        except engine.ModelFileError as e:
            errors.append(str(e))
    for path, kind in ((fifo, 'a FIFO'), ('/dev/zero', 'a device'), (tmp_path, 'a folder')):
        t = threading.Thread(target=load, args=(path,), daemon=True)
        t.start()
        t.join(10)
        if t.is_alive():                        # release the reader blocked on the FIFO
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            t.join(10)
            pytest.fail(f'loading {path} blocked')
        assert errors and f'not a regular file ({kind})' in errors.pop()


def test_a_huge_file_is_refused_from_its_header(blob, tmp_path):
    """8 GB: a valid model followed by gigabytes of zeros (a sparse file) is
    refused after reading the header, in a process that stays small."""
    import subprocess
    import sys
    path = tmp_path / 'huge.engine'
    path.write_bytes(blob)
    with open(path, 'r+b') as f:
        f.truncate(8 << 30)
    code = ('import re, sys, engine\n'
            'try:\n'
            '    engine.load(sys.argv[1])\n'
            'except engine.ModelFileError as e:\n'
            '    print(e)\n'
            'print(re.search(r"VmHWM:\\s*(\\d+)", open("/proc/self/status").read()).group(1))\n')
    r = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True, text=True, timeout=120)
    message, peak_kib = r.stdout.strip().splitlines()
    assert 'bytes after the last tensor' in message
    assert int(peak_kib) < 300 << 10, f'peak RSS {int(peak_kib) >> 10} MiB'


def test_a_model_file_is_validated_once_before_its_first_output(tmp_path):
    # the file's graph, not each of the loader, the Model and the planner
    import cProfile
    import pstats
    path = tmp_path / 'm.engine'
    path.write_bytes(to_bytes(zoo.shufflenet_v2('0.5')))
    profile = cProfile.Profile()
    profile.enable()
    engine.load(path, threads=1)(np.zeros((1, 3, 64, 64), np.float32))
    profile.disable()
    calls = {(f, name): stats[1] for (f, _, name), stats in pstats.Stats(profile).stats.items()}
    assert calls[(engine.graph.__file__, 'validate')] == 1


def test_an_input_dtype_other_than_float32_is_refused_clearly():
    # the graph names each tensor's element type (graph.value_dtypes); this
    # version's kernels compute on float32 only, so a file of another says so
    from dataclasses import replace
    graph = replace(zoo.shufflenet_v2('0.5'), input_dtype='int8')
    with pytest.raises(engine.ModelFileError, match="input dtype 'int8': this version runs float32 models only"):
        parse(to_bytes(graph))
    assert set(engine.graph.value_dtypes(zoo.shufflenet_v2('0.5')).values()) == {'float32'}
