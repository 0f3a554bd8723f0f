"""Operations on arrays a user holds, outside a model."""
from functools import lru_cache

import numpy as np

from engine.kernels.shuffle import permute_planes, permute_planes_inplace


def shuffle_permutation(channels, groups):
    """Output channel i of torchvision's channel_shuffle is input channel perm[i]."""
    per_group = channels // groups
    i = np.arange(channels)
    return (i % groups) * per_group + i // groups


@lru_cache(maxsize=64)
def _cached_permutation(channels, groups):
    perm = shuffle_permutation(channels, groups).astype(np.int64)
    perm.flags.writeable = False
    return perm


def channel_shuffle(x, groups, *, out=None):
    """torchvision.models.shufflenetv2.channel_shuffle on a float32 NCHW array.

    out=None returns a new array; out=array writes there (float32,
    C-contiguous, x's shape); out=x shuffles in place with about one channel
    plane of extra memory, by following the permutation's cycles."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f'x must be a float32 numpy array, got '
                         f'{getattr(x, "dtype", type(x).__name__)}')
    if x.ndim != 4:
        raise ValueError(f'x must be 4-D (N, C, H, W), got shape {x.shape}')
    n, c, h, w = x.shape
    if not isinstance(groups, (int, np.integer)) or groups < 1 or c % groups:
        raise ValueError(f'groups={groups!r} does not divide the {c} channels')
    perm = _cached_permutation(c, int(groups))
    if out is x:
        if not x.flags.c_contiguous or not x.flags.writeable:
            raise ValueError('in-place shuffle needs a writeable C-contiguous array')
        permute_planes_inplace(x.reshape(n, c, h * w), perm)
        return x
    if out is None:
        out = np.empty_like(x, order='C')
    elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != x.shape
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f'out must be a writeable C-contiguous float32 array of shape {x.shape}')
    elif np.shares_memory(out, x):
        raise ValueError('out overlaps x without being x; pass out=x to shuffle in place')
    src = np.ascontiguousarray(x)
    permute_planes(src.reshape(n, c, h * w), out.reshape(n, c, h * w), perm)
    return out
