"""engine.ray on a local Ray cluster: the same rows as the single-process
path, bit for bit; unreadable files reported in their rows; an actor killed
mid-run restarted with no image lost or repeated; a cluster of two nodes;
the `classify --ray` command."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import engine
from engine.classify import classify_files

ray = pytest.importorskip('ray', reason='needs Ray Data: pip install ".[test]"')
import engine.ray as on_ray  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, 'weights', 'digits_shufflenet.engine')


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """The 360 held-out digits as PNG files in two folders, the shipped samples,
    two files that are not images, and a text file (not read: not an image name)."""
    from PIL import Image
    folder = tmp_path_factory.mktemp('archive')
    held = np.load(os.path.join(ROOT, 'weights', 'digits_test.npz'))
    for i, image in enumerate(held['images']):
        (folder / f'part{i % 2}').mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f'part{i % 2}' / f'{i:03d}.png')
    shutil.copytree(os.path.join(ROOT, 'weights', 'samples'), folder / 'samples')
    (folder / 'broken.png').write_bytes(b'not a png')
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'notes.txt').write_text('not an image, and not an image name: not read')
    return str(folder)


@pytest.fixture(scope='module')
def expected(archive):
    """path -> (labels, probabilities, error) from the single-process path."""
    from engine.classify import collect
    files, _ = collect([archive])
    assert len(files) == 360 + 10 + 2
    model = engine.load(MODEL, threads=1)
    return {path: ([label for label, _ in top or ()], np.float32([p for _, p in top or ()]), error or '')
            for path, top, error in classify_files(model, files, top_k=3)}


def check_rows(rows, expected):
    """Every image once, its row equal to the single-process one."""
    paths = [r['path'] for r in rows]
    assert sorted(paths) == sorted(expected)            # none lost, none repeated
    errors = 0
    for r in rows:
        labels, probabilities, error = expected[r['path']]
        assert list(r["labels"]) == labels
        assert np.float32(r['probabilities']).tobytes() == probabilities.tobytes()     # bit for bit
        assert bool(r['error']) == bool(error)
        if error:
            errors += 1
            assert os.path.basename(r['path']) in r['error'] and 'BytesIO' not in r['error'], r['error']
    assert errors == 2


@pytest.fixture(scope='module')
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_same_rows_as_one_process(cluster, archive, expected):
    rows = list(on_ray.classify_dataset(on_ray.read_images([archive]), MODEL, top_k=3, actors=2).iter_rows())
    check_rows(rows, expected)


def test_model_object_and_default_actors(cluster, archive, expected):
    """A Model is sent to the workers (they need not have its file); the
    actors default to the cluster's CPUs (2 here) without waiting on reads."""
    model = engine.load(MODEL)
    rows = list(on_ray.classify_dataset(on_ray.read_images([archive]), model, top_k=3, batch_size=5,
                                         rows_per_call=30).iter_rows())
    check_rows(rows, expected)


def actor_pids():
    """Process ids of the classifying actors (Ray titles them after the class)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if b'_Classifier' in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_actor_killed_mid_run(cluster, archive, expected):
    """One actor, killed after the first row: Ray starts another and runs
    the lost batch again; every image comes out once."""
    def slow(batch):            # keeps the job running long after the kill
        time.sleep(0.02)
        return batch
    ds = on_ray.read_images([archive], rows_per_block=2).map_batches(slow, batch_size=1)
    before = set(actor_pids())      # actors of earlier jobs, maybe still on their way out
    rows, killed = [], []
    for row in on_ray.classify_dataset(ds, MODEL, top_k=3, actors=1, batch_size=2, rows_per_call=2).iter_rows():
        rows.append(row)
        if not killed:
            killed = sorted(set(actor_pids()) - before)
            assert len(killed) == 1
            os.kill(killed[0], signal.SIGKILL)
    # the only actor died after the first row: the rest was done by the one Ray started instead
    assert killed and len(rows) == len(expected)
    check_rows(rows, expected)


def test_bytes_read_by_ray(cluster, archive, expected):
    """A Dataset with the files' bytes (as Ray reads URIs) gives the same rows."""
    ds = ray.data.read_binary_files(sorted(expected), include_paths=True, ray_remote_args={'num_cpus': 0})
    check_rows(list(on_ray.classify_dataset(ds, MODEL, top_k=3).iter_rows()), expected)


def test_two_nodes(archive, expected, tmp_path):
    """A head and a second node process, one CPU each: an actor on each."""
    from ray.cluster_utils import Cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={'num_cpus': 1, 'include_dashboard': False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n['Alive']]) == 2
        out = str(tmp_path / 'rows.parquet')
        assert on_ray.classify_to_files([archive], MODEL, out, top_k=3) == (372, 2)
        import pyarrow.parquet
        check_rows(pyarrow.parquet.read_table(out).to_pylist(), expected)
    finally:
        ray.shutdown()
        cluster.shutdown()


def cli(*args):
    """The command, on a local cluster of its own (not one `ray start` left running here)."""
    return subprocess.run([sys.executable, '-m', 'engine', 'classify', *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, RAY_ADDRESS='local'))


def test_command(archive, expected, tmp_path):
    """classify --ray --output .jsonl starts a local cluster and writes the rows."""
    out = str(tmp_path / 'rows.jsonl')
    r = cli(MODEL, archive, '--ray', '--output', out, '--top-k', '3', '--actors', '2')
    assert r.returncode == 0, r.stderr
    assert '372 images, 2 not readable' in r.stderr
    rows = [json.loads(line) for name in sorted(os.listdir(out)) for line in open(os.path.join(out, name))]
    check_rows(rows, expected)
    again = cli(MODEL, archive, '--ray', '--output', out)
    assert again.returncode != 0 and 'exists: remove it or name another' in again.stderr, again.stderr


@pytest.mark.parametrize('args, message', [
    (['--output', 'x.parquet'], '--output and --actors are for --ray runs'),
    (['--actors', '2'], '--output and --actors are for --ray runs'),
    (['--ray'], '--ray needs --output'),
    (['--ray', '--output', 'x.csv'], 'must end in .parquet or .jsonl'),
    (['--ray', '--output', 'x.jsonl', '--json'], '--json prints rows on the driver'),
])
def test_command_errors(archive, args, message):
    r = cli(MODEL, archive, *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_missing_source_named(tmp_path):
    with pytest.raises(ValueError, match='nowhere: no such file or folder'):
        on_ray.read_images(['nowhere'])
    with pytest.raises(ValueError, match='no images in this folder'):
        on_ray.read_images([str(tmp_path)])
    with pytest.raises(ValueError, match='not both'):
        on_ray.read_images([str(tmp_path), 's3://bucket/photos'])
