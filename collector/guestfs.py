"""Guest filesystem use from the QEMU guest agent, as value types, and its home in the store's meta table.

libvirt's ``virDomainGetGuestInfo(VIR_DOMAIN_GUEST_INFO_FILESYSTEM)`` returns a flat dict
(https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainGetGuestInfo): ``fs.count`` and per
filesystem ``fs.N.mountpoint``, ``fs.N.name``, ``fs.N.fstype``, ``fs.N.total-bytes``, ``fs.N.used-bytes``
(the two sizes only when the agent knows them, QEMU guest agent >= 3.0 and libvirt >= 6.0), ``fs.N.disk.count``
and ``fs.N.disk.M.alias``/``.serial``/``.device``. A guest without an agent answers nothing: its use is unknown.

The newest reading per VM lives under one meta key (no schema change): JSON ``{uuid: {used_bytes,
total_bytes, filesystems, at}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from collector.store.base import TimeSeriesStore

META_KEY = "guest_fs_usage"
#: Pseudo filesystems the agent lists that hold no disk blocks.
_VIRTUAL_FSTYPES = frozenset({"tmpfs", "devtmpfs", "proc", "sysfs", "overlay", "squashfs", "ramfs", "iso9660"})
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuestFsUsage:
    """Bytes used and total over a guest's disk-backed filesystems, as the guest agent reported them."""

    used_bytes: int
    total_bytes: int
    filesystems: int
    at: datetime


def parse_guest_info(info: Mapping[str, object], at: datetime) -> GuestFsUsage | None:
    """Sum used/total bytes over the disk-backed filesystems of a ``guestInfo`` dict; None when none has sizes.

    Filesystems are counted once per (name) so a bind-mounted device is not summed twice; pseudo
    filesystems (tmpfs, proc …) are left out.
    """
    try:
        count = int(str(info.get("fs.count", 0)))
    except ValueError:
        return None
    used = total = n = 0
    seen: set[str] = set()
    for i in range(count):
        p = f"fs.{i}."
        fstype = str(info.get(p + "fstype", ""))
        name = str(info.get(p + "name", "")) or str(info.get(p + "mountpoint", ""))
        u, t = info.get(p + "used-bytes"), info.get(p + "total-bytes")
        if fstype in _VIRTUAL_FSTYPES or name in seen or not isinstance(u, int) or not isinstance(t, int):
            continue
        seen.add(name)
        used, total, n = used + u, total + t, n + 1
    return GuestFsUsage(used, total, n, at) if n else None


def record_usage(store: TimeSeriesStore, readings: Mapping[str, GuestFsUsage]) -> None:
    """Merge fresh readings (by VM UUID) into the store's meta; older readings of other VMs stay."""
    if not readings:
        return
    current = _raw(store)
    for uuid, r in readings.items():
        current[uuid] = {"used_bytes": r.used_bytes, "total_bytes": r.total_bytes, "filesystems": r.filesystems,
                         "at": r.at.isoformat()}
    store.set_meta(META_KEY, json.dumps(current, sort_keys=True))


def stored_usage(store: TimeSeriesStore) -> dict[str, GuestFsUsage]:
    """The newest guest-agent reading of every VM that ever answered (empty when none did)."""
    out: dict[str, GuestFsUsage] = {}
    for uuid, r in _raw(store).items():
        try:
            out[uuid] = GuestFsUsage(int(str(r["used_bytes"])), int(str(r["total_bytes"])),
                                     int(str(r["filesystems"])), datetime.fromisoformat(str(r["at"])))
        except (KeyError, TypeError, ValueError):
            log.warning("guest filesystem reading of %s in the store is malformed: %r; ignored", uuid, r)
    return out


def _raw(store: TimeSeriesStore) -> dict[str, dict[str, object]]:
    text = store.get_meta(META_KEY)
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        log.warning("store meta %r is not JSON; guest filesystem use starts afresh", META_KEY)
        return {}
    return {str(k): v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}
