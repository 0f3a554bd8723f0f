"""Smaller (and int8) models: `engine.quantize(model, weights='fp16')` or
`weights='int8', calibration=...`, and `python -m engine quantize MODEL -o OUT
--fp16` or `--int8 --calibration PATH [--report]`.

int8 (engine/int8.py: the scheme): weights int8 per output channel,
activations int8 per tensor with ranges calibrated on the caller's inputs
(a folder of images, preprocessed as the model's settings say, or an
.npy/.npz), by least squared error by default; the first convolution on
the image and the layers no int8 kernel runs stay float32, each with its
reason.

fp16 weights: kernels and matrices stored as float16 in the file (about
half its size: a Pi's SD card and memory are small), vectors (biases,
scales) kept float32; widened to float32 when the file is loaded, so the
arithmetic is float32's and outputs differ from the float32 model's only by
the weights' rounding (graph.round_weights).

That rounding (a relative 2^-12 per weight, on average) adds up through a
deep network, and some layers move the outputs far more per weight than
others: the first convolutions and the small layers of early blocks.  So by
default the layers whose rounding moves the outputs most per weight keep
float32, as many as fit in KEEP_SHARE of the weights, measured on the
caller's inputs or on random ones (sensitive_layers).  On the randomized
test models this cuts the error 1.5-6x for a file 1% larger."""
import argparse
import os
import sys

import numpy as np

from engine.graph import kernel_weights, round_weights, value_dtypes, value_quants
from engine.int8 import METHODS, calibrate, calibration_inputs, layer_errors, quantize_graph, sqnr_db

WEIGHTS = {'fp16': 'float16', 'fp32': 'float32'}     # the option's names -> graph.WEIGHT_STORAGE
KEEP_SHARE = 0.025      # of the weights at most kept float32: the file stays below 0.52x float32's


def quantize(model, *, weights='fp16', keep=None, inputs=None, calibration=None, method='mse', progress=None):
    """A new Model with its weights stored as `weights` ('fp16', or 'fp32'
    to undo), or an int8 model ('int8'); the same threads and cache size as
    model.

    keep: names of layers whose weights stay float32; None chooses them
    (fp16: sensitive_layers, on `inputs` if given; int8: the first
    convolution on the image), () keeps none.  int8 only: calibration, the
    inputs its ranges are measured on (an (N, C, H, W) array, or a path:
    engine.int8.calibration_inputs), method (engine.int8.METHODS), progress
    (done, total) during calibration."""
    from engine.model import Model
    if weights not in WEIGHTS and weights != 'int8':
        raise ValueError(f'weights must be one of {", ".join(WEIGHTS)}, int8, got {weights!r}')
    if 'int8' in value_dtypes(model.graph).values():
        raise ValueError('the model is int8 already: quantize its float32 original')
    if weights == 'int8':
        if calibration is None:
            raise ValueError("weights='int8' needs calibration inputs (an array, or a folder of images, "
                             "or an .npy/.npz file)")
        if isinstance(calibration, (str, os.PathLike)):
            calibration = calibration_inputs(os.fspath(calibration), model.preprocessing, model.input_shape[1])
        graph, _ = quantize_graph(model.graph, calibrate(model.graph, calibration, method, progress=progress), keep)
        return Model(graph, threads=model._threads_asked, cache_bytes=model.cache_bytes, options=model.options)
    if keep is None:
        keep = sensitive_layers(model, inputs) if weights == 'fp16' else ()
    return Model(round_weights(model.graph, WEIGHTS[weights], keep), threads=model._threads_asked,
                 cache_bytes=model.cache_bytes, options=model.options)


def relative_error(out, ref):
    """Largest difference relative to the largest reference output (at least 1):
    the measure the model tests use."""
    out, ref = _flat(out), _flat(ref)
    return float(np.abs(out - ref).max() / max(1.0, float(np.abs(ref).max())))


def sensitive_layers(model, inputs=None, share=KEEP_SHARE):
    """The layers to keep float32: each layer's weights alone are rounded to
    float16 and the outputs' relative_error on `inputs` (default: two random
    images of the model's size) measured; errors from different layers add
    as powers, so the layers with the largest error^2 per weight are taken
    first, as many as fit in `share` of all the weights."""
    from engine.model import Model
    if inputs is None:
        inputs = np.random.default_rng(0).standard_normal((2,) + model.input_shape[1:]).astype(np.float32)
    ref = model(inputs)
    size = {n.name: k for n in model.graph.nodes if (k := kernel_weights(n))}
    gain = {}
    for name in size:
        alone = round_weights(model.graph, 'float16', keep=set(size) - {name})
        gain[name] = relative_error(Model(alone, threads=model._threads_asked)(inputs), ref) ** 2 / size[name]
    budget, keep = share * sum(size.values()), []
    for name in sorted(size, key=lambda name: -gain[name]):
        if size[name] <= budget and gain[name] > 0:
            keep.append(name)
            budget -= size[name]
    return keep


