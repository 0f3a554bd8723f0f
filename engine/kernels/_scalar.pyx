# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for plain C (any CPU: the fallback, and the reference for the vector ones); the flags: variants.py."""
include "kernels.pxi"
