"""PyTorch -> graph IR, through torch.export (an ATen graph; unlike
torch.fx.symbolic_trace it copes with code that asserts on or branches on
tensor sizes).  torch is imported here only, never by the runtime.

Shape ops (view, reshape, permute, transpose, flatten, chunk, split, select,
getitem, ...) are not mapped one by one: they are evaluated on an array of
element indices, which becomes a channel `gather` view or is refused
(engine/importing.py).  The other ATen ops are made into graph nodes by the
handlers their op's module registers (engine/ops/aten.py).

The export keeps batch, height and width dynamic, so that torch.export
states which sizes its trace holds for (engine/sizes.py): code that branches
on the input's size converts for the sizes that take the same branch, and
the model refuses the others.  Where sizes cannot stay dynamic, the file
says so and the model runs at the example's size only.
"""
import contextlib
import inspect
import io
import logging
import re

import numpy as np

from engine.errors import UnsupportedModelError
from engine.graph import Node, validate
from engine.importing import INPUT, GraphBuilder, Index, Tensor, Unsupported, channel_order
from engine.ops.aten import ATEN
from engine.optimize import optimize
from engine.sizes import DIMS, SizeDomain, evaluate_guard, parse_guard


class _Size(int):
    """A number computed from the input's sizes (x.shape[-1] // 2): its value
    at the example, and the input dimensions it depends on."""

    def __new__(cls, value, depends):
        self = super().__new__(cls, value)
        self.depends = frozenset(depends)
        return self


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError('converting PyTorch models needs torch (pip install torch==2.13.0); '
                          'running converted model files does not') from None
    return torch


def convert(module, example_input, *, optimize_graph=True):
    """Graph of `module` (an nn.Module) for inputs shaped like example_input."""
    torch = _torch()
    x = torch.as_tensor(np.asarray(example_input, np.float32) if isinstance(example_input, np.ndarray)
                        else example_input).float()
    if x.dim() != 4:
        raise ValueError(f'example input must be 4-D NCHW, got shape {tuple(x.shape)}')
    _check_one_input(module)
    user_shape = tuple(int(d) for d in x.shape)
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        ep, note = _export(torch, module, x)
    finally:                    # the caller's module comes back as it was
        for m, training in modes:
            m.training = training
    converter = _Converter(ep, user_shape)
    graph = converter.run()
    graph.input_sizes = converter.size_domain(note)
    validate(graph)
    return optimize(graph) if optimize_graph else graph


def _check_one_input(module):
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if len(required) > 1:
        raise UnsupportedModelError(f'the model\'s forward takes {len(required)} inputs '
                                    f'({", ".join(required)}); the engine runs models of one image input')


def _export(torch, module, x):
    """(ExportedProgram, note) from the first export that works: batch,
    height and width dynamic at a batch of 2 (two images, so that a view
    chain mixing images with channels cannot pass for a channel reorder);
    the example's batch with height and width dynamic; all static.  The
    note says why sizes were pinned.  UnsupportedModelError, with the
    cause, when none works."""
    from torch.export import Dim
    n = x.shape[0]
    attempts = [(x[:1].expand(2, -1, -1, -1).contiguous(), {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}, ''),
                (x, {2: Dim.AUTO, 3: Dim.AUTO}, f'converted for a batch of {n} only: at a batch of 2 '
                                                'torch.export failed ({})'),
                (x, None, 'converted for its example\'s size only: with dynamic sizes torch.export '
                          'failed ({})')]
    first = None
    for inp, dims, note in attempts:
        try:
            return _quiet_export(torch, module, inp, dims), note.format(_first_line(first))
        except Exception as e:      # torch.export raises many kinds; the first explains best
            first = first or e
            last = e
    why = _first_line(last)
    if 'data-dependent' in why:
        why += ' (the model branches on tensor values, which torch.export cannot trace)'
    raise UnsupportedModelError(f'torch.export cannot trace the model at input shape {tuple(x.shape)}: '
                                f'{type(last).__name__}: {why}') from None


