from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from collector.model import VmRecord, VmState
from core.settings import Settings
from rightsizer.schedules import dry_run, register_jobs, resolve_scheduled

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday


def _vm(name: str, **labels: str) -> VmRecord:
    return VmRecord(uuid=f"u-{name}", name=name, uri="qemu:///system", host="h", state=VmState.RUNNING, vcpus=2,
                    max_vcpus=2, memory_bytes=4 << 30, max_memory_bytes=4 << 30, labels=labels, first_seen=NOW,
                    last_seen=NOW)


def _finding(**kw: Any) -> Any:
    base = {"excluded": False, "schedule": None, "pattern": "steady", "changes_type": False,
            "price_before_per_hour": 0.1, "price_after_per_hour": 0.1, "currency": "EUR"}
    return SimpleNamespace(**{**base, **kw})


def test_only_labelled_allowed_vms_are_scheduled() -> None:
    proposal = SimpleNamespace(on="Mon-Sun 00:00-05:00", timezone="UTC")
    vms = [_vm("a", schedule="Mon-Fri 07:00-19:00 Europe/Berlin"), _vm("b", schedule="auto"),
           _vm("c", schedule="auto"), _vm("d", schedule="Mon-Fri 25:00-19:00"),
           _vm("e", schedule="Mon-Fri 07:00-19:00", rightsizer_exclude="true"), _vm("f", schedule="daily 01:00-02:00"),
           _vm("g")]
    findings = {"u-b": _finding(schedule=proposal, pattern="nightly-batch"), "u-c": _finding(),
                "u-f": _finding(excluded=True)}
    resolved = resolve_scheduled(vms, findings, Settings())
    assert [(v.ref.name, v.schedule, v.source) for v, _w in resolved.vms] == [
        ("a", "Mon-Fri 07:00-19:00 Europe/Berlin", "label"), ("b", "Mon-Sun 00:00-05:00 UTC", "proposal")]
    notes = " | ".join(resolved.notes)
    assert "c: schedule=auto but no window fits" in notes and "d: label schedule='Mon-Fri 25:00-19:00'" in notes
    assert "e: excluded" in notes and "f: excluded by a policy" in notes and "g:" not in notes


def test_cron_jobs_fire_at_the_window_edges_and_stale_ones_go() -> None:
    vms = [_vm("late", schedule="Mon-Fri 22:00-02:00"), _vm("day", schedule="Mon-Fri 07:00-19:00 Europe/Berlin")]
    resolved = resolve_scheduled(vms, {}, Settings())
    scheduler = BackgroundScheduler(timezone=UTC)
    jobs = register_jobs(scheduler, resolved, lambda action, vm: None)
    assert len(jobs) == 4
    scheduler.add_job(lambda: None, "interval", seconds=60, id="schedule-stop-gone-0")  # a VM no longer labelled
    scheduler.start(paused=True)
    try:
        register_jobs(scheduler, resolved, lambda action, vm: None)
        by_id = {j.id: j for j in scheduler.get_jobs()}
        assert "schedule-stop-gone-0" not in by_id and len(by_id) == 4
        fire = {k: by_id[k].trigger.get_next_fire_time(None, NOW).astimezone(UTC) for k in by_id}
        assert fire["schedule-start-u-late-0"] == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)
        assert fire["schedule-stop-u-late-0"] == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)  # the next morning
        assert fire["schedule-stop-u-day-0"] == datetime(2026, 11, 2, 18, 0, tzinfo=UTC)  # 19:00 CET
    finally:
        scheduler.shutdown(wait=False)
    rows = dry_run(resolved, NOW, days=1)
    assert [(r["vm"], r["action"], r["when"]) for r in rows] == [
        ("day", "stop", "2026-11-02T19:00+01:00"), ("late", "start", "2026-11-02T22:00+00:00"),
        ("late", "stop", "2026-11-03T02:00+00:00"), ("day", "start", "2026-11-03T07:00+01:00")]
    assert rows[0]["window"] == "Mon-Fri 07:00-19:00 Europe/Berlin"


def _fires(trigger: Any, start: datetime, end: datetime) -> list[datetime]:
    """Every instant an APScheduler trigger fires from ``start`` to ``end``, as the scheduler asks it."""
    out: list[datetime] = []
    previous = None
    now = start
    while (nxt := trigger.get_next_fire_time(previous, now)) is not None and nxt < end:
        out.append(nxt.astimezone(UTC))
        previous = now = nxt
    return out


@pytest.mark.parametrize("zone, change", [
    ("Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC)),  # spring: 02:00 -> 03:00
    ("Europe/Berlin", datetime(2026, 10, 25, tzinfo=UTC)),  # autumn: 03:00 -> 02:00
    ("America/New_York", datetime(2026, 3, 8, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, tzinfo=UTC)),
])
@pytest.mark.parametrize("window", ["Sun 02:30-02:45", "Sun 01:30-01:45", "Sat-Sun 23:00-04:00",
                                    "Mon-Sun 02:00-03:00", "Sun 00:00-02:30"])
def test_jobs_fire_exactly_the_instants_the_dry_run_lists_across_dst(zone: str, change: datetime,
                                                                    window: str) -> None:
    """Issue 24 M5: on the autumn day the cron trigger fired 02:30/02:45 Europe/Berlin twice."""
    resolved = resolve_scheduled([_vm("x", schedule=f"{window} {zone}")], {}, Settings())
    start, end = change - timedelta(days=2), change + timedelta(days=2)
    scheduler = BackgroundScheduler(timezone=UTC)
    register_jobs(scheduler, resolved, lambda action, vm: None)
    scheduler.start(paused=True)
    try:
        fired = sorted((when, job.id.split("-")[1]) for job in scheduler.get_jobs()
                       for when in _fires(job.trigger, start, end))
    finally:
        scheduler.shutdown(wait=False)
    listed = sorted((datetime.fromisoformat(r["when"]).astimezone(UTC), r["action"])
                    for r in dry_run(resolved, start, days=4))
    assert fired == listed
    assert len({when for when, _ in fired}) == len(fired)  # no instant twice
    assert len([a for _, a in listed if a == "start"]) >= 1


def test_the_reported_autumn_case_fires_once() -> None:
    resolved = resolve_scheduled([_vm("x", schedule="Sun 02:30-02:45 Europe/Berlin")], {}, Settings())
    scheduler = BackgroundScheduler(timezone=UTC)
    register_jobs(scheduler, resolved, lambda action, vm: None)
    scheduler.start(paused=True)
    try:
        fired = sorted(w for j in scheduler.get_jobs() for w in _fires(j.trigger, datetime(2026, 10, 24, tzinfo=UTC),
                                                                        datetime(2026, 10, 26, tzinfo=UTC)))
    finally:
        scheduler.shutdown(wait=False)
    assert fired == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 45, tzinfo=UTC)]


def test_a_skipped_spring_time_is_listed_as_the_clock_shows_it() -> None:
    resolved = resolve_scheduled([_vm("x", schedule="Sun 02:30-02:45 Europe/Berlin")], {}, Settings())
    rows = dry_run(resolved, datetime(2026, 3, 28, tzinfo=UTC), days=2)
    assert [(r["action"], r["when"]) for r in rows] == [("start", "2026-03-29T03:30+02:00"),
                                                        ("stop", "2026-03-29T03:45+02:00")]
