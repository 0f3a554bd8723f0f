"""Detection as a job (engine/detect.py): NanoDet's decoding, class-wise
NMS, images fitted to the input and boxes mapped back, Model.detect and
`python -m engine detect` (--json, --draw), on a small detector built as
a graph (no torch needed) and checked against hand-computed answers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine import detect
from engine.graph import Graph, Node
from helpers import rand

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
SETTINGS = dict(num_classes=2, strides=[8, 16], reg_max=3, mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])


def test_decode_reads_distances_in_strides_at_each_point():
    """A point whose every side puts all its weight on one bin: a box that
    many strides from the point's centre; the scores are the sigmoids."""
    s = detect.check_settings(SETTINGS, 3)
    points = detect.priors(s, 32, 24)
    assert len(points) == 4 * 3 + 2 * 2
    np.testing.assert_array_equal(points[:4], [[0, 0, 8], [8, 0, 8], [16, 0, 8], [0, 8, 8]])
    np.testing.assert_array_equal(points[12:], [[0, 0, 16], [16, 0, 16], [0, 16, 16], [16, 16, 16]])
    out = np.zeros((1, 16, 2 + 4 * 4), np.float32)
    out[0, :, 0] = 2.0
    sides = out[0, :, 2:].reshape(16, 4, 4)
    sides[:, :, :] = -50.0
    sides[:, 0, 1] = sides[:, 1, 2] = sides[:, 2, 3] = sides[:, 3, 0] = 50.0     # left 1, top 2, right 3, bottom 0
    boxes, scores = detect.decode(out, s, 32, 24)
    np.testing.assert_allclose(scores[0, :, 0], 1 / (1 + np.exp(-2.0)))
    np.testing.assert_allclose(scores[0, :, 1], 0.5)
    # the point at (8, 8), stride 8: x1 = 8 - 8, y1 = 8 - 16 -> 0 (clipped), x2 = 8 + 24, y2 = 8
    np.testing.assert_allclose(boxes[0, 4], [0, 0, 24, 8], atol=1e-9)       # x2 clipped to the width
    # the point at (16, 16), stride 16: x1 = 0, y1 = -16 -> 0, x2 = 64 -> 24, y2 = 16
    np.testing.assert_allclose(boxes[0, 15], [0, 0, 24, 16], atol=1e-9)
    chosen = np.zeros(16, bool)
    chosen[[4, 15]] = True          # some points only: those rows
    some_boxes, some_scores = detect.decode(out, s, 32, 24, chosen)
    np.testing.assert_array_equal(some_boxes, boxes[:, chosen])
    np.testing.assert_array_equal(some_scores, scores[:, chosen])
    with pytest.raises(ValueError, match='does not fit its detection settings'):
        detect.decode(out[:, :15], s, 32, 24)


