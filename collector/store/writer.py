"""One writer per store: an ``flock``-ed file beside the SQLite file, held by ``serve``, ``collect``, ``import``.

Two collectors on one store overwrite each other's rows (same primary key, different counters), so the
second one is refused. The kernel drops the lock when its holder exits or crashes; the file itself may stay.
The lock is keyed on the store's real path (symbolic links resolved), so ``alias.db -> real.db`` takes
``real.db.lock``; a store file with a second hard link is refused, since its other name would have another lock.

``apply`` (CLI or dashboard) does not take this lock: it writes only audit rows, appended in their own short
transactions under SQLite's write lock (``BEGIN IMMEDIATE``, 30 s busy timeout), so it never overwrites a
collector's rows and runs beside ``serve``; taking the lock would refuse every apply while a collector runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from collector import filelock
from collector.errors import StoreError, StoreLockedError, StoreRefusedError
from collector.store.faults import io_fault_error, is_io_fault


def writer_lock_path(db_path: Path | str) -> Path:
    """The lock file of a store: ``<store file's real path>.lock`` (one lock whichever name reaches it)."""
    p = Path(db_path).resolve()
    return p.with_name(p.name + ".lock")


class WriterLock(filelock.FileLock):
    """Exclusive, non-blocking lock on a store for one writing process."""

    def __init__(self, db_path: Path | str, *, holder: str = "") -> None:
        super().__init__(writer_lock_path(db_path), holder=holder)
        self.db_path = Path(db_path)

    def refusal(self, owner: str) -> Exception:
        return StoreLockedError(
            f"Store {str(self.db_path)!r} is already written by {owner or 'another process'} (lock "
            f"{str(self.path)!r}); one writer per store: stop that process first, or pass another --db"
        )

    def acquire(self) -> None:
        """Take the lock; StoreLockedError when another process holds it, StoreError when it cannot be made,
        StoreRefusedError when the store has another hard link or the lock's name is a link."""
        try:
            links = os.stat(self.db_path).st_nlink
        except FileNotFoundError:
            links = 1
        except OSError as exc:
            raise StoreError(f"Cannot read the store {str(self.db_path)!r}: {exc.strerror}") from exc
        if links > 1:
            raise StoreRefusedError(
                f"Store {str(self.db_path)!r} has {links} hard links; its writer lock is keyed on one name, so "
                "keep one link (copy the file instead of linking it) or pass another --db")
        try:
            super().acquire()
        except filelock.UnsafeLockFileError as exc:
            raise StoreRefusedError(f"Cannot lock the store: {exc}") from exc
        except OSError as exc:
            if is_io_fault(exc):
                raise io_fault_error(self.db_path, exc, "locking") from exc
            raise StoreError(f"Cannot create the store's lock file {str(self.path)!r}: {exc.strerror}") from exc
