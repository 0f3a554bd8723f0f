"""Which input sizes a converted model is known to compute correctly.

torch.export traces a model's Python code once; code that branches on the
input's size (`if x.shape[-1] > 20:`) is traced down one branch.  The
converter exports with dynamic batch, height and width, and torch.export then
states the sizes its trace holds for: a range per dimension, and guards,
small integer expressions in the sizes ("(1 + ((W - 1) // 8)) != 1").  Both
travel in the model file (graph.input_sizes); Model.run refuses a size
outside them with a ValueError instead of giving a silently wrong answer.
Where the export could not keep the sizes dynamic, they are pinned to the
example's.

Guards come from files, so they are never passed to eval(): they are parsed
with Python's `ast` and evaluated by a walker that knows integers, N, H and
W, + - * // %, comparisons, and/or/not, min and max, and the float
arithmetic of scale factors (float(H), 1.5 * ..., trunc, floor, ceil), and
nothing else."""
import ast
import math
import operator

from engine.errors import ModelFileError

DIMS = {'batch': 'N', 'height': 'H', 'width': 'W'}
MAX_GUARDS = 1000
MAX_GUARD_CHARS = 2000

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_CALLS = {'max': max, 'min': min, 'trunc': math.trunc, 'floor': math.floor, 'ceil': math.ceil, 'float': float}


def parse_guard(text):
    """The AST of a guard; ValueError for anything outside the language."""
    if not isinstance(text, str) or len(text) > MAX_GUARD_CHARS:
        raise ValueError(f'a guard must be a string of at most {MAX_GUARD_CHARS} characters')
    try:
        tree = ast.parse(text, mode='eval')
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ValueError(f'guard {text[:80]!r} does not parse ({type(e).__name__})') from None
    for node in ast.walk(tree):
        ok = (isinstance(node, (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.USub,
                                ast.UAdd, ast.Not, ast.Compare, ast.BinOp, ast.Load))
              or type(node) in _BINARY or type(node) in _COMPARE
              or (isinstance(node, ast.Constant) and type(node.value) in (int, bool, float))
              or (isinstance(node, ast.Name) and node.id in ('N', 'H', 'W'))
              or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in _CALLS and node.args and not node.keywords))
        if isinstance(node, ast.Name) and node.id in _CALLS:
            ok = True       # the function name of a call
        if not ok:
            raise ValueError(f'guard {text[:80]!r}: {type(node).__name__} is not allowed in a guard')
    return tree


def evaluate_guard(tree, sizes):
    """The value of a parsed guard for sizes {'N': n, 'H': h, 'W': w}."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in sizes:
                raise ValueError(f'{node.id} is not a size')
            return sizes[node.id]
        if isinstance(node, ast.BoolOp):
            values = (ev(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return (not v) if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, right in zip(node.ops, node.comparators):
                right = ev(right)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            return _CALLS[node.func.id](*(ev(a) for a in node.args))
        raise ValueError(f'{type(node).__name__} in a guard')      # parse_guard lets none through
    return ev(tree)


class SizeDomain:
    """Ranges [lo, hi] (hi None: unbounded) of batch, height and width, and
    guards over N, H and W; `note` says why they are what they are."""

    def __init__(self, ranges, guards=(), note=''):
        self.ranges = {k: (int(lo), None if hi is None else int(hi)) for k, (lo, hi) in ranges.items()}
        self.guards = list(guards)
        self.note = note
        self._trees = [parse_guard(g) for g in self.guards]

    def problem(self, n, h, w):
        """None if (n, h, w) is inside the domain, else what is wrong."""
        values = {'batch': n, 'height': h, 'width': w}
        for dim, (lo, hi) in self.ranges.items():
            v = values[dim]
            if v < lo or (hi is not None and v > hi):
                if lo == hi:
                    return f'its {dim} must be {lo}'
                return f'its {dim} must be ' + (f'from {lo} to {hi}' if hi is not None else f'at least {lo}')
        env = {'N': n, 'H': h, 'W': w}
        for text, tree in zip(self.guards, self._trees):
            try:
                ok = bool(evaluate_guard(tree, env))
            except (ArithmeticError, ValueError, TypeError):
                ok = False
            if not ok:
                return f'the size must satisfy {text}'
        return None

    def describe(self):
        """One line: 'batch 1 or more, height 16 to 64, width 32; 3 guards'."""
        parts = []
        for dim, (lo, hi) in self.ranges.items():
            parts.append(f'{dim} {lo}' if lo == hi else
                         f'{dim} {lo} or more' if hi is None else f'{dim} {lo} to {hi}')
        guards = f'; {len(self.guards)} guard{"s" * (len(self.guards) != 1)}' if self.guards else ''
        return ', '.join(parts) + guards

    def to_dict(self):
        return {'ranges': {k: [lo, hi] for k, (lo, hi) in self.ranges.items()},
                'guards': list(self.guards), 'note': self.note}

    @classmethod
    def from_dict(cls, d):
        """From a file: ModelFileError on anything malformed."""
        try:
            if not isinstance(d, dict) or set(d) - {'ranges', 'guards', 'note'}:
                raise ValueError('must be an object with ranges, guards and note')
            ranges, guards, note = d.get('ranges', {}), d.get('guards', []), d.get('note', '')
            if not isinstance(ranges, dict) or set(ranges) - set(DIMS):
                raise ValueError(f'ranges must be an object with keys among {", ".join(DIMS)}')
            for k, r in ranges.items():
                if (not isinstance(r, list) or len(r) != 2 or not _is_int(r[0]) or r[0] < 0
                        or not (r[1] is None or (_is_int(r[1]) and r[1] >= r[0]))):
                    raise ValueError(f'range of {k} must be [lo, hi or null], got {r!r}')
            if not isinstance(guards, list) or len(guards) > MAX_GUARDS:
                raise ValueError(f'guards must be a list of at most {MAX_GUARDS}')
            if not isinstance(note, str):
                raise ValueError('note must be a string')
            return cls(ranges, guards, note[:2000])
        except ValueError as e:
            raise ModelFileError(f'input sizes: {e}') from None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)
