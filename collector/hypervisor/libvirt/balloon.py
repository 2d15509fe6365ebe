"""Turn on a guest's balloon stats period, so that libvirt reports its used memory.

Without a period (``<memballoon><stats period=...>``) QEMU's virtio balloon reports no guest memory
statistics, and the collector sees no used memory. Setting it needs a read-write connection, opened
briefly and only when a newly started domain needs it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import libvirt

from collector.hypervisor.libvirt.errors import close_quietly

log = logging.getLogger(__name__)

_STATS_PERIOD = re.compile(r"<stats\s+period=['\"](\d+)['\"]")


def needs_balloon_period(domain_xml: str) -> bool:
    """True for a virtio balloon without a stats period (or with period 0)."""
    if "<memballoon model='virtio'" not in domain_xml and '<memballoon model="virtio"' not in domain_xml:
        return False
    period = _STATS_PERIOD.search(domain_xml)
    return period is None or int(period.group(1)) == 0


def domains_without_period(doms: Iterable[Any]) -> list[tuple[str, str]]:
    """(UUID, name) of the domains whose virtio balloon has no stats period; unreadable XML is skipped."""
    todo: list[tuple[str, str]] = []
    for dom in doms:
        try:
            xml = dom.XMLDesc(0)
        except libvirt.libvirtError as exc:
            log.debug("%s: cannot read XML to check balloon stats: %s", dom.name(), exc)
            continue
        if needs_balloon_period(xml):
            todo.append((dom.UUIDString(), dom.name()))
    return todo


def set_balloon_period(
    uri: str, todo: list[tuple[str, str]], period_s: int, open_readwrite: Callable[[str], Any]
) -> None:
    """Set the live balloon stats period of each (UUID, name) over one short read-write connection.

    Best effort: every failure is logged at debug level and the domain keeps its settings; raises nothing.
    """
    if not todo:
        return
    try:
        conn = open_readwrite(uri)
    except libvirt.libvirtError as exc:
        log.debug("%s: no read-write connection for balloon stats (%s)", uri, exc)
        return
    try:
        for uuid, name in todo:
            try:
                conn.lookupByUUIDString(uuid).setMemoryStatsPeriod(period_s, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                log.debug("%s: balloon stats period set to %ss", name, period_s)
            except libvirt.libvirtError as exc:
                log.debug("%s: cannot set balloon stats period: %s", name, exc)
    finally:
        close_quietly(conn)
