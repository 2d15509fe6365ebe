"""Lifecycle findings on hand-built fleets in a real SQLite store, through the fleet path and the CLI.

shut off 10 days -> stopped, priced as its disks; idle -> its whole compute price; a small saving ->
below-threshold; one plan shape from ``recommend --actionable`` and ``apply --from-findings``; bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analytics.analysis import AnalysisOptions, analyse_fleet
from analytics.catalogue import load_catalogue, load_storage_prices
from analytics.rightsizing.base import Finding
from collector.model import VmRecord, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from rightsizer import cli
from tests.helpers.lifecycle_fleet import (
    DAYS,
    DISK_BYTES,
    FLEET,
    GIB,
    NOW,
    T0,
    lifecycle_points,
    lifecycle_vm,
)

CATALOGUE = load_catalogue()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.db"
    store = SqliteStore(path)
    all_hours = range(DAYS * 24)
    points = lifecycle_points(FLEET["busy-1"], all_hours, 0.5, used_gib=2)
    points += lifecycle_points(FLEET["parked-1"], range(4 * 24), 1.5, used_gib=6)
    points += lifecycle_points(FLEET["parked-1"], range(4 * 24, DAYS * 24), 0, used_gib=0, running=False)
    points += lifecycle_points(FLEET["sleepy-1"], all_hours, 0.005, used_gib=1, io_bps=10.0)
    points += lifecycle_points(FLEET["snug-1"], all_hours, 2.2, used_gib=5.0)
    store.write_history(list(FLEET.values()), points)
    store.close()
    return path


def _findings(db: Path, lookback_days: float | None = None) -> dict[str, Any]:
    store = SqliteStore(db)
    try:
        return {f.name: f for f in analyse_fleet(store, CATALOGUE, AnalysisOptions.from_settings(
            Settings(), CATALOGUE, now=NOW, lookback_days=lookback_days)).findings}
    finally:
        store.close()


def test_shut_off_ten_days_is_stopped_with_its_disk_cost_as_the_saving(db: Path) -> None:
    parked = _findings(db)["parked-1"]
    storage = load_storage_prices()
    disk_per_hour = DISK_BYTES / 1e9 * storage.per_gb_hour + storage.per_disk_hour[storage.default_class]
    assert parked.finding is Finding.STOPPED
    assert parked.monthly_savings == pytest.approx(disk_per_hour * 720)  # storage-only billing rule
    assert parked.savings_pct == pytest.approx(100.0)
    assert parked.action == "none" and not parked.is_actionable  # never resized, never deleted by us
    assert parked.target_type == parked.current_type
    assert [o["action"] for o in parked.options] == ["snapshot-then-delete", "delete"]
    assert "shut off for 10.0 days" in parked.reasons["overall"]
    assert "never deletes" in parked.reasons["delete"] and "cpu" not in parked.reasons


@pytest.mark.parametrize("lookback_days", [7.0, 30.0])
def test_stopped_does_not_depend_on_the_lookback(db: Path, lookback_days: float) -> None:
    parked = _findings(db, lookback_days)["parked-1"]
    assert parked.finding is Finding.STOPPED and "shut off for 10.0 days" in parked.reasons["overall"]


def test_idle_is_priced_as_its_whole_compute_with_the_downsize_as_fallback(db: Path) -> None:
    sleepy = _findings(db)["sleepy-1"]
    current = CATALOGUE.get(sleepy.current_type or "")
    assert current is not None
    assert sleepy.finding is Finding.IDLE and sleepy.action == "stop"
    assert sleepy.monthly_savings == pytest.approx(current.price_per_hour * 720)
    assert sleepy.savings_pct == pytest.approx(100.0)
    assert sleepy.options[0]["action"] == "stop"
    fallback = [o for o in sleepy.options[1:] if o["action"] == "resize"]
    assert fallback and fallback[0]["monthly_savings"] < sleepy.monthly_savings


def test_small_saving_is_below_threshold_not_optimized(db: Path) -> None:
    findings = _findings(db)
    snug = findings["snug-1"]
    assert snug.finding is Finding.BELOW_THRESHOLD and snug.action == "none"
    assert snug.monthly_savings == 0.0 and "below the threshold" in snug.reasons["overall"]
    busy = findings["busy-1"]
    assert busy.finding is Finding.OVER_PROVISIONED and busy.action == "resize"
    assert 0 < busy.savings_pct < 100
    # balanced sizes memory from the daily peaks: in this fleet every VM's memory is flat, so the fleet margin
    # is 0 and busy-1's need is its 2 GiB used plus the least headroom the rule leaves (5 %), not 2 GiB flat
    assert busy.need_memory_bytes == pytest.approx(2 * GIB * 1.05)
    assert busy.target_memory_bytes is not None and busy.target_memory_bytes >= busy.need_memory_bytes
    assert busy.risk_reasons[0].endswith(f"h in the lookback above the new size ({0:.1%})"), busy.risk_reasons
    assert busy.projection is not None and busy.projection.hours == DAYS * 24
    ev = busy.recommendation.evidence
    assert ev is not None and ev.cpu is not None and busy.need_cpu_statistic == ev.cpu.statistic != ""
    # the headroom in words travels with the finding: JSON (CLI and API), the CSV row, --explain (flat peaks:
    # the spread is its floor, 2 % of the median)
    assert busy.need_headroom.startswith("CPU: 20 % headroom over its P99.5 (fixed, not fitted to this VM); ")
    assert "steady memory (daily peaks spread over 2 % of their median): 5 % headroom over its maximum" in \
        busy.need_headroom
    assert busy.plan_entry()["need"]["headroom"] == busy.csv_row()["need_headroom"] == busy.need_headroom


def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("recommend", "apply"))
    return cli.main(list(argv))


def test_one_plan_shape_from_recommend_and_apply(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 db: Path, tmp_path: Path) -> None:
    assert _cli(monkeypatch, "recommend", "--db", str(db), "--output", "json", "--now", NOW.isoformat()) == 0
    every = json.loads(capsys.readouterr().out)
    assert {e["name"]: e["finding"] for e in every} == {
        "busy-1": "over-provisioned", "parked-1": "stopped", "sleepy-1": "idle", "snug-1": "below-threshold"}
    for e in every:  # the contract's fields on every entry
        assert {"uuid", "name", "host", "finding", "current", "target", "need", "price_before_per_hour",
                "monthly_savings", "savings_pct", "currency", "risk", "risk_reasons", "reasons", "options",
                "action"} <= set(e)
    assert _cli(monkeypatch, "recommend", "--db", str(db), "--output", "json", "--actionable",
                "--now", NOW.isoformat()) == 0
    actionable = json.loads(capsys.readouterr().out)
    assert sorted((e["name"], e["action"]) for e in actionable) == [("busy-1", "resize"), ("sleepy-1", "stop")]
    # apply builds its resize plan from the same entries: the stop waits for --allow-stop, nothing is a no-op
    plan = tmp_path / "plan.json"
    assert _cli(monkeypatch, "apply", "--db", str(db), "--from-findings", "--save-plan", str(plan),
                "--output", "json") in (0, 1)
    saved = json.loads(plan.read_text())
    assert [s["name"] for s in saved["steps"]] == ["busy-1"]
    assert saved["stops"] == [{"uuid": FLEET["sleepy-1"].uuid, "name": "sleepy-1", "action": "stop",
                               "allowed": False, "note": "needs --allow-stop (stop only; deleting a VM is left to "
                                                         "a person: rightsizer never deletes)"}]


@pytest.mark.parametrize("args, needle", [
    (["--lookback", "0d"], "--lookback '0d'"),
    (["--lookback", "fortnight"], "--lookback 'fortnight'"),
    (["--vm", "no-such-vm"], "--vm 'no-such-vm'"),
])
def test_bad_input_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         db: Path, args: list[str], needle: str) -> None:
    assert _cli(monkeypatch, "recommend", "--db", str(db), *args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert needle in captured.err


def test_lookback_flag_changes_the_window(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          db: Path) -> None:
    # 7 days back the parked VM has no history of its own: its stopped verdict does not depend on it
    assert _cli(monkeypatch, "recommend", "--db", str(db), "--output", "json", "--lookback", "7d",
                "--vm", "busy-1", "--now", NOW.isoformat()) == 0
    (busy,) = json.loads(capsys.readouterr().out)
    assert busy["projected"]["hours"] == 7 * 24


def test_shut_off_under_stopped_after_gets_no_resize_savings(tmp_path: Path) -> None:
    """Off for 2 days (< [rightsizing] stopped_after = 7 d): advice stays, informational, nothing counted."""
    paused = lifecycle_vm("paused-1", 8, 32, VmState.SHUTOFF)
    busy = FLEET["busy-1"]
    store = SqliteStore(tmp_path / "paused.db")
    try:
        store.write_history([paused, busy], lifecycle_points(paused, range(12 * 24), 0.5, used_gib=2)
                            + lifecycle_points(paused, range(12 * 24, DAYS * 24), 0, used_gib=0, running=False)
                            + lifecycle_points(busy, range(DAYS * 24), 0.5, used_gib=2))
        found = {f.name: f for f in analyse_fleet(store, CATALOGUE, AnalysisOptions.from_settings(
            Settings(), CATALOGUE, now=NOW)).findings}
    finally:
        store.close()
    running, off = found["busy-1"], found["paused-1"]
    assert running.finding is Finding.OVER_PROVISIONED and running.monthly_savings > 0  # the same usage, running
    assert off.finding is Finding.OVER_PROVISIONED  # what its history says, for information
    assert off.monthly_savings == 0.0 and off.savings_pct == 0.0
    assert off.action == "none" and not off.is_actionable
    assert off.reasons["overall"].startswith("shut off for 2.0 days (since 2026-10-13 00:00 UTC)"), off.reasons
    assert "informational" in off.reasons["overall"]
    assert off.options and off.options[0]["action"] == "resize"  # the sizes it would fit, when it runs again


def _legacy(tmp_path: Path, *, memory_bytes: int, labels: dict[str, str] | None = None) -> Any:
    """snug-1 at ``memory_bytes`` with a persistent maximum twice that (an older downsize left it)."""
    snug = FLEET["snug-1"]
    legacy = VmRecord(uuid=snug.uuid, name=snug.name, uri=snug.uri, host=snug.host, state=VmState.RUNNING,
                      vcpus=snug.vcpus, max_vcpus=snug.max_vcpus, memory_bytes=memory_bytes,
                      max_memory_bytes=2 * memory_bytes, labels=labels or {}, first_seen=T0, last_seen=NOW)
    store = SqliteStore(tmp_path / "legacy.db")
    try:
        store.write_history([legacy], lifecycle_points(legacy, range(DAYS * 24), 2.2, used_gib=5.0))
        options = AnalysisOptions.from_settings(Settings(), CATALOGUE, now=NOW)
        (found,) = analyse_fleet(store, CATALOGUE, options).findings
    finally:
        store.close()
    return found


@pytest.mark.parametrize("labels", [{}, {"machine_type": "g1.3"}], ids=["unlabelled", "labelled"])
def test_max_memory_left_above_the_memory_gets_a_plan_step_with_or_without_the_label(
        tmp_path: Path, labels: dict[str, str]) -> None:
    """A VM at its type's size whose persistent maximum an older downsize left above its memory."""
    from collector.actions.plan import SizeSpec, parse_plan, plan_from_findings

    found = _legacy(tmp_path, memory_bytes=16 * GIB, labels=labels)
    assert found.current_type == "g1.3" and found.action == "none"  # 4 vCPU, 16 GiB: exactly its type
    assert found.reasons["max_memory"].startswith("persistent max memory 32.00 GiB is above its 16.00 GiB")
    assert found.reasons["max_memory"].endswith("the plan's step to g1.3 at this size lowers it at next restart "
                                                "(persistent config)")
    assert found.lowers_max_memory and not found.is_actionable  # no saving, no resize: not counted as a change
    step = found.resize_step("test:///x.xml")
    assert step is not None and step.current == step.target == SizeSpec(4, 16 * GIB, "g1.3")
    assert step.price_after_per_hour == step.price_before_per_hour  # the same type: no saving claimed
    # the JSON entries make the same step (recommend --output json -> apply --from-findings / a plan file)
    from_json = plan_from_findings([found.plan_entry()], default_uri="test:///x.xml")
    assert from_json.steps == (step,)
    assert parse_plan([found.plan_entry()], default_uri="test:///x.xml").steps == (step,)  # saved as a file


def test_max_memory_above_a_size_that_is_no_catalogue_type_is_left_to_a_person(tmp_path: Path) -> None:
    """15 GiB is no type's memory: a step would label the VM with a type it is not, so none is planned."""
    found = _legacy(tmp_path, memory_bytes=15 * GIB)
    assert not found.lowers_max_memory and found.resize_step("test:///x.xml") is None
    assert found.reasons["max_memory"].endswith("lower <memory> in its persistent config (takes effect at next "
                                                "restart)")


def test_excluded_vm_with_max_memory_left_above_gets_no_step(tmp_path: Path) -> None:
    found = _legacy(tmp_path, memory_bytes=16 * GIB, labels={"rightsizer_exclude": "true"})
    assert found.excluded and not found.lowers_max_memory and found.resize_step("test:///x.xml") is None
