"""Plain NumPy evaluation of graphs: the oracle the kernels are tested
against.  Each op's reference is in its definition (engine/ops/); this
walks a graph, computing in float64, with each op's epilogue (clamp, then
activation) after it."""
import numpy as np

from engine.ops import REGISTRY
from engine.ops.activations import apply


def run_node(node, ins):
    """A node's output: its op's reference, then its epilogue."""
    definition = REGISTRY[node.op]
    out = definition.reference(node, ins)
    return apply(out, node) if definition.epilogue else out


def run_graph(graph, x):
    """Evaluate the graph with the NumPy reference ops; list of outputs."""
    values = {graph.input_name: np.asarray(x, np.float64)}
    for node in graph.nodes:
        values[node.name] = run_node(node, [values[i] for i in node.inputs])
    return [values[o] for o in graph.outputs]


def channel_shuffle(x, groups):
    """torchvision's channel_shuffle: view (N, g, C/g, H, W), swap 1 and 2."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)
