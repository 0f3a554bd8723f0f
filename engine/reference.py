"""Plain NumPy evaluation of graphs: the oracle the kernels are tested
against.  Each op's reference is in its definition (engine/ops/); this
walks a graph, computing in float64, with each op's epilogue (clamp, then
activation) after it, and int8 values rounded to their grid (engine/int8.py)."""
import numpy as np

from engine.int8 import on_grid, real_weights
from engine.ops import REGISTRY
from engine.ops.activations import apply


def run_node(node, ins):
    """A node's output: its op's reference on the real values of its
    weights, then its epilogue, then rounded to its int8 grid if it has one."""
    definition = REGISTRY[node.op]
    out = definition.reference(real_weights(node), ins)
    if definition.epilogue:
        out = apply(out, node)
    quant = node.attrs.get('quant')
    return out if quant is None else on_grid(out, quant)


def values(graph, x):
    """Every value of the graph on input x: {name: array}."""
    out = {graph.input_name: np.asarray(x, np.float64)}
    for node in graph.nodes:
        out[node.name] = run_node(node, [out[i] for i in node.inputs])
    return out


def run_graph(graph, x):
    """Evaluate the graph with the NumPy reference ops; list of outputs."""
    out = values(graph, x)
    return [out[o] for o in graph.outputs]


def channel_shuffle(x, groups):
    """torchvision's channel_shuffle: view (N, g, C/g, H, W), swap 1 and 2."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)
