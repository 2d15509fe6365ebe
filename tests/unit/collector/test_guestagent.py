"""Guest filesystem use: parsing a guestInfo dict, and the probe that asks agents off the collection cycle."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import libvirt
import pytest

from collector.guestfs import parse_guest_info, record_usage, stored_usage
from collector.hypervisor.guestagent import GuestAgentProbe
from collector.model import GuestFsUsage

DATA = Path(__file__).resolve().parents[2] / "data" / "guestinfo_filesystem.json"
AT = datetime(2026, 11, 2, 10, tzinfo=UTC)


def _info() -> dict[str, object]:
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    doc.pop("_comment")
    return doc


def test_parse_sums_disk_backed_filesystems_once_each() -> None:
    usage = parse_guest_info(_info(), AT)
    # vda1 (the bind mount counted once) + vda15; tmpfs left out; vdb reported no sizes
    assert usage == GuestFsUsage(2830893056 + 12124160, 20956397568 + 129718272, 2, AT)


@pytest.mark.parametrize("info", [{}, {"fs.count": 0}, {"fs.count": "x"},
                                  {"fs.count": 1, "fs.0.name": "tmpfs", "fs.0.fstype": "tmpfs",
                                   "fs.0.used-bytes": 1, "fs.0.total-bytes": 2}])
def test_parse_without_sized_filesystems_is_unknown(info: dict[str, object]) -> None:
    assert parse_guest_info(info, AT) is None


def test_readings_round_trip_through_the_store_meta(store) -> None:
    record_usage(store, {"u1": GuestFsUsage(5, 10, 1, AT)})
    record_usage(store, {"u2": GuestFsUsage(7, 20, 2, AT)})  # merges, keeps u1
    assert stored_usage(store) == {"u1": GuestFsUsage(5, 10, 1, AT), "u2": GuestFsUsage(7, 20, 2, AT)}
    store.set_meta("guest_fs_usage", "{not json")
    assert stored_usage(store) == {}


class _Dom:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def guestInfo(self, types: int, flags: int) -> dict[str, object]:  # noqa: N802 - libvirt's name
        assert types == libvirt.VIR_DOMAIN_GUEST_INFO_FILESYSTEM
        self.calls += 1
        if self.behaviour == "no-agent":
            raise libvirt.libvirtError("argument unsupported: QEMU guest agent is not configured")
        if self.behaviour == "hang":
            time.sleep(2.0)
        return _info()


class _Conn:
    def __init__(self, doms: dict[str, _Dom]) -> None:
        self.doms = doms

    def lookupByUUIDString(self, uuid: str) -> _Dom:  # noqa: N802 - libvirt's name
        return self.doms[uuid]

    def close(self) -> int:
        return 0


def test_probe_reads_agents_off_the_caller_and_leaves_silent_ones_unknown(caplog) -> None:
    doms = {"agent": _Dom("ok"), "none": _Dom("no-agent"), "slow": _Dom("hang")}
    opened: list[str] = []

    def open_rw(uri: str) -> _Conn:
        opened.append(uri)
        return _Conn(doms)

    clock = [0.0]
    probe = GuestAgentProbe("qemu:///system", every_s=3600, timeout_s=0.3, open_readwrite=open_rw,
                            clock=lambda: AT, monotonic=lambda: clock[0])
    try:
        started = time.monotonic()
        probe.request(["slow", "none", "agent"])
        assert time.monotonic() - started < 0.1  # the caller (the collection cycle) never waits
        assert probe.wait_idle(5.0)
        assert probe.take() == {"agent": parse_guest_info(_info(), AT)}
        assert probe.take() == {}
        assert probe.unknown == {"none", "slow"}
        assert opened == ["qemu:///system"]  # one read-write connection for all asks
        assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]  # quietly unknown
        probe.request(["agent", "none"])  # not due again within the hour
        assert probe.wait_idle(1.0) and doms["agent"].calls == 1 and doms["none"].calls == 1
        clock[0] = 3600.0
        probe.request(["agent"])
        assert probe.wait_idle(5.0) and doms["agent"].calls == 2
    finally:
        probe.close()
    assert not any(t.name.startswith("guest-agent qemu") for t in threading.enumerate())
