"""Object detection: `python -m engine detect MODEL IMAGE_OR_FOLDER...` and
Model.detect.  Each image is fitted to the model's input, the model run, its
points decoded as NanoDet decodes them, overlapping boxes of a class
suppressed (NMS), and the boxes mapped back to the image's own pixels.

A detector's model file carries its settings (graph.meta['detect'], written
by `convert ... --task detect --detect-config CONFIG`) and its class names
(graph.meta['labels']):
  decoder          'nanodet': one output (N, points, classes + 4 * (reg_max + 1)),
                   the points of each level (strides) row by row; per point,
                   class logits (sigmoid), then for each side of the box
                   (left, top, right, bottom) a distribution over reg_max + 1
                   distances in strides (softmax, then its mean)
  strides, reg_max, center_offset   a point of level s at ((x + offset) s, (y + offset) s)
  keep_ratio       False: the image stretched to the input; True: scaled to
                   fit and centred on black (NanoDet's val pipelines)
  mean, std, bgr   the input: (pixel 0..255 - mean) / std, channels in BGR
                   order if bgr (NanoDet's configs: OpenCV's order)
  score_threshold, iou_threshold, max_detections   the defaults of detect()
Decoding and NMS are NumPy: the runtime needs nothing more (Pillow for
image files and --draw)."""
import argparse
import functools
import json
import math
import os
import sys
from typing import NamedTuple

import numpy as np

from engine import preprocess
from engine.cli import positive_int

DEFAULTS = {'decoder': 'nanodet', 'center_offset': 0.0, 'keep_ratio': False, 'bgr': False,
            'score_threshold': 0.35, 'iou_threshold': 0.6, 'max_detections': 100}
REQUIRED = ('num_classes', 'strides', 'reg_max', 'mean', 'std')


class Detection(NamedTuple):
    label: str          # the class name (its index where the file has no names)
    score: float
    box: tuple          # (x1, y1, x2, y2) in the image's pixels
    class_id: int


