"""The contract between the planner and the kernels: codes defined once
(kernels/abi.h, read by Python as enums), typed records per kernel kind
(kernels/descriptors.py), and a misspelt, missing or unknown field an error
when the plan is made, never a silent zero."""
from dataclasses import dataclass, fields

import numpy as np
import pytest

from engine.ops.activations import NONLINEAR
from engine.kernels import descriptors
from engine.kernels.abi import Act, EltwiseMode, OpKind, WindowMode, WindowPath
from engine.kernels.isa import Program


def eltwise(**changes):
    values = dict(n_out=2, plane=16, jobs_per_image=1, in_off=np.array([0, 16]),
                  out_off=np.array([32, 48]), lo=-np.inf, hi=np.inf, act=Act.ACT_NONE,
                  mode=EltwiseMode.ELTWISE_CLAMP, per_job=2)
    values.update(changes)
    return descriptors.Eltwise(**values)


def test_codes_come_from_one_header():
    """Python sees abi.h's values: the kinds number from 1, and every
    activation the graph can name has a code."""
    assert [k.name for k in OpKind][:3] == ['OP_GEMM', 'OP_CONV_IM2COL', 'OP_WINDOW'] and OpKind.OP_GEMM == 1
    assert {m.name for m in WindowMode} == {'WINDOW_CONV', 'WINDOW_MAX', 'WINDOW_AVG'}
    assert {p.name for p in WindowPath} == {'WINDOW_DIRECT', 'WINDOW_FLAT'}
    assert all(f'ACT_{name.upper()}' in Act.__members__ for name in NONLINEAR)


def test_every_record_kind_has_a_job():
    kinds = {cls.KIND for cls in vars(descriptors).values()
             if isinstance(cls, type) and hasattr(cls, 'KIND')}
    assert kinds == set(OpKind) - {OpKind.OP_KIND_END}


def test_a_misspelt_or_missing_field_is_a_type_error():
    with pytest.raises(TypeError, match='per_jobs'):
        eltwise(per_jobs=2)
    values = {f.name: getattr(eltwise(), f.name) for f in fields(eltwise())}
    del values['plane']
    with pytest.raises(TypeError, match='plane'):
        descriptors.Eltwise(**values)


def test_a_field_the_op_record_has_not_is_refused():
    @dataclass(frozen=True, kw_only=True)
    class Bent(descriptors.Eltwise):
        stride_h: int               # not a field of the compiled Op

    with pytest.raises(TypeError, match="Bent.stride_h: the Op record has no such field"):
        Program([Bent(**{f.name: getattr(eltwise(), f.name) for f in fields(eltwise())}, stride_h=2)],
                64, 16)

    @dataclass(frozen=True, kw_only=True)
    class Tabled(descriptors.Eltwise):
        extra_off: descriptors.Offsets

    with pytest.raises(TypeError, match="no tables \\['extra_off'\\]"):
        Program([Tabled(**{f.name: getattr(eltwise(), f.name) for f in fields(eltwise())},
                        extra_off=np.zeros(2))], 64, 16)


def test_a_record_runs():
    """An Eltwise clamp record through Program, on a hand-made arena."""
    import engine.model
    arena = engine.model._aligned_floats(64)
    arena[:32] = np.arange(-16, 16)
    Program([eltwise(lo=-2.0, hi=3.0)], 64, 16).run(arena, 1, engine.model._aligned_floats(16), 1)
    np.testing.assert_array_equal(arena[32:64], np.clip(np.arange(-16, 16), -2, 3))
