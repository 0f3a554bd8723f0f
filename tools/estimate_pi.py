#!/usr/bin/env python3
"""Latency of a model on a Raspberry Pi core, estimated on paper (roofline).

  python tools/estimate_pi.py                       # ShuffleNetV2 x1.0, Pi 4 (Cortex-A72 1.5 GHz)
  python tools/estimate_pi.py --ghz 1.8 --arch shufflenet_v2_x0_5

There is no Pi here, and qemu's timings say nothing about one, so: for every
layer the engine would run, count its multiply-adds (or, for pooling and
element-wise layers, its loads) and the bytes it must move, then take the
larger of

  compute time = MACs / (peak MACs per cycle x clock x efficiency of that kernel)
  memory time  = bytes that cannot stay in the 1 MiB L2 / DRAM bandwidth

Peak: the A72 has two 128-bit NEON pipes, each an FMA of 4 floats per cycle:
8 MACs per cycle, 12 GMAC/s at 1.5 GHz.  The kernel efficiencies are read off
the NEON code paths' inner loops (loads per FMA; the A72 issues one load per
cycle), stated below, and are the weak point of the method: they assume the
loops run at their instruction-count limit.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine import zoo  # noqa: E402
from engine.graph import infer_shapes  # noqa: E402

MACS_PER_CYCLE = 8          # 2 NEON pipes x 4-lane FMA
L2_BYTES = 1 << 20          # shared by the 4 cores; one core may use all of it
# Fraction of peak each kernel's inner loop can reach on the A72, from its instruction mix:
EFFICIENCY = {
    # 12x8 tile (asm on aarch64): per reduction step 2 LD1s (1 load/cycle, beside the FMAs) for
    # 24 FMAs (12 cycles of FMA): FMA-bound; minus the tile's edges (bias, stores, the runs of
    # input planes: 11 % of its instructions under qemu) and rows left empty: 0.8
    'conv1x1': 0.8,
    # the first 3x3 stride-2 convolution: the same tile reading framed rows in place (direct),
    # after a copy of the band's input rows split into even and odd columns: 0.6
    'conv': 0.6,
    # framed 3x3 (4 output rows at a time): 18 loads for 36 FMAs per output vector column:
    # load-bound at 1 per cycle (18 cycles for 18 of FMA), minus the frame copy: 0.6
    'dwconv': 0.6,
    # GEMV: each weight is used once per image: bounded by memory, see below
    'linear': 0.5,
}
LOADS_PER_CYCLE = 1.0       # pooling / element-wise: one vector load (4 floats) per cycle


def layer_costs(graph, size):
    shapes = infer_shapes(graph, size, size)
    rows = []
    for node in graph.nodes:
        if node.op in ('gather', 'concat', 'flatten'):
            continue                            # views: no kernel runs
        c, h, w = shapes[node.name]
        ic, ih, iw = shapes[node.inputs[0]]
        out_bytes = 4 * c * h * w
        in_bytes = 4 * sum(shapes[i][0] * shapes[i][1] * shapes[i][2] for i in node.inputs)
        weight_bytes = 4 * sum(p.size for p in node.params.values())
        if node.op in ('conv', 'linear'):
            k = node.params['weight'][0].size
            macs = k * c * h * w
            if node.op == 'linear':
                kind = 'linear'
            elif node.attrs['groups'] == node.attrs['in_channels']:
                kind = 'dwconv'
            elif node.attrs['kernel'] == [1, 1]:
                kind = 'conv1x1'
            else:
                kind = 'conv'
            rows.append(dict(name=node.name, kind=kind, macs=macs, loads=0,
                             bytes=in_bytes + out_bytes + weight_bytes, weight_bytes=weight_bytes))
        else:
            window = 1
            if node.op in ('maxpool', 'avgpool'):
                window = node.attrs['kernel'][0] * node.attrs['kernel'][1]
            loads = (c * h * w * window if node.op != 'global_avgpool' else ic * ih * iw) / 4
            rows.append(dict(name=node.name, kind=node.op, macs=0, loads=loads,
                             bytes=in_bytes + out_bytes, weight_bytes=0))
    return rows


def estimate(rows, ghz, bandwidth_gbs):
    hz = ghz * 1e9
    total = {}
    for r in rows:
        if r['macs']:
            compute = r['macs'] / (MACS_PER_CYCLE * hz * EFFICIENCY[r['kind']])
        else:
            compute = r['loads'] / (LOADS_PER_CYCLE * hz)
        # activations that fit in L2 stay there between layers; weights of the fully
        # connected layer (4 MB for x1.0) and big activations come from DRAM every run
        dram = r['weight_bytes'] if r['weight_bytes'] > L2_BYTES // 4 else 0
        if r['bytes'] - r['weight_bytes'] > L2_BYTES:
            dram += r['bytes'] - r['weight_bytes']
        memory = dram / (bandwidth_gbs * 1e9)
        r['ms'] = max(compute, memory) * 1e3
        r['bound'] = 'memory' if memory > compute else 'compute'
        t = total.setdefault(r['kind'], [0.0, 0, 0])
        t[0] += r['ms']
        t[1] += r['macs']
        t[2] += r['bound'] == 'memory'
    return total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='shufflenet_v2_x1_0', choices=sorted(zoo.MODELS))
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--ghz', type=float, default=1.5, help='core clock (Pi 4: 1.5, later boards 1.8)')
    p.add_argument('--bandwidth', type=float, default=3.0,
                   help='DRAM bandwidth one core reaches, GB/s (Pi 4 LPDDR4: about 2-4)')
    args = p.parse_args(argv)
    rows = layer_costs(zoo.MODELS[args.arch](), args.size)
    total = estimate(rows, args.ghz, args.bandwidth)
    print(f'{args.arch} at {args.size}x{args.size} on one Cortex-A72 core at {args.ghz} GHz, '
          f'DRAM {args.bandwidth} GB/s')
    print(f'{"kind":16s} {"MMACs":>8s} {"ms":>8s}  layers bound by memory')
    for kind, (ms, macs, mem) in sorted(total.items(), key=lambda kv: -kv[1][0]):
        print(f'{kind:16s} {macs / 1e6:8.1f} {ms:8.2f}  {mem}')
    print(f'{"total":16s} {sum(t[1] for t in total.values()) / 1e6:8.1f} '
          f'{sum(t[0] for t in total.values()):8.2f}')


if __name__ == '__main__':
    main()