def check_settings(settings, channels):
    """The detection settings (from a file or a caller), validated, the
    defaults filled in; ValueError naming the first problem."""
    if not isinstance(settings, dict):
        raise ValueError(f'detection settings must be a mapping, got {type(settings).__name__}')
    unknown = sorted(set(settings) - set(DEFAULTS) - set(REQUIRED))
    missing = [k for k in REQUIRED if k not in settings]
    problems = [f'{what} {", ".join(keys)}' for what, keys in (('unknown', unknown), ('missing', missing)) if keys]
    if problems:
        raise ValueError('detection settings: ' + '; '.join(problems))
    s = dict(DEFAULTS, **settings)
    if s['decoder'] != 'nanodet':
        raise ValueError(f"detection decoder {s['decoder']!r} (this version decodes 'nanodet')")
    for key, low, high in (('num_classes', 1, 1 << 16), ('reg_max', 0, 1 << 10), ('max_detections', 1, 1 << 20)):
        if not _is_int(s[key]) or not low <= s[key] <= high:
            raise ValueError(f'detection {key} must be an integer from {low} to {high}, got {s[key]!r}')
    if (not isinstance(s['strides'], list) or not s['strides']
            or not all(_is_int(v) and 1 <= v <= 4096 for v in s['strides'])):
        raise ValueError(f"detection strides must be a list of integers from 1 to 4096, got {s['strides']!r}")
    for key, low, high in (('score_threshold', 0, 1), ('iou_threshold', 0, 1), ('center_offset', 0, 1)):
        if not _is_number(s[key]) or not low <= s[key] <= high:
            raise ValueError(f'detection {key} must be a number from {low} to {high}, got {s[key]!r}')
    for key in ('keep_ratio', 'bgr'):
        if not isinstance(s[key], bool):
            raise ValueError(f'detection {key} must be true or false, got {s[key]!r}')
    for key in ('mean', 'std'):
        if not isinstance(s[key], list) or len(s[key]) != channels or not all(_is_number(v) for v in s[key]):
            raise ValueError(f'detection {key} must be {channels} numbers, got {s[key]!r}')
    if min(s['std']) <= 0:
        raise ValueError(f"detection std must be positive, got {s['std']}")
    return s


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_config(path):
    """(settings, class names or None, input (height, width) or None) from a
    detector's config: NanoDet's YAML (model.arch.head: num_classes,
    strides, reg_max; data.val: input_size [w, h], keep_ratio,
    pipeline.normalize [mean, std] in BGR order; class_names; needs PyYAML),
    or JSON of the settings (engine/detect.py) with optional 'labels' and
    'input_size' [w, h].  Settings are checked when stored."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if path.lower().endswith('.json'):
        cfg = json.loads(text)
        if not isinstance(cfg, dict):
            raise ValueError(f'{path}: a JSON object of detection settings expected')
        cfg = dict(cfg)
        labels, size = cfg.pop('labels', None), cfg.pop('input_size', None)
        return cfg, labels, (size[1], size[0]) if size else None
    try:
        import yaml
    except ImportError:
        raise ImportError(f'{path}: reading a YAML config needs PyYAML (pip install pyyaml), or give JSON') from None
    cfg = yaml.safe_load(text)
    try:
        head, val = cfg['model']['arch']['head'], cfg['data']['val']
        mean, std = val['pipeline']['normalize']
        settings = dict(num_classes=head['num_classes'], strides=list(head['strides']),
                        reg_max=head.get('reg_max', 7), keep_ratio=bool(val.get('keep_ratio', True)),
                        mean=list(mean), std=list(std), bgr=True)
        w, h = val['input_size']
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f'{path} is not a NanoDet config (model.arch.head, data.val: {type(e).__name__} {e})') \
            from None
    return settings, cfg.get('class_names'), (h, w)


# --------------------------------------------------------------------------- images in

def fit(image, settings, height, width):
    """A decoded PIL image -> (CxHxW float32 input, (sx, sy, tx, ty)): the
    input pixel of image pixel (x, y) is (sx x + tx, sy y + ty)."""
    Image = preprocess._pil()
    w, h = image.size
    if settings['keep_ratio']:
        sx = sy = min(width / w, height / h)
        tx, ty = (width - sx * w) / 2, (height - sy * h) / 2
    else:
        sx, sy, tx, ty = width / w, height / h, 0.0, 0.0
    # Pillow's AFFINE maps each output pixel back to the image: the inverse
    fitted = image.transform((width, height), Image.AFFINE, (1 / sx, 0, -tx / sx, 0, 1 / sy, -ty / sy),
                             resample=Image.BILINEAR)
    arr = np.asarray(fitted, np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if settings['bgr']:
        arr = arr[:, :, ::-1]
    x = (arr - np.asarray(settings['mean'], np.float32)) / np.asarray(settings['std'], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), np.float32), (sx, sy, tx, ty)


# --------------------------------------------------------------------------- points to boxes

def priors(settings, height, width):
    """(points, 3): each point's centre x, y and stride, level by level, row
    by row, as NanoDet lays out a head's output for an input of height x width
    (made once per layout: every image of every call reads the same)."""
    return _priors(tuple(settings['strides']), settings['center_offset'], height, width)


@functools.lru_cache(maxsize=32)
def _priors(strides, offset, height, width):
    rows = []
    for s in strides:
        h, w = -(-height // s), -(-width // s)
        y, x = np.meshgrid((np.arange(h) + offset) * s, (np.arange(w) + offset) * s, indexing='ij')
        rows.append(np.stack([x.ravel(), y.ravel(), np.full(h * w, float(s))], axis=1))
    points = np.concatenate(rows)
    points.flags.writeable = False      # shared by every caller
    return points


def class_scores(logits):
    """The head's class logits as scores (sigmoid, in float64)."""
    return 1 / (1 + np.exp(-np.asarray(logits, np.float64)))


def decode(output, settings, height, width, points=None):
    """A NanoDet head's output (N, points, classes + 4 * (reg_max + 1)) ->
    (boxes (N, points, 4) x1 y1 x2 y2 in input pixels, scores (N, points,
    classes)); of the points a boolean mask selects, if given."""
    k, bins = settings['num_classes'], settings['reg_max'] + 1
    centres = priors(settings, height, width)
    if output.ndim != 3 or output.shape[1:] != (len(centres), k + 4 * bins):
        raise ValueError(f'the model\'s output {output.shape[1:]} does not fit its detection settings: '
                         f'{len(centres)} points of {k} classes + 4 x {bins} bins at {height}x{width}')
    if points is not None:
        output, centres = output[:, points], centres[points]
    out = output.astype(np.float64)
    scores = class_scores(out[:, :, :k])
    dist = out[:, :, k:].reshape(out.shape[0], -1, 4, bins)
    dist = np.exp(dist - dist.max(axis=3, keepdims=True))
    dist = (dist / dist.sum(axis=3, keepdims=True)) @ np.arange(bins) * centres[None, :, 2:3]
    xy = centres[None, :, :2]
    boxes = np.concatenate([xy - dist[:, :, :2], xy + dist[:, :, 2:]], axis=2)
    return np.clip(boxes, 0, [width, height, width, height]), scores


