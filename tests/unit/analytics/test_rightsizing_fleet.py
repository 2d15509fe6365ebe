"""Fleet recommendations from a real SQLite store: type source, exclusion, idle, plan rows, trends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from analytics.findings.headline import headline_of
from analytics.rightsizing.base import Finding, UsageHistory
from analytics.rightsizing.decide import history_trends
from analytics.rightsizing.settings import Policy, RightsizerSettings, profile_settings
from collector.actions.plan import plan_from_findings, plan_from_steps
from core.settings import IdleSettings
from tests.helpers.catalogues import small_catalogue
from tests.helpers.ten_days import GIB, HOURS, NOW, T0, hourly_points, running_vm


@pytest.fixture
def fleet(store):
    vms = [
        running_vm("web-1", 4, 16, machine_type="l.4"),
        running_vm("db-1", 2, 2),
        running_vm("batch-1", 4, 16, rightsizer_exclude="true"),
        running_vm("new-1", 2, 2),
        running_vm("idle-1", 2, 8),
    ]
    flat = np.full(HOURS, 0.5)
    points = hourly_points(vms[0], flat) + hourly_points(vms[1], flat) + hourly_points(vms[2], flat)
    points += hourly_points(vms[4], np.full(HOURS, 0.001), io_bps=0.0)
    # new-1 has only the last 10 hours
    last_10 = datetime.fromtimestamp(T0 + 3600 * (HOURS - 10), tz=UTC)
    points += [p for p in hourly_points(vms[3], flat) if p.ts >= last_10]
    store.write_history(vms, points)
    return store


def test_findings_per_vm(fleet, analyse) -> None:
    findings = {f.name: f for f in analyse(fleet, small_catalogue(), now=NOW, idle_settings=IdleSettings())}
    web = findings["web-1"]
    # ours (balanced): p99.5 0.5 x 1.2 -> 0.6 vCPU; memory: flat daily peaks of 1 GiB -> 1 GiB + the least
    # headroom (5 %) = 1.05 GiB, which s.1 (1 GiB) does not hold: s.2; from l.4 saves (0.12 - 0.02) x 720
    assert (web.finding, web.current_type, web.current_type_source, web.target_type) == (
        Finding.OVER_PROVISIONED, "l.4", "label", "s.2")
    assert web.monthly_savings == pytest.approx(72.0)
    assert web.need_vcpus == pytest.approx(0.6)
    assert web.need_memory_bytes == pytest.approx(1.05 * GIB, rel=1e-6)
    db = findings["db-1"]
    assert (db.finding, db.current_type, db.current_type_source, db.target_type) == (
        Finding.OPTIMIZED, "s.2", "inferred", "s.2")
    batch = findings["batch-1"]
    assert batch.excluded and batch.target_type == "l.4" and batch.monthly_savings == 0.0
    assert "rightsizer_exclude" in batch.reasons["policy"]
    assert findings["new-1"].finding is Finding.INSUFFICIENT_DATA
    idle = findings["idle-1"]
    assert idle.finding is Finding.IDLE and "consider stopping" in idle.reasons["idle"]
    headline = headline_of(findings.values())
    assert headline.actions == 2 and headline.counts["idle"] == 1  # web-1 and idle-1 change type
    # the headline sums the unrounded savings by kind: web-1's resize and idle-1's stop
    assert headline.savings_by_kind["resize"] == pytest.approx(72.0)
    assert headline.savings_by_kind["idle-stop"] == pytest.approx(idle.monthly_savings)
    assert headline.net_monthly_savings == pytest.approx(72.0 + idle.monthly_savings)


def test_json_rows_are_a_resize_plan(fleet, analyse) -> None:
    findings = analyse(fleet, small_catalogue(), now=NOW, idle_settings=IdleSettings())
    entries = [f.plan_entry() for f in findings]
    web = next(e for e in entries if e["name"] == "web-1")
    assert web["current"] == {"machine_type": "l.4", "type_source": "label", "vcpus": 4, "memory_bytes": 16 * GIB}
    assert web["target"] == {"machine_type": "s.2", "vcpus": 2, "memory_bytes": 2 * GIB}
    assert web["price_before_per_hour"] == 0.12 and web["price_after_per_hour"] == 0.02
    plan = plan_from_findings(entries)
    assert [s.vm.name for s in plan.steps] == ["web-1"]  # excluded, idle, optimized and new VMs stay put


def test_findings_emit_the_plans_own_step_type(fleet, analyse) -> None:
    findings = analyse(fleet, small_catalogue(), now=NOW, idle_settings=IdleSettings())
    steps = [s for f in findings if (s := f.resize_step("test:///x.xml")) is not None]
    typed = plan_from_steps(steps)
    from_json = plan_from_findings([f.plan_entry() for f in findings], default_uri="test:///x.xml")
    assert typed.steps == from_json.steps and typed.plan_id == from_json.plan_id
    assert [s.vm.name for s in typed.steps] == ["web-1"]


def test_policy_overrides_apply_per_vm(fleet, analyse) -> None:
    policies = [Policy(vm="web-1", cpu_headroom_fraction=3.0), Policy(labels={"machine_type": "l.4"})]
    web = next(f for f in analyse(fleet, small_catalogue(), now=NOW, policies=policies) if f.name == "web-1")
    assert web.need_vcpus == pytest.approx(0.5 * 4.0)  # 300 % headroom
    assert web.target_type == "s.2"
    excluded = next(f for f in analyse(fleet, small_catalogue(), now=NOW,
                                               policies=[Policy(vm="db-1", exclude=True)]) if f.name == "db-1")
    assert excluded.excluded


def test_fleet_trends_match_the_single_vm_rule(store, analyse) -> None:
    vm = running_vm("grow-1", 4, 16)
    cpu = 0.1 + 0.1 * np.arange(HOURS) / 24  # +0.1 vCPU a day
    store.write_history([vm], hourly_points(vm, cpu))
    conservative = RightsizerSettings.model_validate({**profile_settings("conservative"),
                                                      "trend_blocks_downsize": True})
    [finding] = analyse(store, small_catalogue(), now=NOW, settings=conservative)
    fleet_trend = finding.recommendation.evidence.cpu_trend
    ts = T0 + 3600.0 * np.arange(HOURS)
    single_cpu, _ = history_trends(
        UsageHistory.from_arrays(ts, cpu, np.full(HOURS, GIB), vcpus=4, memory_bytes=16 * GIB, interval_s=3600.0,
                                 end_s=NOW.timestamp()),
        conservative,
    )
    assert fleet_trend.growing and single_cpu.growing
    assert fleet_trend.slope_per_day == pytest.approx(single_cpu.slope_per_day)
    assert fleet_trend.projected == pytest.approx(single_cpu.projected)
    assert "downsize blocked" in finding.reasons["cpu"]
    assert finding.target_vcpus == 4


def test_naive_now_is_refused(fleet, analyse) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        analyse(fleet, small_catalogue(), now=datetime(2026, 1, 1))


def test_configured_profile_reaches_the_fleet_path(fleet, analyse) -> None:
    balanced = {f.name: f for f in analyse(fleet, small_catalogue(), now=NOW)}
    conservative = {f.name: f for f in analyse(fleet, small_catalogue(), now=NOW, profile="conservative")}
    krr = {f.name: f for f in analyse(fleet, small_catalogue(), now=NOW, strategy="krr", profile="conservative")}
    # every profile sizes memory from the daily peaks (flat at 1 GiB: the maximum used + the least headroom,
    # 5 %); conservative differs in CPU (the largest demand seen + 15 %)
    assert balanced["web-1"].need_memory_bytes == pytest.approx(1.05 * GIB, rel=1e-6)
    assert conservative["web-1"].need_memory_bytes == pytest.approx(1.05 * GIB, rel=1e-6)
    assert balanced["web-1"].need_vcpus == pytest.approx(0.6)
    assert conservative["web-1"].reasons["cpu"].startswith("p100 of CPU demand")
    assert krr["web-1"].need_memory_bytes == pytest.approx(1.15 * GIB, rel=1e-6)  # anchors keep their own


def test_vpa_on_a_vm_whose_memory_readings_stop_early_is_a_result_not_a_crash(store, analyse) -> None:
    # memory use known only in the first 24 hours of 10 days: VPA's last 8 daily peaks are empty
    vm = running_vm("odd-1", 4, 16)
    points = [p if i < 24 else replace(p, memory_used_bytes=None)
              for i, p in enumerate(hourly_points(vm, np.full(HOURS, 0.5)))]
    store.write_history([vm], points)
    for strategy in ("vpa", "rightsizer", "aws", "krr"):
        [finding] = analyse(store, small_catalogue(), now=NOW, strategy=strategy)
        assert finding.target_type is not None and finding.reasons["memory"]
    [vpa] = analyse(store, small_catalogue(), now=NOW, strategy="vpa")
    assert "no memory reading in the last 8 24 h intervals" in vpa.reasons["memory"]
