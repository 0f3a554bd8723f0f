#!/usr/bin/env python3
"""How close each kernel comes to the machine's limit, on the layer shapes of
ShuffleNet V1/V2 and MobileNetV2 (batch 1, fp32).

  python tools/bench_kernels.py [--threads 1] [--runs 200] [--json]
  python tools/bench_kernels.py --tiles [--json]

--tiles times each GEMM tile of the build alone (engine.kernels.isa's
ukernel_gemm_tile, data in L1, one thread), XNNPACK-style: what the
microkernel can do before planning, threads and memory have a say.

- Pointwise (1x1) convolutions are GEMMs: GFLOP/s against the measured FMA
  peak of one core times the threads (engine.kernels.isa.fma_peak_gflops:
  independent FMA chains, no memory traffic).
- Depthwise convolutions move more bytes than they compute: GB/s (input read
  once plus output written once, per median run) against two copies of the
  same bytes: NumPy copying a buffer of that size (the same cache level) and
  a 256 MiB copy (main memory).
Times are medians of the op alone (no copies in or out of the engine).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import engine  # noqa: E402
from engine.graph import Graph, Node  # noqa: E402
from engine.kernels import isa  # noqa: E402
from engine.kernels.isa import fma_peak_gflops  # noqa: E402

# (cin, cout, groups, h, w): the pointwise layers of the benchmark models
POINTWISE = [
    (24, 58, 1, 56, 56), (58, 58, 1, 28, 28), (116, 116, 1, 28, 28), (232, 232, 1, 14, 14),
    (464, 464, 1, 7, 7), (464, 1024, 1, 7, 7),                              # ShuffleNetV2 x1.0
    (240, 60, 3, 28, 28), (60, 240, 3, 28, 28), (480, 120, 3, 14, 14), (120, 480, 3, 14, 14),
    (960, 240, 3, 7, 7), (240, 960, 3, 7, 7),                               # ShuffleNet V1 g3
    (16, 96, 1, 112, 112), (24, 144, 1, 56, 56), (144, 24, 1, 56, 56), (32, 192, 1, 28, 28),
    (192, 32, 1, 28, 28), (64, 384, 1, 14, 14), (384, 64, 1, 14, 14), (96, 576, 1, 14, 14),
    (576, 96, 1, 14, 14), (160, 960, 1, 7, 7), (960, 160, 1, 7, 7), (320, 1280, 1, 7, 7),  # MobileNetV2
]
# (channels, kernel, stride, h, w): the depthwise layers
DEPTHWISE = [
    (32, 3, 1, 112, 112), (96, 3, 2, 112, 112), (144, 3, 1, 56, 56), (144, 3, 2, 56, 56),
    (58, 3, 2, 56, 56), (116, 3, 1, 28, 28), (192, 3, 1, 28, 28), (232, 3, 1, 14, 14),
    (384, 3, 1, 14, 14), (576, 3, 2, 14, 14), (464, 3, 1, 7, 7), (960, 3, 1, 7, 7),
]


def conv_graph(cin, cout, groups, k, stride, h, w, rng):
    attrs = dict(in_channels=cin, out_channels=cout, kernel=[k, k], stride=[stride, stride],
                 padding=[k // 2, k // 2], dilation=[1, 1], groups=groups, clamp=[0.0, 6.0])
    weight = rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32) * 0.1
    node = Node('op', 'conv', ['input'], attrs, {'weight': weight, 'bias': np.zeros(cout, np.float32)})
    return Graph('input', (1, cin, h, w), [node], ['op'])


def op_ms(graph, threads, runs):
    model = engine.Model(graph, threads=threads)
    x = np.random.default_rng(1).random(graph.input_shape, dtype=np.float32)
    model.profile(x, runs=10)
    return model.profile(x, runs=runs)[0]['ms']


def tile_rows(K=256, calls=20000):
    """GFLOP/s of each GEMM tile (rows x pixels) alone: K in-cache input
    planes, one call `calls` times; the median of 5 such timings."""
    rng = np.random.default_rng(0)
    rows_out = []
    for rows in sorted(isa.TILE_ROWS):
        for pixels in sorted({isa.TILE_PIXELS} | ({isa.WIDE_PIXELS} if rows == isa.NARROW_ROWS else set()) - {0}):
            span = pixels + 4 * isa.VECTOR + isa.EXTRA_PIXELS
            a = rng.standard_normal(K * rows + isa.VECTOR).astype(np.float32)
            bias = np.zeros(rows + isa.VECTOR, np.float32)
            src = rng.standard_normal(K * span + span).astype(np.float32)
            b_off = np.arange(K, dtype=np.int64) * span
            dst = np.zeros(rows * span + span, np.float32)
            c_off = np.arange(rows, dtype=np.int64) * span
            args = (rows, pixels, a, bias, src, b_off, 0, dst, c_off, None, 0, rows, -np.inf, np.inf)
            isa.ukernel_gemm_tile(*args, repeat=calls // 10)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                isa.ukernel_gemm_tile(*args, repeat=calls)
                times.append(time.perf_counter() - t0)
            gflops = 2 * K * rows * pixels * calls / np.median(times) / 1e9
            rows_out.append(dict(rows=rows, pixels=pixels, K=K, gflops=gflops))
    return rows_out


def copy_gbps(nbytes, runs):
    """Read+write bandwidth of a NumPy copy of nbytes (both buffers counted)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / np.median(times) / 1e9


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--runs', type=int, default=200)
    p.add_argument('--json', action='store_true')
    p.add_argument('--tiles', action='store_true', help='time each GEMM tile alone instead')
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.tiles:
        peak = fma_peak_gflops()
        tiles = tile_rows()
        if args.json:
            print(json.dumps(dict(build=engine.build_info(), fma_peak_gflops=peak, tiles=tiles), indent=2))
        else:
            print(f'FMA peak {peak:.0f} GFLOP/s (1 thread, {isa.CHOSEN})')
            for t in tiles:
                print(f'{t["rows"]:3d} rows x {t["pixels"]:3d} pixels, K {t["K"]}: '
                      f'{t["gflops"]:6.1f} GFLOP/s {100 * t["gflops"] / peak:5.1f}%')
        return 0
    peak = fma_peak_gflops() * args.threads
    dram = copy_gbps(256 << 20, 5)
    rows = dict(build=engine.build_info(), threads=args.threads, fma_peak_gflops=peak,
                dram_copy_gbps=dram, pointwise=[], depthwise=[])
    if not args.json:
        print(f'FMA peak {peak:.0f} GFLOP/s ({args.threads} thread(s), {rows["build"]["isa"]}); '
              f'256 MiB copy {dram:.1f} GB/s')
        print(f'{"pointwise (cin->cout, groups, HxW)":36s} {"us":>8s} {"GFLOP/s":>8s} {"% peak":>7s}')
    for cin, cout, groups, h, w in POINTWISE:
        ms = op_ms(conv_graph(cin, cout, groups, 1, 1, h, w, rng), args.threads, args.runs)
        gflops = 2 * cin // groups * cout * h * w / ms / 1e6
        rows['pointwise'].append(dict(cin=cin, cout=cout, groups=groups, h=h, w=w, us=ms * 1e3,
                                      gflops=gflops, peak_fraction=gflops / peak))
        if not args.json:
            print(f'{f"{cin}->{cout}, g{groups}, {h}x{w}":36s} {ms * 1e3:8.1f} {gflops:8.1f} '
                  f'{100 * gflops / peak:6.1f}%')
    if not args.json:
        print(f'\n{"depthwise (channels, kxk sS, HxW)":36s} {"us":>8s} {"GB/s":>8s} '
              f'{"same-size copy GB/s":>20s} {"% of it":>8s}')
    for c, k, s, h, w in DEPTHWISE:
        ms = op_ms(conv_graph(c, c, c, k, s, h, w, rng), args.threads, args.runs)
        oh, ow = (h - 1) // s + 1, (w - 1) // s + 1
        nbytes = 4 * c * (h * w + oh * ow)
        gbps = nbytes / ms / 1e6
        same = copy_gbps(nbytes // 2, args.runs)
        rows['depthwise'].append(dict(channels=c, kernel=k, stride=s, h=h, w=w, us=ms * 1e3, gbps=gbps,
                                      same_size_copy_gbps=same, copy_fraction=gbps / same))
        if not args.json:
            print(f'{f"{c}, {k}x{k}s{s}, {h}x{w}":36s} {ms * 1e3:8.1f} {gbps:8.1f} {same:20.1f} '
                  f'{100 * gbps / same:7.1f}%')
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == '__main__':
    sys.exit(main())
