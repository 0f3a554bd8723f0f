#!/usr/bin/env python3
"""Train a small NanoDet-Plus-style detector on shapes pasted on textured
backgrounds (made on the fly: no download), convert it, and write what
weights/ ships:

  weights/shapes_nanodet.engine        the converted detector (settings and class names inside)
  weights/shapes_nanodet.pth           the PyTorch state dict it came from (torch.load(..., weights_only=True))
  weights/shapes_detect.json           its detection settings, class names and input size (--detect-config)
  weights/shapes_result.json           mAP@0.5 on the held-out scenes, PyTorch's and the engine's
  weights/detect_samples/*.png         held-out scenes to detect in
  docs/detect.png                      `python -m engine detect --draw` on them, tiled

  pip install -e ".[test]" && python tools/train_detector.py

The scenes (SIZE x SIZE RGB) have 1 to 4 objects of CLASSES in random
colours and sizes (12 to 44 pixels) on smooth random textures with stray
lines; the training scenes and the held-out ones come from different seeds.
The network is the authors' NanoDet-Plus (tests/detection_models.py:
ShuffleNetV2 0.5x with LeakyReLU, GhostPAN, NanoDetPlusHead) made small.
Its loss is NanoDet's kind (quality focal loss on IoU-scored points, the
distribution focal loss, GIoU); the assigner is simpler than NanoDet's
dynamic one: a point learns the smallest box whose centre region (1.5
strides) holds it, one size of object per level (FCOS's rule).  Training is
seeded and takes about a quarter of an hour on two cores.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

SIZE = 128
CLASSES = ['circle', 'square', 'triangle', 'cross']
STRIDES = [8, 16, 32]
REG_MAX = 7
MEAN, STD = [127.5, 127.5, 127.5], [64.0, 64.0, 64.0]       # on 0..255 pixels, RGB
TRAIN_SEED, HELD_OUT_SEED = 1, 2
SETTINGS = dict(num_classes=len(CLASSES), strides=STRIDES, reg_max=REG_MAX, mean=MEAN, std=STD, bgr=False,
                keep_ratio=False, score_threshold=0.4, iou_threshold=0.5, max_detections=20)
EVAL_THRESHOLD = 0.05       # scores kept for mAP (as NanoDet's evaluation)


# --------------------------------------------------------------------------- scenes

def texture(rng, size):
    """A smooth random background: coarse colour noise enlarged, plus a few lines."""
    from PIL import Image, ImageDraw
    cells = rng.integers(3, 9)
    coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    pen = ImageDraw.Draw(image)
    for _ in range(rng.integers(0, 6)):
        xy = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2)]
        pen.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
    return image


def scene(rng, size=SIZE):
    """(uint8 image size x size x 3, boxes (n, 4) x1 y1 x2 y2, class ids (n,))."""
    from PIL import ImageDraw
    image = texture(rng, size)
    pen = ImageDraw.Draw(image)
    boxes, labels = [], []
    for _ in range(rng.integers(1, 5)):
        for _attempt in range(20):
            side = int(rng.integers(12, 45))
            w = int(side * rng.uniform(0.75, 1.25)) if rng.random() < 0.5 else side
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - side))
            box = np.array([x, y, x + w, y + side], float)
            if all(_iou(box, b) < 0.2 for b in boxes):
                break
        else:
            continue
        cls = int(rng.integers(len(CLASSES)))
        background = np.asarray(image)[y:y + side, x:x + w].reshape(-1, 3).mean(0)
        color = tuple(int(v) for v in np.where(background > 127, rng.integers(0, 90, 3), rng.integers(165, 256, 3)))
        x2, y2 = x + w - 1, y + side - 1
        if CLASSES[cls] == 'circle':
            pen.ellipse((x, y, x2, y2), fill=color)
        elif CLASSES[cls] == 'square':
            pen.rectangle((x, y, x2, y2), fill=color)
        elif CLASSES[cls] == 'triangle':
            pen.polygon([((x + x2) / 2, y), (x2, y2), (x, y2)], fill=color)
        else:
            t = max(2, w // 4), max(2, side // 4)
            cx, cy = (x + x2) / 2, (y + y2) / 2
            pen.rectangle((cx - t[0] / 2, y, cx + t[0] / 2, y2), fill=color)
            pen.rectangle((x, cy - t[1] / 2, x2, cy + t[1] / 2), fill=color)
        boxes.append(box)
        labels.append(cls)
    return np.asarray(image, np.uint8), np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def scenes(seed, n):
    rng = np.random.default_rng(seed)
    return [scene(rng) for _ in range(n)]


def _iou(a, b):
    """IoU of two boxes, as the engine's NMS measures it."""
    from engine.detect import iou
    return float(iou(np.asarray(a, float), np.asarray(b, float)[None])[0])


