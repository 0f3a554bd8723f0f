# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels for ARMv8.2-A NEON with the dot product and fp16
arithmetic (aarch64); the flags: variants.py."""
include "kernels.pxi"
