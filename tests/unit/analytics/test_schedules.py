from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from analytics.patterns import fit_patterns
from analytics.rightsizing.settings import Policy
from analytics.schedules import (
    format_days,
    format_window,
    ineligible_reason,
    infer_window,
    parse_schedule,
    propose_fleet,
    upcoming_actions,
)
from bench.patterns_bench import synthetic_pattern_frame
from collector.errors import InputError
from collector.model import VmRecord, VmState
from core.settings import ScheduleSettings

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def _vm(uuid: str, **labels: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=uuid, uri="test:///x", host="h", state=VmState.RUNNING, vcpus=4, max_vcpus=4,
                    memory_bytes=8 << 30, max_memory_bytes=8 << 30, labels=labels, first_seen=NOW, last_seen=NOW)


@pytest.fixture(scope="module")
def fleet() -> tuple[pd.DataFrame, dict[str, str]]:
    return synthetic_pattern_frame(2, 28, seed=11)


def _propose(frame: pd.DataFrame, vms: list[VmRecord], **kw: object) -> dict[str, object]:
    patterns = fit_patterns(frame)
    settings = kw.pop("settings", ScheduleSettings())
    return propose_fleet(frame, vms, patterns, {v.uuid: (0.1, "EUR") for v in vms}, settings=settings,  # type: ignore[arg-type]
                         idle_vcpus=0.03, lookback_days=28, **kw)  # type: ignore[arg-type]


def test_only_office_and_batch_vms_get_schedules(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, truth = fleet
    props = _propose(frame, [_vm(v) for v in truth])
    assert {truth[v] for v in props} == {"office-hours", "nightly-batch"}
    assert len(props) == 4  # steady, spiky, idle and unknown VMs get none
    office = props["office-hours-00000"]
    assert office.on == "Mon-Fri 07:00-19:00" and office.timezone == "UTC"  # 08-18 plus 1 h margins
    assert office.on_hours_per_week == 60
    assert office.monthly_savings == pytest.approx(108 * 720 / 168 * 0.1)
    assert office.missed_demand_hours == 0 and office.risk == "low"
    assert props["nightly-batch-00001"].on == "Mon-Sun 00:00-05:00"


def test_prod_needs_an_opt_in(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _ = fleet
    vm = "office-hours-00000"
    assert _propose(frame, [_vm(vm, env="prod")]) == {}
    assert vm in _propose(frame, [_vm(vm, env="prod", schedule="auto")])
    assert vm in _propose(frame, [_vm(vm, env="prod")], policies=[Policy(labels={"env": "prod"}, schedules=True)])
    assert vm in _propose(frame, [_vm(vm, env="prod")], settings=ScheduleSettings(allow_prod=True))
    assert _propose(frame, [_vm(vm)], excluded=frozenset({vm})) == {}
    assert "excluded" in (ineligible_reason(_vm(vm), "office-hours", excluded=True, policies=[],
                                            settings=ScheduleSettings()) or "")


def test_missed_demand_is_counted_with_its_peak(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _ = fleet
    one = frame[frame["vm"] == "office-hours-00000"].copy()
    saturday_noon = (one["ts"].dt.day_of_week == 5) & (one["ts"].dt.hour == 12)
    first = one.index[saturday_noon][0]
    one.loc[first, ["cpu_mean_vcpus", "cpu_max_vcpus"]] = [2.5, 3.25]  # one Saturday of work
    (prop,) = _propose(one, [_vm("office-hours-00000")]).values()
    assert prop.on == "Mon-Fri 07:00-19:00"
    assert prop.missed_demand_hours == 1 and prop.missed_peak_vcpus == pytest.approx(3.25)
    assert prop.risk == "medium" and "1 demand hour" in prop.risk_text
    assert prop.as_json()["missed_demand_hours"] == 1


def test_time_zone_shifts_the_window(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    frame, _ = fleet
    one = frame[frame["vm"] == "office-hours-00000"]
    settings = ScheduleSettings(timezone="Asia/Tokyo")  # UTC+9: 08-18 UTC is 17-03 in Tokyo
    (prop,) = _propose(one, [_vm("office-hours-00000")], settings=settings).values()
    assert prop.on == "Mon-Fri 16:00-04:00" and prop.timezone == "Asia/Tokyo"


def test_infer_window_wraps_midnight() -> None:
    on = np.zeros(168, dtype=bool)
    for d in range(5):
        on[d * 24 + 22] = on[d * 24 + 23] = True
        on[(d + 1) * 24 + 1] = True
    days, start, duration = infer_window(on, 0)  # type: ignore[misc]
    assert days == frozenset(range(5)) and start == 22 * 60 and duration == 4 * 60
    assert infer_window(np.zeros(168, dtype=bool), 60) is None


def test_a_span_that_fills_whole_days_is_a_whole_day_window_not_an_empty_one() -> None:
    # 23 on-duty hours a day plus margins reach 24 h: once written "Mon-Sun 23:00-23:00", which parses as empty
    on = np.zeros(168, dtype=bool)
    for d in range(5):
        on[d * 24: d * 24 + 23] = True
    days, start, duration = infer_window(on, 60)  # type: ignore[misc]
    assert days == frozenset(range(5)) and start == 0 and duration == 24 * 60
    text = format_window(days, start, duration)
    assert text == "Mon-Fri 00:00-24:00"
    (window,) = parse_schedule(text)
    assert window.duration_minutes == 24 * 60


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Mon-Fri 25:00-19:00", "'25:00' is not a valid HH:MM"),
        ("Mon-Fri 07:00-19:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Mon-Fri 07:00-19:00; Fri 18:00-20:00", "overlap"),
        ("", "empty"),
    ],
)
def test_bad_schedules_name_the_value(text: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_schedule(text)
    assert needle in str(err.value) and str(err.value).startswith("Schedule")


def test_schedule_text_round_trip_and_days() -> None:
    (w,) = parse_schedule("Mon-Fri 07:00-19:00", "Europe/Berlin")
    assert w.zone == "Europe/Berlin" and w.days == frozenset(range(5))
    assert format_days(frozenset({0, 2, 4})) == "Mon,Wed,Fri" and format_days(frozenset(range(7))) == "Mon-Sun"
    assert len(parse_schedule("Mon-Fri 07:00-12:00; Mon-Fri 13:00-19:00")) == 2


def test_dry_run_lists_a_week_of_starts_and_stops() -> None:
    windows = parse_schedule("Mon-Fri 07:00-19:00")
    actions = upcoming_actions(windows, datetime(2026, 11, 2, 12, 0, tzinfo=UTC))  # Monday noon, inside
    assert [a.action for a in actions[:3]] == ["stop", "start", "stop"]
    assert actions[0].when == datetime(2026, 11, 2, 19, 0, tzinfo=UTC)
    assert sum(a.action == "start" for a in actions) == 5 and sum(a.action == "stop" for a in actions) == 5
    assert all(a.when < datetime(2026, 11, 9, 12, 0, tzinfo=UTC) for a in actions)


def test_an_hour_without_a_cpu_figure_is_skipped_not_fatal(fleet: tuple[pd.DataFrame, dict[str, str]]) -> None:
    """The running hour of a collector's first cycle has no CPU mean yet (no interval to rate over)."""
    frame, truth = fleet
    office = frame["vm"] == "office-hours-00000"
    last = frame.index[office][-1]
    gappy = frame.copy()
    gappy.loc[last, "cpu_mean_vcpus"] = np.nan
    props = _propose(gappy, [_vm(v) for v in truth])
    assert props["office-hours-00000"].on == "Mon-Fri 07:00-19:00"
