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
    values = dict(n_out=2, plane=16, jobs_per_image=1, in_off=np.array([0, 64]),      # bytes
                  out_off=np.array([128, 192]), lo=-np.inf, hi=np.inf, act=Act.ACT_NONE,
                  mode=EltwiseMode.ELTWISE_CLAMP, per_job=2)
    values.update(changes)
    return descriptors.Eltwise(**values)


def test_codes_come_from_one_header():
    """Python sees abi.h's values: the kinds number from 1, and every
    activation the graph can name has a code."""
    assert [k.name for k in OpKind][:3] == ['OP_GEMM', 'OP_CONV_IM2COL', 'OP_WINDOW'] and OpKind.OP_GEMM == 1
    assert {m.name for m in WindowMode} == {'WINDOW_CONV', 'WINDOW_MAX', 'WINDOW_AVG'}
    assert {p.name for p in WindowPath} == {'WINDOW_DIRECT', 'WINDOW_FLAT', 'WINDOW_FRAMED',
                                           'WINDOW_INTERLEAVED'}
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
                256, 64)

    @dataclass(frozen=True, kw_only=True)
    class Tabled(descriptors.Eltwise):
        extra_off: descriptors.Offsets

    with pytest.raises(TypeError, match="no tables \\['extra_off'\\]"):
        Program([Tabled(**{f.name: getattr(eltwise(), f.name) for f in fields(eltwise())},
                        extra_off=np.zeros(2))], 256, 64)


def test_a_record_runs():
    """An Eltwise clamp record through Program, on a hand-made arena."""
    import engine.model
    arena = engine.model.aligned_bytes(256)
    arena.view(np.float32)[:32] = np.arange(-16, 16)
    Program([eltwise(lo=-2.0, hi=3.0)], 256, 64).run(arena, 1, engine.model.aligned_bytes(64), 1)
    np.testing.assert_array_equal(arena.view(np.float32)[32:64], np.clip(np.arange(-16, 16), -2, 3))


def test_plane_offsets_are_bytes_of_the_record_s_dtype():
    """Program turns a record's plane offsets (bytes) into elements of its
    dtype, refusing offsets inside an element and a dtype it has no kernels
    for; the planner lays out each tensor by its dtype's size."""
    from engine.kernels.abi import DTYPE_OF, DTYPE_SIZE, DType
    from engine.lowering import plane_bytes
    with pytest.raises(ValueError, match='Eltwise.out_off: plane offsets that are not whole 4-byte'):
        Program([eltwise(out_off=np.array([128, 194]))], 256, 64)
    with pytest.raises(TypeError, match='DTYPE_I8 tensors'):
        Program([eltwise(dtype=DType.DTYPE_I8)], 256, 64)
    assert {name: DTYPE_SIZE[code] for name, code in DTYPE_OF.items()} == {'float32': 4, 'float16': 2, 'int8': 1}
    assert [plane_bytes(49, d) for d in ('float32', 'float16', 'int8')] == [256, 128, 64]
    assert [plane_bytes(64, d) for d in ('float32', 'float16', 'int8')] == [256, 128, 64]
    assert plane_bytes(65, 'int8') == 128