def to_input(images):
    x = (np.asarray(images, np.float32) - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- the network

def build_net():
    import detection_models as D
    return D.OneStageDetector(
        D.ShuffleNetV2('0.5x', out_stages=(2, 3, 4), activation='LeakyReLU'),
        D.GhostPAN([48, 96, 192], 64, kernel_size=5, use_depthwise=True, activation='LeakyReLU'),
        D.NanoDetPlusHead(len(CLASSES), 64, feat_channels=64, stacked_convs=1, kernel_size=5, strides=STRIDES,
                          reg_max=REG_MAX, activation='LeakyReLU'))


def priors(size=SIZE):
    """(points, 3): x, y, stride of each point, as engine/detect.py lays them out."""
    rows = []
    for s in STRIDES:
        n = -(-size // s)
        y, x = np.meshgrid(np.arange(n) * s, np.arange(n) * s, indexing='ij')
        rows.append(np.stack([x.ravel(), y.ravel(), np.full(n * n, s)], 1))
    return np.concatenate(rows).astype(np.float32)


def torch_decode(out, points):
    """PyTorch's own decoding of the head's output (N, points, C): (boxes, scores)."""
    import torch
    k = len(CLASSES)
    dist = out[..., k:].reshape(out.shape[0], out.shape[1], 4, REG_MAX + 1).softmax(-1)
    dist = (dist * torch.arange(REG_MAX + 1, dtype=out.dtype)).sum(-1) * points[:, 2:3]
    xy = points[:, :2]
    boxes = torch.cat([xy - dist[..., :2], xy + dist[..., 2:]], -1).clamp(0, SIZE)
    return boxes, out[..., :k].sigmoid()


def torch_nms(boxes, scores, threshold, iou_threshold=SETTINGS['iou_threshold'], max_detections=100):
    """One image's detections [(box, score, class)] by class-wise greedy NMS, in torch."""
    import torch
    found = []
    for c in range(scores.shape[1]):
        s = scores[:, c]
        idx = torch.nonzero(s > threshold).flatten()
        idx = idx[torch.argsort(-s[idx], stable=True)]
        while idx.numel():
            best, idx = idx[0], idx[1:]
            found.append((boxes[best].tolist(), float(s[best]), c))
            if idx.numel():
                b, o = boxes[best], boxes[idx]
                w = (torch.minimum(b[2], o[:, 2]) - torch.maximum(b[0], o[:, 0])).clamp(min=0)
                h = (torch.minimum(b[3], o[:, 3]) - torch.maximum(b[1], o[:, 1])).clamp(min=0)
                inter = w * h
                union = (b[2] - b[0]) * (b[3] - b[1]) + (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]) - inter
                idx = idx[inter / union.clamp(min=1e-12) <= iou_threshold]
    return sorted(found, key=lambda d: -d[1])[:max_detections]


# --------------------------------------------------------------------------- the loss

LEVEL_RANGES = {8: (0, 20), 16: (20, 40), 32: (40, 1e9)}     # a point's farthest side, in pixels


def assign(points, boxes):
    """Per point: the index of the box it learns (-1: background).  A point
    learns the smallest box that holds it within 1.5 strides of the box's
    centre and whose farthest side lies in its level's range (FCOS's rule:
    one size of object per level)."""
    x, y, s = points[:, 0:1], points[:, 1:2], points[:, 2:3]
    if not len(boxes):
        return np.full(len(points), -1)
    l, t = x - boxes[:, 0], y - boxes[:, 1]
    r, b = boxes[:, 2] - x, boxes[:, 3] - y
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    far = np.maximum(np.maximum(l, t), np.maximum(r, b))
    lo = np.array([LEVEL_RANGES[int(v)][0] for v in points[:, 2]])[:, None]
    hi = np.array([LEVEL_RANGES[int(v)][1] for v in points[:, 2]])[:, None]
    ok = ((np.minimum(np.minimum(l, t), np.minimum(r, b)) > 0)
          & (np.maximum(np.abs(x - cx), np.abs(y - cy)) < 1.5 * s)
          & (far > lo) & (far <= hi) & (far < (REG_MAX - 0.1) * s))
    area = np.where(ok, ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None], np.inf)
    return np.where(ok.any(1), area.argmin(1), -1)