def _first_line(e):
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _quiet_export(torch, module, inp, dims):
    """torch.export with its logging and prints kept off the terminal: a
    failure is reported once, by the converter's own error."""
    try:
        from torch.fx.experimental import _config as shape_config
        # no 0/1 specialisation: sizes 1 and 2 keep the traced branch (else
        # every model would refuse planes of 1 pixel, a mere artefact)
        oblivious = shape_config.patch(backed_size_oblivious=True)
    except (ImportError, AttributeError):
        oblivious = contextlib.nullcontext()
    was = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with torch.no_grad(), oblivious, contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            return torch.export.export(module, (inp,), dynamic_shapes=(dims,) if dims else None)
    finally:
        logging.disable(was)


def _flat(values):
    return [e for v in values for e in (_flat(v) if isinstance(v, (list, tuple)) else [v])]


def _module_path(fx_node):
    """Path of the module the node came from; '' for the model's own forward."""
    stack = fx_node.meta.get('nn_module_stack') or {}
    return list(stack.values())[-1][0] if stack else ''


class _Converter(GraphBuilder):
    def __init__(self, ep, user_shape):
        super().__init__()
        self.torch = _torch()
        self.ep = ep
        self.user_shape = user_shape
        sig = ep.graph_signature
        state = dict(ep.state_dict)
        state.update(getattr(ep, 'constants', {}) or {})
        self.params = {}
        for ph, key in list(sig.inputs_to_parameters.items()) + list(sig.inputs_to_buffers.items()) + \
                list(getattr(sig, 'inputs_to_lifted_tensor_constants', {}).items()):
            if key in state:
                self.params[ph] = state[key]
        self.user_inputs = list(sig.user_inputs)
        x = next(n for n in ep.graph.nodes if n.op == 'placeholder' and n.name in self.user_inputs)
        self.input_dims = x.meta['val'].shape
        # the export's size symbols -> 'batch', 'height', 'width'
        self.symbols = {d.node.expr: dim for dim, d in zip(('batch', None, 'height', 'width'), self.input_dims)
                        if dim and isinstance(d, self.torch.SymInt) and d.node.expr.is_Symbol}
        self.pinned = {}        # dimension -> why the conversion holds only at the example's value
        self.guards = []        # more guards (engine/sizes.py) the converted graph needs

    # -- sizes
    def _hint(self, v):
        """The example's value of a size (never int() on a SymInt: that
        would make torch specialise it)."""
        return v.node.hint if isinstance(v, self.torch.SymInt) else int(v)

    def _depends(self, v):
        """The input dimensions a size depends on."""
        if not isinstance(v, self.torch.SymInt):
            return set()
        found = set()
        for sym in v.node.expr.free_symbols:
            found |= {self.symbols[sym]} if sym in self.symbols else set(DIMS)
        return found

    def _pin(self, dims, why):
        for d in dims:
            self.pinned.setdefault(d, why)

    def _example(self):
        return {'N': self._hint(self.input_dims[0]), 'H': self._hint(self.input_dims[2]),
                'W': self._hint(self.input_dims[3])}

    def _guard(self, expression):
        """Add a guard, an expression of the export's size symbols, if the
        engine can check it and it holds at the example; else False."""
        letters = {str(sym): DIMS[dim] for sym, dim in self.symbols.items()}
        text = re.sub(r'\bs\d+\b', lambda m: letters.get(m.group(0), m.group(0)), _guard_text(expression))
        try:
            if not evaluate_guard(parse_guard(text), self._example()):
                return False
        except (ValueError, ArithmeticError, TypeError):
            return False
        if text not in self.guards:
            self.guards.append(text)
        return True

    def size_domain(self, note=''):
        """The SizeDomain this conversion holds for: the export's ranges and
        guards, with dimensions pinned to the example where the converted
        graph depends on them."""
        ranges, notes = {}, [note] if note else []
        for dim, i in (('batch', 0), ('height', 2), ('width', 3)):
            d = self.input_dims[i]
            sym = d.node.expr if isinstance(d, self.torch.SymInt) else None
            if sym is None or not sym.is_Symbol or dim in self.pinned:
                v = self._hint(d)
                ranges[dim] = (v, v)
                continue
            vr = self.ep.range_constraints.get(sym)
            lo = max(1, int(vr.lower)) if vr is not None and vr.lower.is_Integer else 1
            hi = int(vr.upper) if vr is not None and vr.upper.is_Integer else None     # else int_oo
            ranges[dim] = (lo, hi)
        notes += [f'its {dim} is pinned: {why}' for dim, why in self.pinned.items()]
        example = self._example()
        guards = []
        for code in (getattr(self.ep, '_guards_code', None) or []) + self.guards:
            text = re.sub(r"L\['[^']*'\]\.size\(\)\[(\d)\]",
                          lambda m: 'NCHW'[int(m.group(1))] if m.group(1) != '1' else str(self.user_shape[1]),
                          _guard_text(code))
            try:
                ok = evaluate_guard(parse_guard(text), example)
            except (ValueError, ArithmeticError, TypeError):
                ok = False
            if not ok:          # a guard the engine cannot check: only the example's size is safe
                notes.append(f'torch.export assumed {code[:200]}, which the engine cannot check')
                ranges = {dim: (v, v) for dim, v in zip(DIMS, example.values())}
                guards = []
                break
            if text not in guards:
                guards.append(text)
        return SizeDomain(ranges, guards, '; '.join(notes))

    # -- helpers
    def add(self, fx_node, op, inputs, attrs=None, params=None):
        name = self.unique_name(_module_path(fx_node) or fx_node.name, fx_node.name)
        self.nodes.append(Node(name, op, [t.name for t in inputs], attrs or {}, params or {}))
        val = fx_node.meta['val']
        val = val[0] if isinstance(val, (list, tuple)) else val
        return Tensor(name, [self._hint(d) for d in val.shape], [str(d) for d in val.shape])

    def fail(self, fx_node, why):
        where = repr(_module_path(fx_node)) if _module_path(fx_node) else "the model's forward"
        return self.record_failure(f'{why} (module {where}, node {fx_node.name})')

    def param(self, v):
        return np.ascontiguousarray(v.detach().cpu().numpy(), np.float32) if v is not None else None

    def _dims_in(self, fx_node):
        """The input dimensions any size in a node's inputs depends on."""
        found = set()
        for a in fx_node.all_input_nodes:
            val = a.meta.get('val')
            for t in (val if isinstance(val, (list, tuple)) else [val]):
                for d in getattr(t, 'shape', ()):
                    found |= self._depends(d)
        return found or {'batch', 'height', 'width'}

    def _tensor(self, v, fx_node, output=False):
        """A real tensor for an op input (or a model output): materialise an
        index chain as a channel gather (or an output's spatial layout), or
        refuse it."""
        if isinstance(v, (Tensor, Unsupported)):
            return v
        if not isinstance(v, Index):
            raise TypeError('not a tensor')
        laid_out = self.laid_out(v, fx_node.name, output)
        if laid_out is not None:
            return self.fail(fx_node, laid_out) if isinstance(laid_out, str) else laid_out
        src, shape = v.src, v.idx.shape
        chan = channel_order(src.shape, shape, v.idx)
        if isinstance(chan, str):
            return self.fail(fx_node, chan)
        # a channel reorder at the example's size; at every size only if the
        # result keeps the source's batch and planes as they depend on them
        if v.dims is not None:
            planes = src.dims[2:] if len(src.dims) == 4 else ('1', '1')
            keep = src.dims[:1] + (planes if len(shape) == 4 else ('1', '1'))
            got = v.dims[:1] + (v.dims[2:] if len(shape) == 4 else planes)
            for a, b in zip(got, keep):     # e.g. view(-1, C) after a pool: one row per image if 1x1
                if a != b and not self._guard(f'({a}) == ({b})'):
                    self._pin(self._dims_in(fx_node), 'a chain of view ops whose result depends on it')
        return self.channel_view(src, chan, len(shape), fx_node.name)

    # -- walk
    def run(self):
        env = {}
        out = None
        for fx_node in self.ep.graph.nodes:
            if fx_node.op == 'placeholder':
                if fx_node.name in self.params:
                    env[fx_node] = self.params[fx_node.name]
                elif fx_node.name in self.user_inputs:
                    shape = fx_node.meta['val'].shape
                    env[fx_node] = Tensor(INPUT, [self._hint(d) for d in shape], [str(d) for d in shape])
                else:
                    env[fx_node] = None
            elif fx_node.op == 'call_function' and _is_size_arithmetic(self.torch, fx_node):
                val = fx_node.meta.get('val')
                if val is None:         # a run-time assertion on sizes: hold only at the example's
                    self._pin(self._dims_in(fx_node), f'torch.export asserts {fx_node.target}')
                env[fx_node] = _Size(self._hint(val), self._depends(val)) if val is not None else None
            elif fx_node.op == 'call_function':
                env[fx_node] = self._call(fx_node, env)
            elif fx_node.op == 'output':
                out = fx_node.args[0]
        outs = out if isinstance(out, (list, tuple)) else [out]
        results = []
        for o in outs:
            v = self._tensor(env[o], o, output=True)
            if not isinstance(v, (Tensor, Unsupported)):
                self.record_failure(f'output {o} is not a tensor')
            results.append(v)
        return self.finish(results, self.user_shape)

    def _call(self, fx_node, env):
        target = fx_node.target
        name = getattr(target, '__name__', str(target))
        if name == 'getitem':
            seq, i = fx_node.args
            v = env[seq]
            if isinstance(v, (list, tuple)):
                return v[i]
            return v if isinstance(v, Unsupported) else self.fail(fx_node, 'getitem on a non-sequence')

        def arg(a):
            if isinstance(a, (list, tuple)):
                return type(a)(arg(e) for e in a)
            return env[a] if hasattr(a, 'op') and hasattr(a, 'meta') else a
        args = [arg(a) for a in fx_node.args]
        kwargs = {k: arg(v) for k, v in fx_node.kwargs.items()}
        op = getattr(target, '_opname', None) or name
        overload = getattr(target, '_overloadname', '')
        key = op.rstrip('_') if op.endswith('_') and not op.startswith('_') else op
        if key not in _SHAPE_OPS and key not in ATEN:     # reported even after another failure
            return self.fail(fx_node, f'unsupported op aten.{op}.{overload or "default"}')
        if any(isinstance(a, Unsupported) for a in _flat(args) + _flat(kwargs.values())):
            return Unsupported()
        if key == 'cat' and args and all(isinstance(a, (Tensor, Index)) for a in args[0]):
            joined = self.concatenation(args[0], args[1] if len(args) > 1 else kwargs.get('dim', 0))
            if joined is not None:
                return joined
        handler = _SHAPE_OPS.get(key)
        if handler is not None:
            if not (args and isinstance(args[0], (Tensor, Index))):
                return self.fail(fx_node, f'aten.{op} on a non-activation tensor')
            v = self.index(args[0])
            if isinstance(v, Unsupported):
                return v
            return self._with_dims(handler(self, fx_node, v, args[1:], kwargs), fx_node.meta.get('val'))
        handler = ATEN[key]
        sizes = [a for a in _flat(args) + _flat(kwargs.values()) if isinstance(a, _Size)]
        for a in sizes:     # an attribute computed from the input's size holds at the example's only
            self._pin(a.depends, f'aten.{op} takes a number computed from it')

        def materialise(a):     # index chains feeding a real op become gathers
            if isinstance(a, Index):
                return self._tensor(a, fx_node)
            if isinstance(a, (list, tuple)):
                return type(a)(materialise(e) for e in a)
            return a
        args = [materialise(a) for a in args]
        kwargs = {k: materialise(v) for k, v in kwargs.items()}
        if any(isinstance(a, Unsupported) for a in _flat(args) + _flat(kwargs.values())):
            return Unsupported()
        return handler(self, fx_node, args, kwargs)


    def _with_dims(self, result, val):
        """A shape op's Index results with their symbolic shapes."""
        if isinstance(result, list):
            return [self._with_dims(r, v) for r, v in zip(result, val)]
        if isinstance(result, Index) and val is not None:
            result.dims = tuple(str(d) for d in val.shape)
        return result


