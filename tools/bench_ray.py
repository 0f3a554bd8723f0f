#!/usr/bin/env python3
"""Images per second of `classify` on one machine: in one process (the
single-process path, 1 and 2 threads) against Ray Data with 1 and 2 actors
(engine.ray: read, decode, classify, write Parquet), on the same files.

  python tools/bench_ray.py [--model digits|shufflenet_v2_x1_0] [--images 2000] [--rounds 3]

digits: the shipped model on the held-out digits as 28x28 PNGs (decoding
and per-image overhead dominate); shufflenet_v2_x1_0: seeded weights (needs
torch) on 640x480 JPEGs resized to 256 and cropped to 224 (the model
dominates). Each round times every configuration once, in turn; medians
are reported. The Ray cluster (ray.init(num_cpus=CPUs)) is started once,
outside the timings; each Ray job includes starting its actors and loading
the model into them, as a real job does.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_images(kind, count, folder):
    """count image files of the kind the model expects; their paths."""
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    if kind == 'digits':
        held = np.load(os.path.join(ROOT, 'weights', 'digits_test.npz'))['images']
        for i in range(count):
            paths.append(os.path.join(folder, f'{i:06d}.png'))
            Image.fromarray(held[i % len(held)]).save(paths[-1])
    else:
        for i in range(count):
            small = rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)     # smooth, photo-like after resizing
            paths.append(os.path.join(folder, f'{i:06d}.jpg'))
            Image.fromarray(small).resize((640, 480), Image.BILINEAR).save(paths[-1], quality=90)
    return paths


def model_file(kind, folder):
    if kind == 'digits':
        return os.path.join(ROOT, 'weights', 'digits_shufflenet.engine')
    import torch
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    import torch_models
    import engine
    net = torch_models.randomize(getattr(torch_models, kind)(), seed=0)
    path = os.path.join(folder, kind + '.engine')
    engine.from_torch(net, torch.rand(1, 3, 224, 224)).save(path)     # ImageNet's preprocessing: 256, 224
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='digits', choices=['digits', 'shufflenet_v2_x1_0'])
    ap.add_argument('--images', type=int, default=2000)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--batch-size', type=int, default=16)
    args = ap.parse_args(argv)

    import ray
    import engine
    import engine.ray as on_ray
    from engine.classify import classify_files

    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as work:
        paths = make_images(args.model, args.images, work)
        model_path = model_file(args.model, work)

        def one_process(threads):
            model = engine.load(model_path, threads=threads)
            rows = list(classify_files(model, paths, batch_size=args.batch_size))
            assert sum(e is None for _, _, e in rows) == len(paths)

        def on_ray_actors(actors):
            out = os.path.join(tempfile.mkdtemp(dir=work), 'rows.parquet')
            rows, errors = on_ray.classify_to_files(paths, model_path, out, actors=actors,
                                                    batch_size=args.batch_size)
            assert (rows, errors) == (len(paths), 0)

        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        print(f'ray.init: {time.perf_counter() - t0:.1f} s (not counted)', file=sys.stderr)
        runs = {'one process, 1 thread': lambda: one_process(1),
                f'one process, {cpus} threads': lambda: one_process(cpus),
                'Ray, 1 actor (1 thread)': lambda: on_ray_actors(1),
                f'Ray, {cpus} actors (1 thread each)': lambda: on_ray_actors(cpus)}
        seconds = {name: [] for name in runs}
        for r in range(args.rounds):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - t0)
                print(f'round {r + 1}: {name}: {seconds[name][-1]:.2f} s', file=sys.stderr)
        ray.shutdown()

    print(f'\n{args.images} images, model {args.model}, batch {args.batch_size}, {cpus} CPUs, '
          f'medians of {args.rounds} rounds\n')
    print('| configuration | seconds | images/s |\n|---|---|---|')
    for name, s in seconds.items():
        median = statistics.median(s)
        print(f'| {name} | {median:.2f} | {args.images / median:.0f} |')


if __name__ == '__main__':
    main()
