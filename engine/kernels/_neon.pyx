# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for NEON (aarch64, armv7); the flags: variants.py."""
include "kernels.pxi"