# torch's spellings of the guard language's functions (engine/sizes.py)
_GUARD_CALLS = {'Max': 'max', 'Min': 'min', 'math.trunc': 'trunc', 'math.floor': 'floor', 'math.ceil': 'ceil',
                'torch.sym_float': 'float'}


def _guard_text(code):
    """A guard of torch's in the guard language: Max( -> max(, and the float
    arithmetic of scale factors (math.trunc(1.5*torch.sym_float(H))) ->
    trunc(1.5*float(H)))."""
    return re.sub(r'(?<![\w.])(Max|Min|math\.trunc|math\.floor|math\.ceil|torch\.sym_float)\(',
                  lambda m: _GUARD_CALLS[m.group(1)] + '(', code)


def _is_size_arithmetic(torch, fx_node):
    """A node computing or asserting on sizes (sym_size, operator.add on
    SymInts, _assert_scalar), not on tensors."""
    val = fx_node.meta.get('val')
    if isinstance(val, (torch.SymInt, torch.SymBool, torch.SymFloat, int, float, bool)):
        return True
    name = getattr(fx_node.target, '__name__', str(fx_node.target))
    return val is None and ('assert' in name or 'constrain' in name)


# ---------------------------------------------------------------------------
# shape ops on index arrays: (converter, fx node, Index, other args, kwargs) -> value

