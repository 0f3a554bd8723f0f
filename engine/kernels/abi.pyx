# cython: language_level=3
"""The codes a compiled op carries from the planner to the kernels (abi.h),
as Python enums: OpKind, WindowMode, WindowPath, EltwiseMode (cpdef enums
of abi.pxd), and Act, made from abi.h's list of activations."""
from enum import IntEnum

Act = IntEnum('Act', {'ACT_' + ENGINE_ACT_NAMES[i].decode().upper(): i for i in range(ACT_END)})
