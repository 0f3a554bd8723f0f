"""`python -m engine bench`: on-device latency of a model file or of a
built-in architecture with seeded random weights; for a detector also what
decoding and NMS cost after the network (on --image's detections: that cost
grows with what the network finds)."""
import json
import platform
import time

import numpy as np

import engine
from engine import detect, device, preprocess, zoo
from engine.cli import nonnegative_int, positive_int
from engine.kernels.isa import PRECISIONS


def measure(fn, warmup, runs):
    """Latencies in ms of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - t0) * 1e3
    return times


def summary(times):
    return dict(min=float(np.min(times)), median=float(np.median(times)), max=float(np.max(times)))


def profile_table(rows):
    total = sum(r['ms'] for r in rows) or 1.0
    lines = [f'{"layer":34s} {"kind":16s} {"output shape":20s} {"ms":>8s} {"%":>6s}']
    for r in sorted(rows, key=lambda r: -r['ms']):
        lines.append(f'{r["name"][:34]:34s} {r["kind"]:16s} {str(r["shape"]):20s} '
                     f'{r["ms"]:8.3f} {100 * r["ms"] / total:6.1f}')
    lines.append(f'{"total":34s} {"":16s} {"":20s} {total:8.3f} {100.0:6.1f}')
    return '\n'.join(lines)


def run(args):
    if args.model:
        model = engine.load(args.model, threads=args.threads, precision=args.precision)
        label = args.model
        note = None
    else:
        model = engine.Model(zoo.MODELS[args.arch](), threads=args.threads, precision=args.precision)
        label = f'{args.arch} (built in)'
        note = 'random weights (seed 0): speed does not depend on weight values'
    n, c, h, w = model.input_shape
    if args.size:
        h = w = args.size
    shape = (args.batch, c, h, w)
    settings = detect.settings_of(model) if 'detect' in model.graph.meta else None
    if args.image and settings is None:
        raise ValueError('--image is for detectors (it decides what decoding and NMS cost)')
    if args.image:
        fitted, _ = detect.fit(preprocess.decode(args.image, c), settings, h, w)
        x = np.ascontiguousarray(np.broadcast_to(fitted, shape))
    else:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
    times = measure(lambda: model(x), args.warmup, args.runs)
    facts, warnings = device.report()
    single = model.runs_by_threads.get(1, 0) if model.threads > 1 else 0
    if single > (args.warmup + args.runs) // 8:
        warnings = warnings + [f'{single} of {args.warmup + args.runs} runs went faster on one thread than on '
                               f'{model.threads}: other programs have the cores (tools/bench_contention.py)']
    result = dict(model=label, input_shape=list(shape), threads=model.threads, precision=model.precision,
                  kernels=model.kernels.ISA,
                  warmup=args.warmup, runs=args.runs, ms=summary(times),
                  build=engine.build_info(), machine=platform.machine(), engine=engine.__version__,
                  device=facts, warnings=warnings)
    if note:
        result['note'] = note
    if settings is not None:
        result['postprocess'] = postprocess_cost(model, x[:1], settings, args)
    rows = model.profile(x, runs=max(3, min(args.runs, 50))) if args.profile else None
    if rows is not None:
        result['profile'] = rows
    if args.json:
        print(json.dumps(result, indent=2, default=list))
        return
    print(f'engine {engine.__version__}  isa {model.kernels.ISA}  precision {model.precision}  '
          f'threads {model.threads}  {platform.machine()}')
    print(f'cpu    {facts["cpu"]}  ({facts["cores"]} cores, governor {facts["governor"] or "unknown"})')
    for w in warnings:
        print(f'WARNING: {w}')
    print(f'model  {label}')
    if note:
        print(f'       {note}')
    print(f'input  {"x".join(map(str, shape))}   warm-up {args.warmup}, timed runs {args.runs}')
    print(f'{"":24s}{"min":>9s}{"median":>9s}{"max":>9s}   (ms)')
    s = result['ms']
    print(f'{"latency":24s}{s["min"]:9.3f}{s["median"]:9.3f}{s["max"]:9.3f}')
    if settings is not None:
        p = result['postprocess']
        s = p['ms']
        print(f'{"decoding + NMS, 1 image":24s}{s["min"]:9.3f}{s["median"]:9.3f}{s["max"]:9.3f}   '
              f'({p["candidates"]} candidates above {settings["score_threshold"]}, {p["detections"]} kept)')
    if rows is not None:
        print()
        print(profile_table(rows))


def postprocess_cost(model, x, settings, args):
    """A detector's decoding and NMS of one image's output, timed as the
    network is, with how many (point, class) pairs passed the threshold."""
    _, _, h, w = x.shape
    out = model.run(x)[0]
    k = settings['num_classes']
    candidates = int((detect.class_scores(out[:, :k]) > settings['score_threshold']).sum())
    kept = detect.postprocess(out, settings, h, w)[0]
    times = measure(lambda: detect.postprocess(out, settings, h, w), args.warmup, args.runs)
    return dict(ms=summary(times), candidates=candidates, detections=len(kept))


def add_parser(sub):
    p = sub.add_parser('bench', help='measure inference latency on this device')
    p.add_argument('--model', help='model file (default: a built-in architecture, random weights)')
    p.add_argument('--arch', default='shufflenet_v2_x1_0', choices=list(zoo.MODELS),
                   help='built-in architecture (default %(default)s)')
    p.add_argument('--threads', type=positive_int, default=None, help='threads (default: usable cores)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32',
                   help='fp16: tensors, weights and arithmetic in fp16 (CPUs with fp16 arithmetic: Pi 5)')
    p.add_argument('--runs', type=positive_int, default=200, help='timed runs (default %(default)s)')
    p.add_argument('--warmup', type=nonnegative_int, default=20, help='untimed runs first (default %(default)s)')
    p.add_argument('--batch', type=positive_int, default=1, help='images per run (default %(default)s)')
    p.add_argument('--size', type=positive_int, default=None, help='input height and width (default: the model\'s)')
    p.add_argument('--image', help='a detector\'s input from this image (default: random pixels)')
    p.add_argument('--profile', action='store_true', help='also print per-layer times')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.set_defaults(func=run)
