"""A 1,000-domain libvirt test-driver fleet, sampled in full through the per-domain path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from collector.hypervisor.libvirt import LibvirtSource
from collector.hypervisor.testfleet import make_fleet
from collector.model import VmState

pytestmark = pytest.mark.integration

SNAPSHOT_AT = datetime(2026, 1, 15, 6, 30, tzinfo=UTC)


def test_thousand_domain_fleet_is_sampled_in_full(testdriver_fleet: Callable[..., str]) -> None:
    uri = testdriver_fleet(1000, seed=7, snapshot_at=SNAPSHOT_AT)
    expected = {d.uuid: d for d in make_fleet(1000, seed=7, snapshot_at=SNAPSHOT_AT)}

    with LibvirtSource(uri) as source:
        first = source.sample_all()
        second = source.sample_all()  # served partly from the per-domain cache

    for batch in (first, second):
        assert batch.ok and batch.errors == ()
        assert batch.driver.lower() == "test"
        assert len(batch.samples) == 1000
        assert {s.ref.uuid for s in batch.samples} == set(expected)
        for vm in batch.samples:
            want = expected[vm.ref.uuid]
            assert vm.ref.name == want.name and vm.ref.uri == uri
            assert vm.state is (VmState.RUNNING if want.running else VmState.SHUTOFF)
            assert (vm.vcpus, vm.max_vcpus) == (want.vcpus, want.max_vcpus)
            assert (vm.memory_bytes, vm.max_memory_bytes) == (want.memory_bytes, want.max_memory_bytes)
            assert vm.labels == dict(want.labels)
            assert vm.snapshot_times == want.snapshot_times
            assert vm.cpu_time_ns is None  # synthetic on the test driver
            if want.running:
                assert vm.memory_used_bytes == want.memory_bytes // 2  # the driver's fixed half
                assert [d.device for d in vm.disks] == ["vda"] and len(vm.nets) == 1
    assert sum(s.state is VmState.SHUTOFF for s in second.samples) == 100
    assert sum("rightsizer_exclude" in s.labels for s in second.samples) == 40
    assert sum(bool(s.snapshot_times) for s in second.samples) == 334
