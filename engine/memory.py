"""Working memory: how much a process can hope to have (sizes beyond it are
refused with a ValueError naming them, before anything is allocated), and
aligned zeroed buffers for arenas and scratch."""
import functools
import mmap
import os
import sys

import numpy as np

HUGE_MIN_BYTES = 1 << 20    # buffers from this size on ask for transparent huge pages


def physical_memory():
    """Bytes one process can hope to allocate: the RAM, and on 32-bit builds
    half the address space."""
    try:
        ram = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (AttributeError, ValueError, OSError):
        ram = 1 << 40
    return min(ram, sys.maxsize // 2 + 1)


def check_memory(nbytes, what, error=ValueError):
    """`error` instead of a MemoryError (or the OOM killer) for absurd sizes."""
    if nbytes > physical_memory():
        raise error(f'{what} needs {nbytes / 2**30:.1f} GiB of working memory, more than this '
                    f'machine has ({physical_memory() / 2**30:.1f} GiB)')


@functools.lru_cache(None)
def huge_page_bytes(path='/sys/kernel/mm/transparent_hugepage/hpage_pmd_size'):
    """The size of a transparent huge page (Linux; 2 MiB with 4 KiB pages), or
    None where the kernel has none or mmap cannot ask for one."""
    if not all(hasattr(mmap, name) for name in ('MAP_PRIVATE', 'MAP_ANONYMOUS', 'MADV_HUGEPAGE')):
        return None
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def aligned_bytes(n):
    """n zero bytes starting on a 64-byte boundary (arenas and scratch).  From
    HUGE_MIN_BYTES on they start on a huge page and ask Linux for huge pages:
    a 1x1 convolution reads its K input planes at once, with 4 KiB pages each
    on a page of its own (K TLB entries per tile, more than the first level
    holds; on a Zen 3, 1 thread, NanoDet-Plus-m 320 ran 6-8 % and ShuffleNetV2
    x1.0 2-10 % faster on huge pages, interleaved A/B rounds)."""
    huge = huge_page_bytes() if n >= HUGE_MIN_BYTES else None
    if huge is None:
        raw = np.zeros(n + 64, np.uint8)
        start = -raw.ctypes.data % 64
        return raw[start:start + n]
    # anonymous private memory is zero; the region a huge page further, to start on one
    region = mmap.mmap(-1, n + huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)
    except OSError:         # a kernel that refuses: the pages stay small
        pass
    raw = np.frombuffer(region, np.uint8)
    start = -raw.ctypes.data % huge
    return raw[start:start + n]
