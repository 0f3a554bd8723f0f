"""The thread pool alone (engine/kernels/pool.h): tests/pool_stress.c built
with ThreadSanitizer, run from several caller threads, then after a fork."""
import os
import subprocess

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
