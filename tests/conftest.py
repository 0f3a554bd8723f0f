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


def require_onnx():
    """(onnx, onnxruntime), or skip the calling module; in CI a missing one fails."""
    if os.environ.get('ENGINE_REQUIRE_TORCH'):
        import onnx
        import onnxruntime
        return onnx, onnxruntime
    return (pytest.importorskip('onnx', reason='needs onnx: pip install ".[test]"'),
            pytest.importorskip('onnxruntime', reason='needs onnxruntime: pip install ".[test]"'))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (ENGINE_REQUIRE_TORCH=1) nothing may be skipped: a skip fails."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get('ENGINE_REQUIRE_TORCH'):
        report.outcome = 'failed'
        report.longrepr = f'skipped in CI, where every test must run: {report.longrepr}'
