"""Decoding what libvirt reports: bulk stats dicts, domain and snapshot XML (no libvirt calls)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import libvirt
import pytest

from collector.hypervisor.libvirt.balloon import needs_balloon_period
from collector.hypervisor.libvirt.stats import (
    bulk_disks,
    has_bulk_usage,
    memory_used_bytes,
    parse_domain_xml,
    parse_snapshot_time,
    sample_from_bulk,
    vcpu_delay_ns,
)
from collector.model import VmRef, VmState

REF = VmRef("qemu:///system", "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41", "web-1")


def test_parse_snapshot_time_and_domain_xml() -> None:
    assert parse_snapshot_time(
        "<domainsnapshot><creationTime>86400</creationTime></domainsnapshot>"
    ) == datetime(1970, 1, 2, tzinfo=UTC)
    assert parse_snapshot_time("<domainsnapshot/>") is None
    facts = parse_domain_xml(
        "<domain><vcpu current='1'>3</vcpu><devices>"
        "<disk device='cdrom'><target dev='hdc'/></disk><disk device='disk'><target dev='vda'/></disk>"
        "<interface><mac address='52:54:00:00:00:01'/></interface>"
        "<interface><target dev='vnet3'/></interface>"
        "</devices></domain>"
    )
    assert (facts.max_vcpus, facts.disks, facts.nics) == (3, ("vda",), ("52:54:00:00:00:01", "vnet3"))


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"balloon.available": 1000, "balloon.usable": 700, "balloon.unused": 500}, 300 * 1024),
        ({"balloon.available": 1000, "balloon.unused": 500}, 500 * 1024),
        ({"balloon.current": 2048, "balloon.rss": 3000}, None),
        ({"balloon.available": 1000}, None),
    ],
)
def test_memory_used_prefers_usable_and_never_falls_back_to_allocation(
    stats: dict[str, int], expected: int | None
) -> None:
    assert memory_used_bytes(stats) == expected


def test_vcpu_delay_is_summed_over_the_vcpus_that_report_it() -> None:
    assert vcpu_delay_ns({"vcpu.current": 2, "vcpu.maximum": 3, "vcpu.0.delay": 5, "vcpu.2.delay": 7}) == 12
    assert vcpu_delay_ns({"vcpu.current": 2, "vcpu.0.state": 1}) is None  # libvirt < 9.0: none, not 0


def test_bulk_disks_leave_what_the_driver_omits_absent() -> None:
    (disk,) = bulk_disks({"block.count": 1, "block.0.name": "vda", "block.0.rd.bytes": 10, "block.0.capacity": 99})
    assert (disk.device, disk.read_bytes, disk.write_bytes, disk.capacity_bytes) == ("vda", 10, 0, 99)
    assert (disk.read_reqs, disk.allocation_bytes, disk.read_time_ns) == (None, None, None)


def test_a_shut_off_bulk_record_keeps_its_size_and_has_no_usage() -> None:
    stats: dict[str, Any] = {"state.state": libvirt.VIR_DOMAIN_SHUTOFF, "vcpu.current": 2, "vcpu.maximum": 4,
                             "balloon.current": 1024, "cpu.time": 5, "balloon.available": 1000,
                             "balloon.usable": 400, "net.count": 0}
    assert has_bulk_usage(stats) and not has_bulk_usage({"state.state": 1})
    vm = sample_from_bulk(REF, "hv1", stats, labels={"team": "a"}, snapshots=(), synthetic_cpu=False)
    assert (vm.state, vm.vcpus, vm.max_vcpus, vm.memory_bytes) == (VmState.SHUTOFF, 2, 4, 1024 * 1024)
    assert (vm.cpu_time_ns, vm.memory_used_bytes, vm.cpu_delay_ns) == (None, None, None)
    running = sample_from_bulk(REF, "hv1", {**stats, "state.state": libvirt.VIR_DOMAIN_RUNNING},
                               labels={}, snapshots=(), synthetic_cpu=False)
    assert (running.cpu_time_ns, running.memory_used_bytes) == (5, 600 * 1024)
    synthetic = sample_from_bulk(REF, "hv1", {**stats, "state.state": libvirt.VIR_DOMAIN_RUNNING},
                                 labels={}, snapshots=(), synthetic_cpu=True)
    assert synthetic.cpu_time_ns is None


@pytest.mark.parametrize(("xml", "needed"), [
    ("<domain><devices><memballoon model='virtio'/></devices></domain>", True),
    ("<domain><devices><memballoon model='virtio'><stats period='0'/></memballoon></devices></domain>", True),
    ("<domain><devices><memballoon model='virtio'><stats period='10'/></memballoon></devices></domain>", False),
    ("<domain><devices><memballoon model='none'/></devices></domain>", False),
])
def test_a_balloon_period_is_needed_only_by_a_virtio_balloon_without_one(xml: str, needed: bool) -> None:
    assert needs_balloon_period(xml) is needed
