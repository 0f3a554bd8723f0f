# cython: language_level=3
"""The codes a compiled op carries from the planner to the kernels (abi.h),
as Python enums: OpKind, WindowMode, WindowPath, EltwiseMode, ResizeMode
(cpdef enums of abi.pxd), and Act and DType, made from abi.h's lists of
activations and element types (DTYPE_SIZE: bytes per element, DTYPE_OF: by
the graph's dtype names)."""
from enum import IntEnum

Act = IntEnum('Act', {'ACT_' + ENGINE_ACT_NAMES[i].decode().upper(): i for i in range(ACT_END)})
DType = IntEnum('DType', {ENGINE_DTYPE_CODES[i].decode(): i for i in range(DTYPE_END)})
DTYPE_SIZE = {DType(i): ENGINE_DTYPE_SIZES[i] for i in range(DTYPE_END)}
DTYPE_OF = {ENGINE_DTYPE_NAMES[i].decode(): DType(i) for i in range(DTYPE_END)}