def nms(boxes, scores, score_threshold, iou_threshold, max_detections):
    """One image's (boxes (points, 4), scores (points, classes)) -> (boxes,
    scores, class ids) kept, best first: every (point, class) above the
    threshold a candidate, and within each class, greedily, a box
    overlapping a better one by more than iou_threshold dropped (mmdet's
    multiclass_nms), then the best max_detections (ties: the lower class,
    then the lower point).  Candidates that can no longer be among those are
    not looked at: a class's boxes past its max_detections-th kept one, and
    once max_detections are kept, boxes scoring below the worst of the best
    max_detections (a detector that is unsure of everything passes most of
    its points: 87,000 candidates took 3 s)."""
    point, cls = np.nonzero(scores > score_threshold)
    cand, cand_scores = boxes[point], scores[point, cls]
    keep, floor = [], -np.inf
    classes = np.unique(cls)
    best_of = np.full(scores.shape[1], -np.inf)
    np.maximum.at(best_of, cls, cand_scores)
    for c in classes[np.argsort(-best_of[classes], kind='stable')]:     # the likeliest classes first
        idx = np.flatnonzero(cls == c)
        idx = idx[np.argsort(-cand_scores[idx], kind='stable')]
        idx = idx[cand_scores[idx] >= floor]
        kept = 0
        while idx.size and kept < max_detections:
            best, idx = idx[0], idx[1:]
            keep.append(best)
            kept += 1
            idx = idx[iou(cand[best], cand[idx]) <= iou_threshold]
        if len(keep) >= max_detections:
            floor = np.partition(cand_scores[keep], len(keep) - max_detections)[len(keep) - max_detections]
    keep = np.array(keep, np.int64)
    keep = keep[np.lexsort((keep, cls[keep], -cand_scores[keep]))][:max_detections]
    return cand[keep], cand_scores[keep], cls[keep]


def iou(box, others):
    """Intersection over union of one box with each of others (x1 y1 x2 y2)."""
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def postprocess(output, settings, height, width):
    """One image's head output (points, channels) -> (boxes in input pixels,
    scores, class ids) that NMS keeps, best first: decoding and NMS, what a
    detection costs after the network."""
    # only the points some class of which passes the threshold: most of a
    # detector's points are background, and decoding them all costs more than NMS
    chosen = class_scores(output[:, :settings['num_classes']].max(axis=1)) > settings['score_threshold']
    b, s = decode(output[None], settings, height, width, chosen)
    return nms(b[0], s[0], settings['score_threshold'], settings['iou_threshold'], settings['max_detections'])


# --------------------------------------------------------------------------- the job

def detect_batch(model, settings, images, names):
    """(detections or None, error message or None) for each image: one run
    of the model over the images that decode."""
    _, c, height, width = model.input_shape
    labels = model.labels or []
    inputs, fits, sizes, errors = [], [], [], []
    for image, name in zip(images, names):
        try:
            decoded = preprocess.decode(image, c, name)
            x, transform = fit(decoded, settings, height, width)
            inputs.append(x)
            fits.append(transform)
            sizes.append(decoded.size)
            errors.append(None)
        except ValueError as e:
            errors.append(str(e))
    results = []
    if inputs:
        output = model.run(np.stack(inputs))
        for i, ((sx, sy, tx, ty), (w, h)) in enumerate(zip(fits, sizes)):
            kept, kept_scores, ids = postprocess(output[i], settings, height, width)
            # back to the image's pixels, inside it
            kept = np.clip((kept - [tx, ty, tx, ty]) / [sx, sy, sx, sy], 0, [w, h, w, h])
            results.append([Detection(labels[i] if i < len(labels) else str(i), float(p),
                                      tuple(float(v) for v in box), int(i))
                            for box, p, i in zip(kept, kept_scores, ids)])
    it = iter(results)
    return [(None if error else next(it), error) for error in errors]


def settings_of(model, **overrides):
    """The model's detection settings with the given ones (not None) replaced."""
    stored = model.graph.meta.get('detect')
    if stored is None:
        raise ValueError('this model file has no detection settings: convert it with --task detect '
                         '--detect-config CONFIG')
    return check_settings(dict(stored, **{k: v for k, v in overrides.items() if v is not None}),
                          model.graph.input_channels)


