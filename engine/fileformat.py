"""The model file: a safetensors container (8-byte little-endian header
length, a JSON header, raw little-endian float32 tensors), with the graph as
JSON in the header's __metadata__, so standard tools can list the tensors.

Opening a file never runs code (no pickle) and every number in it is checked
before it is used; any problem raises ModelFileError naming it.  A CRC-32 of
the tensor data in the metadata catches bit rot (SD cards) on load."""
import json
import os
import zlib

import numpy as np

from engine.errors import ModelFileError
from engine.graph import from_dict, to_dict

MAGIC_FORMAT = 'shufflenet-engine'
MAX_HEADER = 64 << 20          # bytes of JSON a sane model file needs, with room


def save(graph, path):
    d, tensors = to_dict(graph)
    body = b''.join(arr.astype('<f4', copy=False).tobytes() for arr in tensors.values())
    header = {'__metadata__': {'format': MAGIC_FORMAT, 'graph': json.dumps(d, allow_nan=False),
                               'data_crc32': f'{zlib.crc32(body):08x}'}}
    pos = 0
    for key, arr in tensors.items():
        header[key] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [pos, pos + arr.nbytes]}
        pos += arr.nbytes
    blob = json.dumps(header, allow_nan=False).encode()
    blob += b' ' * (-len(blob) % 8)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(len(blob).to_bytes(8, 'little'))
        f.write(blob)
        f.write(body)
    os.replace(tmp, path)


def stored_checksum(path):
    """The data_crc32 in a model file's metadata (the file is not otherwise read)."""
    with open(path, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        if n > MAX_HEADER:
            raise ModelFileError(f'{path}: header length {n} is too large')
        try:
            return json.loads(f.read(n)).get('__metadata__', {}).get('data_crc32')
        except (ValueError, AttributeError) as e:
            raise ModelFileError(f'{path}: header is not valid JSON ({e})') from None


def load_graph(path, verify=True):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise ModelFileError(f'cannot read model file {path!r}: {e.strerror}') from None
    try:
        return parse(data, verify=verify)
    except ModelFileError as e:
        raise ModelFileError(f'{path}: {e}') from None


def parse(data, verify=True):
    """Graph from the bytes of a model file; verify=False skips the checksum."""
    if len(data) < 8:
        raise ModelFileError(f'file is {len(data)} bytes: too short to be a model file (truncated?)')
    n = int.from_bytes(data[:8], 'little')
    if n > MAX_HEADER:
        raise ModelFileError(f'header length {n} is larger than the {MAX_HEADER} bytes allowed: '
                             'not a model file, or corrupted')
    if 8 + n > len(data):
        raise ModelFileError(f'header length {n} runs past the end of the {len(data)}-byte file (truncated?)')
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f'header is not valid JSON ({e}): not a model file, or corrupted') from None
    if not isinstance(header, dict):
        raise ModelFileError('header is not a JSON object')
    meta = header.pop('__metadata__', None)
    if not isinstance(meta, dict) or meta.get('format') != MAGIC_FORMAT:
        raise ModelFileError(f'not a {MAGIC_FORMAT} model file (a safetensors file without the '
                             'engine graph in its metadata?)')
    body = memoryview(data)[8 + n:]
    tensors = _tensors(header, body)       # sizes and offsets first: they name truncation
    if verify:
        stored = meta.get('data_crc32')
        if not isinstance(stored, str):
            raise ModelFileError('no data_crc32 checksum in the metadata (load with verify=False to skip)')
        if f'{zlib.crc32(body):08x}' != stored.lower():
            raise ModelFileError(f'tensor data checksum mismatch (stored {stored}, computed '
                                 f'{zlib.crc32(body):08x}): the file is corrupted')
    try:
        graph_dict = json.loads(meta.get('graph'))
    except (TypeError, ValueError) as e:
        raise ModelFileError(f'graph metadata is not valid JSON: {e}') from None
    if not isinstance(graph_dict, dict):
        raise ModelFileError('graph metadata is not a JSON object')
    return from_dict(graph_dict, tensors)


def _tensors(header, body):
    spans = []
    tensors = {}
    for key, entry in header.items():
        if not isinstance(entry, dict) or entry.get('dtype') != 'F32':
            raise ModelFileError(f'tensor {key!r}: only float32 (F32) tensors are supported, got {entry!r}'[:300])
        shape, offs = entry.get('shape'), entry.get('data_offsets')
        if (not isinstance(shape, list) or len(shape) > 8 or
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 1 << 31 for d in shape)):
            raise ModelFileError(f'tensor {key!r}: bad shape {shape!r}'[:300])
        if (not isinstance(offs, list) or len(offs) != 2 or
                not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise ModelFileError(f'tensor {key!r}: bad data_offsets {offs!r}'[:300])
        begin, end = offs
        count = int(np.prod(shape, dtype=object))
        if not 0 <= begin <= end <= len(body):
            raise ModelFileError(f'tensor {key!r}: data [{begin}, {end}) lies outside the '
                                 f'{len(body)} bytes of tensor data (truncated?)')
        if end - begin != 4 * count:
            raise ModelFileError(f'tensor {key!r}: shape {shape} needs {4 * count} bytes, '
                                 f'its data has {end - begin}')
        spans.append((begin, end, key))
        tensors[key] = np.frombuffer(body[begin:end], dtype='<f4').reshape(shape).astype(np.float32)
    spans.sort()
    pos = 0
    for begin, end, key in spans:
        if begin != pos:
            raise ModelFileError(f'tensor {key!r} starts at byte {begin}, expected {pos}: '
                                 'tensor data overlaps or has holes')
        pos = end
    if pos != len(body):
        raise ModelFileError(f'{len(body) - pos} bytes of data after the last tensor')
    return tensors
