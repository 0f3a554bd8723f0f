# cython: language_level=3
"""The codes a compiled op carries from the planner to the kernels (abi.h),
as Python enums: OpKind, WindowMode, WindowPath, EltwiseMode, Act."""
