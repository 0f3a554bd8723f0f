# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for AVX-512 (x86-64); the flags: variants.py."""
include "kernels.pxi"
