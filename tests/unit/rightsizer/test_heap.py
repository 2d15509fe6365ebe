"""retain_freed_memory: a freed large array's pages are reused by the next one instead of faulting anew."""

from __future__ import annotations

import subprocess
import sys

#: Allocates, touches and frees a 256 MiB array, then counts the minor page faults of doing it again.
_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from rightsizer.heap import retain_freed_memory
    assert retain_freed_memory()
def touch():
    a = np.empty(32 * 2**20)  # 256 MiB of float64
    a[:] = 1.0
    del a
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         timeout=120)
    return int(out.stdout)


def test_second_large_array_reuses_the_freed_pages() -> None:
    # default glibc: the 256 MiB block is its own mmap, unmapped on free, so the second one faults its pages
    # in again (4 KiB or 2 MiB each: at least 128); retained, it comes back from the heap already mapped
    assert _faults("default") >= 128
    assert _faults("retain") < 16
