"""`python -m engine classify MODEL IMAGE_OR_FOLDER...`: top-k labels of photos.

A file that cannot be read (not an image, a broken link, too large) is
reported on its own line and in the JSON, and the others are classified; the
exit status is non-zero only when no image could be read.

With --ray [ADDRESS] --output OUT.parquet|OUT.jsonl the images are read,
classified and written by a Ray cluster's workers (engine/ray.py), one row
per image, the same rows as without Ray."""
import argparse
import json
import os
import sys

import numpy as np

import engine
from engine import preprocess
from engine.cli import positive_int
from engine.kernels.isa import PRECISIONS
from engine.preprocess import IMAGE_SUFFIXES


def collect(paths):
    """(image files named or found in the folders named, recursively, in
    sorted order; (path, problem) for names that are neither)."""
    files, problems = [], []
    for p in paths:
        if os.path.isdir(p):
            for folder, dirs, names in os.walk(p):
                dirs.sort()
                files += sorted(os.path.join(folder, n) for n in names if n.lower().endswith(IMAGE_SUFFIXES))
        elif os.path.lexists(p):
            files.append(p)
        else:
            problems.append((p, 'no such file or folder'))
    return files, problems


def classify_batch(model, spec, images, names, top_k=5):
    """(top-k pairs or None, error message or None) for each image (what
    preprocess.to_array takes), errors naming it by its name: one run of the
    model over the images that decode."""
    arrays, errors = [], []
    for image, name in zip(images, names):
        try:
            arrays.append(preprocess.to_array(image, spec, model.graph.input_channels, name=name))
            errors.append(None)
        except ValueError as e:
            errors.append(str(e))
    results = iter(model.predict(np.stack(arrays), top_k) if arrays else [])
    return [(None if error else next(results), error) for error in errors]


def classify_files(model, files, top_k=5, batch_size=16, preprocessing=None, progress=None):
    """(path, top-k pairs or None, error message or None) for each file, in
    order: files that cannot be decoded are reported, not fatal."""
    spec = model.preprocessing_with(preprocessing)
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        for path, (top, error) in zip(chunk, classify_batch(model, spec, chunk, chunk, top_k)):
            yield path, top, error
        if progress:
            progress(start + len(chunk))


def progress_bar(total, enabled):
    """A callback(done) drawing progress on stderr: tqdm where installed."""
    if not enabled:
        return None, lambda: None
    try:
        from tqdm import tqdm
        bar = tqdm(total=total, unit='img', file=sys.stderr)
        state = {'done': 0}

        def update(done):
            bar.update(done - state['done'])
            state['done'] = done
        return update, bar.close
    except ImportError:
        def update(done):
            print(f'\r{done}/{total} images', end='', file=sys.stderr, flush=True)
        return update, lambda: print(file=sys.stderr)


def run(args):
    override = {k: v for k, v in dict(resize=args.resize, crop=args.crop, mean=args.mean,
                                       std=args.std).items() if v is not None}
    if args.ray is not None or args.output or args.actors:
        return run_on_ray(args, override)
    model = engine.load(args.model, threads=args.threads, precision=args.precision)
    files, problems = collect(args.images)
    if not files:
        raise ValueError('no images found in ' + ', '.join(args.images))
    if not args.quiet:
        print(f'precision {"int8/" if model.int8 else ""}{model.precision} ({model.kernels.ISA} kernels)',
              file=sys.stderr)
    update, close = progress_bar(len(files), any(os.path.isdir(p) for p in args.images) and not args.quiet)
    try:
        rows = list(classify_files(model, files, args.top_k, args.batch_size, override, update))
    finally:
        close()
    rows = [(p, None, why) for p, why in problems] + rows
    for path, _, error in rows:
        if error:
            print(f'skipped {path}: {error}', file=sys.stderr)
    if args.json:
        print(json.dumps([{'image': f, 'error': e} if e else
                          {'image': f, 'top': [{'label': l, 'probability': p} for l, p in r]}
                          for f, r, e in rows], indent=2))
    else:
        for f, r, e in rows:
            print(f)
            if e:
                print(f'  error: {e}')
            for label, p in r or ():
                print(f'  {p:7.2%}  {label}')
    read = sum(r is not None for _, r, _ in rows)
    if not read:
        raise ValueError(f'none of the {len(rows)} images could be read')


def run_on_ray(args, override):
    """--ray: the images read, classified and written by a Ray cluster's workers."""
    if args.ray is None:
        raise ValueError('--output and --actors are for --ray runs (without Ray: --json)')
    if not args.output:
        raise ValueError('--ray needs --output: the workers write the rows into that folder')
    if args.json:
        raise ValueError('--json prints rows on the driver: with --ray the rows go to --output')
    from engine import ray as on_ray
    on_ray.output_format(args.output)       # a bad name fails before the cluster starts
    model = engine.load(args.model)
    rows, errors = on_ray.classify_to_files(
        args.images, model, args.output, address=args.ray or None, top_k=args.top_k,
        threads=args.threads or on_ray.THREADS_PER_ACTOR, actors=args.actors, batch_size=args.batch_size,
        preprocessing=override)
    print(f'{rows} images, {errors} not readable: rows written to {args.output}/', file=sys.stderr)
    if rows == errors:
        raise ValueError(f'none of the {rows} images could be read')


def add_parser(sub):
    p = sub.add_parser('classify', help='top-k labels of images (needs Pillow)',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='model file')
    p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders (recursively)')
    p.add_argument('--top-k', type=positive_int, default=5, help='labels per image (default %(default)s)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32',
                   help='fp16: tensors, weights and arithmetic in fp16 (CPUs with fp16 arithmetic: Pi 5)')
    p.add_argument('--threads', type=positive_int, default=None,
                   help='threads (default: the usable cores; with --ray: per actor, default 1)')
    p.add_argument('--batch-size', type=positive_int, default=16,
                   help='images per run of the model (default %(default)s)')
    p.add_argument('--resize', type=positive_int, help='shorter side before cropping (default: from the model file)')
    p.add_argument('--crop', type=positive_int, help='centre crop size (default: from the model file)')
    p.add_argument('--mean', type=float, nargs='+', help='per-channel mean (default: from the model file)')
    p.add_argument('--std', type=float, nargs='+', help='per-channel std (default: from the model file)')
    p.add_argument('--json', action='store_true', help='print JSON: one entry per image, with its error if any')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    ray = p.add_argument_group('many images on a Ray cluster (pip install "shufflenet-engine[ray]")')
    ray.add_argument('--ray', nargs='?', const='', metavar='ADDRESS',
                     help='run on the Ray cluster at ADDRESS (without: the running one, or a local one); '
                          'IMAGE_OR_FOLDER may also be URIs (s3://...)')
    ray.add_argument('--output', metavar='OUT.parquet|OUT.jsonl',
                     help='folder the workers write one row per image into (path, labels, probabilities, error)')
    ray.add_argument('--actors', type=positive_int, help='model copies (default: the cluster\'s CPUs / --threads)')
    p.set_defaults(func=run)

