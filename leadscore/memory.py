"""Process-wide allocator settings for the batch commands (build, train, score, import).

glibc serves every block over its mmap threshold (32 MB at most) with a fresh mapping and
unmaps it on free. A 1M-lead training-set build makes hundreds of temporary arrays of
20M+ rows, so each one faulted its pages in anew: about 40 % of that build's CPU went to
the kernel, and the build grew faster than the data. Keeping freed blocks in the heap for
reuse (the effect of ``MALLOC_MMAP_MAX_=0`` and a high ``MALLOC_TRIM_THRESHOLD_``) removes
that cost. Memory freed during a run is kept by the process until it exits, which suits a
command that exits when done; the server does not call this.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks; False where there is no glibc (nothing done)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
