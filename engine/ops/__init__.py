"""One module per op: what a graph node of that op means and how it runs.

An op's definition (an OpDef in REGISTRY) says, for nodes of that op:
- check(node, ins): that its attributes and parameters are well formed
  (ins: (channels, rank) of its inputs); its output's (channels, rank)
- shape(node, ins): its output's (C, H, W) for inputs of those shapes
- reference(node, ins): its output in NumPy (float64), the tests' oracle,
  before the epilogue (clamp, activation: activations.py) when it has one
- lower(node, ctx): its kernel record for the planner (engine/lowering.py):
  (record, layer kind, scratch floats per thread)
- macs(node, shapes): multiply-adds, for `info`
- dtype(node, ins): its output's element type for inputs of those types
  (int8 where the node has a quantization: engine/int8.py)
- image_shape(node, chw, rank): one image's output shape as the caller gets it

The graph's validation and shape inference, the reference interpreter, the
planner and `info` read the registry; the converter maps ATen ops to these
nodes (engine/convert.py).  view ops (gather, concat, flatten) never run a
kernel: the planner turns them into offset tables."""


class OpDef:
    name = None
    view = False        # resolved into offset tables by the planner, no kernel
    epilogue = True     # takes a fused clamp and activation (activations.py)
    plan_only = False   # made by the planner's passes (fused.py), never in a file
    output_only = False  # a layout of a model's output, made by the copy out (no op may read it)
    int8 = False        # may read int8 values: has an int8 form (engine/int8.py)

    def check(self, node, ins):
        raise NotImplementedError

    def shape(self, node, ins):
        raise NotImplementedError

    def reference(self, node, ins):
        raise NotImplementedError

    def lower(self, node, ctx):
        raise NotImplementedError(f'no kernel for op {self.name!r}')

    def macs(self, node, shapes):
        return 0

    def dtype(self, node, ins):
        """int8 where the node has a quantization (attrs 'quant': its
        output's scale and zero point), else its input's float type (float32
        for an int8 input: the sums dequantized)."""
        if node.attrs.get('quant') is not None:
            return 'int8'
        return 'float32' if ins[0] == 'int8' else ins[0]

    def image_shape(self, node, chw, rank):
        """One image's output, (C, H, W) or (C,), from its shape() and rank."""
        return tuple(chw) if rank == 4 else (chw[0],)


REGISTRY = {}


def register(cls):
    """Class decorator: one instance of the OpDef in REGISTRY, by its name."""
    REGISTRY[cls.name] = cls()
    return cls


def per_channel_shape(node, ins):
    """The output shape of ops that keep their input's."""
    return ins[0]


from engine.ops import conv, elementwise, fused, linear, norm, pool, quant, resize, views  # noqa: E402,F401  (they register)
