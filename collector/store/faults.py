"""I/O faults of the store (a full disk, a failing device): runtime failures, never "bad input".

SQLite reports a full file system as ``SQLITE_FULL`` on a write, and as ``SQLITE_IOERR`` ("disk I/O error") when
it cannot grow the WAL index (``-shm``) even for a read; both leave the database file as it was (the failed
transaction is rolled back), so the message says so and tells the operator to free space or check the device.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Protocol, runtime_checkable

from collector.errors import InputError, RightsizerError, StoreError

_SQLITE_IOERR, _SQLITE_FULL = 10, 13
_OS_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class StoreIOError(StoreError):
    """The store's file system is full or failing; the store itself is intact (exit 1)."""


@runtime_checkable
class ReportsFaults(Protocol):
    """A store that remembers whether its last write failed on an I/O fault."""

    @property
    def fault(self) -> str:
        """The last write's I/O fault as one line, or "" once a write succeeded again."""
        ...


def is_io_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk or an I/O error (SQLite's or the operating system's)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in (_SQLITE_IOERR, _SQLITE_FULL)
        text = str(exc)
        return "disk I/O error" in text or "database or disk is full" in text
    return isinstance(exc, OSError) and exc.errno in _OS_FAULTS


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``path`` (None when unknown)."""
    folder = path if path.is_dir() else path.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def io_fault_error(path: Path, exc: BaseException, doing: str) -> StoreIOError:
    """The one-line StoreIOError for ``exc`` met while ``doing`` (e.g. "writing") the store at ``path``."""
    free = free_bytes(path)
    full = (isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL) \
        or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) \
        or (free is not None and free < 1024 * 1024)
    reason = str(exc) if isinstance(exc, sqlite3.Error) else (exc.strerror if isinstance(exc, OSError) else "") \
        or str(exc)
    what = (f"disk full ({free:,} bytes free on its file system)" if full and free is not None
            else "disk full" if full else "I/O error")
    return StoreIOError(f"{what} while {doing} store {str(path)!r} ({reason}); the store is intact (nothing "
                        "half-written is kept): free space or check the disk, then run again")


class DiskError(RightsizerError):
    """A file (report, plan, output) could not be written because its disk is full or failing (exit 1)."""


def write_failure(path: Path | str, exc: OSError, bad_input: InputError) -> RightsizerError:
    """The error for a failed write of ``path``: DiskError for a full or failing disk, else ``bad_input``
    (a missing folder, no permission: something the user passed)."""
    if not is_io_fault(exc):
        return bad_input
    what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "I/O error"
    return DiskError(f"{what} while writing {str(path)!r} ({exc.strerror}); free space or check the disk, "
                     "then run again")
