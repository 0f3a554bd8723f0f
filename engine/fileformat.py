"""The model file: a safetensors container (8-byte little-endian header
length, a JSON header, raw little-endian float32 tensors, or float16 for the
kernels and matrices of a model saved so, int8 for those of int8 layers:
graph.stored_dtype), with the graph as
JSON in the header's __metadata__, so standard tools can list the tensors.

Opening a file never runs code (no pickle) and every number in it is checked
before it is used; any problem raises ModelFileError naming it.  A CRC-32 of
the whole file (header, graph, labels and tensors; its own eight digits
counted as zeros) catches bit rot on SD cards and edited files alike.  It is
the first entry of the header, at a fixed place, so that finding it needs no
trust in the rest."""
import json
import os
import stat
import zlib

import numpy as np

from engine.errors import ModelFileError
from engine.graph import from_dict, to_dict, validate
from engine.memory import check_memory

MAGIC_FORMAT = 'shufflenet-engine'
MAX_HEADER = 64 << 20          # bytes of JSON a sane model file needs, with room
CHECKSUM_PREFIX = b'{"__metadata__": {"file_crc32": "'
CHECKSUM_AT = 8 + len(CHECKSUM_PREFIX)      # where the checksum's 8 hex digits start
UNSET = b'0' * 8
DTYPES = {'F32': np.dtype('<f4'), 'F16': np.dtype('<f2'), 'I8': np.dtype('i1')}     # safetensors' type names


def to_bytes(graph):
    """The file's bytes for a graph."""
    d, tensors = to_dict(graph)
    header = {'__metadata__': {'file_crc32': UNSET.decode(), 'format': MAGIC_FORMAT,
                               'graph': json.dumps(d, allow_nan=False)}}
    pos = 0
    for key, arr in tensors.items():
        code = next(c for c, t in DTYPES.items() if t == arr.dtype)
        header[key] = {'dtype': code, 'shape': list(arr.shape), 'data_offsets': [pos, pos + arr.nbytes]}
        pos += arr.nbytes
    blob = json.dumps(header, allow_nan=False).encode()
    blob += b' ' * (-len(blob) % 8)
    data = bytearray(len(blob).to_bytes(8, 'little') + blob)
    assert data[8:CHECKSUM_AT] == CHECKSUM_PREFIX
    for arr in tensors.values():
        data += arr.astype(arr.dtype.newbyteorder('<'), copy=False).tobytes()
    return with_checksum(data)


def with_checksum(data):
    """data (a model file's bytes) with the checksum its content needs; data
    unchanged where it has no place for one."""
    data = bytearray(data)
    if data[8:CHECKSUM_AT] == CHECKSUM_PREFIX and len(data) >= CHECKSUM_AT + 8:
        data[CHECKSUM_AT:CHECKSUM_AT + 8] = b'%08x' % _crc(data)
    return bytes(data)


def save(graph, path):
    """Write atomically: a temporary file beside `path`, then a rename."""
    if os.path.isdir(path):
        raise IsADirectoryError(f'{path} is a folder: give a file name for the model')
    data = to_bytes(graph)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _crc(data):
    """CRC-32 of a file's bytes with its checksum digits taken as UNSET."""
    view = memoryview(data)
    crc = zlib.crc32(view[:CHECKSUM_AT])
    crc = zlib.crc32(UNSET, crc)
    return zlib.crc32(view[CHECKSUM_AT + 8:], crc)


def stored_checksum(path):
    """The file_crc32 a model file declares (the file is not otherwise checked)."""
    with open(path, 'rb') as f:
        head = f.read(CHECKSUM_AT + 8)
    return head[CHECKSUM_AT:].decode('ascii', 'replace') if head[8:CHECKSUM_AT] == CHECKSUM_PREFIX else None


def load_graph(path, verify=True, check=True):
    """Graph from a model file: its kind, size and header are checked before
    the tensors are read, so a FIFO, a device or a huge file is refused
    instead of read until memory runs out.  check=False leaves the graph's
    validation (graph.validate) to the caller: Model does it."""
    try:
        try:
            # non-blocking: opening a FIFO must not wait for a writer
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                raise ModelFileError(f'not a regular file ({_kind(info.st_mode)})')
            with os.fdopen(fd, 'rb') as f:
                head = f.read(8)
                n = _header_length(head, info.st_size)
                head += f.read(n)
                header = _header(head, n)
                total = 8 + n + _body_length(header)
                if total != info.st_size:
                    raise ModelFileError(_size_mismatch(total, info.st_size))
                check_memory(total, 'the model file', ModelFileError)
                data = bytearray(total)
                data[:len(head)] = head
                if f.readinto(memoryview(data)[len(head):]) != total - len(head):
                    raise ModelFileError('the file changed while it was read')
        except OSError as e:
            raise ModelFileError(f'cannot read model file: {e.strerror or e}') from None
        return _graph(data, n, header, verify, check)
    except ModelFileError as e:
        raise ModelFileError(f'{path}: {e}') from None


