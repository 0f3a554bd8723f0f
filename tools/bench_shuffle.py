#!/usr/bin/env python3
"""engine.channel_shuffle next to NumPy and PyTorch, one thread.

  python tools/bench_shuffle.py [--runs 2000] [--json]

Per shape: medians (microseconds) of interleaved runs of each contender;
out of place: engine, NumPy reshape/transpose copy, x.copy() (the floor for
any copy), torch.nn.functional.channel_shuffle; in place: engine with out=x.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import engine  # noqa: E402

SHAPES = [((1, 116, 28, 28), 2), ((1, 232, 14, 14), 2), ((1, 240, 28, 28), 3)]


def contenders(x, g):
    n, c, h, w = x.shape
    out = np.empty_like(x)
    y = x.copy()
    runs = {
        'engine': lambda: engine.channel_shuffle(x, g, out=out),
        'engine in place': lambda: engine.channel_shuffle(y, g, out=y),
        'numpy reshape/transpose': lambda: np.copyto(out, x.reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4)
                                                     .reshape(n, c, h, w)),
        'x.copy()': lambda: np.copyto(out, x),
    }
    try:
        import torch
        torch.set_num_threads(1)
        t = torch.from_numpy(x)
        runs['torch channel_shuffle'] = lambda: torch.nn.functional.channel_shuffle(t, g)
    except ImportError:
        pass
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--runs', type=int, default=2000)
    p.add_argument('--json', action='store_true')
    args = p.parse_args(argv)
    results = []
    for shape, g in SHAPES:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        runs = contenders(x, g)
        times = {k: [] for k in runs}
        for f in runs.values():
            for _ in range(50):
                f()
        for i in range(args.runs):
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        med = {k: float(np.median(v) * 1e6) for k, v in times.items()}
        results.append(dict(shape=list(shape), groups=g, median_us=med))
        if not args.json:
            print(f'{shape} g={g}: ' + ', '.join(f'{k} {v:.2f} us' for k, v in med.items()))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
