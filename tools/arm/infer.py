"""Runs inside the emulated aarch64 python, under tools/arm/probe.c: one
engine, one model, one process (tools/count_aarch64.py starts it).

  python3.11 infer.py KIND MODELDIR [--threads T] [--iters N] [--warmup W] [--plan K=V] --json OUT

KIND: engine  this project, engine.load(MODELDIR/model.engine, threads=T, precision=P), with
              PlanOptions from --plan KEY=VALUE (repeated) and P from --precision (fp32, fp16;
              int8: MODELDIR/model-int8.engine)
      ncnn    ncnn from PyPI, num_threads=T; fp32: fp32 throughout (fp16 packed/storage/
              arithmetic and bf16 storage off: its defaults store weights in fp16); fp16: its
              fp16 defaults (storage, packing, arithmetic where the CPU has it)
      ort     onnxruntime's CPU provider, intra_op_num_threads=T, sequential, all graph optimisations
              (--precision int8: MODELDIR/model-int8.onnx)

One inference is what a caller does per image (ncnn: a new Extractor, a Mat from the
array, extract, back to an array).  The process marks points with syscall 0x7e57
(tag, window), which probe.c snapshots: 1 imports done, 2 model loaded, 3 first
inference done, 10+i before counted inference i (the profile window opens at the
first), 10+N after the last (window closed), 90 and 91 back to back (a mark's own
cost), and for the engine 1000+i before layer i of one more run, layer by layer.
"""
import argparse
import ctypes
import json
import sys

_syscall = ctypes.CDLL(None).syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long]
MARKER, WINDOW_OPEN, WINDOW_CLOSE = 0x7E57, 1, 2


def mark(tag, window=0):
    _syscall(MARKER, tag, window)


def engine_runner(mdir, x, threads, info, plan, precision):
    import ast
    import engine
    from engine.lowering import PlanOptions
    info['build'] = engine.build_info()
    options = PlanOptions(**{k: ast.literal_eval(v) for k, v in (o.split('=', 1) for o in plan)})
    mark(1)
    int8 = precision == 'int8'
    model = engine.load(f'{mdir}/model{"-int8" if int8 else ""}.engine', threads=threads, options=options,
                        precision='fp32' if int8 else precision)
    info['kernels'] = model.kernels.ISA
    mark(2)

    def by_layer():
        for i, _ in model.step(x):      # and once after the last layer
            mark(1000 + i)
    info['layers'] = [dict(l, shape=list(l['shape'])) for l in model.layers(x)]
    info['runs_by_threads'] = model.runs_by_threads     # filled in as it runs
    return model, by_layer


def ncnn_runner(mdir, x, threads, info, plan, precision):
    import ncnn
    import numpy as np
    info['version'] = ncnn.__version__
    mark(1)
    net = ncnn.Net()
    net.opt.num_threads = threads
    # fp32: fp16 and bf16 off (ncnn's defaults store weights in fp16); fp16: ncnn's
    # defaults, fp16 storage, packing and arithmetic where the CPU has them
    fp16 = precision == 'fp16'
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = fp16
    net.opt.use_bf16_storage = False
    net.load_param(f'{mdir}/model.ncnn.param')
    net.load_model(f'{mdir}/model.ncnn.bin')
    image = np.ascontiguousarray(x[0])
    mark(2)

    def run(_):
        ex = net.create_extractor()
        ex.input('in0', ncnn.Mat(image))
        _, out = ex.extract('out0')
        return np.array(out)
    return run, None


def ort_runner(mdir, x, threads, info, plan, precision):
    import onnxruntime as ort
    info['version'] = ort.__version__
    mark(1)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(f'{mdir}/model{"-int8" if precision == "int8" else ""}.onnx', so,
                                providers=['CPUExecutionProvider'])
    mark(2)
    return (lambda a: sess.run(None, {'input': a})[0]), None


RUNNERS = {'engine': engine_runner, 'ncnn': ncnn_runner, 'ort': ort_runner}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kind', choices=sorted(RUNNERS))
    ap.add_argument('modeldir')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--iters', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--json', required=True)
    ap.add_argument('--plan', action='append', default=[], help="engine: a PlanOptions field, KEY=VALUE")
    ap.add_argument('--precision', default='fp32', help="engine and ncnn: fp32 or fp16; engine and ort: int8")
    a = ap.parse_args()
    import numpy as np
    x = np.load(f'{a.modeldir}/input.npy')
    ref = np.load(f'{a.modeldir}/reference.npy')
    info = dict(kind=a.kind, threads=a.threads, iters=a.iters)
    run, by_layer = RUNNERS[a.kind](a.modeldir, x, a.threads, info, a.plan, a.precision)
    y = np.asarray(run(x)).reshape(ref.shape)
    mark(3)
    info['max_abs_diff'] = float(np.abs(y - ref).max())
    info['ref_absmax'] = float(np.abs(ref).max())
    info['sqnr_db'] = float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                                          / max(np.sum((y - ref).astype(np.float64) ** 2), 1e-300)))
    for _ in range(a.warmup):
        run(x)
    for i in range(a.iters):
        mark(10 + i, WINDOW_OPEN if i == 0 else 0)
        run(x)
    mark(10 + a.iters, WINDOW_CLOSE)
    mark(90)
    mark(91)
    if by_layer:
        by_layer()
    with open('/proc/self/maps') as f:          # the guest's view: attributes blocks to objects
        info['maps'] = f.read()
    with open(a.json, 'w') as f:
        json.dump(info, f)


if __name__ == '__main__':
    sys.exit(main())
