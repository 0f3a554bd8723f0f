"""How much memory a process can hope to have: sizes beyond it are refused
with a ValueError naming them, before anything is allocated."""
import os
import sys


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
