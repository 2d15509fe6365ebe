"""Exclusive, non-blocking ``flock`` on a file, recording who holds it (shared by the VM and store locks).

``flock`` locks belong to the open file description, so two opens of the same file conflict even inside
one process, and the kernel drops the lock when the holder exits or crashes -- a stale lock file is harmless.

A lock file is opened without following a symbolic link (``O_NOFOLLOW``) and must be a regular file with one
link: a link planted under the lock's name never makes rightsizer truncate or write a file elsewhere.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path
from types import TracebackType


class HeldElsewhere(Exception):  # noqa: N818 - an outcome, translated by each caller into its own error
    """The lock is held by another open file; ``owner`` is what the holder wrote into the file."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


class UnsafeLockFileError(Exception):
    """The lock file's name is taken by something rightsizer must not write through (a link, a FIFO...)."""


def open_lock_file(path: Path) -> int:
    """Open (create) the lock file ``path`` for writing without following links; return the fd.

    Raises UnsafeLockFileError when ``path`` is a symbolic link, not a regular file or a file with more
    than one hard link; OSError when it cannot be opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except PermissionError:  # another user's lock file in a shared lock directory: flock needs no write
            fd = os.open(path, os.O_RDONLY | flags)
    except OSError:
        if path.is_symlink():
            raise UnsafeLockFileError(f"{str(path)!r} is a symbolic link, not a lock file; remove it "
                                      "(lock files are only rendezvous points) and try again") from None
        raise
    info = os.fstat(fd)
    problem = ("is not a regular file" if not stat.S_ISREG(info.st_mode)
               else f"has {info.st_nlink} hard links" if info.st_nlink != 1 else "")
    if problem:
        os.close(fd)
        raise UnsafeLockFileError(f"{str(path)!r} {problem}, so it is not a lock file rightsizer made; remove "
                                  "it and try again")
    return fd


def take(path: Path, holder: str) -> int:
    """Lock ``path`` (created if missing) and write ``pid N holder`` into it; return the open fd.

    Raises HeldElsewhere when another open file holds it, UnsafeLockFileError when the name is a link or
    not a plain file, OSError when the file cannot be opened.
    """
    fd = open_lock_file(path)
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
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {holder}".strip().encode(), 0)
    except OSError as exc:
        if exc.errno != errno.EBADF and exc.errno != errno.EINVAL:  # EBADF/EINVAL: opened read-only, see above
            release(fd)
            raise
    return fd


def release(fd: int) -> None:
    """Empty the lock file, drop the lock and close ``fd`` (the file stays as a rendezvous point)."""
    try:
        try:
            os.ftruncate(fd, 0)
        except OSError:  # opened read-only (another user's file): nothing of ours to empty
            pass
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
        """Take the lock, or raise ``refusal(owner)``; OSError when the lock file cannot be opened,
        UnsafeLockFileError when its name is a link or not a plain file."""
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
