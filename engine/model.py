"""Running a model: input checks, a compiled plan per input size, working
memory per call, outputs out of the arena."""
import math
import os
import threading
import time

import numpy as np

from engine import fileformat, preprocess
from engine.graph import validate
from engine.kernels.program import gather_planes, scatter_planes
from engine.memory import check_memory
from engine.plan import compile_graph


def default_threads():
    """Cores this process may use, capped by OMP_NUM_THREADS when it is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    env = os.environ.get('OMP_NUM_THREADS', '').split(',')[0].strip()
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    return max(1, cores)


def _positive_int(value, name):
    """value, when it is an integer >= 1; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    return int(value)


def _aligned_floats(n):
    """n float32 zeros starting on a 64-byte boundary."""
    raw = np.zeros(n + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + n]


class Model:
    """A compiled model.  Call it on float32 NCHW arrays (batch >= 1).

    Safe to call from several Python threads at once: each call takes its own
    working memory from a pool.  The kernels release the GIL."""

    def __init__(self, graph, *, threads=None):
        validate(graph)
        self.graph = graph
        self.threads = threads
        self._plans = {}
        self._sizes_ok = set()
        self._pool = {}     # (H, W, N, threads) -> list of free (arena, scratch)
        self._lock = threading.Lock()

    @property
    def threads(self):
        """Threads one call uses (None when set: the usable cores)."""
        return self._threads

    @threads.setter
    def threads(self, threads):
        self._threads = default_threads() if threads is None else _positive_int(threads, 'threads')

    # -- metadata
    @property
    def input_shape(self):
        """The (N, C, H, W) the model was converted with; any batch and any
        spatial size its layers accept also run."""
        return tuple(self.graph.input_shape)

    @property
    def output_shapes(self):
        """Output shapes for input_shape."""
        n, _, h, w = self.input_shape
        return [(n,) + shape for _, shape in self._plan(h, w).outputs]

    def __repr__(self):
        return (f'<engine.Model {len(self.graph.nodes)} nodes, input {self.input_shape}, '
                f'threads={self.threads}>')

    def save(self, path):
        fileformat.save(self.graph, path)

    # -- classification
    @property
    def labels(self):
        """Class names stored in the model file, or None."""
        labels = self.graph.meta.get('labels')
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise ValueError('the labels in this model file are not a list of strings')
        return labels

    @property
    def preprocessing(self):
        """How images become inputs: resize, crop, mean, std (from the file,
        or ImageNet's scaled to the input size)."""
        spec = self.graph.meta.get('preprocess') or preprocess.default_spec(self.input_shape)
        return preprocess.check_spec(spec, self.graph.input_channels)

    def classify(self, images, top_k=5, batch_size=16, preprocessing=None, progress=None):
        """Top-k (label, probability) pairs for each image of a list: paths,
        PIL images or HxW(xC) uint8 arrays.  The model's outputs are taken as
        logits.  preprocessing overrides fields of the stored settings;
        progress(n) is called after each batch with the number of images done."""
        if isinstance(images, (str, bytes, np.ndarray)) or hasattr(images, '__fspath__') \
                or hasattr(images, 'getpixel'):
            raise ValueError(f'classify takes a list of images, got one {type(images).__name__} '
                             '(write classify([image]))')
        spec = self.preprocessing_with(preprocessing)
        _positive_int(top_k, 'top_k')
        _positive_int(batch_size, 'batch_size')
        images = list(images)
        results = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([preprocess.to_array(item, spec, self.graph.input_channels)
                              for item in images[start:start + batch_size]])
            results += self.predict(batch, top_k)
            if progress:
                progress(min(start + batch_size, len(images)))
        return results

    def preprocessing_with(self, overrides=None):
        """The stored preprocessing settings with some replaced, validated."""
        spec = dict(self.preprocessing)
        spec.update(overrides or {})
        return preprocess.check_spec(spec, self.graph.input_channels)

    def predict(self, x, top_k=5):
        """Top-k (label, probability) pairs for each image of x, a batch
        already preprocessed (float32 N x C x H x W)."""
        _positive_int(top_k, 'top_k')
        logits = self.run(x)
        if not isinstance(logits, np.ndarray) or logits.ndim != 2:
            raise ValueError('classify needs a model with one (N, classes) output')
        labels = self.labels
        probs = preprocess.softmax(logits.astype(np.float64))
        k = min(top_k, probs.shape[1])
        results = []
        for row in probs:
            best = np.argsort(-row, kind='stable')[:k]
            results.append([(labels[i] if labels and i < len(labels) else str(i), float(row[i]))
                            for i in best])
        return results

    # -- running
    def __call__(self, x):
        return self.run(x)

    def run(self, x):
        """Outputs for x: one array, or a list when the model has several."""
        x = self._check_input(x)
        n, _, h, w = x.shape
        plan = self._plan(h, w)
        key, arena, scratch = self._take(plan, n, h, w)
        try:
            scatter_planes(x, arena, plan.image_stride, plan.input_offsets, key[3])
            plan.program.run(arena, n, scratch, key[3])
            outs = [gather_planes(arena, plan.image_stride, n, off, math.prod(shape[1:]))
                    .reshape((n,) + shape) for off, shape in plan.outputs]
        finally:
            self._give(key, arena, scratch)
        return outs[0] if len(outs) == 1 else outs

    def profile(self, x, runs=10):
        """Per-layer median time over `runs` runs, one row per executed op:
        dicts with name, kind, ms and shape (the output shape)."""
        _positive_int(runs, 'runs')
        x = self._check_input(x)
        n, _, h, w = x.shape
        plan = self._plan(h, w)
        key, arena, scratch = self._take(plan, n, h, w)
        times = np.zeros((runs, len(plan.layers)))
        try:
            for r in range(runs):
                scatter_planes(x, arena, plan.image_stride, plan.input_offsets)
                for i in range(len(plan.layers)):
                    t0 = time.perf_counter()
                    plan.program.run(arena, n, scratch, key[3], i, i + 1)
                    times[r, i] = time.perf_counter() - t0
        finally:
            self._give(key, arena, scratch)
        med = np.median(times, axis=0) * 1e3
        return [dict(name=l.name, kind=l.kind, ms=float(t), shape=(n,) + l.shape)
                for l, t in zip(plan.layers, med)]

    def _check_input(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f'input must be a numpy.ndarray, got {type(x).__name__}')
        if x.dtype != np.float32:
            raise TypeError(f'input dtype must be float32, got {x.dtype} '
                            '(convert with x.astype(numpy.float32))')
        c = self.graph.input_channels
        if x.ndim != 4:
            raise ValueError(f'input must be 4-D (N, C, H, W) with C={c}, got shape {x.shape}')
        if x.shape[1] != c:
            raise ValueError(f'input has {x.shape[1]} channels, the model takes {c} '
                             f'(shape {x.shape}; expected (N, {c}, H, W))')
        if min(x.shape) < 1:
            raise ValueError(f'input shape {x.shape} has an empty dimension')
        self._check_size(x.shape[0], x.shape[2], x.shape[3])
        return x

    def _check_size(self, n, h, w):
        """ValueError for a size the conversion does not hold for (a model
        whose code branches on its input's size); checked once per size."""
        sizes = self.graph.input_sizes
        if sizes is None or (n, h, w) in self._sizes_ok:
            return
        why = sizes.problem(n, h, w)
        if why:
            raise ValueError(f'a batch of {n} at {h}x{w} is outside the inputs this model was converted '
                             f'for: {why}' + (f' ({sizes.note})' if sizes.note else '')
                             + '; convert it again with an example of the size you need')
        if len(self._sizes_ok) > 4096:
            self._sizes_ok.clear()
        self._sizes_ok.add((n, h, w))

    def _plan(self, h, w):
        plan = self._plans.get((h, w))
        if plan is None:
            with self._lock:
                plan = self._plans.get((h, w))
                if plan is None:
                    plan = self._plans[(h, w)] = compile_graph(self.graph, h, w)
        return plan

    def _take(self, plan, n, h, w):
        """Working memory for one call: (pool key, arena, scratch).  The key
        keeps the thread count the scratch was sized for, should
        self.threads change while the call runs."""
        key = (h, w, n, self.threads)
        with self._lock:
            free = self._pool.get(key)
            if free:
                return (key,) + free.pop()
        check_memory(4 * (n * plan.image_stride + key[3] * plan.scratch_stride),
                     f'a batch of {n} images of {h}x{w}')
        return (key, _aligned_floats(n * plan.image_stride),
                _aligned_floats(key[3] * plan.scratch_stride))

    def _give(self, key, arena, scratch):
        with self._lock:
            self._pool.setdefault(key, []).append((arena, scratch))
