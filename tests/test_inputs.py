"""Bad inputs get clear exceptions; unusual but valid arrays the right answer."""
import threading

import numpy as np
import pytest

import engine
from engine import reference, zoo

SIZE = 48


@pytest.fixture(scope='module')
def model():
    return engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=SIZE), threads=2)


@pytest.fixture(scope='module')
def x():
    return np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)


@pytest.mark.parametrize('bad,exc,match', [
    (lambda x: x.astype(np.float64), TypeError, 'float32'),
    (lambda x: x.astype(np.int32), TypeError, 'float32'),
    (lambda x: x.tolist(), TypeError, 'numpy'),
    (lambda x: x[0], ValueError, '4-D'),
    (lambda x: x[None], ValueError, '4-D'),
    (lambda x: np.concatenate([x, x[:, :1]], 1), ValueError, 'channels'),
    (lambda x: x[:, :1], ValueError, 'channels'),
    (lambda x: x[:0], ValueError, 'empty'),
])
def test_bad_inputs_raise(model, x, bad, exc, match):
    with pytest.raises(exc, match=match):
        model(bad(x))


def test_input_too_small_for_a_layer_names_it():
    from helpers import one_op_graph
    w = np.ones((2, 3, 5, 5), np.float32)
    g = one_op_graph('conv', (1, 3, 8, 8), dict(in_channels=3, out_channels=2, kernel=[5, 5], stride=[1, 1],
                                                padding=[0, 0], dilation=[1, 1], groups=1), {'weight': w})
    m = engine.Model(g, threads=1)
    assert m(np.ones((1, 3, 5, 6), np.float32)).shape == (1, 2, 1, 2)
    with pytest.raises(ValueError, match="too small for layer 'op'"):
        m(np.ones((1, 3, 4, 9), np.float32))


def test_any_spatial_size_the_layers_take(model):
    for hw in [(1, 1), (7, 3), (33, 64)]:
        y = np.random.default_rng(1).standard_normal((1, 3) + hw).astype(np.float32)
        ref = reference.run_graph(model.graph, y)[0]
        assert np.abs(model(y) - ref).max() <= 1e-4 * max(1, np.abs(ref).max())


@pytest.mark.parametrize('layout', ['transposed', 'strided', 'fortran', 'readonly'])
def test_unusual_layouts_give_the_same_answer(model, x, layout):
    expected = model(x)
    if layout == 'transposed':
        y = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    elif layout == 'strided':
        big = np.zeros((2, 6, SIZE, SIZE * 2), np.float32)
        big[:, ::2, :, ::2] = x
        y = big[:, ::2, :, ::2]
    elif layout == 'fortran':
        y = np.asfortranarray(x)
    else:
        y = x.copy()
        y.flags.writeable = False
    np.testing.assert_array_equal(model(y), expected)


def test_matches_the_reference_interpreter(model, x):
    ref = reference.run_graph(model.graph, x)[0]
    assert np.abs(model(x) - ref).max() <= 1e-4 * max(1, np.abs(ref).max())


def test_threads_argument(x):
    g = zoo.shufflenet_v2('0.5', num_classes=10, input_size=SIZE)
    for bad in (0, -1, 2.7, '2', True):
        with pytest.raises(ValueError, match='threads must be an integer >= 1'):
            engine.Model(g, threads=bad)
    assert engine.Model(g).threads == engine.default_threads() >= 1
    m = engine.Model(g, threads=np.int64(2))
    assert m.threads == 2
    with pytest.raises(ValueError, match='threads'):
        m.threads = 1.5
    m.threads = None
    assert m.threads == engine.default_threads()


def test_profile_needs_at_least_one_run(model, x):
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match='runs must be an integer >= 1'):
            model.profile(x, runs=bad)
    assert len(model.profile(x, runs=1)) > 10