def _dims(d, rank):
    return d % rank


def _view(cv, fx, v, args, kw):
    shape = tuple(cv._hint(s) for s in fx.meta['val'].shape)
    return Index(v.src, v.idx.reshape(shape))


def _transpose(cv, fx, v, args, kw):
    return Index(v.src, np.swapaxes(v.idx, _dims(args[0], v.idx.ndim), _dims(args[1], v.idx.ndim)))


def _permute(cv, fx, v, args, kw):
    return Index(v.src, np.transpose(v.idx, [_dims(d, v.idx.ndim) for d in args[0]]))


def _same(cv, fx, v, args, kw):
    return v


def _chunk(cv, fx, v, args, kw):
    chunks, dim = args[0], _dims(args[1] if len(args) > 1 else kw.get('dim', 0), v.idx.ndim)
    size = -(-v.idx.shape[dim] // chunks)
    return [Index(v.src, p) for p in np.split(v.idx, range(size, v.idx.shape[dim], size), axis=dim)]


def _split(cv, fx, v, args, kw):
    sizes, dim = args[0], _dims(args[1] if len(args) > 1 else kw.get('dim', 0), v.idx.ndim)
    n = v.idx.shape[dim]
    if isinstance(sizes, int):
        sizes = [sizes] * (-(-n // sizes))
    bounds = np.cumsum(sizes)[:-1]
    return [Index(v.src, p) for p in np.split(v.idx, bounds, axis=dim)]


def _unbind(cv, fx, v, args, kw):
    dim = _dims(args[0] if args else kw.get('dim', 0), v.idx.ndim)
    return [Index(v.src, np.take(v.idx, i, axis=dim)) for i in range(v.idx.shape[dim])]


def _select(cv, fx, v, args, kw):
    return Index(v.src, np.take(v.idx, args[1], axis=_dims(args[0], v.idx.ndim)))


def _slice(cv, fx, v, args, kw):
    dim = _dims(args[0] if args else 0, v.idx.ndim)
    start = args[1] if len(args) > 1 else None
    end = args[2] if len(args) > 2 else None
    step = args[3] if len(args) > 3 else 1
    sl = [slice(None)] * v.idx.ndim
    sl[dim] = slice(start, end, step)
    return Index(v.src, v.idx[tuple(sl)])


def _dropout(cv, fx, v, args, kw):
    train = args[1] if len(args) > 1 else kw.get('train', False)
    if train:
        return cv.fail(fx, 'dropout in training mode')
    return v


_SHAPE_OPS = {
    'view': _view, 'reshape': _view, '_unsafe_view': _view, 'flatten': _view,
    'unflatten': _view, 'squeeze': _view, 'unsqueeze': _view,
    'transpose': _transpose, 'swapaxes': _transpose, 'permute': _permute,
    'contiguous': _same, 'clone': _same, 'alias': _same, 'detach': _same,
    'dropout': _dropout, 'feature_dropout': _dropout, 'alpha_dropout': _dropout,
    'chunk': _chunk, 'split': _split, 'split_with_sizes': _split, 'unbind': _unbind,
    'select': _select, 'slice': _slice,
}
