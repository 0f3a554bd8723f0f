"""Running a model: input checks, a compiled plan per input size, working
memory per call, outputs out of the arena."""
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import replace
from statistics import median

import numpy as np

from engine import fileformat, preprocess
from engine.graph import validate, value_dtypes
from engine.kernels import isa
from engine.memory import aligned_bytes, check_memory
from engine.plan import PlanOptions, compile_graph


def default_threads():
    """Cores this process may use: its CPU affinity, a container's CPU quota
    (cgroup v2 cpu.max), and OMP_NUM_THREADS when it is set, whichever is
    least, so that the threads do not outnumber the cores they get."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota:
        cores = min(cores, quota)
    env = os.environ.get('OMP_NUM_THREADS', '').split(',')[0].strip()
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    return max(1, cores)


def _cgroup_cpus(path='/sys/fs/cgroup/cpu.max'):
    """CPUs a cgroup v2 quota gives ('200000 100000': 2), or None."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):          # no file, 'max' (no quota), or garbled
        return None


PRECISION_OF = {'float32': 'fp32', 'float16': 'fp16'}     # a kernel module's ELEMENT -> its precision


def _from_bytes(data, threads, cache_bytes, options, precision='fp32'):
    """A Model from its file's bytes (unpickling)."""
    return Model(fileformat.parse(data, check=False), threads=threads, cache_bytes=cache_bytes, options=options,
                 precision=precision)


def _image_list(images, job):
    """images as a list, or ValueError for one image given where a list is wanted."""
    if isinstance(images, (str, bytes, np.ndarray)) or hasattr(images, '__fspath__') or hasattr(images, 'getpixel'):
        raise ValueError(f'{job} takes a list of images, got one {type(images).__name__} (write {job}([image]))')
    return list(images)


