"""Small graphs of one op, run by the engine and by the NumPy reference."""
import numpy as np

import engine
from engine import reference
from engine.graph import Graph, Node


def one_op_graph(op, in_shape, attrs=None, params=None, extra_inputs=0):
    """Graph: input -> op -> output; extra_inputs more (identity) uses of the input."""
    inputs = ['input'] * (1 + extra_inputs)
    node = Node('op', op, inputs, attrs or {}, params or {})
    return Graph('input', tuple(in_shape), [node], ['op'])


def check_graph(graph, x, threads=(1, 2), rtol=2e-5, options=None, kernels=None):
    """Run graph on x with each thread count (planned with `options`, a
    PlanOptions, on the kernel module `kernels`: None, fp32's); compare with
    the reference."""
    ref = reference.run_graph(graph, x)[0]
    model = engine.Model(graph, threads=threads[0], options=options, kernels=kernels)
    for t in threads:
        model.threads = t
        out = model(x)
        assert out.shape == ref.shape, (out.shape, ref.shape)
        scale = max(1.0, float(np.abs(ref).max()))
        err = float(np.abs(out - ref).max())
        assert err <= rtol * scale, f'threads={t}: max error {err:.3g} > {rtol * scale:.3g}'
    return ref


def rand(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def import_blocker(*packages):
    """Python source that makes importing these packages (and their
    submodules) fail in the process that runs it: to test life without them."""
    names = repr(tuple(packages))
    return ("import sys\n"
            "class _Blocker:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {names}:\n"
            "            raise ImportError(name + ' is blocked in this process')\n"
            "sys.meta_path.insert(0, _Blocker())\n")
