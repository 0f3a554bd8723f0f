#!/usr/bin/env python3
"""Latency on a Raspberry Pi, estimated from what tools/count_aarch64.py measured.

  sudo python tools/count_aarch64.py --models shufflenet_v2_x1_0 mobilenet_v2 --json counts.json
  python tools/estimate_pi.py counts.json

There is no Pi here, and qemu's own timings say nothing about one.  What is
measured under qemu, per inference: the instructions, llvm-mca's cycles for
the hot blocks of code (each as a loop, on LLVM's model of the core), and the
demand misses of a simulated cache of the board's geometry.  The estimate:

  ms = core cycles (mca) x core_scale x (the busiest thread's share of the instructions) / clock

core_scale is fitted to ncnn's published one-thread latencies (its benchmark
README; Pi 4 at 1.8 GHz, fp32: PUBLISHED_NCNN) against the counts of ncnn's
own run of the same architectures here: 1.68 on a Pi 4, the least squares
of six (ShuffleNetV2 x1.0, ShuffleNet V1, MobileNetV2, MNASNet, ResNet-18,
SqueezeNet 1.1), each within 13 % (left out of the fit in turn: 9 % rms, 14 %
at most).  The misses are not added: given a term for them (each level's
hits at its latency over the misses in flight, the model before this one),
the same fit weighs it at zero or below, and that model over-stated these six
by up to 51 % (ResNet-18: 288 ms against 191): the simulated cache has no
prefetcher, and these kernels stream.  So misses are reported beside the
estimate (count_aarch64.py), not in it.

Error budget:
- the fit: 8 % rms on the six (9 % with each left out in turn); ncnn's benchmark
  models are close to ours but not the same files.
- mca: steady-state loop throughput per block, no branch mispredictions, no
  front-end stalls; core_scale folds in what that leaves out on average, not
  per kernel: two engines of equal core cycles may differ on a Pi.
- a Pi 5: ncnn publishes its Pi 5 figures in fp16 (its default on the A76),
  and they pin no scale: against ncnn's fp16 runs counted here, mca's cycles
  as they are give +1, -3 and -33 % (ShuffleNetV2 x1.0, ShuffleNet V1,
  MobileNetV2), the least squares (1.27) +29, +24 and -15 %.  So the Pi 5
  keeps 1.0, and its estimates are the least checked.
"""
import argparse
import dataclasses
import json
import sys

import numpy as np


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    ghz: float
    core_scale: float        # the board's cycles per mca cycle (see the docstring)


BOARDS = {
    'cortex-a72': Board('Raspberry Pi 4', 1.8, 1.68),
    'cortex-a76': Board('Raspberry Pi 5', 2.4, 1.0),
}
# ncnn's published one-thread latencies (ms): a Pi 4 at 1.8 GHz in fp32, a Pi 5 in fp16
PUBLISHED_NCNN = {
    ('cortex-a72', 'shufflenet_v2_x1_0', 'fp32'): 42.12,
    ('cortex-a72', 'shufflenet_v1_g3', 'fp32'): 47.51,
    ('cortex-a72', 'mobilenet_v2', 'fp32'): 93.48,
    ('cortex-a72', 'mnasnet1_0', 'fp32'): 83.98,
    ('cortex-a72', 'resnet18', 'fp32'): 191.10,
    ('cortex-a72', 'squeezenet1_1', 'fp32'): 73.96,
    ('cortex-a76', 'shufflenet_v2_x1_0', 'fp16'): 7.1,
    ('cortex-a76', 'shufflenet_v1_g3', 'fp16'): 7.2,
    ('cortex-a76', 'mobilenet_v2', 'fp16'): 16.4,
}


def estimate(cell):
    """core cycles and ms for one cell of count_aarch64's --json."""
    board = BOARDS[cell['cpu']]
    busiest = cell['threads_insns'][0] / cell['counts']['insns']
    return dict(core=cell['core_cycles'], ms=cell['core_cycles'] * board.core_scale * busiest / board.ghz / 1e6)


def fit_core_scale(cells):
    """{cpu: (core_scale, the estimates' errors)}: the least squares of the
    published latencies over the core cycles of ncnn's one-thread cells."""
    fits = {}
    for cpu, board in BOARDS.items():
        got = [(c['core_cycles'] / board.ghz / 1e6, PUBLISHED_NCNN[cpu, c['model'], c['precision']], c['model'])
               for c in cells if c['engine'] == 'ncnn' and c['threads'] == 1 and c['cpu'] == cpu
               and (cpu, c['model'], c['precision']) in PUBLISHED_NCNN]
        if got:
            x, y = np.array([g[0] for g in got]), np.array([g[1] for g in got])
            scale = x @ y / (x @ x)
            fits[cpu] = scale, {g[2]: scale * g[0] / g[1] - 1 for g in got}
    return fits


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('counts', help="tools/count_aarch64.py's --json output")
    p.add_argument('--fit', action='store_true',
                   help="fit each board's core_scale to PUBLISHED_NCNN by the counts' ncnn cells")
    args = p.parse_args(argv)
    with open(args.counts) as f:
        cells = json.load(f)['cells']
    if args.fit:
        for cpu, (scale, errors) in fit_core_scale(cells).items():
            print(f'{cpu}: core_scale {scale:.3f} (now {BOARDS[cpu].core_scale}); estimate / published - 1: '
                  + ', '.join(f'{m} {100 * e:+.0f} %' for m, e in errors.items()))
        return 0
    print(f'{"model":20} {"CPU":11} {"T":>2} {"engine":12} {"core Mcyc":>9} {"est ms":>7} {"published":>9}')
    for c in cells:
        e = estimate(c)
        published = (PUBLISHED_NCNN.get((c['cpu'], c['model'], c['precision']))
                     if c['engine'] == 'ncnn' and c['threads'] == 1 else None)
        print(f'{c["model"]:20} {c["cpu"]:11} {c["threads"]:2} {c["engine"] + " " + c["precision"]:12} '
              f'{e["core"] / 1e6:9.2f} {e["ms"]:7.2f} '
              + (f'{published:9.1f} (estimate {100 * (e["ms"] / published - 1):+.0f} %)' if published else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
