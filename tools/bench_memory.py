#!/usr/bin/env python3
"""Peak memory and load time of a process that loads a model and runs it,
for the engine and the peers installed (onnxruntime, openvino, ncnn).

  python tools/bench_memory.py [--model shufflenet_v2_x1_0] [--processes 5] [--json]

Model files come from one PyTorch model (as in tools/bench_peers.py); each
measurement is a fresh Python process that imports NumPy and the runtime,
loads the file, runs it once (the first run, where lazy set-up happens), then
50 times more.  Reported per runtime, medians over the processes:
- import: seconds to import the runtime (and NumPy);
- load: seconds to load the file into something that can run;
- first run: seconds of the first inference;
- peak RSS after the import, and at the end (VmHWM of /proc/self/status), in MiB.
The child processes never import torch.  Linux only (reads /proc).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import ROOT, available, prepare  # noqa: E402

RUNTIMES = ['engine', 'onnxruntime', 'openvino', 'ncnn']

CHILD = r'''
import json, sys, time
def rss_mib():
    # VmHWM, not ru_maxrss: that one keeps the parent's peak across fork and exec
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024
peer, files, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, files['root'])
__import__(peer)
t1 = time.perf_counter()
rss_import = rss_mib()
sys.path.insert(0, files['tools'])
from bench_peers import _load_runner      # the loading code the latency comparison uses
run = _load_runner(peer, files, threads)
t2 = time.perf_counter()
x = np.load(files['input'])
run(x)
t3 = time.perf_counter()
for _ in range(50):
    run(x)
assert 'torch' not in sys.modules
print(json.dumps(dict(import_s=t1 - t0, load_s=t2 - t1, first_run_s=t3 - t2,
                      rss_after_import_mib=rss_import, peak_rss_mib=rss_mib())))
'''


def measure(peer, files, threads, processes):
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for _ in range(processes):
        out = subprocess.run([sys.executable, '-c', CHILD, peer, json.dumps(files), str(threads)],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            raise SystemExit(f'{peer} child failed:\n{out.stderr}')
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='shufflenet_v2_x1_0')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--processes', type=int, default=5, help='fresh processes per runtime')
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files, _ = prepare(args.model, 224, tmp)
        files['root'], files['tools'] = ROOT, os.path.dirname(os.path.abspath(__file__))
        sizes = {'engine': os.path.getsize(files['engine']), 'onnxruntime': os.path.getsize(files['onnx']),
                 'openvino': os.path.getsize(files['onnx'])}
        if 'ncnn_bin' in files:
            sizes['ncnn'] = os.path.getsize(files['ncnn_bin']) + os.path.getsize(files['ncnn_param'])
        for peer in RUNTIMES:
            if not available(peer) or (peer == 'ncnn' and 'ncnn_bin' not in files):
                continue
            results[peer] = dict(measure(peer, files, args.threads, args.processes),
                                 file_mib=sizes[peer] / 2**20)
    if args.json:
        print(json.dumps(dict(model=args.model, threads=args.threads, processes=args.processes,
                              results=results), indent=2))
        return
    print(f'{args.model}, {args.threads} thread(s), medians of {args.processes} fresh processes')
    print(f'{"runtime":12s} {"file MiB":>9s} {"import s":>9s} {"load s":>8s} {"1st run s":>10s} '
          f'{"peak RSS after import MiB":>26s} {"peak RSS MiB":>13s}')
    for peer, r in results.items():
        print(f'{peer:12s} {r["file_mib"]:9.1f} {r["import_s"]:9.3f} {r["load_s"]:8.4f} '
              f'{r["first_run_s"]:10.4f} {r["rss_after_import_mib"]:26.1f} {r["peak_rss_mib"]:13.1f}')


if __name__ == '__main__':
    sys.exit(main())
