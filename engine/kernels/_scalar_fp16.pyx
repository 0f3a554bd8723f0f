# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for plain C on fp16 tensors (float arithmetic: the reference for the fp16 vector ones); the flags: variants.py."""
include "kernels.pxi"
