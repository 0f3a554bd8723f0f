"""The checks an op's definition makes of a node's attributes and
parameters (graphs come from files: every number is checked before a
planner relies on it).  Each raises ModelFileError naming the node."""
from engine.errors import ModelFileError

MAX_WINDOW = 4096       # kernel sizes, strides, paddings and dilations above this are refused


def pair(attrs, key, node, minimum):
    v = attrs.get(key)
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(e, int) and not isinstance(e, bool) for e in v)):
        raise ModelFileError(f'node {node!r}: attribute {key!r} must be two integers, got {v!r}')
    if min(v) < minimum or max(v) > MAX_WINDOW:
        raise ModelFileError(f'node {node!r}: attribute {key!r} = {list(v)} out of range')
    return tuple(v)


def integer(attrs, key, node, minimum=1):
    v = attrs.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum or v > 1 << 24:
        raise ModelFileError(f'node {node!r}: attribute {key!r} must be an integer >= {minimum}, got {v!r}')
    return v


def flag(attrs, key, node):
    if not isinstance(attrs.get(key), bool):
        raise ModelFileError(f'node {node!r}: {key} must be true or false')
    return attrs[key]


def param(node, key, shape):
    p = node.params.get(key)
    if p is None:
        raise ModelFileError(f'node {node.name!r}: parameter {key!r} is missing')
    if tuple(p.shape) != tuple(shape):
        raise ModelFileError(f'node {node.name!r}: parameter {key!r} has shape {tuple(p.shape)}, '
                             f'expected {tuple(shape)}')


def one_input(node, ins, rank=None):
    """The (channels, rank) of a node's one input."""
    if len(ins) != 1:
        raise ModelFileError(f'node {node.name!r} ({node.op}) takes one input, got {len(ins)}')
    if rank is not None and ins[0][1] != rank:
        raise ModelFileError(f'node {node.name!r} ({node.op}) needs a rank-{rank} input, got rank {ins[0][1]}')
    return ins[0]
