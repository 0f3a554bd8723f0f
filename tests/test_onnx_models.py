"""Every model of the PyTorch path's tests (test_models.py, test_family.py),
exported to ONNX by both of torch's exporters, converted with
engine.from_onnx and run against ONNX Runtime on the same file; the
compiled ShuffleNets move no data.

The TorchScript exporter's files are tested at opsets 13 and 17.  torch
2.13's dynamo exporter writes opset 18 whatever opset it is asked for (its
down-conversion fails on these graphs: onnx's version converter has no
adapter down from Split 18), so its files are tested at 18 and restated at
17 and 13 by `restate`, which rewrites the spellings that changed."""
import contextlib
import io
import logging
import warnings

import numpy as np
import pytest

from conftest import require_onnx, require_torch

torch = require_torch()
onnx, ort = require_onnx()

import engine                                   # noqa: E402
import family_models as F                       # noqa: E402
import torch_models                             # noqa: E402
from engine.plan import compile_graph           # noqa: E402
from test_family import OTHERS, V1              # noqa: E402
from test_models import DATA_MOVEMENT, WIDTHS   # noqa: E402

MODELS = {f'shufflenet_v2_x{w}': getattr(torch_models, f'shufflenet_v2_x{w.replace(".", "_")}') for w in WIDTHS}
MODELS.update({f'shufflenet_v1_g{g}_{w}_{pool}': (lambda g=g, w=w, pool=pool: F.ShuffleNetV1(group=g, model_size=w,
                                                                                              pool=pool))
               for g, w, pool in V1})
MODELS.update(OTHERS)
SHUFFLENETS = [name for name in MODELS if name.startswith('shufflenet_v')]
EXPORTS = [('torchscript', 13), ('torchscript', 17), ('dynamo', 18), ('dynamo', 17), ('dynamo', 13)]
DYNAMIC_DYNAMO = ['shufflenet_v2_x1.0', 'shufflenet_v1_g3_0.5x_mean']   # (20-30 s an export)
SIZES = [(1, 224), (2, 224), (2, 160)]


def export(net, exporter, opset, dynamic):
    """The ONNX file's bytes; the exporters' chatter kept off the terminal."""
    x = torch.randn(1, 3, 224, 224)
    was = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter('ignore')
            if exporter == 'dynamo':
                from torch.export import Dim
                shapes = ({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},) if dynamic else None
                program = torch.onnx.export(net, (x,), dynamo=True, opset_version=opset, dynamic_shapes=shapes)
                return program.model_proto.SerializeToString()
            f = io.BytesIO()
            torch.onnx.export(net, (x,), f, dynamo=False, opset_version=opset, input_names=['x'],
                              dynamic_axes={'x': {0: 'n', 2: 'h', 3: 'w'}} if dynamic else None)
            return f.getvalue()
    finally:
        logging.disable(was)