def test_step_marks_each_layer_and_the_end(model, x):
    """step yields before each layer and once after the last (profile times
    the last layer up to there, not up to the arena's return)."""
    names = [l['name'] for l in model.layers(x)]
    assert list(model.step(x)) == list(enumerate(names)) + [(len(names), None)]
    assert len(model.profile(x, runs=1)) == len(names)


def test_default_threads_honours_omp_num_threads(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert engine.default_threads() == 1


def test_default_threads_honours_a_container_quota(tmp_path):
    from engine.model import _cgroup_cpus
    for text, cpus in (('250000 100000\n', 3), ('50000 100000', 1), ('max 100000', None), ('', None)):
        (tmp_path / 'cpu.max').write_text(text)
        assert _cgroup_cpus(str(tmp_path / 'cpu.max')) == cpus
    assert _cgroup_cpus(str(tmp_path / 'missing')) is None


def test_one_model_from_many_python_threads(model, x):
    expected = [model(x[i:i + 1]) for i in range(2)]
    errors = []

    def work(i):
        for _ in range(20):
            if not np.array_equal(model(x[i % 2:i % 2 + 1]), expected[i % 2]):
                errors.append(i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize('op', ['maxpool', 'avgpool', 'dwconv', 'conv', 'conv1x1', 'relu', 'nearest', 'bilinear'])
def test_nan_and_inf_propagate_as_in_pytorch(op):
    """NaN and inf reach the outputs PyTorch's would (the reference ops follow
    NumPy, which propagates NaN through max and min as PyTorch does)."""
    from engine.graph import Graph, Node
    from engine.plan import PlanOptions
    rng = np.random.default_rng(9)
    c = 4
    x = rng.standard_normal((2, c, 9, 70)).astype(np.float32)
    x[0, 1, 3, 4] = np.nan
    x[1, 2, 0, 0] = np.inf
    x[1, 0, 8, 69] = -np.inf
    x[0, 3, 5, 33] = np.nan
    conv = dict(in_channels=c, out_channels=c, stride=[1, 1], dilation=[1, 1], clamp=[0.0, 6.0])
    node = {
        'maxpool': Node('n', 'maxpool', ['input'], dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1],
                                                         dilation=[1, 1], ceil_mode=True)),
        'avgpool': Node('n', 'avgpool', ['input'], dict(kernel=[3, 3], stride=[1, 1], padding=[1, 1],
                                                         ceil_mode=False, count_include_pad=False)),
        'dwconv': Node('n', 'conv', ['input'], dict(conv, kernel=[3, 3], padding=[1, 1], groups=c),
                       {'weight': rng.standard_normal((c, 1, 3, 3)).astype(np.float32)}),
        'conv': Node('n', 'conv', ['input'], dict(conv, kernel=[3, 3], padding=[1, 1], groups=1),
                     {'weight': rng.standard_normal((c, c, 3, 3)).astype(np.float32)}),
        'conv1x1': Node('n', 'conv', ['input'], dict(conv, kernel=[1, 1], padding=[0, 0], groups=1),
                        {'weight': rng.standard_normal((c, c, 1, 1)).astype(np.float32)}),
        'relu': Node('n', 'act', ['input'], {'clamp': [0.0, None]}),
        'nearest': Node('n', 'resize', ['input'], dict(mode='nearest', align_corners=False, scale=[2.0, 1.5])),
        'bilinear': Node('n', 'resize', ['input'], dict(mode='bilinear', align_corners=False, scale=[2.0, 2.0])),
    }[op]
    g = Graph('input', x.shape, [node], ['n'])
    with np.errstate(invalid='ignore'):
        ref = reference.run_graph(g, x)[0]
    for flat in (0, 1 << 30):           # window ops row by row, then flat
        options = PlanOptions(flat_max_pixels=flat, flat_s2_max_pixels=flat)
        out = engine.Model(g, threads=2, options=options)(x)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
        finite = np.isfinite(ref)
        assert np.abs(out[finite] - ref[finite]).max() <= 1e-4 * max(1, np.abs(ref[finite]).max())