# --------------------------------------------------------------------------- pictures

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0),
           (170, 255, 195), (128, 128, 0), (0, 0, 128), (255, 225, 25)]


def draw(image, detections, out_path):
    """The image (a path, PIL image or array) with each detection's box and
    'label score' drawn, saved to out_path."""
    preprocess._pil()       # (Pillow's absence explained)
    from PIL import ImageDraw
    image = preprocess.decode(image, 3).copy()
    pen = ImageDraw.Draw(image)
    width = max(1, round(min(image.size) / 200))
    for d in detections:
        color = PALETTE[d.class_id % len(PALETTE)]
        pen.rectangle(d.box, outline=color, width=width)
        text = f'{d.label} {d.score:.2f}'
        left, top, right, bottom = pen.textbbox((d.box[0], d.box[1]), text)
        y = max(0, d.box[1] - (bottom - top) - 2)
        pen.rectangle((d.box[0], y, d.box[0] + right - left + 4, y + bottom - top + 2), fill=color)
        pen.text((d.box[0] + 2, y), text, fill=(255, 255, 255))
    image.save(out_path)


def drawn_name(path, out_dir, taken):
    """A file in out_dir for path's picture: its name, numbered if taken."""
    stem, suffix = os.path.splitext(os.path.basename(path))
    suffix = suffix if suffix.lower() in ('.png', '.jpg', '.jpeg', '.bmp') else '.png'
    name, k = stem + suffix, 1
    while name in taken:
        k += 1
        name = f'{stem}-{k}{suffix}'
    taken.add(name)
    return os.path.join(out_dir, name)


def run(args):
    import engine
    from engine.classify import collect, progress_bar
    model = engine.load(args.model, threads=args.threads)
    settings = settings_of(model, score_threshold=args.score_threshold, iou_threshold=args.iou_threshold,
                           max_detections=args.max_detections)
    files, problems = collect(args.images)
    if not files:
        raise ValueError('no images found in ' + ', '.join(args.images))
    if args.draw:
        os.makedirs(args.draw, exist_ok=True)
    update, close = progress_bar(len(files), any(os.path.isdir(p) for p in args.images) and not args.quiet)
    rows, taken = [(p, None, why) for p, why in problems], set()
    try:
        for start in range(0, len(files), args.batch_size):
            chunk = files[start:start + args.batch_size]
            for path, (found, error) in zip(chunk, detect_batch(model, settings, chunk, chunk)):
                rows.append((path, found, error))
                if args.draw and found is not None:
                    draw(path, found, drawn_name(path, args.draw, taken))
            if update:
                update(start + len(chunk))
    finally:
        close()
    for path, _, error in rows:
        if error:
            print(f'skipped {path}: {error}', file=sys.stderr)
    if args.json:
        print(json.dumps([{'image': p, 'error': e} if e else
                          {'image': p, 'detections': [{'label': d.label, 'class': d.class_id,
                                                       'score': round(d.score, 5),
                                                       'box': [round(v, 2) for v in d.box]} for d in found]}
                          for p, found, e in rows], indent=2))
    else:
        for p, found, e in rows:
            print(p + (f'  error: {e}' if e else f'  ({len(found)} found)'))
            for d in found or ():
                print(f'  {d.score:6.1%}  {d.label:<16} ' + ' '.join(f'{v:7.1f}' for v in d.box))
    if args.draw:
        print(f'pictures with the boxes drawn: {args.draw}/', file=sys.stderr)
    if not any(found is not None for _, found, _ in rows):
        raise ValueError(f'none of the {len(rows)} images could be read')


def add_parser(sub):
    p = sub.add_parser('detect', help='objects in images: boxes, labels, scores (needs Pillow)',
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='model file of a detector (converted with --task detect)')
    p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER', help='image files and folders (recursively)')
    p.add_argument('--score-threshold', type=float, help='lowest score reported (default: from the model file)')
    p.add_argument('--iou-threshold', type=float,
                   help='NMS: a box overlapping a better one of its class by more is dropped (default: from '
                        'the model file)')
    p.add_argument('--max-detections', type=positive_int, help='per image (default: from the model file)')
    p.add_argument('--threads', type=positive_int, default=None, help='threads (default: the usable cores)')
    p.add_argument('--batch-size', type=positive_int, default=8, help='images per run of the model '
                                                                      '(default %(default)s)')
    p.add_argument('--json', action='store_true', help='print JSON: one entry per image, with its error if any')
    p.add_argument('--draw', metavar='OUT_DIR', help='write each image with its boxes and labels drawn into OUT_DIR')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=run)
