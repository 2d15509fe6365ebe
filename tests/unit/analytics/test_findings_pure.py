"""Pure finding blocks: stopped detection and pricing, projected utilisation, risk in words, regret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.catalogue import GIB, CsvPriceCatalogue, MachineType, StoragePrices
from analytics.costs import fleet_costs
from analytics.findings.lifecycle import find_stopped
from analytics.findings.projection import project_fleet, project_utilisation
from analytics.findings.regret import find_regrets, resizes_in_force
from analytics.findings.risk import RISK_LEGEND, RiskFacts, RiskLevel, assess_risk, legend_text
from analytics.realised import realised_savings
from collector.model import VmRecord, VmState
from collector.store.base import HOUR_COLUMNS, AuditEntry
from core.settings import CostSettings

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def _type(name: str, vcpus: int, memory_gib: float, price: float) -> MachineType:
    return MachineType(name=name, vcpus=vcpus, memory_bytes=int(memory_gib * GIB), price_per_hour=price,
                       currency="EUR", category="standard", source="test", as_of="2026-05-01")


CATALOGUE = CsvPriceCatalogue([_type("s1", 1, 2, 0.05), _type("s2", 2, 4, 0.10), _type("s4", 4, 8, 0.20),
                               _type("s8", 8, 16, 0.40)])
STORAGE = StoragePrices(per_gb_hour=0.0001, per_disk_hour={"perf0": 0.002}, currency="EUR", default_class="perf0")


def _vm(uuid: str, state: VmState = VmState.RUNNING, vcpus: int = 4, memory_gib: float = 8) -> VmRecord:
    return VmRecord(uuid=uuid, name=f"vm-{uuid}", uri="test:///default", host="h1", state=state, vcpus=vcpus,
                    max_vcpus=vcpus, memory_bytes=int(memory_gib * GIB), max_memory_bytes=int(memory_gib * GIB),
                    labels={}, first_seen=T0, last_seen=T0)


def _hours(vm: str, running_s: list[float], *, cpu_p95: float = 0.5, cpu_max: float = 1.0,
           mem_gib: float = 2.0, vcpus: int = 4, memory_gib: float = 8, disk_gb: float = 100.0) -> pd.DataFrame:
    n = len(running_s)
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in HOUR_COLUMNS})
    frame["vm"] = vm
    frame["ts"] = pd.date_range(T0, periods=n, freq="h", tz="UTC")
    frame["running_s"] = running_s
    frame["samples"] = 12.0
    frame["vcpus"] = float(vcpus)
    frame["memory_bytes"] = memory_gib * GIB
    frame["cpu_p95_vcpus"] = np.where(np.asarray(running_s) > 0, cpu_p95, np.nan)
    frame["cpu_max_vcpus"] = np.where(np.asarray(running_s) > 0, cpu_max, np.nan)
    frame["memory_used_max_bytes"] = np.where(np.asarray(running_s) > 0, mem_gib * GIB, np.nan)
    frame["disk_capacity_bytes"] = disk_gb * 1e9
    return frame


# --- stopped --------------------------------------------------------------------------------------------

def _shut_off_fleet() -> tuple[pd.DataFrame, list[VmRecord], datetime]:
    # "off": ran 4 days, then shut off 10 days; "short": ran 10 days, off 4; "on": running throughout
    off = _hours("off", [3600.0] * 96 + [0.0] * 240)
    short = _hours("short", [3600.0] * 240 + [0.0] * 96)
    on = _hours("on", [3600.0] * 336)
    vms = [_vm("off", VmState.SHUTOFF), _vm("short", VmState.SHUTOFF), _vm("on")]
    return pd.concat([off, short, on], ignore_index=True), vms, T0 + timedelta(days=14)


@pytest.mark.parametrize("rule, expected_per_hour", [
    ("storage-only", 0.0001 * 100 + 0.002),  # its disk: 100 GB x 0.0001 + the per-disk fee
    ("full", 0.0001 * 100 + 0.002 + 0.20),  # disk and machine type (s4, inferred from 4 vCPU / 8 GiB)
    ("none", 0.0),
])
def test_shut_off_ten_days_is_stopped_and_priced_by_the_billing_rule(rule: str, expected_per_hour: float) -> None:
    hours, vms, now = _shut_off_fleet()
    costs = fleet_costs(hours, vms, CATALOGUE, STORAGE, CostSettings(stopped_vm_billing=rule, storage_class="perf0"),
                        now=now)
    stopped = find_stopped(costs, vms, now=now, stopped_after_days=7, billing_rule=rule)
    assert set(stopped) == {"off"}  # 4 days off is not yet stopped; a running VM never is
    off = stopped["off"]
    assert off.stopped_days == pytest.approx(10.0)
    assert off.last_running == T0 + timedelta(days=4)
    assert off.price_per_hour == pytest.approx(expected_per_hour)
    assert off.monthly_cost == pytest.approx(expected_per_hour * 720)
    assert "shut off for 10.0 days" in off.reason("EUR")


def test_stopped_threshold_is_configurable_and_unseen_vm_counts_from_first_seen() -> None:
    hours, vms, now = _shut_off_fleet()
    costs = fleet_costs(hours, vms, CATALOGUE, STORAGE, CostSettings(storage_class="perf0"), now=now)
    assert set(find_stopped(costs, vms, now=now, stopped_after_days=3, billing_rule="storage-only")) == {
        "off", "short"}
    ghost = _vm("ghost", VmState.SHUTOFF)
    found = find_stopped(costs, [ghost], now=now, stopped_after_days=7, billing_rule="storage-only")
    assert found["ghost"].last_running is None and found["ghost"].stopped_days == pytest.approx(14.0)
    with pytest.raises(ValueError, match="billing rule"):
        find_stopped(costs, vms, now=now, stopped_after_days=7, billing_rule="half")


# --- projection -----------------------------------------------------------------------------------------

def test_projection_counts_hours_over_the_target() -> None:
    ts = np.arange(6) * 3600.0
    cpu = np.array([0.5, 1.0, 2.5, np.nan, 1.9, 2.1])
    mem = np.array([1.0, 3.7, 3.5, 1.0, np.nan, 1.0]) * GIB
    p = project_utilisation(ts, cpu, mem, target_vcpus=2, target_memory_bytes=4 * GIB)
    assert p.hours == 5  # the hour without CPU data is dropped
    assert p.hours_cpu_over == 2  # 2.5 and 2.1 vCPU on 2 vCPUs
    assert p.hours_memory_over == 1  # 3.7 GiB > 90 % of 4 GiB; 3.5 GiB is 87.5 %
    assert p.hours_over == 3
    assert p.cpu_pct.tolist()[:3] == pytest.approx([25.0, 50.0, 125.0])
    assert "2 h over 100% CPU" in p.summary()
    with pytest.raises(ValueError):
        project_utilisation(ts, cpu, mem, target_vcpus=0, target_memory_bytes=GIB)


def test_fleet_projection_equals_one_vm_at_a_time() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 60, 40)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    ts = np.concatenate([np.arange(k) * 3600.0 for k in lengths])
    cpu = rng.lognormal(0.0, 1.0, len(ts))
    cpu[rng.random(len(ts)) < 0.1] = np.nan
    mem = rng.uniform(0.5, 5.0, len(ts)) * GIB
    mem[rng.random(len(ts)) < 0.2] = np.nan
    mem[bounds[5]:bounds[6]] = np.nan  # one VM without memory data
    groups = np.flatnonzero(rng.random(40) < 0.6)
    vcpus, memory = rng.integers(1, 9, len(groups)), rng.integers(1, 9, len(groups)) * GIB
    # some hours dropped (before the window, no CPU data), and every hour kept
    for cpu_peak, start_s in ((cpu, 7200.0), (np.nan_to_num(cpu, nan=0.3), 0.0)):
        got = project_fleet(bounds, ts, cpu_peak, mem, groups, vcpus, memory, start_s=start_s)
        for g, v, m, p in zip(groups.tolist(), vcpus.tolist(), memory.tolist(), got, strict=True):
            a, b = bounds[g], bounds[g + 1]
            keep = ts[a:b] >= start_s
            want = project_utilisation(ts[a:b][keep], cpu_peak[a:b][keep], mem[a:b][keep], target_vcpus=v,
                                       target_memory_bytes=m)
            for name in ("target_vcpus", "target_memory_bytes", "hours", "hours_cpu_over", "hours_memory_over",
                         "memory_known", "hours_over"):
                assert getattr(p, name) == getattr(want, name), name
            for name in ("hour_s", "cpu_pct", "memory_pct"):
                assert np.array_equal(getattr(p, name), getattr(want, name), equal_nan=True), name
    assert project_fleet(bounds, ts, cpu, mem, groups[:0], vcpus[:0], memory[:0], start_s=0.0) == []


# --- risk -----------------------------------------------------------------------------------------------

def test_risk_words_and_reasons() -> None:
    calm = assess_risk(RiskFacts(hours=336, hours_over=0, growing=False, span_days=14, cpu_peak_to_p95=1.2,
                                 memory_known=True))
    assert calm.level is RiskLevel.VERY_LOW and calm.points == 0
    assert "0 of 336 h in the lookback above the new size" in calm.reasons[0]
    # the same move on a VM with a few hours over, a short history and spikes is not the same risk
    risky = assess_risk(RiskFacts(hours=100, hours_over=3, growing=False, span_days=4, cpu_peak_to_p95=3.0,
                                  memory_known=True))
    assert risky.level is RiskLevel.VERY_HIGH and risky.points == 5  # 3 % over = 3, short span +1, spiky +1
    assert any("spiky" in r for r in risky.reasons) and any("only 4.0 days" in r for r in risky.reasons)
    growing = assess_risk(RiskFacts(hours=336, hours_over=1, growing=True, span_days=14, cpu_peak_to_p95=np.nan,
                                    memory_known=False))
    assert growing.level is RiskLevel.HIGH  # 1 h over (0.3 %) +1, growing +1, memory unknown +1
    assert [lvl for lvl, _ in RISK_LEGEND] == list(RiskLevel)
    assert legend_text().startswith("very-low: ")


# --- regret ---------------------------------------------------------------------------------------------

def _applied(ts: datetime, vm: str, *, before: tuple[int, float, str], after: tuple[int, float, str],
             result: str = "applied") -> AuditEntry:
    return AuditEntry(
        ts=ts, actor="cli", vm_uuid=vm, vm_name=f"vm-{vm}", action="resize",
        before={"config_vcpus": before[0], "config_memory_bytes": int(before[1] * GIB), "machine_type": before[2]},
        after={"target_vcpus": after[0], "target_memory_bytes": int(after[1] * GIB),
               "target_machine_type": after[2]},
        result=result, reason="", price_before_per_hour=0.40, price_after_per_hour=0.10, currency="EUR")


def test_resize_regret_proposes_next_size_up_or_revert_with_evidence() -> None:
    applied = T0 + timedelta(minutes=30)
    entries = [
        _applied(applied, "hot", before=(8, 16, "s8"), after=(2, 4, "s2")),
        _applied(applied, "fine", before=(8, 16, "s8"), after=(2, 4, "s2")),
        _applied(applied, "full", before=(4, 8, "s4"), after=(2, 4, "s2")),
        _applied(applied, "back", before=(8, 16, "s8"), after=(2, 4, "s2")),
        _applied(applied + timedelta(hours=1), "back", before=(2, 4, "s2"), after=(8, 16, "s8"),
                 result="reverted"),
    ]
    resizes = resizes_in_force(entries)
    assert sorted(r.vm_uuid for r in resizes) == ["fine", "full", "hot"]
    frame = pd.concat([
        _hours("hot", [3600.0] * 48, cpu_p95=1.96, cpu_max=2.0),  # saturated at 2 vCPUs every hour
        _hours("fine", [3600.0] * 48, cpu_p95=0.8, cpu_max=1.5),
        _hours("full", [3600.0] * 48, cpu_p95=0.5, cpu_max=1.0, mem_gib=3.9),  # memory at the allocation
    ], ignore_index=True)
    regrets = find_regrets(resizes, frame, CATALOGUE, now=T0 + timedelta(days=2), watch_days=14)
    assert set(regrets) == {"hot", "full"}
    hot = regrets["hot"]
    assert hot.running_hours == 47 and hot.cpu_saturated_hours == 47  # the apply's own hour is skipped
    assert (hot.proposal, hot.target_type) == ("next-size-up", "s4")  # 1.96 x 1.15 > 2 vCPUs -> 4
    assert "47 of 47 running h overran it" in hot.evidence()
    full = regrets["full"]
    assert full.memory_full_hours == 47
    assert (full.proposal, full.target_type, full.target_vcpus) == ("revert", "s4", 4)  # next up = the old size


def test_regret_counts_memory_pressure_only_past_the_signal_thresholds() -> None:
    applied = T0 + timedelta(minutes=30)
    resizes = resizes_in_force([_applied(applied, vm, before=(8, 16, "s8"), after=(2, 4, "s2"))
                                for vm in ("calm", "swapping")])
    calm = _hours("calm", [3600.0] * 48, cpu_p95=0.5, cpu_max=1.0)
    calm["major_faults_max_ps"] = 3.0  # a few major faults an hour are normal in a healthy guest
    calm["swap_max_bps"] = 1024.0
    swapping = _hours("swapping", [3600.0] * 48, cpu_p95=0.5, cpu_max=1.0)
    swapping["swap_max_bps"] = 8 * 1024 * 1024.0  # 8 MiB/s of swap: the new size is too small
    regrets = find_regrets(resizes, pd.concat([calm, swapping], ignore_index=True), CATALOGUE,
                           now=T0 + timedelta(days=2), watch_days=14)
    assert set(regrets) == {"swapping"}
    assert regrets["swapping"].pressure_hours == 47


def test_regret_needs_enough_overrun_hours_and_ignores_hours_after_the_watch() -> None:
    applied = T0
    resizes = resizes_in_force([_applied(applied, "a", before=(8, 16, "s8"), after=(2, 4, "s2"))])
    cpu = [0.5] * 48
    frame = _hours("a", [3600.0] * 48)
    frame["cpu_p95_vcpus"] = cpu
    frame.loc[[10, 20], "cpu_p95_vcpus"] = 2.0  # two saturated hours: below min_hours=3
    assert find_regrets(resizes, frame, CATALOGUE, now=T0 + timedelta(days=2), watch_days=14) == {}
    frame.loc[[40, 41, 42], "cpu_p95_vcpus"] = 2.0  # saturated, but after a one-day watch
    assert find_regrets(resizes, frame, CATALOGUE, now=T0 + timedelta(days=2), watch_days=1) == {}
    assert set(find_regrets(resizes, frame, CATALOGUE, now=T0 + timedelta(days=2), watch_days=14)) == {"a"}


# --- realised savings -----------------------------------------------------------------------------------

def test_realised_savings_count_running_hours_the_collector_saw() -> None:
    applied = T0 + timedelta(minutes=30)
    entry = _applied(applied, "a", before=(8, 16, "s8"), after=(2, 4, "s2"))
    # 10 hours: running the first 4 (the apply's hour half counted), off 4, half an hour in each of the last 2
    frame = _hours("a", [3600.0] * 4 + [0.0] * 4 + [1800.0] * 2)
    now = T0 + timedelta(hours=10)
    wall = realised_savings([entry], now)[0]
    seen = realised_savings([entry], now, hour_frame=frame)[0]
    assert wall.hours == pytest.approx(9.5)
    assert seen.hours == pytest.approx(0.5 + 3 + 0 + 1.0)
    assert seen.saving == pytest.approx(4.5 * 0.30)
