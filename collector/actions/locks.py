"""Per-VM apply locks that hold across processes: one ``flock``-ed file per VM UUID under a lock directory
(see collector.filelock for the semantics)."""

from __future__ import annotations

import re
from pathlib import Path

from collector import filelock
from collector.errors import ActionSkipped

_SAFE = re.compile(r"^[0-9A-Za-z._-]+$")


class VmLock(filelock.FileLock):
    """Exclusive, non-blocking lock on one VM. Use as a context manager; raises ActionSkipped when held."""

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


def lock_dir_for(db_path: Path | str) -> Path:
    """Return the lock directory that goes with a store file: ``<store dir>/locks``."""
    return Path(db_path).resolve().parent / "locks"
