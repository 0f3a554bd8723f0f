"""ONNX graphs built by hand (onnx.helper), one spelling of one op each,
converted and run by the engine against ONNX Runtime; channel shuffles in
every spelling with no data-movement layer; external data and hostile
files refused with clear errors."""
import os

import numpy as np
import pytest

from conftest import require_onnx

onnx, ort = require_onnx()

import engine                                   # noqa: E402
from engine.plan import compile_graph           # noqa: E402
from onnx import TensorProto, helper, numpy_helper   # noqa: E402

DATA_MOVEMENT = {'gather', 'concat', 'flatten', 'shuffle', 'split', 'copy', 'transpose', 'permute'}
OPSETS = (11, 13, 17, 18, 21)
RNG = np.random.default_rng(0)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def make(nodes, inits=None, shape=('N', 4, 'H', 'W'), opset=17, outputs=('y',), out_rank=4):
    """An ONNX model: input x of `shape` (str entries: symbolic), these
    nodes and initializers ({name: array}), outputs of that rank."""
    dims = [d if isinstance(d, str) else int(d) for d in shape]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [f'{o}{i}' for i in range(out_rank)])
         for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = min(model.ir_version, 10)     # what ONNX Runtime reads
    return model.SerializeToString()


def reference(data, x):
    session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    return session.run(None, {'x': x})


def check(data, shapes=((1, 4, 7, 5),), threads=(1, 2)):
    """Convert at the first input shape, run at each with each thread
    count, compare with ONNX Runtime."""
    model = engine.from_onnx(data, input_shape=shapes[0])
    for shape in shapes:
        x = rand(*shape)
        refs = reference(data, x)
        for t in threads:
            model.threads = t
            outs = model(x)
            outs = outs if isinstance(outs, list) else [outs]
            for out, ref in zip(outs, refs):
                assert out.shape == ref.shape, (out.shape, ref.shape)
                err = float(np.abs(out - ref).max())
                assert err <= 1e-4 * max(1.0, float(np.abs(ref).max())), f'{shape} threads={t}: error {err:.3g}'
    return model


def kinds(model, h=7, w=5):
    return {layer.kind for layer in compile_graph(model.graph, h, w).layers}


# --------------------------------------------------------------------------- convolution

CONVS = [
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=4),
    dict(kernel_shape=[1, 1]),
    dict(kernel_shape=[3, 3], auto_pad='SAME_UPPER'),
    dict(kernel_shape=[5, 5], auto_pad='SAME_LOWER'),
    dict(kernel_shape=[5, 5], pads=[4, 4, 4, 4], dilations=[2, 2]),
    dict(kernel_shape=[3, 3], auto_pad='VALID', strides=[1, 2]),
    dict(kernel_shape=[3, 1], pads=[1, 0, 1, 0], dilations=[2, 1]),
    dict(kernel_shape=[3, 3], pads=[2, 2, 2, 2], group=2),
    dict(),     # kernel_shape from the weights
]