def restate(data, opset):
    """An opset-18 file at opset 17 or 13: Split's num_outputs as sizes
    (from the outputs' value_info), ReduceMean's axes as an attribute; for
    13 also HardSwish as x * HardSigmoid(x) and no Reshape allowzero (the
    targets have no zeros)."""
    from onnx import helper, numpy_helper
    model = onnx.load_from_string(data)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == 'Constant' and n.attribute[0].name == 'value'})
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(graph.value_info) + list(graph.output)}
    nodes = []
    for n in graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == 'Split' and 'num_outputs' in attrs:
            axis = attrs['axis'].i if 'axis' in attrs else 0
            sizes = n.output[0] + '.sizes'
            graph.initializer.append(numpy_helper.from_array(
                np.array([shapes[o][axis] for o in n.output], np.int64), sizes))
            n.input.append(sizes)
            n.attribute.remove(attrs['num_outputs'])
        if n.op_type == 'ReduceMean' and len(n.input) > 1:
            n.attribute.append(helper.make_attribute('axes', [int(a) for a in constants[n.input[1]]]))
            del n.input[1:]
            if 'noop_with_empty_axes' in attrs:
                n.attribute.remove(attrs['noop_with_empty_axes'])
        if opset < 14 and n.op_type == 'Reshape' and 'allowzero' in attrs:
            assert 0 not in constants[n.input[1]]
            n.attribute.remove(attrs['allowzero'])
        if opset < 14 and n.op_type == 'HardSwish':
            gate = n.output[0] + '.gate'
            nodes += [helper.make_node('HardSigmoid', [n.input[0]], [gate], alpha=1 / 6, beta=0.5),
                      helper.make_node('Mul', [n.input[0], gate], [n.output[0]])]
            continue
        nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    model.opset_import[0].version = opset
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def check_against_onnxruntime(data, label, free_sizes):
    """Convert; at each size of SIZES the conversion holds for (all of them
    if free_sizes), the engine's output against ONNX Runtime's."""
    model = engine.from_onnx(data, input_shape=(1, 3, 224, 224), threads=2)
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    declared = session.get_inputs()[0].shape
    ran = 0
    for batch, size in SIZES:
        if model.graph.input_sizes.problem(batch, size, size) is not None or any(
                isinstance(d, int) and d != v for d, v in zip(declared, (batch, 3, size, size))):
            continue
        x = np.random.default_rng(batch * size).standard_normal((batch, 3, size, size)).astype(np.float32)
        ref = session.run(None, {session.get_inputs()[0].name: x})[0]
        out = model(x)
        assert out.shape == ref.shape, label
        err = float(np.abs(out - ref).max())
        assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), f'{label} {batch}x{size}: error {err:.3g}'
        ran += 1
    assert ran == len(SIZES) if free_sizes else ran >= 1, (label, model.graph.input_sizes.describe())
    return model


@pytest.mark.parametrize('name', list(MODELS))
def test_exported_model_matches_onnxruntime(name):
    net = torch_models.randomize(MODELS[name](), seed=len(name)).eval()
    # a global pool as AvgPool2d(7), or the authors' sizes read with x.data.size(), fix the size in the file
    fixed = name.endswith('avgpool7') or name.startswith(('shufflenet_v1', 'shufflenet_v2_plus'))
    dynamo = export(net, 'dynamo', 18, dynamic=False)
    for exporter, opset in EXPORTS:
        if exporter == 'dynamo':
            data = dynamo if opset == 18 else restate(dynamo, opset)
        else:
            data = export(net, exporter, opset, dynamic=True)
        label = f'{name} {exporter} opset {opset}'
        model = check_against_onnxruntime(data, label, free_sizes=exporter == 'torchscript' and not fixed)
        if name in SHUFFLENETS:
            kinds = {layer.kind for layer in compile_graph(model.graph, 224, 224).layers}
            assert not kinds & DATA_MOVEMENT, (label, kinds)


@pytest.mark.parametrize('name', DYNAMIC_DYNAMO)
def test_dynamo_export_with_dynamic_sizes(name):
    net = torch_models.randomize(MODELS[name](), seed=1).eval()
    check_against_onnxruntime(export(net, 'dynamo', 18, dynamic=True), f'{name} dynamo dynamic', free_sizes=True)


def test_opset_11():
    net = torch_models.randomize(torch_models.shufflenet_v2_x1_0(), seed=11).eval()
    check_against_onnxruntime(export(net, 'torchscript', 11, dynamic=True), 'opset 11', free_sizes=True)


@pytest.mark.parametrize('name, opset', [('shufflenet_v2_x1.0', 17), ('shufflenet_v1_g3_0.5x_mean', 17),
                                         ('mobilenet_v2', 17), ('mobilenet_v3_small', 13)])
def test_same_compiled_layers_as_the_pytorch_path(name, opset):
    """From ONNX or from PyTorch, the same network compiles to the same
    layers (so runs at the same speed); at opset 13 hard-swish is
    HardSigmoid times its input, fused all the same."""
    net = torch_models.randomize(MODELS[name](), seed=2).eval()
    data = export(net, 'torchscript', opset, dynamic=True)
    if opset < 14:
        assert 'HardSigmoid' in [n.op_type for n in onnx.load_from_string(data).graph.node]
    ours = engine.from_onnx(data, input_shape=(1, 3, 224, 224))
    theirs = engine.from_torch(net, torch.randn(1, 3, 224, 224))
    assert [(l.kind, l.shape) for l in compile_graph(ours.graph, 224, 224).layers] == \
        [(l.kind, l.shape) for l in compile_graph(theirs.graph, 224, 224).layers]
