"""The thread pool (engine/kernels/pool.h): tests/pool_stress.c built with
ThreadSanitizer, run from several caller threads, then after a fork; and
where its workers run."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pool_under_thread_sanitizer(tmp_path):
    exe = tmp_path / 'pool_stress'
    build = subprocess.run(['gcc', '-O1', '-g', '-std=c11', '-fsanitize=thread', '-pthread',
                            '-I', os.path.join(ROOT, 'engine', 'kernels'),
                            os.path.join(ROOT, 'tests', 'pool_stress.c'), '-o', str(exe)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TSAN_OPTIONS='halt_on_error=1 exitcode=66 die_after_fork=0'))
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stdout + r.stderr[-3000:]
    assert 'WARNING: ThreadSanitizer' not in r.stderr, r.stderr[-3000:]


PINNED = '''
import os, numpy as np, engine
from engine import zoo

def cpus_of_threads():
    """thread id -> the CPUs it may run on, from /proc"""
    out = {}
    for t in os.listdir('/proc/self/task'):
        for line in open(f'/proc/self/task/{t}/status'):
            if line.startswith('Cpus_allowed_list:'):
                cpus = set()
                for part in line.split()[1].split(','):
                    lo, _, hi = part.partition('-')
                    cpus.update(range(int(lo), int(hi or lo) + 1))
                out[int(t)] = cpus
    return out

before = cpus_of_threads()
model = engine.Model(zoo.shufflenet_v2('0.5', num_classes=10, input_size=32), threads=2)
model(np.zeros((1, 3, 32, 32), np.float32))
after = cpus_of_threads()
print(engine.build_info()['threads'])
print(sorted(os.sched_getaffinity(0)))
print(sorted(before[os.getpid()]), sorted(after[os.getpid()]))
print([sorted(after[t]) for t in after if t not in before])
print(model.runs_by_threads)
'''


def test_a_worker_stays_on_one_cpu_and_the_caller_is_left_free():
    """pool.h: engine_pin_worker.  In a fresh process, the first two-thread
    run makes one worker, pinned to one of the CPUs the process may use
    (where it may use two or more); the calling thread keeps them all."""
    import json
    r = subprocess.run([sys.executable, '-c', PINNED], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    threads, allowed, main, new, runs = r.stdout.splitlines()
    allowed, new = json.loads(allowed), json.loads(new)
    main_before, main_after = main.split('] [')
    assert main_before + ']' == '[' + main_after and runs == '{2: 1}'
    assert 'each worker on a CPU of its own' in threads and len(new) == 1
    if len(allowed) > 1:
        assert len(new[0]) == 1 and new[0][0] in allowed
    else:
        assert new[0] == allowed
