import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def require_torch():
    """torch, or skip the calling module with a reason.  CI sets
    ENGINE_REQUIRE_TORCH=1 so that a missing torch fails instead."""
    if os.environ.get('ENGINE_REQUIRE_TORCH'):
        import torch
        return torch
    return pytest.importorskip('torch', reason='needs torch: pip install torch==2.13.0')
