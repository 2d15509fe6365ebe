"""Contention, memory-pressure and disk-performance signals: rates, schema migration, hourly rollups, exposure."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from collector.exporter import build_registry
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.sampler import Sampler
from collector.store.schema import MIGRATIONS, SCHEMA_VERSION
from collector.store.sqlite import SqliteStore


def _run(fake, store, clock, cycles: int = 3, step_s: int = 60) -> Sampler:
    s = Sampler([fake], store, clock=clock, interval_s=step_s)
    for _ in range(cycles):
        s.poll_once()
        clock.advance(step_s)
    return s


def _raw(store, clock):
    return store.frame(clock.now - timedelta(days=1), clock.now + timedelta(days=1), resolution="raw")


def test_signal_rates_from_counters(store, clock):
    topo = Topology().add_vm("busy", vcpus=2, cpu_vcpus=1.0, cpu_delay_vcpus=0.5, swap_in_bps=4096.0,
                             swap_out_bps=8192.0, major_faults_ps=12.0, disk_read_bps=4096 * 100.0,
                             disk_write_bps=4096 * 50.0, disk_latency_s=0.002)
    _run(FakeHypervisor(topo, clock=clock), store, clock)
    last = _raw(store, clock).iloc[-1]
    assert last["cpu_delay_vcpus"] == pytest.approx(0.5)
    assert (last["swap_in_bps"], last["swap_out_bps"]) == (pytest.approx(4096.0), pytest.approx(8192.0))
    assert last["major_faults_ps"] == pytest.approx(12.0)
    assert (last["disk_read_iops"], last["disk_write_iops"]) == (pytest.approx(100.0), pytest.approx(50.0))
    assert last["disk_read_time_s_per_s"] == pytest.approx(0.2)  # 100 req/s x 2 ms
    assert last["disk_write_time_s_per_s"] == pytest.approx(0.1)
    assert last["disk_allocation_bytes"] == 20 * 2**30


def test_unreported_signals_stay_missing_not_zero(store, clock):
    topo = Topology().add_vm("plain", cpu_delay_vcpus=None, swap_in_bps=None, swap_out_bps=None, major_faults_ps=None)
    fake = FakeHypervisor(topo, clock=clock, host="hv1")
    sampler = _run(fake, store, clock)
    last = _raw(store, clock).iloc[-1]
    for col in ("cpu_delay_vcpus", "swap_in_bps", "swap_out_bps", "major_faults_ps"):
        assert last[col] != last[col], col  # NaN
    reg = build_registry(lambda: sampler.snapshot)
    base = {"vm": "plain", "uuid": fake.vm("plain").uuid, "host": "hv1"}
    for name in ("rightsizer_vm_cpu_delay_seconds_total", "rightsizer_vm_memory_swap_in_bytes_total",
                 "rightsizer_vm_memory_major_faults_total"):
        assert reg.get_sample_value(name, base) is None, name
    assert reg.get_sample_value("rightsizer_vm_disk_read_requests_total", {**base, "device": "vda"}) == 0.0


def test_exporter_serves_the_new_counters_in_base_units(store, clock):
    topo = Topology().add_vm("busy", cpu_delay_vcpus=0.25, swap_out_bps=1000.0, major_faults_ps=2.0,
                             disk_write_bps=4096.0, disk_latency_s=0.5)
    fake = FakeHypervisor(topo, clock=clock, host="hv1")
    sampler = _run(fake, store, clock, cycles=2, step_s=100)  # counters at t=100 s
    reg = build_registry(lambda: sampler.snapshot)
    base = {"vm": "busy", "uuid": fake.vm("busy").uuid, "host": "hv1"}
    disk = {**base, "device": "vda"}
    assert reg.get_sample_value("rightsizer_vm_cpu_delay_seconds_total", base) == pytest.approx(25.0)
    assert reg.get_sample_value("rightsizer_vm_memory_swap_out_bytes_total", base) == pytest.approx(100_000.0)
    assert reg.get_sample_value("rightsizer_vm_memory_major_faults_total", base) == pytest.approx(200.0)
    assert reg.get_sample_value("rightsizer_vm_disk_write_requests_total", disk) == pytest.approx(100.0)
    assert reg.get_sample_value("rightsizer_vm_disk_write_time_seconds_total", disk) == pytest.approx(50.0)
    assert reg.get_sample_value("rightsizer_vm_disk_capacity_bytes", disk) == 20 * 2**30
    assert reg.get_sample_value("rightsizer_vm_disk_allocation_bytes", disk) == 20 * 2**30


def test_hourly_rollup_of_signals(store, clock):
    topo = Topology().add_vm("busy", cpu_delay_vcpus=0.5, swap_in_bps=100.0, major_faults_ps=3.0,
                             disk_read_bps=4096 * 10.0)
    _run(FakeHypervisor(topo, clock=clock), store, clock, cycles=13, step_s=300)
    store.refresh_rollups()
    hours = store.frame(clock.now - timedelta(days=1), clock.now + timedelta(days=1), resolution="hour")
    full = hours[hours["samples"] >= 11].iloc[0]
    n = full["running_s"] / 300
    assert full["cpu_delay_mean_vcpus"] == pytest.approx(0.5)
    assert full["swap_in_bytes"] == pytest.approx(100.0 * 300 * n)
    assert full["major_faults"] == pytest.approx(3.0 * 300 * n)
    assert full["disk_read_reqs"] == pytest.approx(10.0 * 300 * n)
    assert full["disk_iops_p99"] == pytest.approx(10.0)
    assert full["disk_bps_p99"] == pytest.approx(40960.0)


def test_version_1_store_migrates_and_keeps_its_rows(tmp_path, clock):
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    con.execute("INSERT INTO counters VALUES ('u1', 100, 5, 1, 2, 3, 4)")
    con.execute("INSERT INTO samples(vm, ts, state, vcpus, memory_bytes, cpu_vcpus, gap) "
                "VALUES ('u1', 100, 'running', 2, 1024, 0.5, 0)")
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    store = SqliteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        k = store.counters()["u1"]
        assert (k.cpu_time_ns, k.net_tx_bytes, k.cpu_delay_ns, k.disk_write_time_ns) == (5, 4, None, None)
        raw = store.frame(datetime(1970, 1, 1, tzinfo=UTC), clock.now, resolution="raw")
        assert raw.iloc[0]["cpu_vcpus"] == 0.5 and raw.iloc[0]["cpu_delay_vcpus"] != raw.iloc[0]["cpu_delay_vcpus"]
    finally:
        store.close()
