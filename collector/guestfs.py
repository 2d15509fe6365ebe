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

import logging
from collections.abc import Mapping
from datetime import datetime

from collector.model import GuestFsUsage
from collector.store.base import TimeSeriesStore
from collector.store.jsonmeta import merge_json_meta, read_json_meta

META_KEY = "guest_fs_usage"
#: Pseudo filesystems the agent lists that hold no disk blocks.
_VIRTUAL_FSTYPES = frozenset({"tmpfs", "devtmpfs", "proc", "sysfs", "overlay", "squashfs", "ramfs", "iso9660"})
log = logging.getLogger(__name__)


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
    merge_json_meta(store, META_KEY, {
        uuid: {"used_bytes": r.used_bytes, "total_bytes": r.total_bytes, "filesystems": r.filesystems,
               "at": r.at.isoformat()} for uuid, r in readings.items()})


def stored_usage(store: TimeSeriesStore) -> dict[str, GuestFsUsage]:
    """The newest guest-agent reading of every VM that ever answered (empty when none did)."""
    out: dict[str, GuestFsUsage] = {}
    for uuid, r in read_json_meta(store, META_KEY).items():
        if not isinstance(r, dict):
            continue
        try:
            out[uuid] = GuestFsUsage(int(str(r["used_bytes"])), int(str(r["total_bytes"])),
                                     int(str(r["filesystems"])), datetime.fromisoformat(str(r["at"])))
        except (KeyError, TypeError, ValueError):
            log.warning("guest filesystem reading of %s in the store is malformed: %r; ignored", uuid, r)
    return out