@pytest.mark.parametrize('attrs', CONVS, ids=[str(i) for i in range(len(CONVS))])
@pytest.mark.parametrize('bias', [True, False])
def test_conv(attrs, bias):
    group = attrs.get('group', 1)
    k = attrs.get('kernel_shape', [3, 3])
    inits = {'w': rand(6 if group != 4 else 8, 4 // group, *k)}
    if bias:
        inits['b'] = rand(inits['w'].shape[0])
    node = helper.make_node('Conv', ['x', 'w'] + (['b'] if bias else []), ['y'], **attrs)
    check(make([node], inits), shapes=((1, 4, 7, 5), (2, 4, 9, 12)))


def test_conv_uneven_padding_is_refused_with_the_node_named():
    node = helper.make_node('Conv', ['x', 'w'], ['y'], name='stem', kernel_shape=[3, 3], pads=[0, 0, 1, 1])
    with pytest.raises(engine.UnsupportedModelError, match=r"uneven padding.*'stem'"):
        engine.from_onnx(make([node], {'w': rand(2, 4, 3, 3)}))


def test_conv_weights_from_a_constant_node_and_batchnorm_folded():
    w = rand(6, 4, 3, 3)
    nodes = [helper.make_node('Constant', [], ['w'], value=numpy_helper.from_array(w)),
             helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('BatchNormalization', ['c', 's', 'b', 'm', 'v'], ['y'], epsilon=1e-3)]
    inits = {'s': rand(6), 'b': rand(6), 'm': rand(6), 'v': np.abs(rand(6)) + 0.5}
    model = check(make(nodes, inits))
    assert [n.op for n in model.graph.nodes] == ['conv']


def test_batchnorm_alone_is_an_affine_layer():
    inits = {'s': rand(4), 'b': rand(4), 'm': rand(4), 'v': np.abs(rand(4)) + 0.5}
    model = check(make([helper.make_node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'])], inits))
    assert [n.op for n in model.graph.nodes] == ['affine']


# --------------------------------------------------------------------------- activations

ACTIVATIONS = [
    ('Relu', {}, {}), ('Sigmoid', {}, {}), ('Tanh', {}, {}), ('LeakyRelu', {'alpha': 0.2}, {}),
    ('LeakyRelu', {}, {}), ('HardSigmoid', {}, {}), ('HardSigmoid', {'alpha': 1 / 6, 'beta': 0.5}, {}),
    ('PRelu', {}, {'slope': np.array([[[0.1]], [[-0.2]], [[0.3]], [[2.0]]], np.float32)}),
    ('PRelu', {}, {'slope': np.array([0.25], np.float32)}),
]


@pytest.mark.parametrize('op,attrs,inits', ACTIVATIONS, ids=[f'{a[0]}{i}' for i, a in enumerate(ACTIVATIONS)])
def test_activation_after_conv_is_fused(op, attrs, inits):
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node(op, ['c'] + list(inits), ['y'], **attrs)]
    model = check(make(nodes, {'w': rand(4, 4, 3, 3), **inits}))
    assert [n.op for n in model.graph.nodes] == ['conv']


def test_hardswish_opset_14():
    check(make([helper.make_node('HardSwish', ['x'], ['y'])], opset=14), shapes=((1, 4, 7, 5),))


@pytest.mark.parametrize('order', ['cg', 'gc'])
def test_hardswish_before_opset_14_is_fused(order):
    """conv -> HardSigmoid (PyTorch's alpha, beta) -> Mul by the conv's own
    output, either way round: one conv layer with a hardswish epilogue."""
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('HardSigmoid', ['c'], ['g'], alpha=1 / 6, beta=0.5),
             helper.make_node('Mul', ['c', 'g'] if order == 'cg' else ['g', 'c'], ['y'])]
    model = check(make(nodes, {'w': rand(4, 4, 3, 3)}, opset=13))
    assert [(n.op, n.attrs.get('act')) for n in model.graph.nodes] == [('conv', 'hardswish')]


@pytest.mark.parametrize('case', ['gate also an output', 'gate of another tensor', 'other alpha'])
def test_hardsigmoid_times_input_left_alone(case):
    """Not hard-swish, or its gate read elsewhere: no fusion, same outputs."""
    gate_in, alpha, outputs = {'gate also an output': ('c', 1 / 6, ('y', 'g')),
                               'gate of another tensor': ('x', 1 / 6, ('y',)),
                               'other alpha': ('c', 0.2, ('y',))}[case]
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('HardSigmoid', [gate_in], ['g'], alpha=alpha, beta=0.5),
             helper.make_node('Mul', ['c', 'g'], ['y'])]
    model = check(make(nodes, {'w': rand(4, 4, 3, 3)}, opset=13, outputs=outputs))
    assert 'hardswish' not in [n.attrs.get('act') for n in model.graph.nodes]


@pytest.mark.parametrize('opset', OPSETS)
@pytest.mark.parametrize('bounds', [(0.0, 6.0), (-1.0, None), (None, 0.5), (None, None)])
def test_clip_bounds_as_inputs(opset, bounds):
    inits = {name: np.array(v, np.float32) for name, v in zip(('lo', 'hi'), bounds) if v is not None}
    inputs = ['x', 'lo' if bounds[0] is not None else '', 'hi' if bounds[1] is not None else '']
    while inputs[-1] == '':
        inputs.pop()
    check(make([helper.make_node('Clip', inputs, ['y'])], inits, opset=opset))


def test_clip_with_bounds_computed_from_the_input_is_refused():
    nodes = [helper.make_node('ReduceMax', ['x'], ['m'], keepdims=0),
             helper.make_node('Clip', ['x', '', 'm'], ['y'])]
    with pytest.raises(engine.UnsupportedModelError, match='ReduceMax'):
        engine.from_onnx(make(nodes, opset=13))


# --------------------------------------------------------------------------- arithmetic

CONSTANTS = [np.float32(0.5), np.array([2.0], np.float32), rand(4, 1, 1), rand(1, 4, 1, 1),
             np.abs(rand(4, 1, 1)) + 0.5]


ARITHMETIC = [(op, const, first) for op in ('Add', 'Sub', 'Mul', 'Div') for const in range(len(CONSTANTS))
              for first in (False, True) if not (op == 'Div' and first)]


@pytest.mark.parametrize('op,const,first', ARITHMETIC)
def test_arithmetic_with_constants(op, const, first):
    inputs = ['c', 'x'] if first else ['x', 'c']
    model = check(make([helper.make_node(op, inputs, ['y'])], {'c': CONSTANTS[const]}))
    assert [n.op for n in model.graph.nodes] == ['affine']


def test_division_of_a_constant_by_an_activation_is_refused():
    with pytest.raises(engine.UnsupportedModelError, match='division of a constant'):
        engine.from_onnx(make([helper.make_node('Div', ['c', 'x'], ['y'])], {'c': np.float32(2)}))


def test_per_pixel_constant_is_refused():
    with pytest.raises(engine.UnsupportedModelError, match=r'only a number, or one per channel'):
        engine.from_onnx(make([helper.make_node('Add', ['x', 'c'], ['y'])], {'c': rand(1, 1, 7, 5)}))


def test_residual_add_and_squeeze_excitation_gate():
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
             helper.make_node('Add', ['c', 'x'], ['r']),
             helper.make_node('GlobalAveragePool', ['r'], ['p']),
             helper.make_node('Conv', ['p', 'w1'], ['q']),
             helper.make_node('HardSigmoid', ['q'], ['g'], alpha=1 / 6, beta=0.5),
             helper.make_node('Mul', ['r', 'g'], ['y'])]
    check(make(nodes, {'w': rand(4, 4, 3, 3), 'w1': rand(4, 4, 1, 1)}), shapes=((1, 4, 7, 5), (3, 4, 6, 6)))


# --------------------------------------------------------------------------- pooling, classifier

POOLS = [
    ('MaxPool', dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ('MaxPool', dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ('MaxPool', dict(kernel_shape=[2, 2])),
    ('MaxPool', dict(kernel_shape=[3, 3], dilations=[2, 2], strides=[1, 1])),
    ('AveragePool', dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ('AveragePool', dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ('AveragePool', dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ('AveragePool', dict(kernel_shape=[3, 3], auto_pad='SAME_UPPER')),
    ('MaxPool', dict(kernel_shape=[3, 3], auto_pad='SAME_LOWER')),
]


@pytest.mark.parametrize('op,attrs', POOLS, ids=[f'{p[0]}{i}' for i, p in enumerate(POOLS)])
def test_pool(op, attrs):
    check(make([helper.make_node(op, ['x'], ['y'], **attrs)]), shapes=((1, 4, 8, 8), (2, 4, 9, 7)))


@pytest.mark.parametrize('opset', OPSETS)
@pytest.mark.parametrize('keepdims', [0, 1])
def test_reduce_mean_over_the_planes(opset, keepdims):
    axes = [2, 3] if keepdims else [-1, -2]
    if opset >= 18:
        node = helper.make_node('ReduceMean', ['x', 'axes'], ['y'], keepdims=keepdims)
        data = make([node], {'axes': np.array(axes, np.int64)}, opset=opset, out_rank=2 + 2 * keepdims)
    else:
        data = make([helper.make_node('ReduceMean', ['x'], ['y'], keepdims=keepdims, axes=axes)], opset=opset,
                    out_rank=2 + 2 * keepdims)
    check(data, shapes=((1, 4, 7, 5), (2, 4, 3, 9)))


CLASSIFIERS = [
    ('Gemm', dict(transB=1), (10, 4), (10,)),
    ('Gemm', dict(transB=0, alpha=0.5, beta=2.0), (4, 10), (1, 10)),
    ('Gemm', dict(transB=1), (10, 4), None),
    ('MatMul', {}, (4, 10), (10,)),
]


@pytest.mark.parametrize('op,attrs,wshape,bshape', CLASSIFIERS, ids=[c[0] + str(i) for i, c in enumerate(CLASSIFIERS)])
def test_pool_flatten_and_classifier(op, attrs, wshape, bshape):
    inits = {'w': rand(*wshape)}
    nodes = [helper.make_node('GlobalAveragePool', ['x'], ['p']),
             helper.make_node('Flatten', ['p'], ['f'], axis=1)]
    if op == 'Gemm':
        if bshape:
            inits['b'] = rand(*bshape)
        nodes.append(helper.make_node('Gemm', ['f', 'w'] + (['b'] if bshape else []), ['y'], **attrs))
    else:
        inits['b'] = rand(*bshape)
        nodes += [helper.make_node('MatMul', ['f', 'w'], ['m']), helper.make_node('Add', ['m', 'b'], ['y'])]
    model = check(make(nodes, inits, out_rank=2), shapes=((1, 4, 7, 5), (3, 4, 2, 2)))
    assert [n.op for n in model.graph.nodes][-1] == 'linear'
    assert 'affine' not in [n.op for n in model.graph.nodes]


# --------------------------------------------------------------------------- resizing

# (attributes, scales or sizes (N and C kept), the values for H and W)
RESIZES = [
    (dict(mode='linear', coordinate_transformation_mode='pytorch_half_pixel'), 'scales', [2.0, 2.0]),
    (dict(mode='linear', coordinate_transformation_mode='pytorch_half_pixel'), 'sizes', [3, 9]),
    (dict(mode='linear'), 'scales', [1.5, 3.0]),      # half_pixel, the default
    (dict(mode='linear'), 'scales', [0.5, 1.5]),
    (dict(mode='linear'), 'sizes', [1, 9]),
    (dict(mode='linear', coordinate_transformation_mode='align_corners'), 'sizes', [9, 13]),
    (dict(mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor'), 'scales', [2.0, 3.0]),
    (dict(mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor'), 'sizes', [5, 11]),
    (dict(mode='nearest', coordinate_transformation_mode='half_pixel', nearest_mode='round_prefer_ceil'), 'sizes',
     [5, 11]),
]


@pytest.mark.parametrize('attrs,what,values', RESIZES, ids=[f'{a["mode"]}-{w}{i}' for i, (a, w, _) in enumerate(RESIZES)])
def test_resize(attrs, what, values):
    """Resize in the modes that mean PyTorch's interpolate, against ONNX
    Runtime: by scales at several sizes, by constant sizes at the file's."""
    if what == 'scales':
        data = make([helper.make_node('Resize', ['x', '', 's'], ['y'], **attrs)],
                    {'s': np.array([1, 1] + values, np.float32)})
        check(data, shapes=((1, 4, 7, 5), (2, 4, 6, 9), (1, 4, 2, 2)))
    else:
        data = make([helper.make_node('Resize', ['x', '', '', 's'], ['y'], **attrs)],
                    {'s': np.array([1, 4] + values, np.int64)}, shape=(1, 4, 7, 5))
        check(data)


@pytest.mark.parametrize('attrs,inputs,match', [
    (dict(mode='cubic'), [1, 1, 2, 2], 'mode cubic'),
    (dict(mode='linear', coordinate_transformation_mode='asymmetric'), [1, 1, 2, 2], 'coordinate_transformation_mode asymmetric'),
    (dict(mode='nearest'), [1, 1, 2, 2], 'nearest_mode round_prefer_floor'),
    # ONNX's 1-pixel outputs differ from PyTorch's there
    (dict(mode='linear', coordinate_transformation_mode='pytorch_half_pixel'), [1, 1, 0.5, 2], 'pytorch_half_pixel'),
    (dict(mode='linear'), [1, 2, 2, 2], 'batch or channels'),
    (dict(mode='linear', antialias=1), [1, 1, 0.5, 0.5], 'antialias'),
])
def test_resize_modes_pytorch_does_not_mean_are_refused(attrs, inputs, match):
    data = make([helper.make_node('Resize', ['x', '', 's'], ['y'], name='up', **attrs)],
                {'s': np.array(inputs, np.float32)}, opset=18)
    with pytest.raises(engine.UnsupportedModelError, match=match):
        engine.from_onnx(data, input_shape=(1, 4, 7, 5))


# --------------------------------------------------------------------------- channel views

def _shuffle_nodes(shape_nodes, groups=2):
    """torchvision's channel shuffle: Reshape (N, g, C/g, H, W), Transpose, Reshape back."""
    return shape_nodes + [helper.make_node('Reshape', ['x', 's1'], ['a']),
                          helper.make_node('Transpose', ['a'], ['t'], perm=[0, 2, 1, 3, 4]),
                          helper.make_node('Reshape', ['t', 's2'], ['y'])]


def _dynamic_targets(groups, channels):
    """The TorchScript exporter's spelling: the targets computed with
    Shape / Gather / Unsqueeze / Concat from the input's shape."""
    def scalar(name, v):
        return helper.make_node('Constant', [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))
    nodes = [helper.make_node('Shape', ['x'], ['shape'])]
    for i, d in ((0, 'n'), (2, 'h'), (3, 'w')):
        nodes += [scalar(f'i{d}', i), helper.make_node('Gather', ['shape', f'i{d}'], [f'{d}0'], axis=0),
                  scalar(f'ax{d}', [0]), helper.make_node('Unsqueeze', [f'{d}0', f'ax{d}'], [f'{d}'])]
    nodes += [helper.make_node('Constant', [], ['g'], value=numpy_helper.from_array(np.array([groups], np.int64))),
              helper.make_node('Constant', [], ['cg'],
                               value=numpy_helper.from_array(np.array([channels // groups], np.int64))),
              helper.make_node('Constant', [], ['c'], value=numpy_helper.from_array(np.array([channels], np.int64))),
              helper.make_node('Concat', ['n', 'g', 'cg', 'h', 'w'], ['s1'], axis=0),
              helper.make_node('Concat', ['n', 'c', 'h', 'w'], ['s2'], axis=0)]
    return nodes


@pytest.mark.parametrize('dynamic', [False, True])
def test_channel_shuffle_moves_no_data(dynamic):
    c = 6
    if dynamic:
        data = make(_shuffle_nodes(_dynamic_targets(2, c)), shape=('N', c, 'H', 'W'), opset=13)
        shapes = ((1, c, 7, 5), (3, c, 4, 9))
    else:
        data = make(_shuffle_nodes([]), {'s1': np.array([1, 2, 3, 7, 5]), 's2': np.array([1, c, 7, 5])},
                    shape=(1, c, 7, 5))
        shapes = ((1, c, 7, 5),)
    model = check(data, shapes=shapes)
    assert [n.op for n in model.graph.nodes] == ['gather']
    assert (model.graph.input_sizes.ranges['height'][1] is None) == dynamic


def _conv_after(nodes, value, channels, inits):
    """A convolution reading the view `value`, so that the view must compile to offsets."""
    inits[f'w_{value}'] = rand(3, channels, 1, 1)
    return nodes + [helper.make_node('Conv', [value, f'w_{value}'], [f'y_{value}'])]


@pytest.mark.parametrize('opset', OPSETS)
def test_split_every_spelling(opset):
    inits = {}
    if opset >= 18:
        split = helper.make_node('Split', ['x'], ['a', 'b'], axis=1, num_outputs=2)
    elif opset >= 13:
        inits['sizes'] = np.array([2, 4], np.int64)
        split = helper.make_node('Split', ['x', 'sizes'], ['a', 'b'], axis=1)
    else:
        split = helper.make_node('Split', ['x'], ['a', 'b'], axis=1, split=[2, 4])
    nodes = _conv_after(_conv_after([split], 'a', 3 if opset >= 18 else 2, inits), 'b', 3 if opset >= 18 else 4, inits)
    data = make(nodes, inits, shape=(2, 6, 5, 7), opset=opset, outputs=('y_a', 'y_b'))
    model = check(data, shapes=((2, 6, 5, 7),))
    assert not kinds(model, 5, 7) & DATA_MOVEMENT


@pytest.mark.parametrize('opset', OPSETS)
def test_slice_gather_squeeze_unsqueeze_on_channels(opset):
    """The ShuffleNetV2 authors' shuffle-and-split (reshape, transpose, pick
    [0] and [1]) and a strided channel slice, at each opset's spelling."""
    inits = {'s1': np.array([3, 2, 20], np.int64), 's2': np.array([2, -1, 3, 4, 5], np.int64),
             'zero': np.array(0, np.int64), 'one': np.array([1], np.int64),
             'starts': np.array([1], np.int64), 'ends': np.array([6], np.int64),
             'axes': np.array([1], np.int64), 'steps': np.array([2], np.int64)}
    nodes = [helper.make_node('Reshape', ['x', 's1'], ['r']),
             helper.make_node('Transpose', ['r'], ['t'], perm=[1, 0, 2]),
             helper.make_node('Reshape', ['t', 's2'], ['u']),
             helper.make_node('Gather', ['u', 'zero'], ['a'], axis=0),
             helper.make_node('Slice', ['x', 'starts', 'ends', 'axes', 'steps'], ['s'])]
    if opset >= 13:
        nodes += [helper.make_node('Unsqueeze', ['s', 'zero_1d'], ['s5']),
                  helper.make_node('Squeeze', ['s5', 'zero_1d'], ['b'])]
        inits['zero_1d'] = np.array([0], np.int64)
    else:
        nodes += [helper.make_node('Unsqueeze', ['s'], ['s5'], axes=[0]),
                  helper.make_node('Squeeze', ['s5'], ['b'], axes=[0])]
    inits['perm'] = np.array([5, 0, 3, 1], np.int64)
    nodes.append(helper.make_node('Gather', ['x', 'perm'], ['c'], axis=1))      # channels picked by an index array
    nodes = _conv_after(_conv_after(_conv_after(nodes, 'a', 3, inits), 'b', 3, inits), 'c', 4, inits)
    data = make(nodes, inits, shape=(1, 6, 4, 5), opset=opset, outputs=('y_a', 'y_b', 'y_c'))
    model = check(data, shapes=((1, 6, 4, 5),))
    assert not kinds(model, 4, 5) & DATA_MOVEMENT


def test_concat_of_branches_is_a_view():
    inits = {'w1': rand(3, 4, 1, 1), 'w2': rand(5, 4, 3, 3)}
    nodes = [helper.make_node('Conv', ['x', 'w1'], ['a']),
             helper.make_node('Conv', ['x', 'w2'], ['b'], pads=[1, 1, 1, 1]),
             helper.make_node('Concat', ['a', 'b'], ['y'], axis=1)]
    check(make(nodes, inits), shapes=((1, 4, 7, 5), (2, 4, 3, 3)))


def test_reshape_that_mixes_pixels_is_refused():
    nodes = [helper.make_node('Reshape', ['x', 's'], ['r']), helper.make_node('Relu', ['r'], ['y'])]
    with pytest.raises(engine.UnsupportedModelError, match='not a channel reordering'):
        engine.from_onnx(make(nodes, {'s': np.array([1, 4, 5, 7])}), input_shape=(1, 4, 7, 5))


@pytest.mark.parametrize('perm', [None, [0, 2, 1]])
def test_a_detection_head_s_points_at_the_output(perm):
    """Two levels' planes reshaped to (N, C, H*W), concatenated along the
    pixels and transposed (NanoDet's export): laid out by the copy out,
    no layer for it; the same concatenation read by a layer is refused."""
    nodes = [helper.make_node('Conv', ['x', 'w1'], ['a'], strides=[2, 2]),
             helper.make_node('Conv', ['a', 'w2'], ['b'], strides=[2, 2]),
             helper.make_node('Reshape', ['a', 'flat'], ['fa']),
             helper.make_node('Reshape', ['b', 'flat'], ['fb']),
             helper.make_node('Concat', ['fa', 'fb'], ['y' if perm is None else 'c'], axis=2)]
    if perm:
        nodes.append(helper.make_node('Transpose', ['c'], ['y'], perm=perm))
    inits = {'w1': rand(5, 4, 1, 1), 'w2': rand(5, 5, 1, 1), 'flat': np.array([0, 0, -1], np.int64)}
    model = check(make(nodes, inits, out_rank=3), shapes=((1, 4, 8, 6), (2, 4, 11, 7)))
    assert [n.op for n in model.graph.nodes] == ['conv', 'conv', 'spatial_concat']
    inside = nodes[:5] + [helper.make_node('Relu', ['c' if perm else 'y'], ['z'])]
    inside[4] = helper.make_node('Concat', ['fa', 'fb'], ['c' if perm else 'y'], axis=2)
    with pytest.raises(engine.UnsupportedModelError, match="only a model's outputs"):
        engine.from_onnx(make(inside, inits, outputs=('z',), out_rank=3), input_shape=(1, 4, 8, 6))


# --------------------------------------------------------------------------- sizes and opsets

def test_dynamic_batch_and_planes_from_the_file():
    nodes = [helper.make_node('Conv', ['x', 'w'], ['y'], pads=[1, 1, 1, 1])]
    model = check(make(nodes, {'w': rand(2, 4, 3, 3)}, shape=('batch', 4, 'h', 'w')),
                  shapes=((1, 4, 224, 224), (5, 4, 3, 17)))
    assert model.input_shape == (1, 4, 224, 224)
    assert model.graph.input_sizes.ranges == {'batch': (1, None), 'height': (1, None), 'width': (1, None)}


def test_sizes_fixed_in_constants_pin_the_size():
    """A reshape to the example's plane sizes holds at that size only: the
    model refuses others with a ValueError, never a wrong answer."""
    nodes = [helper.make_node('GlobalAveragePool', ['x'], ['p']),
             helper.make_node('Reshape', ['x', 's'], ['r']),
             helper.make_node('Reshape', ['r', 's2'], ['q']),
             helper.make_node('Conv', ['q', 'w'], ['y'])]
    data = make(nodes, {'s': np.array([1, 2, 2, 35]), 's2': np.array([1, 4, 7, 5]), 'w': rand(2, 4, 1, 1)},
                shape=('N', 4, 'H', 'W'))
    model = check(data, shapes=((1, 4, 7, 5),))
    assert model.graph.input_sizes.ranges == {'batch': (1, 1), 'height': (7, 7), 'width': (5, 5)}
    with pytest.raises(ValueError, match='height must be 7'):
        model(rand(1, 4, 8, 5))


def test_a_pool_as_wide_as_the_plane_pins_the_size():
    """AveragePool(7) then Flatten: one row per image at 7x7 only (at 14x14 it
    would be four, which no channel view can be)."""
    nodes = [helper.make_node('AveragePool', ['x'], ['p'], kernel_shape=[7, 7], strides=[7, 7]),
             helper.make_node('Flatten', ['p'], ['f']),
             helper.make_node('Gemm', ['f', 'w'], ['y'], transB=1)]
    model = check(make(nodes, {'w': rand(3, 4)}, out_rank=2), shapes=((1, 4, 7, 7), (3, 4, 7, 7)))
    assert model.graph.input_sizes.ranges['height'] == (7, 7) and model.graph.input_sizes.ranges['batch'] == (1, None)


def test_input_shape_argument():
    nodes = [helper.make_node('Relu', ['x'], ['y'])]
    data = make(nodes, shape=('N', 'C', 'H', 'W'))
    with pytest.raises(ValueError, match='give input_shape'):
        engine.from_onnx(data)
    assert engine.from_onnx(data, input_shape=(2, 3, 8, 9)).input_shape == (2, 3, 8, 9)
    with pytest.raises(ValueError, match='the model takes 4'):
        engine.from_onnx(make(nodes), input_shape=(1, 3, 8, 8))
    with pytest.raises(ValueError, match='four integers'):
        engine.from_onnx(make(nodes), input_shape=(1, 4, 0, 8))


def test_newest_opset_and_too_old_an_opset():
    newest = onnx.defs.onnx_opset_version()
    model = engine.from_onnx(make([helper.make_node('Relu', ['x'], ['y'])], opset=newest))
    x = rand(1, 4, 7, 5)
    np.testing.assert_array_equal(model(x), np.maximum(x, 0))
    with pytest.raises(engine.UnsupportedModelError, match='opset 9'):
        engine.from_onnx(make([helper.make_node('Relu', ['x'], ['y'])], opset=9))


# --------------------------------------------------------------------------- files, external data

def _external_model(folder, location):
    """A Conv model whose weights live in `location`, relative to folder."""
    w = rand(2, 4, 3, 3)
    model = onnx.load_from_string(make([helper.make_node('Conv', ['x', 'w'], ['y'])], {'w': w}))
    tensor = model.graph.initializer[0]
    tensor.ClearField('raw_data')
    tensor.data_location = TensorProto.EXTERNAL
    for k, v in (('location', location), ('offset', '0'), ('length', str(w.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    path = os.path.join(folder, 'model.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    return path, w


def test_external_data_inside_the_folder_is_read(tmp_path):
    (tmp_path / 'weights').mkdir()
    path, w = _external_model(str(tmp_path), 'weights/w.bin')
    (tmp_path / 'weights' / 'w.bin').write_bytes(w.tobytes())
    model = engine.from_onnx(path)
    np.testing.assert_array_equal(model.graph.nodes[0].params['weight'], w)
    with open(path, 'rb') as f:
        with pytest.raises(engine.ModelFileError, match="give the file's path"):
            engine.from_onnx(f.read())


@pytest.mark.parametrize('where', ['dotdot', 'absolute', 'link', 'missing', 'short'])
def test_external_data_outside_the_folder_is_refused(tmp_path, where):
    inside = tmp_path / 'model'
    inside.mkdir()
    secret = tmp_path / 'secret.bin'
    secret.write_bytes(np.ones(72, np.float32).tobytes())
    location = {'dotdot': '../secret.bin', 'absolute': str(secret), 'link': 'link.bin',
                'missing': 'nothing.bin', 'short': 'short.bin'}[where]
    if where == 'link':
        os.symlink(secret, inside / 'link.bin')
    if where == 'short':
        (inside / 'short.bin').write_bytes(b'1234')
    path, _ = _external_model(str(inside), location)
    match = {'missing': 'No such file', 'short': 'bytes 0..288 of a 4-byte file'}.get(
        where, "only files inside the model's folder")
    with pytest.raises(engine.ModelFileError, match=match):
        engine.from_onnx(path)


def _valid():
    return make([helper.make_node('Conv', ['x', 'w'], ['y'])], {'w': rand(2, 4, 3, 3)})


HOSTILE = {
    'not protobuf': (lambda: b'\xff\xfe not an onnx file at all', engine.ModelFileError, 'not an ONNX model'),
    'truncated': (lambda: _valid()[:-17], engine.ModelFileError, 'not an ONNX model|onnx.checker'),
    'empty': (lambda: b'', engine.ModelFileError, 'no graph'),
    'dangling input': (lambda: make([helper.make_node('Relu', ['nowhere'], ['y'])]),
                       engine.ModelFileError, 'onnx.checker'),
    'negative dimension': (lambda: make([helper.make_node('Relu', ['x'], ['y'])], shape=(1, 4, -3, 5)),
                           engine.ModelFileError, 'dimensions'),
    'absurd dimension': (lambda: make([helper.make_node('Relu', ['x'], ['y'])], shape=(1, 4, 1 << 40, 5)),
                         engine.ModelFileError, 'dimensions'),
    'weights of the wrong size': (lambda: _resized_initializer(), engine.ModelFileError, 'initializer|checker'),
    'two inputs': (lambda: _two_inputs(), engine.UnsupportedModelError, '2 inputs'),
    'huge constant': (lambda: make([helper.make_node('ConstantOfShape', ['s'], ['c']),
                                    helper.make_node('Add', ['x', 'c'], ['y'])],
                                   {'s': np.array([1 << 30, 1 << 30], np.int64)}),
                      engine.UnsupportedModelError, 'at most'),
    'doubling constants': (lambda: _doubling(), engine.UnsupportedModelError, 'at most'),
    'outer product of constants': (lambda: make([helper.make_node('Mul', ['a', 'b'], ['c']),
                                                 helper.make_node('Add', ['x', 'c'], ['y'])],
                                                {'a': np.zeros((1 << 16, 1), np.float32),
                                                 'b': np.zeros((1, 1 << 16), np.float32)}),
                                   engine.UnsupportedModelError, 'at most'),
    'a constant into a convolution': (lambda: make([helper.make_node('Conv', ['w', 'w'], ['c']),
                                                    helper.make_node('Add', ['x', 'c'], ['y'])],
                                                   {'w': rand(4, 4, 3, 3)}),
                                      engine.UnsupportedModelError, 'Conv of a constant'),
    'weights as activations': (lambda: make([helper.make_node('Conv', ['x', 'x'], ['y'])]),
                               engine.UnsupportedModelError, 'convolution weights computed from the input'),
}


def _doubling():
    """A chain of Concats, each doubling a constant: 2^40 elements at the end."""
    nodes = [helper.make_node('Concat', [f'c{i}', f'c{i}'], [f'c{i + 1}'], axis=0) for i in range(40)]
    return make(nodes + [helper.make_node('Add', ['x', 'c40'], ['y'])], {'c0': np.zeros(1, np.float32)})


def _resized_initializer():
    model = onnx.load_from_string(_valid())
    model.graph.initializer[0].dims[0] = 1 << 40
    return model.SerializeToString()


def _two_inputs():
    model = onnx.load_from_string(make([helper.make_node('Add', ['x', 'z'], ['y'])]))
    model.graph.input.append(helper.make_tensor_value_info('z', TensorProto.FLOAT, [1, 4, 7, 5]))
    return model.SerializeToString()


@pytest.mark.parametrize('name', list(HOSTILE))
def test_hostile_files_give_clear_errors(name, tmp_path):
    make_data, error, match = HOSTILE[name]
    data = make_data()
    with pytest.raises(error, match=match):
        engine.from_onnx(data)
    path = tmp_path / 'm.onnx'
    path.write_bytes(data)
    with pytest.raises(error, match=match):
        engine.from_onnx(str(path))


FUZZ_EXAMPLES = int(os.environ.get('ENGINE_FUZZ_EXAMPLES', '300'))


def test_fuzzed_onnx_files_convert_or_raise_value_errors():
    """Byte flips, truncations and spliced runs of a small valid ShuffleNet-like
    file: each converts (and runs) or raises a ValueError (ModelFileError,
    UnsupportedModelError), never another exception or a crash."""
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1], group=2),
             helper.make_node('Relu', ['c'], ['r'])] + _shuffle_nodes([])
    nodes[2].input[0] = 'r'
    seed = make(nodes, {'w': rand(4, 2, 3, 3), 's1': np.array([1, 2, 2, 7, 5]), 's2': np.array([1, 4, 7, 5])},
                shape=(1, 4, 7, 5))
    check(seed)
    rng = np.random.default_rng(0)
    outcomes = {'converted': 0, 'refused': 0}
    for i in range(FUZZ_EXAMPLES):
        data = bytearray(seed)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data = data[:rng.integers(len(data))]
        else:
            a, b = sorted(rng.integers(len(data), size=2))
            data[a:b] = bytes(rng.integers(256, size=b - a, dtype=np.uint8))
        try:
            model = engine.from_onnx(bytes(data))
        except ValueError:
            outcomes['refused'] += 1
            continue
        try:
            model(rand(*model.input_shape))
        except ValueError:
            pass
        outcomes['converted'] += 1
    assert outcomes['refused'] > 0 and outcomes['converted'] > 0, outcomes


def test_every_unsupported_node_is_listed_with_name_and_type():
    nodes = [helper.make_node('Relu', ['x'], ['r']),
             helper.make_node('Softsign', ['r'], ['s'], name='soft'),
             helper.make_node('LRN', ['s'], ['u'], name='norm', size=3),
             helper.make_node('Relu', ['u'], ['y'])]
    with pytest.raises(engine.UnsupportedModelError) as e:
        engine.from_onnx(make(nodes))
    text = str(e.value)
    assert '2 unsupported' in text and "operator Softsign (node 'soft')" in text and \
        "operator LRN (node 'norm')" in text


def test_a_converted_onnx_model_saves_and_loads(tmp_path):
    data = make([helper.make_node('Conv', ['x', 'w'], ['c'], pads=[1, 1, 1, 1]),
                 helper.make_node('Relu', ['c'], ['y'])], {'w': rand(3, 4, 3, 3)}, shape=('N', 4, 'H', 'W'))
    model = engine.from_onnx(data)
    model.save(tmp_path / 'm.engine')
    loaded = engine.load(tmp_path / 'm.engine')
    x = rand(2, 4, 9, 6)
    np.testing.assert_allclose(loaded(x), reference(data, x)[0], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the command line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_command(args, cwd, env=None):
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize('command', [['-m', 'engine', 'convert'], [os.path.join(ROOT, 'tools', 'convert_onnx.py')]])
def test_convert_command_on_an_onnx_file(command, tmp_path):
    """Convert with labels and --check; the file then runs where neither
    onnx nor torch can be imported."""
    from helpers import import_blocker
    data = make([helper.make_node('GlobalAveragePool', ['x'], ['p']), helper.make_node('Flatten', ['p'], ['f']),
                 helper.make_node('Gemm', ['f', 'w', 'b'], ['y'], transB=1)],
                {'w': rand(3, 4), 'b': rand(3)}, out_rank=2)
    (tmp_path / 'm.onnx').write_bytes(data)
    (tmp_path / 'labels.txt').write_text('cat\ndog\nbird\n')
    r = run_command(command + ['m.onnx', '-o', 'm.engine', '--labels', 'labels.txt', '--check'], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'check: max |engine - onnxruntime|' in r.stdout and r.stdout.rstrip().endswith('OK')
    assert '3 labels' in r.stdout and 'at (1, 4, 224, 224)' in r.stdout
    x = rand(2, 4, 5, 6)
    np.save(tmp_path / 'x.npy', x)
    script = import_blocker('onnx', 'onnxruntime', 'torch') + (
        "import numpy as np, engine\n"
        "m = engine.load('m.engine')\n"
        "print(m.labels)\n"
        "np.save('out.npy', m(np.load('x.npy')))\n")
    r = run_command(['-c', script], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "['cat', 'dog', 'bird']" in r.stdout
    np.testing.assert_allclose(np.load(tmp_path / 'out.npy'), reference(data, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('extra, message', [
    (['m.onnx', '-o', 'm.engine', '--checkpoint', 'w.pth'], '--checkpoint is for PyTorch sources'),
    (['missing.onnx', '-o', 'm.engine'], 'missing.onnx: no such file'),
    (['bad.onnx', '-o', 'm.engine'], 'bad.onnx is not an ONNX model'),
    (['soft.onnx', '-o', 'm.engine'], r"cannot convert soft.onnx: 1 unsupported.*operator Softsign"),
    (['m.onnx', '-o', 'm.engine', '--input-shape', '1,3,8,8'], 'input_shape .* has 3 channels; the model takes 4'),
])
def test_convert_command_errors_are_messages(tmp_path, extra, message):
    import re
    (tmp_path / 'm.onnx').write_bytes(make([helper.make_node('Relu', ['x'], ['y'])]))
    (tmp_path / 'w.pth').write_bytes(b'')
    (tmp_path / 'bad.onnx').write_bytes(b'\x00garbage')
    (tmp_path / 'soft.onnx').write_bytes(make([helper.make_node('Softsign', ['x'], ['y'])]))
    r = run_command(['-m', 'engine', 'convert'] + extra, tmp_path)
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'Traceback' not in r.stderr, r.stderr
    assert re.search(message, r.stderr, re.S), r.stderr
    assert not (tmp_path / 'm.engine').exists()
