#!/usr/bin/env python3
"""Fit engine/ops/conv.py's PATH_COST_NS for one kernel module to counted layers.

  sudo python tools/count_aarch64.py --models resnet18 squeezenet1_1 dense3x3_ladder \\
      --engines engine --cpus cortex-a72 --no-cache --plan winograd=0 --json w0.json   # and 2, 4
  python tools/fit_path_costs.py w0.json w2.json w4.json        # where the module imports

The planner takes each dense 3x3 stride-1 convolution by the path (direct, or
Winograd F(2x2) or F(4x4)) whose modelled time is least: five costs per path
(ns per multiply-add of its GEMM tiles, per element they store, per element
of the transformed input, per weight read, per op) times conv.path_terms.
This fits the costs of each path to the layers of count_aarch64's runs with
that path forced (--plan winograd=M), by non-negative least squares against
each layer's time by tools/estimate_pi.py (its instructions at the cell's
core cycles per instruction), in relative error, and prints them with each layer's pick beside
the fastest counted path.

The terms come from the kernel module the counts ran (its tiles, vector
width and the one-thread plan's Winograd bands), so run this where that
module imports: on the board, or here under qemu with the aarch64 build of
tools/check_aarch64.sh (its WORK folder, /tmp/engine-arm, also holds the
counted model files):

  QEMU_LD_PREFIX=/tmp/engine-arm/sysroot-arm64 QEMU_CPU=cortex-a72 ENGINE_ISA=neon \\
      PYTHONPATH=/tmp/engine-arm/build-arm64 /tmp/engine-arm/sysroot-arm64/usr/bin/python3.11 \\
      tools/fit_path_costs.py w0.json w2.json w4.json
"""
import argparse
import json
import os
import sys
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from estimate_pi import BOARDS  # noqa: E402  (the time model: cycles to ms)

TERMS = ('multiply-add', 'store', 'input element', 'weight', 'op')


def nnls(a, b):
    """Least squares x >= 0 (Lawson and Hanson's active set)."""
    n = a.shape[1]
    x, free = np.zeros(n), np.zeros(n, bool)
    for _ in range(3 * n):
        w = a.T @ (b - a @ x)
        if free.all() or w[~free].max() <= 1e-12 * np.abs(w).max():
            break
        free[np.argmax(np.where(free, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[free] = np.linalg.lstsq(a[:, free], b, rcond=None)[0]
            if z[free].min() > 0:
                x = z
                break
            neg = free & (z <= 0)
            step = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + step * (z - x)
            free &= x > 1e-15
    return x


def layer_ns(cell, layer):
    """estimate_pi's time of one layer of a one-thread cell: its instructions
    at the cell's core cycles per instruction."""
    board = BOARDS[cell['cpu']]
    return layer['insns'] * cell['core_cycles'] / cell['counts']['insns'] * board.core_scale / board.ghz


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('counts', nargs='+', help="count_aarch64's --json of one-thread runs with --plan winograd=M")
    p.add_argument('--models-dir', default='/tmp/engine-arm/models',
                   help="the counted model files, MODEL/model.engine (count_aarch64's WORK/models)")
    args = p.parse_args(argv)
    import engine
    from engine.lowering import PlanOptions
    from engine.ops.conv import path_terms, winograd_tile
    options = replace(PlanOptions(), k_split=False, single_thread=True)     # one-thread plans (Model._plan)
    rows, kernels = {}, None          # (model, layer) -> {m: (terms, ns)}
    for path in args.counts:
        with open(path) as f:
            cells = json.load(f)['cells']
        for cell in cells:
            plan = dict(o.split('=', 1) for o in cell['plan'])
            if cell['engine'] != 'engine' or cell['threads'] != 1 or 'winograd' not in plan:
                continue
            m = int(plan['winograd'])
            model = engine.load(os.path.join(args.models_dir, cell['model'], 'model.engine'), threads=1)
            kernels = model.kernels
            nodes = {n.name: n for n in model.graph.nodes}
            for layer in cell['layers']:
                node = nodes.get(layer['name'])
                if node is None or node.op != 'conv':
                    continue
                _, cout, out_h, out_w = layer['shape']
                spatial = dict(out_h=out_h, out_w=out_w)
                if not winograd_tile(kernels, node.attrs, spatial, replace(options, winograd=2)):
                    continue                # not a dense 3x3 stride-1 convolution
                terms = path_terms(kernels, m, node.attrs['in_channels'], cout, out_h, out_w, options)
                rows.setdefault((cell['model'], layer['name'], node.attrs['in_channels'], cout, out_h, out_w),
                                {})[m] = (np.array(terms, float), layer_ns(cell, layer))
    if kernels is None:
        p.error('no one-thread engine cells with --plan winograd=M in the counts')
    paths = sorted({m for r in rows.values() for m in r})
    costs = {}
    for m in paths:
        got = [r[m] for r in rows.values() if m in r]
        a, b = np.array([t for t, _ in got]), np.array([ns for _, ns in got])
        # relative errors (rows over their time: a pick is right or wrong on
        # small layers as on large ones); columns scaled, the terms span 1 to 1e9
        scale = (a / b[:, None]).max(axis=0)
        scale[scale == 0] = 1
        costs[m] = nnls(a / b[:, None] / scale, np.ones(len(b))) / scale
        err = a @ costs[m] / b - 1
        print(f'F({m}x{m})' if m else 'direct', f'{len(got)} layers, modelled / counted: '
              f'{100 * np.sqrt(np.mean(err ** 2)):.0f} % rms, {100 * np.abs(err).max():.0f} % at most')
    # the direct path sets up no transforms: its op term at most the Winograd
    # paths' (fitted, it can extrapolate to tiny layers: 0.35 ms sent a
    # 4-channel 9x70 layer to F(4x4))
    if 0 in costs and len(paths) > 1:
        costs[0][-1] = min(costs[0][-1], min(costs[m][-1] for m in paths if m))
    print(f'\n{"model":16} {"layer":22} {"cin":>4} {"cout":>4} {"out":>7}  '
          + '  '.join(f'{m}: counted / model ms' for m in paths) + '  best  pick')
    hits = 0
    for (model, name, cin, cout, oh, ow), r in rows.items():
        model_ms = {m: costs[m] @ r[m][0] / 1e6 for m in r}
        best, pick = min(r, key=lambda m: r[m][1]), min(model_ms, key=model_ms.get)
        hits += best == pick
        print(f'{model:16} {name[:22]:22} {cin:4} {cout:4} {oh:3}x{ow:<3}  '
              + '  '.join(f'{r[m][1] / 1e6:8.3f} / {model_ms[m]:8.3f}' if m in r else ' ' * 19 for m in paths)
              + f'  {best}     {pick}' + ('' if best == pick else f'  (+{100 * (r[pick][1] / r[best][1] - 1):.1f} %)'))
    print(f'\npicks the fastest counted path on {hits} of {len(rows)} layers; PATH_COST_NS[{kernels.ISA!r}]:')
    print('{' + ', '.join(f'{m}: (' + ', '.join(f'{c:.4g}' for c in costs[m]) + ')' for m in paths) + '}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
