#!/usr/bin/env python3
"""int8 accuracy: the engine's quantization beside ONNX Runtime's static
quantization of the same models, on the same calibration and test inputs.

  python tools/int8_accuracy.py                     # digits and the four ShuffleNet-family models
  python tools/int8_accuracy.py --models shufflenet_v2_x0_5 --json out.json

Models of tests/torch_models.py and tests/family_models.py get seeded weights
(torch_models.randomize); CALIBRATION images calibrate, EVALUATION others
measure, all uniform in [-1, 1] (what their BatchNorm statistics were
measured on).  Reported: the signal-to-quantization-noise ratio of the int8
model's logits against the float32 model's (dB: higher is better) and how
often their top-1 classes agree.  `digits` is the shipped model
(weights/digits_shufflenet.*): calibrated on weights/digits_calibration.npz
(training images), measured on the 360 held-out images of
weights/digits_test.npz, with top-1 accuracy against the labels too.

The engine: engine.int8 (per-channel int8 weights, per-tensor activations,
shared scales across shuffles and concats, the first convolution float32)
with each calibration method, computed by the reference (engine/reference.py:
the arithmetic the kernels will do).  ONNX Runtime: torch.onnx.export (opset
17), onnxruntime.quantization.quantize_static (QDQ, per channel, int8
activations and weights) with each of its calibration methods, run by its CPU
provider; once quantizing every layer (its default) and once keeping the
first convolution float32 as the engine does ('ORT, first conv fp32')."""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))
sys.path.insert(0, os.path.join(ROOT, 'tools'))

MODELS = ['digits', 'shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v1_g3', 'mobilenet_v2']
CALIBRATION, EVALUATION = 32, 16
ORT_METHODS = ('MinMax', 'Percentile', 'Entropy')


def model_and_data(name, size):
    """(torch module, calibration inputs, evaluation inputs, labels or None)."""
    import torch
    import family_models
    import torch_models
    if name == 'digits':
        import train_digits
        from engine.preprocess import to_array
        net = train_digits.build_net()
        net.load_state_dict(torch.load(os.path.join(ROOT, 'weights', 'digits_shufflenet.pth'), weights_only=True))
        cal = np.load(os.path.join(ROOT, 'weights', 'digits_calibration.npz'))
        test = np.load(os.path.join(ROOT, 'weights', 'digits_test.npz'))
        prep = [np.stack([to_array(im, train_digits.PREPROCESS, 1) for im in d['images']]) for d in (cal, test)]
        return net.eval(), prep[0], prep[1], test['labels']
    build = getattr(torch_models, name, None) or getattr(family_models, name, None)
    if build is None:
        raise SystemExit(f'unknown model {name!r}: digits, or a builder of tests/torch_models.py or '
                         'tests/family_models.py')
    net = torch_models.randomize(build(), seed=0)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(CALIBRATION + EVALUATION, 3, size, size, generator=g) * 2 - 1).numpy()
    return net, x[:CALIBRATION], x[CALIBRATION:], None


def scores(reference, test, labels):
    row = {'sqnr_db': round(_sqnr(reference, test), 2),
           'top1_agreement': float((reference.argmax(1) == test.argmax(1)).mean())}
    if labels is not None:
        row['top1_accuracy'] = float((test.argmax(1) == labels).mean())
    return row


def _sqnr(reference, test):
    from engine.int8 import sqnr_db
    return sqnr_db(reference, test)


def engine_rows(net, xc, xe, labels, methods=None):
    """{label: scores} of float32 and of each calibration method (None: all)."""
    from engine import int8
    from engine.convert import convert
    from engine.reference import run_graph
    graph = convert(net, xc[:1])
    ref = run_graph(graph, xe)[0]
    rows = {'fp32': scores(ref, ref, labels)}
    for method in methods or int8.METHODS:
        q, _ = int8.quantize_graph(graph, int8.calibrate(graph, xc, method))
        rows[f'engine {method}'] = scores(ref, run_graph(q, xe)[0], labels)
    return rows


def ort_quantize(f32, path, xc, method='MinMax', exclude=()):
    """ONNX Runtime's static quantization of the ONNX file f32 (input named
    'input') into path: QDQ, per channel, int8 activations and weights,
    calibrated on xc (N, C, H, W) by `method`; the nodes named in exclude
    stay float32."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(xc[i:i + 1] for i in range(len(xc)))

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {'input': x}
    quantize_static(f32, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(exclude))


def ort_rows(net, xc, xe, labels, workdir, methods=ORT_METHODS):
    """{label: scores} of ONNX Runtime's int8 model by each calibration
    method, quantizing every layer and keeping the first convolution float32."""
    import onnx
    import onnxruntime as ort
    import torch

    def run(path):
        session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        return np.concatenate([session.run(None, {'input': xe[i:i + 1]})[0] for i in range(len(xe))])

    f32 = os.path.join(workdir, 'model.onnx')
    torch.onnx.export(net, (torch.from_numpy(xc[:1]),), f32, opset_version=17, dynamo=False,
                      input_names=['input'], output_names=['output'], dynamic_axes={'input': {0: 'n'}})
    first_conv = next(n.name for n in onnx.load(f32).graph.node if n.op_type == 'Conv')
    ref = run(f32)
    rows = {}
    for method in methods:
        for label, exclude in (('', []), (', first conv fp32', [first_conv])):
            path = os.path.join(workdir, f'model-{method}{len(exclude)}.onnx')
            ort_quantize(f32, path, xc, method, exclude)
            rows[f'ORT {method}{label}'] = scores(ref, run(path), labels)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=MODELS)
    p.add_argument('--size', type=int, default=224, help='input size of the seeded models (digits: 32)')
    p.add_argument('--json', help='write the results here too')
    args = p.parse_args(argv)
    import logging
    logging.disable(logging.WARNING)     # quantize_static's advice to pre-process
    results = {}
    for name in args.models:
        start = time.time()
        net, xc, xe, labels = model_and_data(name, args.size)
        with tempfile.TemporaryDirectory() as workdir:
            rows = {**engine_rows(net, xc, xe, labels), **ort_rows(net, xc, xe, labels, workdir)}
        results[name] = rows
        print(f'\n{name}: {len(xc)} calibration and {len(xe)} test inputs ({time.time() - start:.0f} s)')
        cols = list(next(iter(rows.values())))
        print('| quantization | ' + ' | '.join(cols) + ' |\n|---|' + '---|' * len(cols))
        for label, row in rows.items():
            print(f'| {label} | ' + ' | '.join(f'{row[c]:.4g}' for c in cols) + ' |', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'calibration': CALIBRATION, 'evaluation': EVALUATION, 'size': args.size,
                       'results': results}, f, indent=1)


if __name__ == '__main__':
    main()
