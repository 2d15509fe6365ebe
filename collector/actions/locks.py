"""Per-VM apply locks that hold across processes: one ``flock``-ed file per VM UUID under the host's lock
directory (see collector.filelock for the semantics).

The lock directory belongs to the host, not to a store: every ``apply`` on this host -- CLI, dashboard or API,
whatever ``--db`` or working directory it runs with -- takes the same lock for the same VM. It is
``[actions] lock_dir`` when set, else ``/run/rightsizer/locks`` for root (``/run`` is the host's runtime
directory) and, for other users, ``$XDG_RUNTIME_DIR/rightsizer/locks`` or ``/tmp/rightsizer-<uid>/locks``.
Operators who apply as several users set one ``lock_dir`` all of them can write.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from collector import filelock
from collector.errors import ActionSkipped

_SAFE = re.compile(r"^[0-9A-Za-z._-]+$")
#: root's lock directory (tests point it elsewhere).
SYSTEM_LOCK_DIR = Path("/run/rightsizer/locks")


class VmLock(filelock.FileLock):
    """Exclusive, non-blocking lock on one VM. Use as a context manager; raises ActionSkipped when held
    or when the lock file cannot be made safely."""

    def __init__(self, lock_dir: Path | str, vm_uuid: str, *, holder: str = "") -> None:
        if not _SAFE.match(vm_uuid):
            raise ValueError(f"VM UUID {vm_uuid!r} cannot name a lock file; expected a UUID")
        super().__init__(Path(lock_dir) / f"{vm_uuid}.lock", holder=holder)
        self.vm_uuid = vm_uuid

    def refusal(self, owner: str) -> Exception:
        return ActionSkipped(
            f"Another apply is running on VM {self.vm_uuid} (lock {str(self.path)!r} held by "
            f"{owner or 'unknown'}); wait for it to finish and run the plan again"
        )

    def acquire(self) -> None:
        try:
            _check_lock_dir(self.path.parent)
            super().acquire()
        except filelock.UnsafeLockFileError as exc:
            raise ActionSkipped(f"Cannot take the apply lock of VM {self.vm_uuid}: {exc}") from exc
        except OSError as exc:
            raise ActionSkipped(f"Cannot take the apply lock {str(self.path)!r} of VM {self.vm_uuid}: "
                                f"{exc.strerror}; check [actions] lock_dir") from exc


def _check_lock_dir(lock_dir: Path) -> None:
    """Make ``lock_dir`` (0700) when missing; refuse a link or a directory another user (not root) owns, and a
    folder of it another user owns, who could swap it (``/tmp/rightsizer-<uid>`` made by someone else). A lock
    directory shared by several users is root's (e.g. mode 1777 or 2770 with a group).
    """
    lock_dir.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        lock_dir.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info, parent = lock_dir.lstat(), lock_dir.parent.stat()
    mine = (0, os.geteuid())
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in mine:
        raise filelock.UnsafeLockFileError(
            f"the lock directory {str(lock_dir)!r} is not a directory owned by this user or root; remove it or "
            "set [actions] lock_dir")
    if parent.st_uid not in mine:
        raise filelock.UnsafeLockFileError(
            f"the lock directory's folder {str(lock_dir.parent)!r} belongs to another user (uid {parent.st_uid}), "
            "who could swap the lock directory; remove it or set [actions] lock_dir")


def default_lock_dir() -> Path:
    """The host's per-VM lock directory for this user when ``[actions] lock_dir`` is not set."""
    if os.geteuid() == 0:
        return SYSTEM_LOCK_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        return Path(runtime) / "rightsizer" / "locks"
    return Path(tempfile.gettempdir()) / f"rightsizer-{os.geteuid()}" / "locks"


def vm_lock_dir(configured: str = "") -> Path:
    """The per-VM lock directory: ``configured`` (``[actions] lock_dir``) when set, else ``default_lock_dir()``.

    Made (mode 0700 when rightsizer creates it) on first use by the lock itself.
    """
    return Path(configured).expanduser().resolve() if configured else default_lock_dir()
