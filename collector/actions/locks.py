"""Per-VM apply locks that hold across processes: one ``flock``-ed file per VM UUID under a lock directory.

``flock`` locks belong to the open file description, so two opens of the same file conflict even inside
one process, and the kernel drops the lock when the holder exits or crashes -- a stale lock file is harmless.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from types import TracebackType

from collector.errors import ActionSkipped

_SAFE = re.compile(r"^[0-9A-Za-z._-]+$")


class VmLock:
    """Exclusive, non-blocking lock on one VM. Use as a context manager; raises ActionSkipped when held."""

    def __init__(self, lock_dir: Path | str, vm_uuid: str, *, holder: str = "") -> None:
        if not _SAFE.match(vm_uuid):
            raise ValueError(f"VM UUID {vm_uuid!r} cannot name a lock file; expected a UUID")
        self.path = Path(lock_dir) / f"{vm_uuid}.lock"
        self.vm_uuid = vm_uuid
        self.holder = holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ActionSkipped naming who holds it (pid and holder text)."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise ActionSkipped(
                f"Another apply is running on VM {self.vm_uuid} (lock {str(self.path)!r} held by {owner}); "
                "wait for it to finish and run the plan again"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {self.holder}".strip().encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays; it is only a rendezvous point)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> VmLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_dir_for(db_path: Path | str) -> Path:
    """Return the lock directory that goes with a store file: ``<store dir>/locks``."""
    return Path(db_path).resolve().parent / "locks"
