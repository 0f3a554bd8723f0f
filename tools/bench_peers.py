#!/usr/bin/env python3
"""Latency of the engine next to other engines on the same models, same
threads, in one run.

  python tools/bench_peers.py                          # the four models of the README, 1 and 2 threads
  python tools/bench_peers.py --models shufflenet_v2_x0_5 shufflenet_v2_x1_0 --threads 1 --json
  python tools/bench_peers.py --models nanodet_plus_m --size 320      # the detector's network
  python tools/bench_peers.py --int8 --models shufflenet_v2_x1_0      # int8 models
  python tools/bench_peers.py --models conv:128-256-28-3-2 --threads 1 # one layer (below)

Each engine runs in a worker process of its own (thread pools of different
runtimes must not compete for the cores); the driver interleaves them: every
round, each worker times a block of runs in turn (SETTLE_S apart, so that the
last one's idle threads have stopped spinning), so drift in the machine's
speed hits all engines alike.  Reported: medians over all timed runs, and each
peer's median divided by the engine's (> 1: the engine is faster), with the
range of that ratio over the rounds (each round's medians): when it straddles
1, the run does not separate the two.  At several threads, also how many of
the engine's timed runs its thread choice ran on one thread (it tries one now
and then, and keeps to one while that is faster: cores busy).

Peers are the ones installed of: onnxruntime (opset 17 export, ORT_ENABLE_ALL,
intra-op threads = T, inter-op 1, sequential), openvino (from the same ONNX
file, INFERENCE_PRECISION_HINT=f32 since its default on AVX-512-BF16 CPUs is
bf16, INFERENCE_NUM_THREADS=T, PERFORMANCE_HINT=LATENCY), ncnn (through pnnx
with fp16=False, and fp16/bf16 storage and arithmetic off), mnn (MNN's
Python package: the ONNX file through its mnnconvert, a CPU session of T
threads with precision 'high': fp32), xnnpack (XNNPACK through ExecuTorch,
PyPI executorch: torch.export, every op XNNPACK takes delegated to it, fp32;
its thread pool reset to T), torch (eager, torch.set_num_threads(T)).  Needs
torch to build the models; all engines get the same weights and their
outputs are checked against PyTorch's before timing.  --plot FILE.png draws
the medians (needs matplotlib).

A model named conv:CIN-COUT-HW-K-S is one layer: a K x K convolution of stride
S (padding K // 2, bias) from CIN to COUT channels on an HW x HW input, then a
ReLU (conv:128-256-28-3-2 is ResNet-18's layer3.0.conv1): where a network is
slower than a peer, which of its layers are.

--int8: int8 models of each network, calibrated on the same INT8_CALIBRATION
random inputs: the engine's (engine.quantize, its defaults), ONNX Runtime's
(quantize_static: QDQ, per channel, int8 activations and weights, MinMax,
every layer) run by onnxruntime and by openvino (which runs QDQ models in
int8); each output's SQNR against PyTorch's float32 is checked (at least
INT8_MIN_SQNR_DB) and reported.
"""
import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ['engine', 'onnxruntime', 'openvino', 'ncnn', 'mnn', 'xnnpack', 'torch']
MODULES = {'mnn': 'MNN', 'xnnpack': 'executorch'}       # a peer's Python module, where its name differs
DISTRIBUTIONS = {'xnnpack': 'executorch'}               # its PyPI package, where that differs
FILES = {'ncnn': 'ncnn_param', 'mnn': 'mnn', 'xnnpack': 'pte'}     # the model file a peer needs beside the ONNX one
INT8_PEERS = ('engine', 'onnxruntime', 'openvino')      # the ones --int8 times (on the int8 files)
INT8_CALIBRATION = 16
INT8_MIN_SQNR_DB = 10.0     # (a sanity check: the int8 models reach 16-20 dB on random weights)


# ---------------------------------------------------------------------------
# worker: one engine, one model, one thread count; commands on stdin