def giou(a, b):
    import torch
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    hull = (cw * ch).clamp(min=1e-6)
    return iou, iou - (hull - union) / hull


def loss(out, points, targets):
    """Quality focal loss (scores aimed at the IoU of the point's box),
    distribution focal loss and GIoU over the positive points."""
    import torch
    import torch.nn.functional as F
    k = len(CLASSES)
    boxes, _ = torch_decode(out, points)
    logits = out[..., :k]
    quality = torch.zeros_like(logits)
    dfl, box_loss, positives = out.new_zeros(()), out.new_zeros(()), 0
    for i, (gt_boxes, gt_labels) in enumerate(targets):
        which = torch.from_numpy(assign(points.numpy(), gt_boxes))
        pos = torch.nonzero(which >= 0).flatten()
        if not pos.numel():
            continue
        gt = torch.from_numpy(gt_boxes)[which[pos]]
        iou, g = giou(boxes[i, pos], gt)
        quality[i, pos, torch.from_numpy(gt_labels)[which[pos]]] = iou.detach().clamp(min=0)
        box_loss = box_loss + (1 - g).sum()
        p = points[pos]
        d = torch.stack([p[:, 0] - gt[:, 0], p[:, 1] - gt[:, 1], gt[:, 2] - p[:, 0], gt[:, 3] - p[:, 1]], 1)
        d = (d / p[:, 2:3]).clamp(0, REG_MAX - 0.01).reshape(-1)
        left = d.floor().long()
        bins = out[i, pos, k:].reshape(-1, REG_MAX + 1)
        dfl = dfl + (F.cross_entropy(bins, left, reduction='none') * (left + 1 - d)
                     + F.cross_entropy(bins, left + 1, reduction='none') * (d - left)).sum() / 4
        positives += pos.numel()
    sigma = logits.sigmoid()
    qfl = (F.binary_cross_entropy_with_logits(logits, quality, reduction='none') * (sigma - quality).abs() ** 2).sum()
    n = max(positives, 1)
    return (qfl + 0.25 * dfl + 2.0 * box_loss) / n


# --------------------------------------------------------------------------- mAP

