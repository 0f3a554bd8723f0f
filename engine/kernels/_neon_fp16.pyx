# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for aarch64 with fp16 arithmetic (ARMv8.2-A: Cortex-A55/A76), on fp16 tensors; the flags: variants.py."""
include "kernels.pxi"
