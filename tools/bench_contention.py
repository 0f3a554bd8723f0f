#!/usr/bin/env python3
"""Latency on a quiet machine and on a busy one: 1 thread against the
default thread count, with and without one CPU-bound process per core.

  python tools/bench_contention.py                      # built-in ShuffleNetV2 x1.0
  python tools/bench_contention.py --model digits.engine --runs 100 --rounds 8 --json

A Raspberry Pi running a camera pipeline beside the engine is the busy case:
threads that wait for each other by spinning keep the cores from the other
programs and from each other, and a run can take 100 times longer.  Each
thread count runs in a worker process of its own; every round, each worker
times a block of runs in turn, first with the machine quiet, then with the
busy processes running (pure Python loops, `--busy` of them, one per core by
default).  Reported: medians over all timed runs, and the ratio the issue asks
about: the multi-thread median over the 1-thread median in the same condition
(under 1.5 when busy, below 1 when quiet).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY = 'while True:\n    pass\n'


def worker(args):
    """Load the model, then time `runs` calls per line read on stdin."""
    sys.path.insert(0, ROOT)
    import engine
    from engine import zoo
    if args.model:
        model = engine.load(args.model, threads=args.threads)
    else:
        model = engine.Model(zoo.MODELS[args.arch](), threads=args.threads)
    n, c, h, w = model.input_shape
    x = np.random.default_rng(0).random((1, c, h, w), dtype=np.float32)
    for _ in range(20):
        model(x)
    print(json.dumps({'threads': model.threads}), flush=True)
    for line in sys.stdin:
        runs = int(line)
        times = []
        before = model.runs_by_threads.get(1, 0)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
        one = model.runs_by_threads.get(1, 0) - before if model.threads > 1 else 0
        print(json.dumps({'ms': times, 'one_thread': one}), flush=True)


def start_worker(args, threads):
    """(process, its thread count); threads None: the engine's default."""
    cmd = [sys.executable, os.path.abspath(__file__), '--worker']
    cmd += ['--threads', str(threads)] if threads else []
    cmd += ['--model', args.model] if args.model else ['--arch', args.arch]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    threads = json.loads(p.stdout.readline())['threads']
    return p, threads


def timed(p, runs):
    """(latencies in ms, runs that used one thread) of a block of runs."""
    p.stdin.write(f'{runs}\n')
    p.stdin.flush()
    block = json.loads(p.stdout.readline())
    return block['ms'], block['one_thread']


def main(argv=None):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', help='model file (default: a built-in architecture, random weights)')
    ap.add_argument('--arch', default='shufflenet_v2_x1_0', help='built-in architecture (default %(default)s)')
    ap.add_argument('--threads', type=int, default=None,
                    help='the multi-thread count to compare with 1 (default: the engine\'s default)')
    ap.add_argument('--busy', type=int, default=cores, help='busy processes (default: one per core, %(default)s)')
    ap.add_argument('--runs', type=int, default=50, help='timed runs per block (default %(default)s)')
    ap.add_argument('--rounds', type=int, default=6, help='rounds of blocks per condition (default %(default)s)')
    ap.add_argument('--json', action='store_true', help='print JSON')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    one, _ = start_worker(args, 1)
    many, n_many = start_worker(args, args.threads)
    results = {}
    try:
        for condition in ('quiet', 'busy'):
            hogs = [subprocess.Popen([sys.executable, '-c', BUSY]) for _ in range(args.busy)] \
                if condition == 'busy' else []
            try:
                time.sleep(0.5 if hogs else 0)
                times = {1: [], n_many: []}
                single = 0
                for _ in range(args.rounds):
                    times[1] += timed(one, args.runs)[0]
                    ms, on_one = timed(many, args.runs)
                    times[n_many] += ms
                    single += on_one
            finally:
                for h in hogs:
                    h.kill()
                    h.wait()
            results[condition] = {t: dict(median=float(np.median(v)), p90=float(np.percentile(v, 90)),
                                          max=float(np.max(v))) for t, v in times.items()}
            results[condition][n_many]['runs_on_one_thread'] = single
    finally:
        for p in (one, many):
            p.stdin.close()
            p.wait()
    ratio = {c: results[c][n_many]['median'] / results[c][1]['median'] for c in results}
    out = dict(threads=n_many, busy_processes=args.busy, cores=cores, runs=args.runs * args.rounds,
               model=args.model or args.arch, results={c: {str(t): v for t, v in r.items()}
                                                       for c, r in results.items()},
               ratio_many_to_one=ratio)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f'{out["model"]}: {cores} cores, {args.busy} busy processes in the busy case, '
          f'{args.runs * args.rounds} runs per cell')
    print(f'{"condition":10s} {"threads":>7s} {"median ms":>10s} {"p90":>8s} {"max":>8s}')
    for c, r in results.items():
        for t, v in r.items():
            print(f'{c:10s} {t:7d} {v["median"]:10.3f} {v["p90"]:8.3f} {v["max"]:8.3f}')
    for c in results:
        print(f'{c}: {n_many} threads / 1 thread = {ratio[c]:.2f}; runs of the {n_many}-thread model that '
              f'chose one thread: {results[c][n_many]["runs_on_one_thread"]} of {args.runs * args.rounds}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