def test_absurd_sizes_are_refused_without_allocating(model):
    from helpers import one_op_graph
    w = np.ones((400, 3, 1, 1), np.float32)      # 400 planes of 8200 x 8200: 100 GiB
    g = one_op_graph('conv', (1, 3, 8, 8), dict(in_channels=3, out_channels=400, kernel=[1, 1], stride=[1, 1],
                                                padding=[4096, 4096], dilation=[1, 1], groups=1), {'weight': w})
    with pytest.raises(ValueError, match='GiB of working memory'):
        engine.Model(g)(np.ones((1, 3, 8, 8), np.float32))
    from engine.memory import physical_memory
    batch = physical_memory() // model._plan(SIZE, SIZE).image_bytes + 1
    with pytest.raises(ValueError, match='GiB of working memory'):
        model(np.broadcast_to(np.float32(0), (batch, 3, SIZE, SIZE)))


def test_working_memory_is_aligned_zeroed_and_on_huge_pages_when_large(tmp_path):
    """Arenas and scratch: n writable zero bytes from a 64-byte boundary;
    from HUGE_MIN_BYTES on from a huge page's, where the kernel has them
    (read from sysfs: a missing or garbled file means none)."""
    from engine.memory import HUGE_MIN_BYTES, aligned_bytes, huge_page_bytes
    huge = huge_page_bytes()
    for n in (1, 1000, HUGE_MIN_BYTES - 1, HUGE_MIN_BYTES, 3 * HUGE_MIN_BYTES + 5):
        a = aligned_bytes(n)
        assert a.nbytes == n and a.flags.writeable and not a.any()
        assert a.ctypes.data % (huge if huge and n >= HUGE_MIN_BYTES else 64) == 0
        a[:] = 7            # all of it usable
        assert (a == 7).all()
    assert huge_page_bytes(str(tmp_path / 'none')) is None
    (tmp_path / 'garbled').write_text('2M\n')
    assert huge_page_bytes(str(tmp_path / 'garbled')) is None
    (tmp_path / 'size').write_text('2097152\n')
    assert huge_page_bytes(str(tmp_path / 'size')) == 2097152


