"""engine.channel_shuffle: torchvision's result, out of place and in place,
errors, and the in-place path's memory."""
import os
import subprocess
import sys

import numpy as np
import pytest

import engine
from engine.reference import channel_shuffle as reference

SHAPES = [(1, 116, 28, 28, 2), (1, 232, 14, 14, 2), (1, 240, 28, 28, 3), (3, 12, 5, 7, 4),
          (2, 6, 1, 1, 3), (1, 8, 2, 2, 8), (2, 9, 3, 1, 1), (1, 30, 4, 5, 5), (4, 24, 7, 3, 6)]


@pytest.mark.parametrize('n,c,h,w,g', SHAPES)
def test_matches_torchvision(n, c, h, w, g):
    x = np.random.default_rng(c).standard_normal((n, c, h, w)).astype(np.float32)
    expected = reference(x, g)
    np.testing.assert_array_equal(engine.channel_shuffle(x, g), expected)
    out = np.empty_like(x)
    assert engine.channel_shuffle(x, g, out=out) is out
    np.testing.assert_array_equal(out, expected)
    y = x.copy()
    assert engine.channel_shuffle(y, g, out=y) is y
    np.testing.assert_array_equal(y, expected)
    # non-contiguous input, out of place
    z = np.asfortranarray(x)
    np.testing.assert_array_equal(engine.channel_shuffle(z, g), expected)


def test_same_as_torch():
    from conftest import require_torch
    torch = require_torch()
    x = torch.randn(2, 24, 5, 6)
    for g in (2, 3, 4):
        np.testing.assert_array_equal(engine.channel_shuffle(x.numpy(), g),
                                      torch.nn.functional.channel_shuffle(x, g).numpy())


@pytest.mark.parametrize('bad,match', [
    (lambda: engine.channel_shuffle(np.zeros((1, 6, 2, 2), np.float32), 4), 'divide'),
    (lambda: engine.channel_shuffle(np.zeros((1, 6, 2, 2), np.float32), 0), 'divide'),
    (lambda: engine.channel_shuffle(np.zeros((1, 6, 2, 2), np.float64), 2), 'float32'),
    (lambda: engine.channel_shuffle(np.zeros((6, 2, 2), np.float32), 2), '4-D'),
    (lambda: engine.channel_shuffle([[[[1.0]]]], 1), 'float32'),
    (lambda: engine.channel_shuffle(np.zeros((1, 6, 2, 2), np.float32), 2,
                                    out=np.zeros((1, 6, 2, 3), np.float32)), 'out must'),
])
def test_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_in_place_needs_a_contiguous_writeable_array():
    x = np.zeros((1, 6, 4, 4), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match='contiguous'):
        engine.channel_shuffle(x, 2, out=x)
    y = np.zeros((1, 6, 4, 4), np.float32)
    with pytest.raises(ValueError, match='overlaps'):
        engine.channel_shuffle(y, 2, out=y[...])     # another view of y's memory, not y


def test_in_place_uses_about_one_plane_of_memory(tmp_path):
    """Peak RSS grows by far less than the array (256 MiB) while shuffling it in place."""
    code = (
        "import resource, numpy as np, engine\n"
        "x = np.ones((1, 64, 1024, 1024), np.float32)\n"
        "x[:, :, 0, 0] = np.arange(64)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "engine.channel_shuffle(x, 4, out=x)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "expected = np.arange(64).reshape(4, 16).T.ravel()\n"
        "assert (x[0, :, 0, 0] == expected).all()\n"
        "print((after - before) * 1024)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    growth = int(r.stdout.strip())
    size = 64 * 1024 * 1024 * 4
    assert growth < size / 32, f'peak RSS grew by {growth} bytes for a {size}-byte array'
