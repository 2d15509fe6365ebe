from __future__ import annotations

import pytest

from collector.errors import VmNotFoundError
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.model import VmState
from collector.sampler import Sampler

GIB = 1024**3


def _sampler(fake, store, clock):
    return Sampler([fake], store, clock=clock, interval_s=60)


def test_rates_from_counters(store, clock):
    fake = FakeHypervisor(Topology().add_vm("web", cpu_vcpus=1.5, disk_write_bps=1000.0, net_rx_bps=50.0),
                          clock=clock)
    s = _sampler(fake, store, clock)
    first = s.poll_once()
    assert first[0].ok
    clock.advance(60)
    s.poll_once()
    raw = store.frame(clock.now.replace(hour=0), clock.now.replace(hour=23), resolution="raw")
    assert len(raw) == 2
    assert raw["gap"].tolist() == [True, False]  # first sighting has no rate
    last = raw.iloc[1]
    assert last["cpu_vcpus"] == pytest.approx(1.5)
    assert last["disk_write_bps"] == pytest.approx(1000.0)
    assert last["net_rx_bps"] == pytest.approx(50.0)
    assert last["memory_used_bytes"] == 2 * GIB
    assert last["interval_s"] == 60


def test_counter_reset_gives_gap_not_negative_rate(store, clock):
    fake = FakeHypervisor(Topology().add_vm("db", cpu_vcpus=1.0, disk_read_bps=500.0), clock=clock)
    s = _sampler(fake, store, clock)
    for _ in range(3):
        s.poll_once()
        clock.advance(60)
    fake.reboot("db")  # counters restart from zero, as after a QEMU restart
    s.poll_once()
    clock.advance(60)
    s.poll_once()
    raw = store.frame(clock.now.replace(hour=0), clock.now.replace(hour=23), resolution="raw")
    assert (raw["cpu_vcpus"].dropna() >= 0).all()
    assert (raw["disk_read_bps"].dropna() >= 0).all()
    reset_row = raw.iloc[3]
    assert bool(reset_row["gap"]) and reset_row["cpu_vcpus"] != reset_row["cpu_vcpus"]  # NaN
    assert raw.iloc[4]["cpu_vcpus"] == pytest.approx(1.0)


def test_shut_off_vm_demands_nothing_and_restarts_fresh(store, clock):
    fake = FakeHypervisor(Topology().add_vm("batch", cpu_vcpus=2.0), clock=clock)
    s = _sampler(fake, store, clock)
    s.poll_once()
    clock.advance(60)
    fake.set_state("batch", VmState.SHUTOFF)
    s.poll_once()
    clock.advance(60)
    fake.set_state("batch", VmState.RUNNING)
    fake.reboot("batch")
    s.poll_once()
    raw = store.frame(clock.now.replace(hour=0), clock.now.replace(hour=23), resolution="raw")
    assert raw["state"].tolist() == ["running", "shutoff", "running"]
    assert raw.iloc[1]["cpu_vcpus"] == 0.0
    assert bool(raw.iloc[2]["gap"])


def test_one_failing_vm_and_one_unreachable_uri_do_not_stop_the_cycle(store, clock):
    good = FakeHypervisor(Topology().add_vms(3), clock=clock, uri="fake:///a")
    down = FakeHypervisor(Topology().add_vms(2, prefix="b"), clock=clock, uri="fake:///b")
    down.set_reachable(False)
    good.fail_vm("vm-1", VmNotFoundError("domain vanished"))
    s = Sampler([down, good], store, clock=clock, interval_s=60)
    batches = s.poll_once()
    assert [b.ok for b in batches] == [False, True]
    assert {r.name for r in store.vms()} == {"vm-0", "vm-2"}
    snap = s.snapshot
    assert snap.health["fake:///b"].up is False and snap.health["fake:///a"].up is True
    assert snap.errors_total == {"connection": 1, "not-found": 1}
    down.set_reachable(True)  # reconnects on a later cycle
    clock.advance(60)
    s.poll_once()
    assert s.snapshot.health["fake:///b"].up is True
    assert len(store.vms()) == 4


def test_rates_survive_a_collector_restart(store, clock):
    fake = FakeHypervisor(Topology().add_vm("api", cpu_vcpus=0.25), clock=clock)
    _sampler(fake, store, clock).poll_once()
    clock.advance(60)
    fresh = _sampler(fake, store, clock)  # new process: counters come from the store
    fresh.poll_once()
    raw = store.frame(clock.now.replace(hour=0), clock.now.replace(hour=23), resolution="raw")
    assert raw.iloc[-1]["cpu_vcpus"] == pytest.approx(0.25)


def test_unknown_guest_memory_stays_unknown(store, clock):
    fake = FakeHypervisor(Topology().add_vm("nob", memory_used_bytes=None, memory_mib=2048), clock=clock)
    s = _sampler(fake, store, clock)
    s.poll_once()
    clock.advance(60)
    s.poll_once()
    raw = store.frame(clock.now.replace(hour=0), clock.now.replace(hour=23), resolution="raw")
    assert raw["memory_used_bytes"].isna().all()
    assert (raw["memory_bytes"] == 2048 * 1024**2).all()


def test_each_hosts_cpu_count_is_kept_in_the_store_and_written_only_when_it_changes(store, clock):
    from collector.store.jsonmeta import stored_host_cpus

    writes: list[str] = []
    real_set_meta = store.set_meta
    store.set_meta = lambda key, value: (writes.append(key), real_set_meta(key, value))  # count the writes
    hv1 = FakeHypervisor(Topology().add_vm("a"), uri="fake:///1", host="hv1", clock=clock, host_cpus=8)
    hv2 = FakeHypervisor(Topology().add_vm("b"), uri="fake:///2", host="hv2", clock=clock, host_cpus=2)
    sampler = Sampler([hv1, hv2], store, clock=clock, interval_s=60)
    for _ in range(3):
        sampler.poll_once()
        clock.advance(60)
    assert stored_host_cpus(store) == {"hv1": 8, "hv2": 2}
    assert writes.count("host_cpus") == 2  # once per host, not once per cycle