def _load_runner(peer, files, threads):
    """A function x -> output for this peer."""
    if peer == 'engine':
        sys.path.insert(0, ROOT)
        import engine
        model = engine.load(files['engine'], threads=threads)

        def run_engine(x):
            return model.run(x)
        # the runs its thread choice gave one thread (engine/model.py: _ThreadChoice), reported
        run_engine.runs_by_threads = model.runs_by_threads
        return run_engine
    if peer == 'onnxruntime':
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(files['onnx'], opts, providers=['CPUExecutionProvider'])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    if peer == 'openvino':
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(core.read_model(files['onnx']), 'CPU', {
            'INFERENCE_PRECISION_HINT': 'f32', 'INFERENCE_NUM_THREADS': threads,
            'PERFORMANCE_HINT': 'LATENCY'})
        request = compiled.create_infer_request()

        def run_ov(x):
            request.infer({0: x})
            return request.get_output_tensor(0).data.copy()
        return run_ov
    if peer == 'ncnn':
        import ncnn
        net = ncnn.Net()
        for opt in ('use_fp16_packed', 'use_fp16_storage', 'use_fp16_arithmetic', 'use_bf16_storage'):
            setattr(net.opt, opt, False)
        net.opt.num_threads = threads
        net.load_param(files['ncnn_param'])
        net.load_model(files['ncnn_bin'])

        def run_ncnn(x):
            ex = net.create_extractor()
            ex.input('in0', ncnn.Mat(np.ascontiguousarray(x[0])))
            _, out = ex.extract('out0')
            return np.array(out)[None]
        return run_ncnn
    if peer == 'mnn':
        import MNN
        interp = MNN.Interpreter(files['mnn'])
        sess = interp.createSession({'numThread': threads, 'precision': 'high', 'backend': 'CPU'})
        given = interp.getSessionInput(sess)

        def run_mnn(x):
            given.copyFrom(MNN.Tensor(x.shape, MNN.Halide_Type_Float, x, MNN.Tensor_DimensionType_Caffe))
            interp.runSession(sess)
            out = interp.getSessionOutput(sess)
            host = MNN.Tensor(out.getShape(), MNN.Halide_Type_Float, np.zeros(out.getShape(), np.float32),
                              MNN.Tensor_DimensionType_Caffe)
            out.copyToHostTensor(host)
            return np.array(host.getData(), np.float32).reshape(out.getShape())
        return run_mnn
    if peer == 'xnnpack':
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime
        portable_lib._unsafe_reset_threadpool(threads)      # XNNPACK's pool: all cores by default
        method = Runtime.get().load_program(files['pte']).load_method('forward')
        return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()
    if peer == 'torch':
        import torch
        torch.set_num_threads(threads)
        net = torch.jit.load(files['torchscript']).eval()
        def run(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()
        return run
    raise ValueError(peer)


def worker(args):
    import time
    # the protocol on a stdout of its own; what runtimes print (MNN's banner) to stderr
    proto = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    files = json.loads(args.files)
    run = _load_runner(args.worker, files, args.threads[0])
    x = np.load(files['input'])
    print(json.dumps({'ready': True, 'output': run(x).ravel()[:1000].tolist()}), file=proto, flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get('quit'):
            break
        for _ in range(cmd.get('warmup', 0)):
            run(x)
        by_threads = getattr(run, 'runs_by_threads', {})
        one_before = by_threads.get(1, 0)
        times = []
        for _ in range(cmd['runs']):
            t0 = time.perf_counter()
            run(x)
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({'times': times, 'one_thread': by_threads.get(1, 0) - one_before}), file=proto,
              flush=True)


# ---------------------------------------------------------------------------
# driver

def available(peer):
    if peer == 'engine':
        return True
    # found, not imported: importing some prints (MNN a banner, on the driver's JSON)
    return importlib.util.find_spec(MODULES.get(peer, peer)) is not None


LAYER = 'conv:'      # a one-layer model's name: conv:CIN-COUT-HW-K-S


def layer_model(name):
    """(torch module, input shape) of a one-layer model conv:CIN-COUT-HW-K-S,
    or None for another name.  (The layer is `conv`: pnnx's names must not
    be a Sequential's indices.)"""
    import torch
    if not name.startswith(LAYER):
        return None
    try:
        cin, cout, hw, k, s = (int(v) for v in name[len(LAYER):].split('-'))
    except ValueError:
        raise SystemExit(f'{name!r}: a layer model is conv:CIN-COUT-HW-K-S, five integers') from None

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(cin, cout, k, s, k // 2)

        def forward(self, x):
            return torch.relu(self.conv(x))
    return Layer(), (1, cin, hw, hw)


def prepare(model_name, size, workdir, int8=False):
    """Model files for every peer from one torch model, and the reference
    (int8: the int8 models of the engine and of ONNX Runtime)."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    sys.path.insert(0, ROOT)
    import detection_models
    import family_models
    import torch_models
    import engine
    layer = layer_model(model_name)
    build = (lambda: layer[0]) if layer else next(
        (getattr(m, model_name) for m in (torch_models, family_models, detection_models)
         if hasattr(m, model_name)), None)
    if build is None:
        raise SystemExit(f'unknown model {model_name!r}: a builder of tests/torch_models.py, '
                         'tests/family_models.py or tests/detection_models.py, or a layer conv:...')
    net = torch_models.randomize(build(), seed=0, calibrate=not layer)     # (a layer has no BatchNorm)
    shape = layer[1] if layer else (1, 3, size, size)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    model_name = model_name.replace(':', '-')       # (file names)
    files = {'input': os.path.join(workdir, f'{model_name}.npy')}
    np.save(files['input'], x.numpy())
    files['engine'] = os.path.join(workdir, f'{model_name}.engine')
    engine.from_torch(net, x).save(files['engine'])
    files['onnx'] = os.path.join(workdir, f'{model_name}.onnx')
    torch.onnx.export(net, (x,), files['onnx'], opset_version=17, dynamo=False,
                      input_names=['input'], output_names=['output'])
    if int8:
        sys.path.insert(0, os.path.join(ROOT, 'tools'))
        from int8_accuracy import ort_quantize
        cal = torch.rand(INT8_CALIBRATION, *shape[1:], generator=torch.Generator().manual_seed(1)).numpy()
        engine.quantize(engine.load(files['engine']), weights='int8', calibration=cal).save(files['engine'])
        files['onnx_int8'] = os.path.join(workdir, f'{model_name}-int8.onnx')
        ort_quantize(files['onnx'], files['onnx_int8'], cal)
        files['onnx'] = files['onnx_int8']
        with torch.no_grad():
            return files, net(x).numpy().ravel()[:1000]
    files['torchscript'] = os.path.join(workdir, f'{model_name}.pt')
    with torch.no_grad():
        torch.jit.trace(net, x).save(files['torchscript'])
        ref = net(x).numpy().ravel()[:1000]
    if available('ncnn') and available('pnnx'):
        import pnnx
        sub = os.path.join(workdir, f'{model_name}-pnnx')
        os.makedirs(sub, exist_ok=True)
        files['ncnn_param'] = os.path.join(sub, 'model.ncnn.param')
        files['ncnn_bin'] = os.path.join(sub, 'model.ncnn.bin')
        pnnx.export(net, os.path.join(sub, 'model.pt'), (x,), ncnnparam=files['ncnn_param'],
                    ncnnbin=files['ncnn_bin'], fp16=False)
    convert = shutil.which('mnnconvert', path=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    if available('mnn') and convert:
        mnn = os.path.join(workdir, f'{model_name}.mnn')
        done = subprocess.run([convert, '-f', 'ONNX', '--modelFile', files['onnx'], '--MNNModel', mnn,
                               '--bizCode', 'MNN'], capture_output=True, text=True)
        if done.returncode or not os.path.exists(mnn):
            raise SystemExit(f'mnnconvert failed on {model_name}: {done.stdout[-500:]}{done.stderr[-500:]}')
        files['mnn'] = mnn
    if available('xnnpack'):
        files['pte'] = os.path.join(workdir, f'{model_name}.pte')
        export_xnnpack(net, x, files['pte'])
    return files, ref


def export_xnnpack(net, x, path):
    """An ExecuTorch program of net with every op XNNPACK takes delegated to
    it; says which ops are left to ExecuTorch's own (portable) kernels."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    edge = to_edge_transform_and_lower(torch.export.export(net, (x,)), partitioner=[XnnpackPartitioner()])
    left = sorted({str(n.target) for n in edge.exported_program().graph.nodes if n.op == 'call_function'
                   and 'executorch_call_delegate' not in str(n.target) and 'getitem' not in str(n.target)})
    if left:
        print(f'xnnpack: not delegated, run by ExecuTorch\'s portable kernels: {", ".join(left)}',
              file=sys.stderr)
    with open(path, 'wb') as f:
        f.write(edge.to_executorch().buffer)


# between one worker's block of runs and the next: idle thread pools spin on
# after a run (ONNX Runtime's for about 50 ms, measured: a core taken from the
# next engine's block), then sleep
SETTLE_S = 0.2


class Worker:
    def __init__(self, peer, files, threads):
        self.peer = peer
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--worker', peer, '--threads', str(threads),
             '--files', json.dumps(files)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env)
        self.output = np.array(self._read()['output'])

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f'{self.peer} worker died')
        return json.loads(line)

    def time(self, runs, warmup=0):
        """The block's times (ms), and how many of its runs had one thread."""
        self.proc.stdin.write(json.dumps({'runs': runs, 'warmup': warmup}) + '\n')
        self.proc.stdin.flush()
        reply = self._read()
        return reply['times'], reply['one_thread']

    def close(self):
        self.proc.stdin.write('{"quit": true}\n')
        self.proc.stdin.close()
        self.proc.wait()


