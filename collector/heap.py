"""Process memory tuning for the one-shot analytics commands: reuse freed memory instead of faulting in new pages.

Costs and recommendations over a large fleet make dozens of short-lived arrays of hundreds of MB each
(36 M rows x 8 bytes = 288 MB per float64 column). glibc's malloc serves every block above 32 MiB with
its own ``mmap`` and unmaps it on free, so each such array faults in fresh zeroed pages from the kernel:
at 50,000 VMs x 30 days that is several seconds of system time (``python -m bench.fleet_bench inprocess``
prints it). Served from the heap and kept there once freed, the next array reuses pages already mapped.
The peak stays that of the largest moment of the computation; the process keeps it until it exits.

A long-running ``serve`` does not use it, and goes further the other way (``release_free_memory``): after a
dashboard refresh has dropped the old snapshot, the free pages glibc keeps inside its heaps (arrays under
its 32 MiB mmap threshold, pandas' and Python's small objects) go back to the kernel. Without it the
process stays at a refresh's peak for good (``python -m bench.dashboard_bench --start-only --refresh 4``).
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def release_free_memory() -> bool:
    """Give the free pages of every malloc heap back to the kernel (glibc ``malloc_trim(0)``).

    Returns True when glibc released memory; False when there was none to release or another C library.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and never give freed heap memory back to the kernel (glibc only).

    Returns True when glibc took both settings; False (nothing changed) with another C library.
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # -1: no trimming at all (mallopt(3)); 0 mmaps: blocks of any size come from the heap (glibc still
    # falls back to mmap when the heap cannot grow)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
