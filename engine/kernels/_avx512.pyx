# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for AVX-512 (x86-64); setup.py gives the flags."""
include "kernels.pxi"
