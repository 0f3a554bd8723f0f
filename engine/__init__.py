"""CPU inference for ShuffleNet-style networks.

    import engine
    model = engine.load('shufflenet_v2_x1_0.engine')
    logits = model(x)            # x: float32 NCHW numpy array

Runtime needs only NumPy; converting from PyTorch (engine.from_torch,
tools/convert_pytorch.py) needs torch, from ONNX (engine.from_onnx,
tools/convert_onnx.py) the onnx package.
"""
from engine.errors import ModelFileError, UnsupportedModelError
from engine.fileformat import load_graph as _load_graph
from engine.kernels.isa import build_info
from engine.model import DEFAULT_CACHE_BYTES, Model, default_threads
from engine.quantization import quantize
from engine.shuffle import channel_shuffle

__version__ = '0.1.0'
__all__ = ['load', 'from_torch', 'from_onnx', 'quantize', 'Model', 'ModelFileError', 'UnsupportedModelError',
           'build_info', 'default_threads', 'channel_shuffle']


def load(path, *, threads=None, verify=True, cache_bytes=DEFAULT_CACHE_BYTES, options=None, precision='fp32'):
    """Open a model file written by Model.save or tools/convert_pytorch.py.
    verify=False skips the file's CRC-32 (a few ms per 10 MB); cache_bytes
    bounds the plans and working memory kept between calls; options: how
    plans are made (engine.lowering.PlanOptions; Model); precision: 'fp32',
    or 'fp16' on CPUs with fp16 arithmetic (Model)."""
    return Model(_load_graph(path, verify=verify, check=False), threads=threads, cache_bytes=cache_bytes,
                 options=options, precision=precision)


def from_torch(module, example_input, *, threads=None, cache_bytes=DEFAULT_CACHE_BYTES):
    """Convert a torch.nn.Module for inputs shaped like example_input (a
    torch tensor or a numpy array); the module is left in the mode it was."""
    from engine.convert import convert
    return Model(convert(module, example_input), threads=threads, cache_bytes=cache_bytes)


def from_onnx(source, *, input_shape=None, threads=None, cache_bytes=DEFAULT_CACHE_BYTES):
    """Convert an ONNX model (a path, or the file's bytes) for inputs shaped
    like input_shape (N, C, H, W; default: the file's input shape, batch 1
    and 224 x 224 where it leaves them open).  The model runs at the other
    sizes the conversion holds for (Model.graph.input_sizes)."""
    from engine.convert_onnx import convert_onnx
    return Model(convert_onnx(source, input_shape), threads=threads, cache_bytes=cache_bytes)