def _flat(out):
    return np.concatenate([np.ravel(o) for o in out]) if isinstance(out, list) else np.ravel(out)


def run(args):
    import engine
    model = engine.load(args.model)
    if args.int8:
        return run_int8(model, args)
    inputs = None
    if args.inputs:
        inputs = np.load(args.inputs)
        if not isinstance(inputs, np.ndarray):
            raise ValueError(f'{args.inputs}: expected one array (N, C, H, W), as np.save writes')
        inputs = inputs.astype(np.float32)
    keep = () if args.all else None
    small = quantize(model, weights='fp16' if args.fp16 else 'fp32', keep=keep, inputs=inputs)
    small.save(args.output)
    before, after = os.path.getsize(args.model), os.path.getsize(args.output)
    print(f'wrote {args.output}: {after / 1e6:.2f} MB ({after / before:.3f}x {args.model})')
    kept = [n.name for n in small.graph.nodes if n.storage == 'float32' and kernel_weights(n)]
    if args.fp16:
        print(f'float32 kept for {len(kept)} layers: {", ".join(kept) or "none"}')
    x = inputs if inputs is not None else \
        np.random.default_rng(1).standard_normal((2,) + model.input_shape[1:]).astype(np.float32)
    print(f'outputs against {args.model}: relative error {relative_error(small(x), model(x)):.2e} '
          f'on {"the given" if inputs is not None else "random"} inputs {x.shape}')


def run_int8(model, args):
    if not args.calibration:
        raise ValueError('--int8 needs --calibration PATH (a folder of images, or an .npy/.npz of inputs)')
    x = calibration_inputs(args.calibration, model.preprocessing, model.input_shape[1], args.limit)
    print(f'calibrating on {len(x)} inputs from {args.calibration} ({args.method})', file=sys.stderr)

    def progress(done, total):
        print(f'\r  {done}/{total} batches', end='' if done < total else '\n', file=sys.stderr, flush=True)
    keep = None if args.keep is None else [k for k in args.keep.split(',') if k]
    small = quantize(model, weights='int8', calibration=x, method=args.method, keep=keep, progress=progress)
    small.save(args.output)
    before, after = os.path.getsize(args.model), os.path.getsize(args.output)
    print(f'wrote {args.output}: {after / 1e6:.2f} MB ({after / before:.3f}x {args.model})')
    for name, why in small.graph.meta['int8']['kept_float32'].items():
        print(f'float32 kept: {name}: {why}')
    print(f'outputs against {args.model} on the calibration inputs: SQNR {sqnr_db(model(x), small(x)):.1f} dB')
    if args.report:
        quants = value_quants(small.graph)
        print(f'{"layer":40s} {"op":16s} {"dtype":8s} {"scale":>10s} {"zero":>5s} {"SQNR dB":>8s}')
        for row in layer_errors(model.graph, small.graph, x):
            scale, zero = quants[row['name']] or ('', '')
            scale = f'{scale:.4g}' if scale != '' else ''
            print(f'{row["name"]:40s} {row["op"]:16s} {row["dtype"]:8s} {scale:>10s} {zero!s:>5s} '
                  f'{row["sqnr_db"]:8.1f}')


def add_parser(sub):
    p = sub.add_parser('quantize', help='store a model\'s weights in fewer bits (--fp16), or make it int8 (--int8)',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='model file')
    p.add_argument('-o', '--output', required=True, help='model file to write')
    kind = p.add_mutually_exclusive_group()
    kind.add_argument('--fp16', action='store_true', help='kernels and matrices as float16 (else: back to float32)')
    kind.add_argument('--int8', action='store_true', help='an int8 model, calibrated on --calibration')
    p.add_argument('--calibration', help='--int8: a folder of images (preprocessed by the model\'s settings) or an '
                                         '.npy/.npz of images or inputs (N, C, H, W)')
    p.add_argument('--limit', type=int, help='--int8: at most this many calibration inputs')
    p.add_argument('--method', choices=METHODS, default='mse', help='--int8: how ranges are chosen (default mse)')
    p.add_argument('--keep', help='--int8: layers to keep float32, comma-separated (default: the first '
                                  'convolution on the image; "" none)')
    p.add_argument('--report', action='store_true', help='--int8: each layer\'s SQNR against float32 on the '
                                                         'calibration inputs')
    p.add_argument('--all', action='store_true', help='every layer float16 (default: the most sensitive stay float32)')
    p.add_argument('--inputs', help='.npy file of model inputs (N, C, H, W), preprocessed, to measure sensitivity on')
    p.set_defaults(func=run)