def average_precision(found, truth, iou_threshold=0.5):
    """mAP@0.5 (VOC, every point of the precision-recall curve), classes
    averaged: found [[(box, score, class)] per image], truth [(boxes, labels)]."""
    aps = []
    for c in range(len(CLASSES)):
        dets = sorted(((score, i, box) for i, f in enumerate(found) for box, score, k in f if k == c),
                      key=lambda d: -d[0])
        gts = {i: [b for b, lab in zip(*t) if lab == c] for i, t in enumerate(truth)}
        used = {i: [False] * len(g) for i, g in gts.items()}
        total = sum(len(g) for g in gts.values())
        if not total:
            continue
        tp = []
        for _, i, box in dets:
            ious = [_iou(np.asarray(box), g) for g in gts[i]]
            j = int(np.argmax(ious)) if ious else -1
            hit = j >= 0 and ious[j] >= iou_threshold and not used[i][j]
            if hit:
                used[i][j] = True
            tp.append(hit)
        tp = np.array(tp, float)
        recall = np.concatenate([[0], np.cumsum(tp) / total, [1]])
        precision = np.concatenate([[1], np.cumsum(tp) / np.maximum(np.arange(1, len(tp) + 1), 1), [0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        aps.append(float(np.sum((recall[1:] - recall[:-1]) * precision[1:])))
    return float(np.mean(aps))


def engine_found(model, images, threshold=EVAL_THRESHOLD):
    found = model.detect(list(images), score_threshold=threshold, max_detections=100)
    return [[(d.box, d.score, d.class_id) for d in f] for f in found]


def torch_found(net, images, threshold=EVAL_THRESHOLD, batch=64):
    import torch
    points = torch.from_numpy(priors())
    found = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            boxes, scores = torch_decode(net(torch.from_numpy(to_input(images[start:start + batch]))), points)
            found += [torch_nms(b, s, threshold) for b, s in zip(boxes, scores)]
    return found


# --------------------------------------------------------------------------- main

def convert_args(out):
    """The conversion's arguments (weights/README.md's command) for files in folder out."""
    return ['tools.train_detector:build_net', '--checkpoint', f'{out}/shapes_nanodet.pth', '--task', 'detect',
            '--detect-config', f'{out}/shapes_detect.json', '-o', f'{out}/shapes_nanodet.engine', '--check']


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--steps', type=int, default=2500)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--train-scenes', type=int, default=6000)
    p.add_argument('--held-out', type=int, default=300)
    p.add_argument('--out', default=os.path.join(ROOT, 'weights'))
    p.add_argument('--picture', default=os.path.join(ROOT, 'docs', 'detect.png'))
    args = p.parse_args(argv)
    import torch
    import engine
    torch.manual_seed(0)
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    t0 = time.time()
    train = scenes(TRAIN_SEED, args.train_scenes)
    held_out = scenes(HELD_OUT_SEED, args.held_out)
    print(f'{len(train)} training scenes, {len(held_out)} held out, made in {time.time() - t0:.0f} s', flush=True)

    net = build_net()
    points = torch.from_numpy(priors())
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=args.steps, pct_start=0.05)
    rng = np.random.default_rng(TRAIN_SEED)
    t0 = time.time()
    net.train()
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(train), args.batch)
        flips = rng.random(args.batch) < 0.5
        images, targets = [], []
        for i, flip in zip(idx, flips):       # mirrored half the time
            image, boxes, labels = train[i]
            if flip:
                image, boxes = image[:, ::-1], np.stack([SIZE - boxes[:, 2], boxes[:, 1], SIZE - boxes[:, 0],
                                                         boxes[:, 3]], 1)
            images.append(image)
            targets.append((boxes.astype(np.float32), labels))
        value = loss(net(torch.from_numpy(to_input(images))), points, targets)
        opt.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 35)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps:
            print(f'step {step}/{args.steps}: loss {value.item():.3f} ({time.time() - t0:.0f} s)', flush=True)
    net.eval()
    train_seconds = time.time() - t0

    truth = [(b, lab) for _, b, lab in held_out]
    images = np.stack([im for im, _, _ in held_out])
    map_torch = average_precision(torch_found(net, images), truth)
    os.makedirs(args.out, exist_ok=True)
    torch.save(net.state_dict(), os.path.join(args.out, 'shapes_nanodet.pth'))
    with open(os.path.join(args.out, 'shapes_detect.json'), 'w') as f:
        json.dump(dict(SETTINGS, labels=CLASSES, input_size=[SIZE, SIZE]), f, indent=2)
    # converted as weights/README.md says, by the command a user runs
    from engine import convert_command
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        if convert_command.main(convert_args(os.path.relpath(args.out, ROOT))) != 0:
            raise SystemExit('the conversion failed')
    finally:
        os.chdir(cwd)
    model = engine.load(os.path.join(args.out, 'shapes_nanodet.engine'))
    map_engine = average_precision(engine_found(model, images), truth)
    result = {'map50_torch': round(map_torch, 4), 'map50_engine': round(map_engine, 4), 'held_out': len(held_out),
              'held_out_seed': HELD_OUT_SEED, 'train_scenes': len(train), 'steps': args.steps,
              'batch': args.batch, 'train_seconds': round(train_seconds), 'size': SIZE, 'classes': CLASSES}
    with open(os.path.join(args.out, 'shapes_result.json'), 'w') as f:
        json.dump(result, f, indent=2)
    samples = os.path.join(args.out, 'detect_samples')
    os.makedirs(samples, exist_ok=True)
    from PIL import Image
    for i in range(6):
        Image.fromarray(held_out[i][0]).save(os.path.join(samples, f'scene_{i}.png'))
    picture(model, sorted(os.path.join(samples, f) for f in os.listdir(samples)), args.picture)
    print(json.dumps(result, indent=2))


def picture(model, paths, out, scale=2, columns=3):
    """`detect --draw`'s pictures of paths, enlarged and tiled, into out."""
    import tempfile
    from PIL import Image
    from engine import detect
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, found in zip(paths, model.detect(paths)):
            drawn = os.path.join(tmp, os.path.basename(path))
            detect.draw(Image.open(path).resize((SIZE * scale, SIZE * scale), Image.NEAREST), [
                d._replace(box=tuple(v * scale for v in d.box)) for d in found], drawn)
            tiles.append(np.asarray(Image.open(drawn).convert('RGB')))
    rows = [np.concatenate(tiles[i:i + columns], 1) for i in range(0, len(tiles), columns)]
    Image.fromarray(np.concatenate(rows, 0)).save(out)


if __name__ == '__main__':
    main()