def _positive_int(value, name):
    """value, when it is an integer >= 1; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    return int(value)


DEFAULT_CACHE_BYTES = 256 << 20


class _ThreadChoice:
    """Whether a model's runs at one input shape go faster on all its threads
    or on one, measured as it runs.  With the cores free the threads win and
    one thread is tried only now and then; when other programs have the
    cores (a camera pipeline beside the engine on a Pi), threads that wait
    for each other's turn on a core can be slower than one thread alone,
    and then one thread is used, the threads tried now and then.  Results
    do not depend on the thread count."""
    EXPLORE_EVERY = (16, 256)     # runs between tries of the other choice: often while the
                                  # two are close or the choice has just changed, twice as
                                  # far apart after each try that finds one clearly faster
    EXPLORE_RUNS = 3              # runs of the other choice a try makes
    WINDOW = 5                    # each choice's time: the median of its last this many runs
    MARGIN = 0.95                 # one thread must be this much faster to be chosen

    def __init__(self, threads):
        self.threads = threads
        self.times = {threads: deque(maxlen=self.WINDOW), 1: deque(maxlen=self.WINDOW)}
        self.use = threads
        self.every = self.EXPLORE_EVERY[0]
        self.since = 0              # runs since the last try
        self.tried = False          # a try has just ended
        self.last = None            # the thread count of the last run

    def next(self):
        """The thread count for the next run.  A try measures the other
        choice afresh: its runs from before the last stretch are dropped
        (kept, a slow spell of the cores that made one thread the choice
        outvoted the try's runs after it ended, and one thread stayed
        chosen for hundreds of runs)."""
        self.since += 1
        if self.since == 1 and self.tried:      # a try's runs all recorded
            self.tried = False
            self.every = min(2 * self.every, self.EXPLORE_EVERY[1]) if self._clear() else self.EXPLORE_EVERY[0]
        if self.since <= self.every:
            return self.use
        other = 1 if self.use == self.threads else self.threads
        if self.since == self.every + 1:
            self.times[other].clear()
        if self.since >= self.every + self.EXPLORE_RUNS:
            self.since, self.tried = 0, True
        return other

    def _clear(self):
        """Whether one choice is clearly (1.3x) faster than the other."""
        many, one = self.times[self.threads], self.times[1]
        return bool(many and one) and max(median(many), median(one)) > 1.3 * min(median(many), median(one))

    def record(self, threads, seconds):
        """A run's time with the threads it ran on.  The first run after a
        change of thread count is not counted: it pays for the change (threads
        woken, caches cold: ShuffleNetV2 x0.5's first two-thread run after
        one-thread ones took 1.18x the steady time on an EPYC VM), which
        biased every try against the other choice.  A median, not an average:
        a run after a pause wakes sleeping workers (on an EPYC VM one took 12x
        the steady time), and an average of it chose one thread for hundreds
        of runs."""
        changed, self.last = threads != self.last, threads
        if threads not in self.times or changed:
            return
        self.times[threads].append(seconds)
        if not self.times[self.threads] or not self.times[1]:
            return
        many, one = median(self.times[self.threads]), median(self.times[1])
        use = 1 if one < self.MARGIN * many else self.threads
        if use != self.use:         # a new choice (mid-try too): a new stretch, the next try soon
            self.use, self.every, self.since, self.tried = use, self.EXPLORE_EVERY[0], 0, False


class _Cache:
    """Compiled plans and free working memory, by key; the least recently
    used go once their bytes pass the limit.  The caller holds the lock."""

    def __init__(self, limit):
        self.limit = limit
        self.entries = OrderedDict()        # key -> [value, bytes]
        self.bytes = 0

    def get(self, key):
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.entries.move_to_end(key)
        return entry[0]

    def put(self, key, value, nbytes):
        """Insert (or replace) key; then trim, keeping key itself."""
        self.drop(key)
        self.entries[key] = [value, nbytes]
        self.bytes += nbytes
        self.trim(keep=key)

    def add_bytes(self, key, nbytes):
        self.entries[key][1] += nbytes
        self.bytes += nbytes

    def drop(self, key):
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    def trim(self, keep=None):
        for key in list(self.entries):
            if self.bytes <= self.limit:
                break
            if key != keep:
                self.drop(key)


class Model:
    """A compiled model.  Call it on float32 NCHW arrays (batch >= 1).

    Safe to call from several Python threads at once: each call takes its own
    working memory from a pool.  The kernels release the GIL.

    A plan (kernels, tables, packed weights) is compiled for each input size
    and kept, with the working memory of past calls, in a cache of at most
    cache_bytes (least recently used out first; the plan of the call running
    always stays), so a long-running process meeting many sizes stays
    bounded.  Pickles as its model file's bytes.

    precision: 'fp32', or 'fp16': tensors and weights held as fp16 and
    computed in fp16 arithmetic, on CPUs that have it (ValueError on the
    others: engine.kernels.isa.kernels).  kernels: the kernel module to run
    on instead of the precision's (tests: the scalar fp16 reference,
    isa.kernels('fp16', allow_scalar=True))."""

    def __init__(self, graph, *, threads=None, cache_bytes=DEFAULT_CACHE_BYTES, options=None, precision='fp32',
                 kernels=None):
        self._info = validate(graph)     # once: every plan of this graph uses it
        self.graph = graph
        self.options = PlanOptions() if options is None else options    # how plans are made
        self.kernels = isa.kernels(precision) if kernels is None else kernels
        self.precision = PRECISION_OF[self.kernels.ELEMENT]     # what the kernels compute in
        if kernels is not None and precision not in ('fp32', self.precision):
            raise ValueError(f'precision {precision!r}, but kernels {self.kernels.ISA} compute in {self.precision}')
        self.int8 = 'int8' in value_dtypes(graph).values()      # an int8 model (engine/int8.py)
        if self.int8 and self.precision != 'fp32':
            raise ValueError(f"an int8 model runs its float32 layers in precision 'fp32', not {self.precision!r}")
        self.threads = threads
        self._cache = _Cache(0)
        self.cache_bytes = cache_bytes
        self._sizes_ok = set()
        self._choices = {}          # memory key -> _ThreadChoice
        self.runs_by_threads = {}   # threads a run actually had -> runs
        self._lock = threading.Lock()

    @property
    def threads(self):
        """Threads one call may use (set None: the usable cores); a run takes
        one instead when that has been faster (the cores busy with other
        programs)."""
        return self._threads

    @threads.setter
    def threads(self, threads):
        self._threads_asked = threads
        self._threads = default_threads() if threads is None else _positive_int(threads, 'threads')

    @property
    def cache_bytes(self):
        """Bytes of plans and free working memory kept between calls."""
        return self._cache.limit

    @cache_bytes.setter
    def cache_bytes(self, limit):
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise ValueError(f'cache_bytes must be an integer >= 0, got {limit!r}')
        self._cache.limit = int(limit)
        self._cache.trim()

    @property
    def cached_bytes(self):
        """Bytes the cache holds now."""
        return self._cache.bytes

    def clear_cache(self):
        """Forget every compiled plan and free working memory (calls running
        keep theirs)."""
        with self._lock:
            self._cache = _Cache(self._cache.limit)

    def __reduce__(self):
        return _from_bytes, (fileformat.to_bytes(self.graph), self._threads_asked, self.cache_bytes,
                             self.options, self.precision)

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
        return [(n,) + out.shape for out in self._plan(h, w).outputs]

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
        images = _image_list(images, 'classify')
        spec = self.preprocessing_with(preprocessing)
        _positive_int(top_k, 'top_k')
        _positive_int(batch_size, 'batch_size')
        results = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([preprocess.to_array(item, spec, self.graph.input_channels)
                              for item in images[start:start + batch_size]])
            results += self.predict(batch, top_k)
            if progress:
                progress(min(start + batch_size, len(images)))
        return results

    def detect(self, images, score_threshold=None, iou_threshold=None, max_detections=None, batch_size=8,
               progress=None):
        """For each image of a list (paths, PIL images or HxW(xC) uint8
        arrays): its Detections (label, score, box (x1, y1, x2, y2) in the
        image's pixels, class_id), best first, by the detection settings in
        the model file (engine/detect.py) with the given ones replaced.
        progress(n) is called after each batch with the number of images done."""
        from engine import detect
        images = _image_list(images, 'detect')
        settings = detect.settings_of(self, score_threshold=score_threshold, iou_threshold=iou_threshold,
                                      max_detections=max_detections)
        _positive_int(batch_size, 'batch_size')
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            for found, error in detect.detect_batch(self, settings, chunk, [None] * len(chunk)):
                if error:
                    raise ValueError(error)
                results.append(found)
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
            choice = self._thread_choice(key)
            threads = choice.next() if choice else 1
            t0 = time.perf_counter()
            plan.scatter(x, arena, threads)
            threads = plan.program.run(arena, n, scratch, threads)
            if choice:
                choice.record(threads, time.perf_counter() - t0)
            self.runs_by_threads[threads] = self.runs_by_threads.get(threads, 0) + 1
            outs = plan.gather(arena, n)
        finally:
            self._give(key, arena, scratch)
        return outs[0] if len(outs) == 1 else outs

    def _thread_choice(self, key):
        """The _ThreadChoice of a (memory) key, None for one thread."""
        if key[4] <= 1:
            return None
        choice = self._choices.get(key)
        if choice is None:
            if len(self._choices) >= 256:
                self._choices.clear()
            choice = self._choices[key] = _ThreadChoice(key[4])
        return choice

    def profile(self, x, runs=10):
        """Per-layer median time over `runs` runs, one row per executed op:
        dicts with name, kind, ms and shape (the output shape)."""
        _positive_int(runs, 'runs')
        layers = self.layers(x)
        times = np.zeros((runs, len(layers)))
        for r in range(runs):
            for i, _ in self.step(x):
                now = time.perf_counter()
                if i:
                    times[r, i - 1] = now - start
                start = now
        med = np.median(times, axis=0) * 1e3
        return [dict(l, ms=float(t)) for l, t in zip(layers, med)]

    def layers(self, x):
        """The ops a run on x executes, in order: dicts with name, kind and
        shape (the output shape)."""
        x = self._check_input(x)
        n, _, h, w = x.shape
        return [dict(name=l.name, kind=l.kind, shape=(n,) + l.shape) for l in self._plan(h, w).layers]

    def step(self, x):
        """Run x one layer at a time: yields (index, layer name) before each
        layer runs, and (number of layers, None) after the last, before the
        arena goes back to the pool, so a caller can measure between them
        (profile, and tools/count_aarch64.py's instruction counts).  Outputs
        are not kept."""
        x = self._check_input(x)
        n, _, h, w = x.shape
        plan = self._plan(h, w)
        key, arena, scratch = self._take(plan, n, h, w)
        try:
            plan.scatter(x, arena)
            for i, layer in enumerate(plan.layers):
                yield i, layer.name
                plan.program.run(arena, n, scratch, key[4], i, i + 1)
            yield len(plan.layers), None
        finally:
            self._give(key, arena, scratch)

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
        several = self.threads > 1
        key = ('plan', h, w, several)
        with self._lock:       # compiled once, also when threads ask for it at the same time
            plan = self._cache.get(key)
            if plan is None:
                # one thread: no K-split (it keeps each of two threads on the channels
                # its core wrote; alone, the split's sum is work for nothing), and
                # jobs laid out for one (PlanOptions.single_thread)
                options = self.options if several else replace(self.options, k_split=False, single_thread=True)
                plan = compile_graph(self.graph, h, w, options, self._info, self.kernels)
                self._cache.put(key, plan, plan.program.nbytes)
        return plan

    def _take(self, plan, n, h, w):
        """Working memory for one call: (pool key, arena, scratch).  The key
        keeps the thread count the scratch was sized for, should
        self.threads change while the call runs."""
        key = ('memory', h, w, n, self.threads)
        with self._lock:
            free = self._cache.get(key)
            if free:
                arena, scratch = free.pop()
                self._cache.add_bytes(key, -(arena.nbytes + scratch.nbytes))
                return key, arena, scratch
        check_memory(n * plan.image_bytes + key[4] * plan.scratch_bytes,
                     f'a batch of {n} images of {h}x{w}')
        return key, aligned_bytes(n * plan.image_bytes), aligned_bytes(key[4] * plan.scratch_bytes)

    def _give(self, key, arena, scratch):
        nbytes = arena.nbytes + scratch.nbytes
        with self._lock:
            free = self._cache.get(key)
            if free is None:
                self._cache.put(key, [(arena, scratch)], nbytes)
            else:
                free.append((arena, scratch))
                self._cache.add_bytes(key, nbytes)
                self._cache.trim(keep=key)
            if self._cache.bytes > self._cache.limit:     # alone too big to keep
                self._cache.drop(key)
