"""Exclusive, non-blocking ``flock`` on a file, recording who holds it (shared by the VM and store locks).

``flock`` locks belong to the open file description, so two opens of the same file conflict even inside
one process, and the kernel drops the lock when the holder exits or crashes -- a stale lock file is harmless.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class HeldElsewhere(Exception):  # noqa: N818 - an outcome, translated by each caller into its own error
    """The lock is held by another open file; ``owner`` is what the holder wrote into the file."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


def take(path: Path, holder: str) -> int:
    """Lock ``path`` (created if missing) and write ``pid N holder`` into it; return the open fd.

    Raises HeldElsewhere when another open file holds it, OSError when the file cannot be opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        finally:
            os.close(fd)
        raise HeldElsewhere(owner) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} {holder}".strip().encode(), 0)
    return fd


def release(fd: int) -> None:
    """Empty the lock file, drop the lock and close ``fd`` (the file stays as a rendezvous point)."""
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class FileLock:
    """An exclusive, non-blocking lock on one file; subclasses say how a refusal reads (``refusal``)."""

    def __init__(self, path: Path, *, holder: str = "") -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def refusal(self, owner: str) -> Exception:
        """The error to raise when ``owner`` (text written by the holder, may be empty) holds the lock."""
        return RuntimeError(f"{self.path} is locked by {owner or 'another process'}")

    def acquire(self) -> None:
        """Take the lock, or raise ``refusal(owner)``; OSError when the lock file cannot be opened."""
        if self._fd is None:
            try:
                self._fd = take(self.path, self.holder)
            except HeldElsewhere as held:
                raise self.refusal(held.owner) from None

    def release(self) -> None:
        """Drop the lock (the file stays; it is only a rendezvous point)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            release(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
