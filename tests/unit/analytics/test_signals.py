"""Contention and memory pressure change findings; storage advice picks the class its P99 load needs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analytics.catalogue import load_storage_prices
from analytics.rightsizing.base import Finding
from analytics.signals import ContentionSignal, host_loads
from analytics.storage import needed_class, storage_advice
from collector.model import UsagePoint, VmRecord, VmState
from core.settings import SignalSettings
from tests.helpers.catalogues import small_catalogue
from tests.helpers.ten_days import GIB, NOW, host_vm, signal_points


def _findings(store, vms, points, analyse):
    store.write_history(vms, points)
    return {f.name: f for f in analyse(store, small_catalogue(), now=NOW, signal_settings=SignalSettings())}


def test_a_busy_contended_vm_is_not_upsized_and_names_its_host(store, analyse) -> None:
    hot, calm = host_vm("hot", 2, 2, host="hv-7"), host_vm("calm", 2, 2)
    pts = signal_points(hot, 1.95, 1.0, cpu_delay_vcpus=0.8) + signal_points(calm, 1.95, 1.0, cpu_delay_vcpus=0.01)
    f = _findings(store, [hot, calm], pts, analyse)
    assert f["calm"].finding is Finding.UNDER_PROVISIONED  # the same load without delay is an upsize
    assert f["hot"].finding is Finding.CONTENTION and f["hot"].target_type is None
    assert f["hot"].monthly_savings == 0.0 and "hv-7" in f["hot"].reasons["overall"]
    assert "40%" in f["hot"].reasons["contention"]  # 0.8 s/s over 2 vCPUs


def test_without_signal_settings_findings_are_unchanged(store, analyse) -> None:
    hot = host_vm("hot", 2, 2)
    store.write_history([hot], signal_points(hot, 1.95, 1.0, cpu_delay_vcpus=0.8))
    (f,) = analyse(store, small_catalogue(), now=NOW)
    assert f.finding is Finding.UNDER_PROVISIONED


def test_memory_pressure_blocks_the_memory_downsize(store, analyse) -> None:
    # 8 GiB allocated, balloon says 1 GiB used: a downsize to s.2 unless the guest swaps
    quiet, swapping = host_vm("quiet", 2, 8), host_vm("swapping", 2, 8)
    pts = signal_points(quiet, 0.5, 1.0, swap_in_bps=0.0, swap_out_bps=0.0, major_faults_ps=0.0)
    burst = signal_points(swapping, 0.5, 1.0, swap_in_bps=0.0, swap_out_bps=0.0, major_faults_ps=0.0)
    burst[-5] = replace(burst[-5], swap_in_bps=4 * 2**20, major_faults_ps=900.0)
    f = _findings(store, [quiet, swapping], pts + burst, analyse)
    assert f["quiet"].finding is Finding.OVER_PROVISIONED and f["quiet"].target_memory_bytes == 2 * GIB
    s = f["swapping"]
    assert s.target_memory_bytes is None or s.target_memory_bytes >= 8 * GIB
    assert s.finding is not Finding.OVER_PROVISIONED or (s.target_memory_bytes or 0) >= 8 * GIB
    assert "1 hour(s)" in s.reasons["memory_pressure"]


def test_storage_class_follows_p99_load_and_unused_capacity_is_priced() -> None:
    prices = load_storage_prices()
    assert needed_class(prices, 100, 20e6) == "storage_premium_perf0"  # 120 IOPS, 25 MB/s
    assert needed_class(prices, 900, 80e6) == "storage_premium_perf2"  # 1000 IOPS, 100 MB/s
    vm = host_vm("db", 2, 8)
    hours = pd.DataFrame({"vm": vm.uuid, "ts": pd.date_range(end=pd.Timestamp(NOW), periods=48, freq="h"),
                          "disk_capacity_bytes": 100e9, "disk_allocation_bytes": 20e9,
                          "disk_iops_p99": np.r_[np.full(47, 50.0), 400.0], "disk_bps_p99": 10e6})
    settings = SignalSettings()
    (adv,) = storage_advice(hours, [vm], prices, "storage_premium_perf1", settings, now=pd.Timestamp(NOW),
                            lookback_days=14).values()
    assert adv.needed_class == "storage_premium_perf1"  # P99 of the hours reaches the 400 IOPS burst
    assert adv.used_source == "allocation" and adv.recommended_capacity_bytes == 25e9
    assert adv.monthly_savings == pytest.approx(75e9 / 1e9 * prices.per_gb_hour * 720, abs=0.01)
    (agent,) = storage_advice(hours, [vm], prices, "storage_premium_perf1", settings, now=pd.Timestamp(NOW),
                              lookback_days=14, guest_fs_used={vm.uuid: 4e9}).values()
    assert agent.used_source == "guest-agent" and agent.recommended_capacity_bytes == 10e9  # the 10 GB floor
    unknown = hours.assign(disk_allocation_bytes=np.nan)
    (none,) = storage_advice(unknown, [vm], prices, "storage_premium_perf1", settings, now=pd.Timestamp(NOW),
                             lookback_days=14).values()
    assert none.used_source == "unknown" and none.recommended_capacity_bytes is None
    assert "unknown" in none.reason


def test_host_overcommit() -> None:
    a, b = host_vm("a", 4, 2, host="hv1"), host_vm("b", 2, 2, host="hv1")
    (load,) = host_loads([a, b], {"hv1": 2}, {})
    assert (load.vcpus_allocated, load.overcommit, load.delay_share) == (6, 3.0, None)


def test_host_loads_split_an_interleaved_fleet_by_host() -> None:
    a, b, c = host_vm("a", 4, 2, host="hv2"), host_vm("b", 2, 2, host="hv1"), host_vm("c", 2, 2, host="hv2")
    stopped, unplaced = replace(host_vm("d", 8, 2, host="hv1"), state=VmState.SHUTOFF), host_vm("e", 2, 2, host="")
    contention = {vm.uuid: ContentionSignal(vm.uuid, vm.host, share, share, share >= 0.5, "")
                  for vm, share in ((a, 0.6), (c, 0.9), (b, 0.1))}
    hv1, hv2 = host_loads([a, b, c, stopped, unplaced], {"hv2": 3}, contention)
    assert (hv1.host, hv1.vcpus_allocated, hv1.host_cpus, hv1.overcommit) == ("hv1", 2, None, None)
    assert (hv1.delay_share, hv1.contended_vms) == (0.1, ())
    assert (hv2.host, hv2.vcpus_allocated, hv2.overcommit) == ("hv2", 6, 2.0)
    assert hv2.delay_share == pytest.approx((0.6 * 4 + 0.9 * 2) / 6)
    assert hv2.contended_vms == ("a", "c")  # inventory order within the host


def _disk_points(vm: VmRecord) -> list[UsagePoint]:
    return [replace(p, disk_capacity_bytes=200_000_000_000, disk_allocation_bytes=30_000_000_000,
                    disk_read_iops=20.0, disk_write_iops=20.0)
            for p in signal_points(vm, 0.5, 1.0)]


def test_storage_advice_reaches_the_findings_with_guest_agent_use_from_the_store(store, analyse) -> None:
    from analytics.findings.context import LifecycleRules
    from collector.guestfs import GuestFsUsage, record_usage
    from core.settings import CostSettings

    vm, other = host_vm("files", 2, 2), host_vm("plain", 2, 2)
    store.write_history([vm, other], _disk_points(vm) + _disk_points(other))
    record_usage(store, {vm.uuid: GuestFsUsage(5_000_000_000, 190_000_000_000, 1, NOW)})
    prices = load_storage_prices()
    rules = LifecycleRules(7.0, CostSettings(), prices)
    found = {f.name: f for f in analyse(store, small_catalogue(), now=NOW, signal_settings=SignalSettings(),
                                                rules=rules)}
    agent, alloc = found["files"].storage, found["plain"].storage
    assert agent is not None and alloc is not None
    assert (agent.used_source, agent.recommended_capacity_bytes) == ("guest-agent", 10e9)  # 10 GB floor
    assert (alloc.used_source, alloc.recommended_capacity_bytes) == ("allocation", 38e9)  # 30 GB + 25 %
    assert agent.recommended_class == "storage_premium_perf0"
    assert agent.monthly_savings == pytest.approx(190 * prices.per_gb_hour * 720, abs=0.01)
    entry = found["files"].plan_entry()["storage"]
    assert entry["used_source"] == "guest-agent" and entry["monthly_savings"] == agent.monthly_savings
    assert entry["currency"] == "EUR" and "guest-agent" in found["files"].reasons["storage"]
    assert found["files"].row()["storage_savings"] == round(agent.monthly_savings, 2)
    # without [costs] include_storage there is nothing to price: no advice
    unpriced = LifecycleRules(7.0, CostSettings(include_storage=False), prices)
    unpriced_findings = analyse(store, small_catalogue(), now=NOW, signal_settings=SignalSettings(), rules=unpriced)
    assert unpriced_findings and all(f.storage is None for f in unpriced_findings)


def test_group_quantile_is_numpys_per_group_bit_for_bit() -> None:
    from analytics.storage import group_quantile

    rng = np.random.default_rng(20261207)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        rows = int(rng.integers(0, 300))
        codes = rng.integers(0, n, rows)
        values = rng.lognormal(3, 2, rows)
        values[rng.random(rows) < 0.2] = np.nan
        q = float(rng.choice([0.99, 0.5, 0.95, 0.0, 1.0, rng.random()]))
        got = group_quantile(codes, values, n, q)
        for k in range(n):
            v = values[(codes == k) & ~np.isnan(values)]
            if len(v):
                assert got[k] == np.quantile(v, q)  # exact, not approximately
            else:
                assert np.isnan(got[k])
