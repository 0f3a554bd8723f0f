# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Standalone channel permutation of NCHW arrays (engine.channel_shuffle).
Inside a compiled model a shuffle moves no data (the planner permutes plane
offsets instead); this kernel is for arrays a user holds."""
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy


def permute_planes(const float[:, :, ::1] x, float[:, :, ::1] out, const int64_t[::1] perm):
    """out[n, c] = x[n, perm[c]], planes copied whole."""
    cdef Py_ssize_t n, c, hw = x.shape[2]
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1] or out.shape[2] != hw \
            or perm.shape[0] != x.shape[1]:
        raise ValueError('shapes of x, out and perm do not agree')
    with nogil:
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                memcpy(&out[n, c, 0], &x[n, perm[c], 0], hw * sizeof(float))


def permute_planes_inplace(float[:, :, ::1] x, const int64_t[::1] perm):
    """x[n, c] = old x[n, perm[c]], following each cycle of perm with one
    plane of scratch memory."""
    cdef Py_ssize_t n, start, c, nxt, C = x.shape[1], hw = x.shape[2]
    if perm.shape[0] != C:
        raise ValueError('perm does not match the channels')
    cdef char* done = <char*>malloc(C)
    cdef float* tmp = <float*>malloc(max(1, hw) * sizeof(float))
    if done == NULL or tmp == NULL:
        free(done)
        free(tmp)
        raise MemoryError()
    try:
        with nogil:
            for n in range(x.shape[0]):
                for c in range(C):
                    done[c] = 0
                for start in range(C):
                    if done[start] or perm[start] == start:
                        continue
                    memcpy(tmp, &x[n, start, 0], hw * sizeof(float))
                    c = start
                    while True:
                        done[c] = 1
                        nxt = perm[c]
                        if nxt == start:
                            memcpy(&x[n, c, 0], tmp, hw * sizeof(float))
                            break
                        memcpy(&x[n, c, 0], &x[n, nxt, 0], hw * sizeof(float))
                        c = nxt
    finally:
        free(done)
        free(tmp)
