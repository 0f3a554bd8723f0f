"""`python -m engine classify MODEL IMAGE_OR_FOLDER...`: top-k labels of photos."""
import json
import os
import sys

import engine
from engine.preprocess import IMAGE_SUFFIXES


def collect(paths):
    """Image files named or found (recursively) in the folders named, sorted."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for folder, _, names in os.walk(p):
                files += sorted(os.path.join(folder, n) for n in names if n.lower().endswith(IMAGE_SUFFIXES))
        elif os.path.exists(p):
            files.append(p)
        else:
            raise ValueError(f'no such file or folder: {p}')
    return files


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
    model = engine.load(args.model, threads=args.threads)
    files = collect(args.images)
    if not files:
        raise ValueError('no images found in ' + ', '.join(args.images))
    override = {k: v for k, v in dict(resize=args.resize, crop=args.crop, mean=args.mean,
                                       std=args.std).items() if v is not None}
    update, close = progress_bar(len(files), any(os.path.isdir(p) for p in args.images) and not args.quiet)
    try:
        results = model.classify(files, top_k=args.top_k, batch_size=args.batch_size,
                                 preprocessing=override, progress=update)
    finally:
        close()
    if args.json:
        print(json.dumps([{'image': f, 'top': [{'label': l, 'probability': p} for l, p in r]}
                          for f, r in zip(files, results)], indent=2))
        return
    for f, r in zip(files, results):
        print(f)
        for label, p in r:
            print(f'  {p:7.2%}  {label}')


def add_parser(sub):
    p = sub.add_parser('classify', help='top-k labels of images (needs Pillow)')
    p.add_argument('model')
    p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER')
    p.add_argument('--top-k', type=int, default=5)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--resize', type=int, help='shorter side before cropping (default: from the model file)')
    p.add_argument('--crop', type=int, help='centre crop size (default: from the model file)')
    p.add_argument('--mean', type=float, nargs='+', help='per-channel mean (default: from the model file)')
    p.add_argument('--std', type=float, nargs='+', help='per-channel std (default: from the model file)')
    p.add_argument('--json', action='store_true')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