def compare(model_name, threads, args, files, ref):
    peers = [p for p in args.peers if available(p) and (p not in FILES or FILES[p] in files)
             and (not args.int8 or p in INT8_PEERS)]
    workers = [Worker(p, files, threads) for p in peers]
    sqnr = {}
    try:
        for w in workers:
            if args.int8:
                sqnr[w.peer] = 10 * np.log10(np.sum(ref ** 2) / np.sum((w.output.ravel()[:len(ref)] - ref) ** 2))
                if sqnr[w.peer] < INT8_MIN_SQNR_DB:
                    raise SystemExit(f'{w.peer} int8 is far from PyTorch on {model_name}: SQNR {sqnr[w.peer]:.1f} dB')
                continue
            err = float(np.abs(w.output - ref).max())
            if err > 1e-3 * max(1, np.abs(ref).max()):
                raise SystemExit(f'{w.peer} disagrees with PyTorch on {model_name}: max error {err:.3g}')
        rounds = {w.peer: [] for w in workers}
        one_thread = 0      # the engine's timed runs its thread choice gave one thread
        for w in workers:
            w.time(0, warmup=args.warmup)
        for r in range(args.rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            for w in order:
                block, one = w.time(args.runs)
                rounds[w.peer].append(block)
                one_thread += one if w.peer == 'engine' else 0
                time.sleep(SETTLE_S)
    finally:
        for w in workers:
            w.close()
    times = {p: np.concatenate(r) for p, r in rounds.items()}
    med = {p: float(np.median(t)) for p, t in times.items()}
    return {p: dict(median_ms=med[p], min_ms=float(np.min(times[p])), runs=len(times[p]),
                    ratio_to_engine=med[p] / med['engine'],
                    ratio_range=round_ratio_range(rounds[p], rounds['engine']),
                    **({'sqnr_db': float(sqnr[p])} if p in sqnr else {}),
                    **({'one_thread_runs': one_thread} if p == 'engine' and threads > 1 else {}))
            for p in times}


def round_ratio_range(peer_rounds, engine_rounds):
    """[lowest, highest] over the rounds of the peer's median / the engine's
    median in the same round: how far the machine's drift moves the ratio
    within one run (the engines of a round ran back to back)."""
    ratios = [float(np.median(p) / np.median(e)) for p, e in zip(peer_rounds, engine_rounds)]
    return [min(ratios), max(ratios)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=['shufflenet_v2_x1_0', 'shufflenet_v2_x0_5',
                                                   'shufflenet_v1_g3', 'mobilenet_v2'])
    p.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--peers', nargs='+', default=PEERS, choices=PEERS)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--rounds', type=int, default=10, help='interleaved rounds (default %(default)s)')
    p.add_argument('--runs', type=int, default=30, help='timed runs per round (default %(default)s)')
    p.add_argument('--warmup', type=int, default=20)
    p.add_argument('--json', action='store_true')
    p.add_argument('--int8', action='store_true', help='int8 models (engine, onnxruntime, openvino)')
    p.add_argument('--plot', help='write a bar chart of the medians to this PNG (needs matplotlib)')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--files', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if 'engine' not in args.peers:
        args.peers = ['engine'] + args.peers
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in args.models:
            files, ref = prepare(model_name, args.size, tmp, args.int8)
            size = None if model_name.startswith(LAYER) else args.size     # (a layer's is in its name)
            for t in args.threads:
                r = compare(model_name, t, args, files, ref)
                results.append(dict(model=model_name, threads=t, size=size, int8=args.int8, results=r))
                if not args.json:
                    print(f'{model_name}{f" {size}x{size}" if size else ""}{" int8" if args.int8 else ""}, '
                          f'{t} thread(s): '
                          + ', '.join(
                        f'{peer} {v["median_ms"]:.3f} ms'
                        + (f' [{v["one_thread_runs"]} of {v["runs"]} runs on one thread]'
                           if 'one_thread_runs' in v else '')
                        + ('' if peer == 'engine' else
                                                             ' (x{:.2f}, rounds {:.2f}-{:.2f})'.format(
                                                                 v['ratio_to_engine'], *v['ratio_range']))
                        + (f' [{v["sqnr_db"]:.1f} dB]' if 'sqnr_db' in v else '')
                        for peer, v in r.items()), flush=True)
    if args.json:
        import platform
        print(json.dumps(dict(machine=platform.machine(), processor=_cpu_name(), versions=versions(),
                              results=results), indent=2))
    if args.plot:
        plot(results, args.plot)


def versions():
    out = {}
    for peer in PEERS[1:]:
        if available(peer):
            out[peer] = importlib.metadata.version(DISTRIBUTIONS.get(peer, peer))
    return out


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('--plot needs matplotlib (pip install matplotlib)')
    groups = [f"{r['model']}\n{r['threads']} thread{'s' if r['threads'] > 1 else ''}" for r in results]
    peers = [p for p in PEERS if any(p in r['results'] for r in results)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 4.5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        xs = [g + (i - (len(peers) - 1) / 2) * width for g in range(len(groups))]
        ys = [r['results'].get(peer, {}).get('median_ms', 0) for r in results]
        ax.bar(xs, ys, width, label=peer)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel('median latency, ms (lower is better)')
    ax.set_title(f'batch 1, fp32, {_cpu_name()}')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return ''


if __name__ == '__main__':
    sys.exit(main())