def parse(data, verify=True, check=True):
    """Graph from the bytes of a model file; verify=False skips the checksum,
    check=False the graph's validation (as load_graph)."""
    n = _header_length(data[:8], len(data))
    header = _header(data[:8 + n], n)
    total = 8 + n + _body_length(header)
    if total != len(data):
        raise ModelFileError(_size_mismatch(total, len(data)))
    return _graph(data, n, header, verify, check)


def _kind(mode):
    for test, name in ((stat.S_ISDIR, 'a folder'), (stat.S_ISFIFO, 'a FIFO'), (stat.S_ISCHR, 'a device'),
                       (stat.S_ISBLK, 'a device'), (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'not a file'


def _header_length(head, size):
    if size < 8 or len(head) < 8:
        raise ModelFileError(f'file is {size} bytes: too short to be a model file (truncated?)')
    n = int.from_bytes(head[:8], 'little')
    if n > MAX_HEADER:
        raise ModelFileError(f'header length {n} is larger than the {MAX_HEADER} bytes allowed: '
                             'not a model file, or corrupted')
    if 8 + n > size:
        raise ModelFileError(f'header length {n} runs past the end of the {size}-byte file (truncated?)')
    return n


def _json(raw, what):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        why = 'nested too deeply' if isinstance(e, RecursionError) else str(e)
        raise ModelFileError(f'{what} is not valid JSON ({why}): not a model file, or corrupted') from None


def _header(head, n):
    header = _json(bytes(head[8:8 + n]), 'header')
    if not isinstance(header, dict):
        raise ModelFileError('header is not a JSON object')
    meta = header.get('__metadata__')
    if not isinstance(meta, dict) or meta.get('format') != MAGIC_FORMAT:
        raise ModelFileError(f'not a {MAGIC_FORMAT} model file (a safetensors file without the '
                             'engine graph in its metadata?)')
    return header


def _size_mismatch(expected, size):
    if size < expected:
        return f'the tensors need {expected} bytes, the file has {size} (truncated?)'
    return f'{size - expected} bytes after the last tensor (the file has {size}, the tensors end at {expected})'


def _graph(data, n, header, verify, check):
    meta = header['__metadata__']
    if verify:
        stored = meta.get('file_crc32')
        if data[8:CHECKSUM_AT] != CHECKSUM_PREFIX or not isinstance(stored, str):
            raise ModelFileError('no file_crc32 checksum at the start of the header (a file from an '
                                 'older version: engine.load(path, verify=False).save(new_path) '
                                 'adds one, if you trust it)')
        computed = f'{_crc(data):08x}'
        if stored.encode() != bytes(data[CHECKSUM_AT:CHECKSUM_AT + 8]) or stored != computed:
            raise ModelFileError(f'checksum mismatch (stored {stored[:8]!r}, computed {computed}): '
                                 'the file is corrupted or was edited')
    tensors, stored = _tensors(header, memoryview(data)[8 + n:])
    if not isinstance(meta.get('graph'), str):
        raise ModelFileError('no graph in the metadata')
    graph_dict = _json(meta['graph'], 'graph metadata')
    if not isinstance(graph_dict, dict):
        raise ModelFileError('graph metadata is not a JSON object')
    graph = from_dict(graph_dict, tensors, stored)
    if check:
        validate(graph)
    return graph


def _entries(header):
    """(key, dtype, shape, (begin, end)) of each tensor, checked for types."""
    for key, entry in header.items():
        if key == '__metadata__':
            continue
        if not isinstance(entry, dict) or entry.get('dtype') not in DTYPES:
            raise ModelFileError(f'tensor {key!r}: only float32 (F32), float16 (F16) and int8 (I8) tensors are '
                                 f'supported, got {entry!r}'[:300])
        dtype = DTYPES[entry['dtype']]
        shape, offs = entry.get('shape'), entry.get('data_offsets')
        if (not isinstance(shape, list) or len(shape) > 8 or
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 1 << 31 for d in shape)):
            raise ModelFileError(f'tensor {key!r}: bad shape {shape!r}'[:300])
        if (not isinstance(offs, list) or len(offs) != 2 or
                not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise ModelFileError(f'tensor {key!r}: bad data_offsets {offs!r}'[:300])
        begin, end = offs
        count = int(np.prod(shape, dtype=object))
        if not 0 <= begin <= end:
            raise ModelFileError(f'tensor {key!r}: data_offsets [{begin}, {end}) are not a byte range')
        if end - begin != dtype.itemsize * count:
            raise ModelFileError(f'tensor {key!r}: shape {shape} needs {dtype.itemsize * count} bytes, '
                                 f'its data has {end - begin}')
        yield key, dtype, shape, (begin, end)


def _body_length(header):
    """Bytes of tensor data the header describes: its ranges must tile it."""
    pos = 0
    for begin, end, key in sorted((b, e, k) for k, _, _, (b, e) in _entries(header)):
        if begin != pos:
            raise ModelFileError(f'tensor {key!r} starts at byte {begin}, expected {pos}: '
                                 'tensor data overlaps or has holes')
        pos = end
    return pos


def _tensors(header, body):
    """({key: float32 array}, {key: the type it was stored in})"""
    tensors, stored = {}, {}
    for key, dtype, shape, (begin, end) in _entries(header):
        tensors[key] = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).astype(np.float32)
        stored[key] = dtype.name
    return tensors, stored
