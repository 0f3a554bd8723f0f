#!/usr/bin/env python3
"""Latency on a Raspberry Pi, estimated from what tools/count_aarch64.py measured.

  sudo python tools/count_aarch64.py --models shufflenet_v2_x1_0 mobilenet_v2 --json counts.json
  python tools/estimate_pi.py counts.json

There is no Pi here, and qemu's own timings say nothing about one.  What is
measured under qemu, per inference: the instructions, llvm-mca's cycles for
the hot blocks of code (each as a loop, on LLVM's model of the core), and the
demand misses of a simulated cache of the board's geometry.  The estimate:

  cycles = core cycles (mca; every load an L1 hit)
         + (L2 hits x L2 latency + L3 hits x L3 latency + DRAM accesses x DRAM latency) / overlap
  ms     = cycles x (the busiest thread's share of the instructions) / clock

Error budget, in the order of its size:
- overlap: how many misses the core keeps in flight; an out-of-order A72 has
  several outstanding L1 misses and its prefetcher runs ahead on these
  streaming kernels, neither of which the simulation models.  Assumed 4 (A72)
  and 6 (A76): twice that takes ShuffleNetV2 x1.0's Pi 4 estimate 19 % down,
  half of it 37 % up (engine and ncnn alike in direction, ncnn more: it
  misses more).
- ncnn's published Pi 4 figures (its benchmark README, fp32 on the A72, 1
  thread) check the whole: the estimate of ncnn's own run of the same
  architecture is printed beside them.  They are off by the amount printed
  (their models are ncnn's benchmark param files, close to but not the same
  as ours; the board's clock, 1.5 or 1.8 GHz, is not stated with them).
- mca: steady-state loop throughput per block, no branch mispredictions, no
  front-end stalls, no dependencies across blocks (not checked against a
  Pi here: how much that leaves out is unmeasured).
- Pi 5 figures are published in fp16 (ncnn's default on the A76), so the
  fp32 estimate has no published check there.
"""
import argparse
import dataclasses
import json
import sys


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    ghz: float
    l2_cycles: int           # load-to-use beyond an L1 hit
    l3_cycles: int
    dram_ns: float
    overlap: float           # misses in flight (see the error budget)


BOARDS = {
    'cortex-a72': Board('Raspberry Pi 4', 1.8, 21, 0, 110.0, 4.0),
    'cortex-a76': Board('Raspberry Pi 5', 2.4, 11, 40, 95.0, 6.0),
}
# ncnn's published 1-thread fp32 latencies (ms) on a Pi 4, the same architectures
PUBLISHED_NCNN = {
    ('cortex-a72', 'shufflenet_v2_x1_0'): 42.1,
    ('cortex-a72', 'shufflenet_v1_g3'): 47.5,
    ('cortex-a72', 'mobilenet_v2'): 93.5,
}


def memory_cycles(counts, board):
    """Cycles the misses cost beyond the core's: each level's hits at its latency."""
    l2_hits = counts['l1d_miss'] - counts['l2_miss']
    dram = counts['l3_miss'] if board.l3_cycles else counts['l2_miss']
    l3_hits = counts['l2_miss'] - dram
    return (l2_hits * board.l2_cycles + l3_hits * board.l3_cycles
            + dram * board.dram_ns * board.ghz) / board.overlap


def estimate(cell):
    """core and memory cycles and ms for one cell of count_aarch64's --json (no misses
    when it ran with --no-cache: then memory is 0)."""
    board = BOARDS[cell['cpu']]
    memory = memory_cycles(cell['counts'], board)
    busiest = cell['threads_insns'][0] / cell['counts']['insns']
    total = cell['core_cycles'] + memory
    return dict(core=cell['core_cycles'], memory=memory, ms=total * busiest / board.ghz / 1e6)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('counts', help="tools/count_aarch64.py's --json output")
    args = p.parse_args(argv)
    with open(args.counts) as f:
        cells = json.load(f)['cells']
    print(f'{"model":20} {"CPU":11} {"T":>2} {"engine":7} {"core Mcyc":>9} {"mem Mcyc":>8} '
          f'{"est ms":>7} {"published":>9}')
    for c in cells:
        e = estimate(c)
        published = PUBLISHED_NCNN.get((c['cpu'], c['model'])) if c['engine'] == 'ncnn' and c['threads'] == 1 else None
        print(f'{c["model"]:20} {c["cpu"]:11} {c["threads"]:2} {c["engine"]:7} {e["core"] / 1e6:9.2f} '
              f'{e["memory"] / 1e6:8.2f} {e["ms"]:7.2f} '
              + (f'{published:9.1f} (estimate {100 * (e["ms"] / published - 1):+.0f} %)' if published else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