def test_no_memory_growth_over_10000_inferences():
    import resource
    m = engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=16), threads=1)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    for _ in range(500):
        m(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096   # noqa: E731
    start = rss()
    for _ in range(10_000):
        m(x)
    growth = rss() - start
    assert growth < 4 << 20, f'resident memory grew by {growth} bytes over 10,000 runs'
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 8 << 10   # KiB


GROWTH = """
import sys, numpy as np, engine
from engine import zoo
m = engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=64), threads=1, cache_bytes=int(sys.argv[1]))
rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
m(np.zeros((1, 3, 64, 64), np.float32))
start, most = rss(), 0
for n in range(1, 17):                  # batches 1 to 16, then 20 image sizes
    m(np.zeros((n, 3, 96, 96), np.float32))
    most = max(most, m.cached_bytes)
for s in range(40, 200, 8):
    m(np.zeros((2, 3, s, s), np.float32))
    most = max(most, m.cached_bytes)
print(rss() - start, most)
"""


def test_memory_stays_bounded_over_many_input_shapes():
    """Plans and working memory are kept per shape in a cache bounded by
    bytes: 36 shapes grow an unbounded cache by about 100 MiB, this one
    stays within its 16 MiB (plus the allocator's slack)."""
    import subprocess
    import sys
    limit = 16 << 20
    r = subprocess.run([sys.executable, '-c', GROWTH, str(limit)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    growth, most = map(int, r.stdout.split())
    assert most <= limit
    assert growth < limit + (24 << 20), f'resident memory grew by {growth >> 20} MiB'


def test_clear_cache_and_cache_bytes(model, x):
    expected = model(x)
    assert model.cached_bytes > 0
    model.clear_cache()
    assert model.cached_bytes == 0
    np.testing.assert_array_equal(model(x), expected)
    model.cache_bytes = 0           # keeps nothing between calls, still runs
    np.testing.assert_array_equal(model(x), expected)
    assert model.cached_bytes == 0
    model.cache_bytes = 256 << 20
    for bad in (-1, 1.5, None, True):
        with pytest.raises(ValueError, match='cache_bytes'):
            model.cache_bytes = bad


def test_a_model_pickles_as_its_file(model, x):
    """Models cross process boundaries (multiprocessing, Ray) as their
    file's bytes, checksum included."""
    import multiprocessing
    import pickle
    expected = model(x)
    data = pickle.dumps(model)
    copy = pickle.loads(data)
    assert copy.threads == model.threads and copy.cache_bytes == model.cache_bytes
    np.testing.assert_array_equal(copy(x), expected)
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        np.testing.assert_array_equal(pool.apply(copy, (x,)), expected)
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(engine.ModelFileError, match='checksum mismatch'):
        pickle.loads(bytes(damaged))


def test_kernels_release_the_gil():
    """While one thread is inside a long inference, another keeps running
    Python code.  Were the GIL held, the watcher below would stall for the
    whole kernel call; released, it stalls at most for the bits of Python
    around it (switch intervals of 5 ms)."""
    import time
    m = engine.Model(zoo.shufflenet_v2('1.0', num_classes=10, input_size=512), threads=1)
    x = np.zeros((4, 3, 512, 512), np.float32)
    m(x)                                    # plan and allocate outside the measured call
    done = threading.Event()
    spans = []

    def infer():
        t0 = time.perf_counter()
        m(x)
        spans.append(time.perf_counter() - t0)
        done.set()

    t = threading.Thread(target=infer)
    last, longest_stall = time.perf_counter(), 0.0
    t.start()
    while not done.is_set():
        now = time.perf_counter()
        longest_stall = max(longest_stall, now - last)
        last = now
    t.join()
    assert longest_stall < 0.4 * spans[0], (longest_stall, spans[0])


def test_many_callers_with_many_threads_each(x):
    """Models of 2, 3 and 8 threads called from four Python threads at once:
    the pool runs one caller's ops at a time and the others alone, so every
    answer is the one a single thread gives, and nothing waits forever."""
    g = zoo.shufflenet_v2('0.5', num_classes=10, input_size=SIZE)
    single = engine.Model(g, threads=1)
    expected = single(x)
    models = [engine.Model(g, threads=t) for t in (2, 3, 8, 2)]
    errors = []

    def work(m):
        for _ in range(25):
            if not np.array_equal(m(x), expected):
                errors.append(m.threads)
    workers = [threading.Thread(target=work, args=(m,)) for m in models]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers), 'a caller never returned'
    assert not errors


FORKED = """
import os, sys, numpy as np, engine
from engine import zoo
m = engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=32), threads=2)
x = np.ones((1, 3, 32, 32), np.float32)
y = m(x)                                    # the pool's threads exist now
pid = os.fork()
if pid == 0:                                # the child has none of them: it must make its own
    same = all(np.array_equal(m(x), y) for _ in range(20))
    os._exit(0 if same else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_runs_models_with_threads():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, '-c', FORKED], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '0'


def test_thread_choice_follows_the_faster_option():
    """With the cores free two threads win and one is tried ever more
    rarely; when one thread is faster (the cores taken) it is chosen, the
    threads tried now and then; a run that got fewer threads counts as such."""
    from engine.model import _ThreadChoice
    choice = _ThreadChoice(2)
    speed = {2: 1.0, 1: 1.8}                 # seconds per run: a quiet machine
    used = []
    for _ in range(2000):
        t = choice.next()
        used.append(t)
        choice.record(t, speed[t])
    # tries 16, 32, 64, 128, then 256 runs apart
    starts = [i for i in range(1, len(used)) if used[i] == 1 and used[i - 1] == 2]
    runs = _ThreadChoice.EXPLORE_RUNS
    assert used[:16] == [2] * 16 and starts[0] == 16 and choice.every == _ThreadChoice.EXPLORE_EVERY[1]
    assert [b - a - runs for a, b in zip(starts, starts[1:])][:5] == [32, 64, 128, 256, 256]
    assert used.count(1) == runs * len(starts) < 0.02 * len(used)
    speed = {2: 3.0, 1: 1.8}                 # the cores taken: one thread is faster
    used = []
    for _ in range(2000):
        t = choice.next()
        used.append(t)
        choice.record(t, speed[t])
    tries = _ThreadChoice.EXPLORE_RUNS * -(-1000 // _ThreadChoice.EXPLORE_EVERY[1])
    assert used[-1000:].count(2) <= tries and choice.use == 1
    choice.record(5, 0.1)                    # a thread count it does not track: ignored
    assert choice.use == 1
    # the cores free again, and the first run after each change of thread count much slower
    # (threads woken, caches cold): not counted, so two threads win back (counted, a try
    # of one run would measure only the change, and one thread stay chosen for ever)
    speed, used = {2: 1.0, 1: 1.8}, []
    for _ in range(2000):
        t = choice.next()
        choice.record(t, speed[t] * (2.5 if used and used[-1] != t else 1.0))
        used.append(t)
    assert choice.use == 2 and used[-1000:].count(1) <= tries


@pytest.mark.parametrize('spell', [10, 100, 1000])
def test_thread_choice_takes_the_threads_back_after_a_slow_spell(spell):
    """The cores slow for a spell (two threads 3x their time, one thread
    faster), then free again: one thread is chosen during the spell, and two
    again within one stretch between tries and one try after it, however
    long the spell (the try's runs alone decide: the spell's are dropped)."""
    from engine.model import _ThreadChoice
    choice = _ThreadChoice(2)
    quiet, slow = {2: 1.0, 1: 1.8}, {2: 3.0, 1: 1.8}
    for speed, n in ((quiet, 2000), (slow, spell)):
        for _ in range(n):
            t = choice.next()
            choice.record(t, speed[t])
    assert choice.use == 1
    chosen = []
    for _ in range(1000):
        t = choice.next()
        choice.record(t, quiet[t])
        chosen.append(choice.use)
    back = len(chosen) - chosen[::-1].index(1)      # runs until two threads are chosen for good
    assert back <= _ThreadChoice.EXPLORE_EVERY[1] + _ThreadChoice.EXPLORE_RUNS


def test_thread_choice_ignores_a_slow_run_now_and_then():
    """A run after a pause wakes sleeping workers (12x the steady time, once
    in a while): two threads stay chosen, and one thread is still chosen when
    it is faster."""
    from engine.model import _ThreadChoice
    choice = _ThreadChoice(2)
    tries = _ThreadChoice.EXPLORE_RUNS * -(-1000 // _ThreadChoice.EXPLORE_EVERY[1])
    for speed, best in (({2: 1.0, 1: 1.8}, 2), ({2: 3.0, 1: 1.8}, 1)):
        used = []
        for i in range(2000):
            t = choice.next()
            used.append(t)
            choice.record(t, speed[t] * (12.0 if i % 10 == 0 else 1.0))
        assert choice.use == best and used[-1000:].count(3 - best) <= tries


def test_runs_count_the_threads_they_had(x):
    g = zoo.shufflenet_v2('0.5', num_classes=10, input_size=SIZE)
    m = engine.Model(g, threads=2)
    for _ in range(40):
        m(x)
    assert sum(m.runs_by_threads.values()) == 40 and set(m.runs_by_threads) <= {1, 2}
    one = engine.Model(g, threads=1)
    one(x)
    assert one.runs_by_threads == {1: 1}
