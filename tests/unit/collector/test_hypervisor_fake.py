"""FakeHypervisor: exact counters from steady rates over an injected clock, and scripted failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.errors import VmNotFoundError
from collector.hypervisor.base import HypervisorSource
from collector.hypervisor.fake import FakeHypervisor, FakeVm, Topology
from collector.model import VmState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class StepClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_topology_builds_named_vms_with_defaults() -> None:
    topo = Topology().add_vms(3, vcpus=2, memory_mib=4096).add_vm("db", vcpus=8, max_vcpus=16)

    assert [vm.name for vm in topo.vms] == ["vm-0", "vm-1", "vm-2", "db"]
    assert topo.vms[0].memory_bytes == 4096 * 1024 * 1024 == topo.vms[0].max_memory_bytes
    assert (topo.vms[3].vcpus, topo.vms[3].max_vcpus) == (8, 16)
    assert len({vm.uuid for vm in topo.vms}) == 4
    assert FakeVm("db").uuid == topo.vms[3].uuid  # stable per name
    with pytest.raises(ValueError, match="duplicate fake VM name 'db'"):
        topo.add_vm("db")
    with pytest.raises(ValueError, match="vcpus=0"):
        FakeVm("x", vcpus=0)


def test_counters_integrate_rates_exactly() -> None:
    clock = StepClock()
    fake: HypervisorSource = FakeHypervisor(
        Topology().add_vm("web", cpu_vcpus=1.5, disk_write_bps=1000.0, net_rx_bps=10.0), clock=clock
    )

    first = fake.sample_all().samples[0]
    clock.advance(60)
    second = fake.sample_all().samples[0]

    assert first.cpu_time_ns == 0
    assert second.cpu_time_ns == 90_000_000_000  # 1.5 vCPU x 60 s
    assert second.disk_write_bytes == 60_000
    assert second.net_rx_bytes == 600
    assert second.memory_used_bytes == 2 * 1024**3


def test_world_changes_between_cycles() -> None:
    clock = StepClock()
    fake = FakeHypervisor(Topology().add_vms(3, cpu_vcpus=1.0), clock=clock)
    fake.sample_all()
    clock.advance(10)
    fake.set_usage("vm-0", cpu_vcpus=0.25)
    fake.set_state("vm-1", VmState.SHUTOFF)
    fake.fail_vm("vm-2", VmNotFoundError("vm-2 vanished"))
    clock.advance(10)

    batch = fake.sample_all()

    vms = {s.ref.name: s for s in batch.samples}
    # vm-0: 10 s at 1.0, then 10 s at 0.25 after set_usage
    assert vms["vm-0"].cpu_time_ns == 12_500_000_000
    assert vms["vm-1"].state is VmState.SHUTOFF and vms["vm-1"].cpu_time_ns is None
    assert [(e.ref.name if e.ref else None, e.kind) for e in batch.errors] == [("vm-2", "not-found")]


def test_reboot_resets_counters_and_remove_drops_vm() -> None:
    clock = StepClock()
    fake = FakeHypervisor(Topology().add_vms(2, cpu_vcpus=1.0), clock=clock)
    fake.sample_all()
    clock.advance(5)
    fake.sample_all()
    fake.reboot("vm-0")
    fake.remove("vm-1")
    clock.advance(5)

    batch = fake.sample_all()

    assert [(s.ref.name, s.cpu_time_ns) for s in batch.samples] == [("vm-0", 5_000_000_000)]


def test_unreachable_uri_gives_not_ok_batch() -> None:
    fake = FakeHypervisor(Topology().add_vms(1), uri="fake:///a")
    fake.set_reachable(False)

    batch = fake.sample_all()

    assert not batch.ok and batch.samples == ()
    assert batch.errors[0].kind == "connection" and batch.uri == "fake:///a"