def test_nms_keeps_the_best_of_overlapping_boxes_of_one_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]], float)
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.6, 0.2], [0.3, 0.0]])
    kept, kept_scores, ids = detect.nms(boxes, scores, 0.25, 0.5, 100)
    # box 1 overlaps box 0 (IoU 0.68) and box 4 (0.9) in class 0: dropped; box 2 is class 1: kept
    np.testing.assert_allclose(kept_scores, [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(ids, [0, 1, 0])
    np.testing.assert_array_equal(kept, boxes[[0, 2, 3]])
    assert len(detect.nms(boxes, scores, 0.25, 0.5, 2)[0]) == 2
    assert len(detect.nms(boxes, scores, 0.95, 0.5, 100)[0]) == 0
    assert len(detect.nms(boxes, scores, 0.25, 0.95, 100)[0]) == 5      # nothing overlaps that much


def reference_nms(boxes, scores, score_threshold, iou_threshold, max_detections):
    """mmdet's multiclass_nms, plainly: greedy NMS of every class's
    candidates, then the best max_detections (ties: lower class, lower point)."""
    point, cls = np.nonzero(scores > score_threshold)
    kept = []
    for c in np.unique(cls):
        idx = sorted(np.flatnonzero(cls == c), key=lambda i: (-scores[point[i], c], i))
        while idx:
            best, idx = idx[0], idx[1:]
            kept.append(best)
            idx = [i for i in idx if detect.iou(boxes[point[best]], boxes[point[i]][None])[0] <= iou_threshold]
    kept.sort(key=lambda i: (-scores[point[i], cls[i]], cls[i], i))
    kept = kept[:max_detections]
    return boxes[point[kept]], scores[point[kept], cls[kept]], cls[kept]


@pytest.mark.parametrize('seed', range(6))
def test_nms_skips_only_what_cannot_be_kept(seed):
    """The pruned NMS (a class's boxes past max_detections kept, boxes below
    the best max_detections so far) keeps what the plain one keeps, in its
    order: clustered boxes, tied scores, many candidates and few."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 400)), int(rng.integers(1, 6))
    clusters = int(rng.integers(1, 8))
    centres = rng.uniform(0, 100, (clusters, 2))[rng.integers(0, clusters, n)] + rng.normal(0, 3, (n, 2))
    half = rng.uniform(2, 10, (n, 2))
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    scores = np.round(rng.uniform(0, 1, (n, k)), 1 + seed % 2)      # ties
    for max_detections in (1, 3, 17, 100):
        for iou_threshold in (0.3, 0.6):
            got = detect.nms(boxes, scores, 0.35, iou_threshold, max_detections)
            want = reference_nms(boxes, scores, 0.35, iou_threshold, max_detections)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize('keep_ratio', [False, True])
@pytest.mark.parametrize('size', [(100, 200), (90, 40)])
def test_images_fitted_to_the_input_and_boxes_mapped_back(keep_ratio, size):
    """A bright rectangle in an image of another shape than the input: where
    it lands in the fitted input, mapped back by the fit's transform, is
    where it was (to a pixel of the input)."""
    from PIL import Image
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    box = (w // 4, h // 5, w // 2, h // 2)         # x1, y1, x2, y2
    image[box[1]:box[3], box[0]:box[2]] = 255
    s = detect.check_settings(dict(SETTINGS, keep_ratio=keep_ratio, bgr=True), 3)
    x, (sx, sy, tx, ty) = detect.fit(Image.fromarray(image), s, 64, 48)
    assert x.shape == (3, 64, 48) and x.dtype == np.float32
    ys, xs = np.nonzero(x[0] > 0.5)
    found = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    back = ((found[0] - tx) / sx, (found[1] - ty) / sy, (found[2] - tx) / sx, (found[3] - ty) / sy)
    np.testing.assert_allclose(back, box, atol=1.5 / min(sx, sy))
    if keep_ratio:
        assert sx == sy and (tx == 0 or ty == 0)
        assert x[:, :int(ty)].max(initial=0) == 0 and x[:, :, :int(tx)].max(initial=0) == 0     # black borders


def test_settings_are_checked():
    with pytest.raises(ValueError, match='missing strides'):
        detect.check_settings({k: v for k, v in SETTINGS.items() if k != 'strides'}, 3)
    with pytest.raises(ValueError, match='unknown colour'):
        detect.check_settings(dict(SETTINGS, colour=1), 3)
    with pytest.raises(ValueError, match='score_threshold'):
        detect.check_settings(dict(SETTINGS, score_threshold=1.5), 3)
    with pytest.raises(ValueError, match='mean must be 3 numbers'):
        detect.check_settings(dict(SETTINGS, mean=[0, 0]), 3)
    with pytest.raises(ValueError, match="decoder 'yolo'"):
        detect.check_settings(dict(SETTINGS, decoder='yolo'), 3)


def small_detector(path):
    """A two-level detector as a graph: a 3x3 stride-8 convolution (the
    stride-8 level), another stride 2 after it, each level's 1x1 head, the
    points laid out (N, points, 2 classes + 4 x 4 bins)."""
    rng = np.random.default_rng(0)

    def conv(name, src, cin, cout, k, s):
        return Node(name, 'conv', [src], dict(in_channels=cin, out_channels=cout, kernel=[k, k], stride=[s, s],
                                              padding=[k // 2, k // 2], dilation=[1, 1], groups=1, clamp=None),
                    {'weight': rand(rng, (cout, cin, k, k), 0.3), 'bias': rand(rng, (cout,))})
    nodes = [conv('p3', 'input', 3, 8, 3, 8), conv('p4', 'p3', 8, 8, 3, 2),
             conv('head3', 'p3', 8, 18, 1, 1), conv('head4', 'p4', 8, 18, 1, 1),
             Node('points', 'spatial_concat', ['head3', 'head4'], {'transpose': True})]
    graph = Graph('input', (1, 3, 32, 32), nodes, ['points'])
    graph.meta.update(detect=detect.check_settings(dict(SETTINGS, score_threshold=0.6), 3), labels=['cat', 'dog'])
    engine.Model(graph).save(path)
    return engine.load(path, threads=2)


def test_model_detect_and_the_command(tmp_path):
    from PIL import Image
    model = small_detector(tmp_path / 'det.engine')
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (48, 64, 3), np.uint8), rng.integers(0, 256, (30, 30, 3), np.uint8)]
    found = model.detect(images)
    assert len(found) == 2 and any(found)
    for dets, image in zip(found, images):
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        for d in dets:
            assert d.label == ['cat', 'dog'][d.class_id] and d.score > 0.6
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 <= x2 <= image.shape[1] and 0 <= y1 <= y2 <= image.shape[0]
    # the same as decoding the model's output by hand
    s = detect.settings_of(model)
    x, (sx, sy, tx, ty) = detect.fit(Image.fromarray(images[0]), s, 32, 32)
    boxes, scores = detect.decode(model(x[None]), s, 32, 32)
    kept, kept_scores, ids = detect.nms(boxes[0], scores[0], 0.6, 0.6, 100)
    np.testing.assert_allclose([d.box for d in found[0]], (kept - [tx, ty, tx, ty]) / [sx, sy, sx, sy], atol=1e-9)
    assert len(model.detect(images[:1], score_threshold=0.99)[0]) < len(found[0])
    with pytest.raises(ValueError, match='detect takes a list'):
        model.detect(images[0])

    folder = tmp_path / 'images'
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f'im{i}.png')
    (folder / 'broken.jpg').write_bytes(b'not an image')
    out = subprocess.run([sys.executable, '-m', 'engine', 'detect', str(tmp_path / 'det.engine'), str(folder),
                          '--json', '--draw', str(tmp_path / 'drawn'), '--quiet'],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {os.path.basename(r['image']): r for r in json.loads(out.stdout)}
    assert 'cannot read image' in rows['broken.jpg']['error']
    assert [d['score'] for d in rows['im0.png']['detections']] == [round(d.score, 5) for d in found[0]]
    assert sorted(os.listdir(tmp_path / 'drawn')) == ['im0.png', 'im1.png']
    drawn = np.asarray(Image.open(tmp_path / 'drawn' / 'im0.png'))
    assert drawn.shape == images[0].shape and (drawn != images[0]).any()       # boxes drawn on it


def test_a_classifier_is_not_a_detector():
    model = engine.load(os.path.join(ROOT, 'weights', 'digits_shufflenet.engine'))
    with pytest.raises(ValueError, match='no detection settings.*--task detect'):
        model.detect([np.zeros((32, 32), np.uint8)])
    out = subprocess.run([sys.executable, '-m', 'engine', 'detect', os.path.join(ROOT, 'weights', 'digits_shufflenet.engine'),
                          os.path.join(ROOT, 'weights', 'samples')], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 2 and 'no detection settings' in out.stderr


def trained():
    """(the shipped detector, the training tool, its result, the held-out scenes remade from their seed)."""
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import train_detector
    with open(os.path.join(ROOT, 'weights', 'shapes_result.json')) as f:
        result = json.load(f)
    held_out = train_detector.scenes(result['held_out_seed'], result['held_out'])
    return engine.load(os.path.join(ROOT, 'weights', 'shapes_nanodet.engine'), threads=2), train_detector, result, \
        held_out


def test_the_shipped_detector_finds_the_held_out_shapes():
    """mAP@0.5 on the held-out scenes as the training tool measured it and
    the README states it."""
    model, tool, result, held_out = trained()
    found = tool.engine_found(model, [image for image, _, _ in held_out])
    score = tool.average_precision(found, [(boxes, labels) for _, boxes, labels in held_out])
    assert abs(score - result['map50_engine']) < 2e-3
    assert abs(score - result['map50_torch']) < 5e-3
    with open(os.path.join(ROOT, 'README.md')) as f:
        assert f'mAP@0.5 {100 * result["map50_engine"]:.1f} %' in f.read()
