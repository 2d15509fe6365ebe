from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collector.actions.policy import check_policy, restart_permission
from collector.errors import InputError
from core.windows import parse_window, parse_windows

# 2024-06-01 is a Saturday, 2024-06-03 a Monday.
SAT = datetime(2024, 6, 1, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (at(1, 2, 0), True),  # opens inclusive
        (at(1, 3, 59), True),
        (at(1, 4, 0), False),  # closes exclusive
        (at(1, 1, 59), False),
        (at(2, 2, 30), False),  # Sunday
        (at(8, 2, 30), True),  # next Saturday
    ],
)
def test_saturday_window_contains(when: datetime, inside: bool) -> None:
    assert parse_window("sat 02:00-04:00").contains(when) is inside


def test_window_past_midnight_runs_into_next_day() -> None:
    w = parse_window("sat 23:00-01:00")
    assert w.duration_minutes == 120
    assert w.contains(at(1, 23, 30))
    assert w.contains(at(2, 0, 30))  # Sunday 00:30 belongs to Saturday's window
    assert not w.contains(at(2, 1, 0))
    assert not w.contains(at(1, 22, 59))


def test_sunday_window_wraps_to_monday() -> None:
    w = parse_window("sun 23:00-01:00")
    assert w.contains(at(3, 0, 30))  # Monday 00:30
    assert not w.contains(at(3, 1, 30))


def test_window_in_a_time_zone() -> None:
    w = parse_window("mon-fri 22:00-23:00 Europe/Berlin")
    assert w.days == frozenset({0, 1, 2, 3, 4})
    assert w.contains(at(3, 20, 30))  # 22:30 CEST on Monday
    assert not w.contains(at(3, 22, 30))  # 00:30 CEST Tuesday
    assert not w.contains(at(8, 20, 30))  # Saturday


def test_day_lists_and_ranges() -> None:
    assert parse_window("fri-mon 01:00-02:00").days == frozenset({4, 5, 6, 0})
    assert parse_window("sun,wed 01:00-02:00").days == frozenset({6, 2})
    assert parse_window("daily 01:00-02:00").days == frozenset(range(7))
    assert parse_window("Saturday 01:00-24:00").duration_minutes == 23 * 60
    assert str(parse_window("sat 2:00-4:00")) == "sat 02:00-04:00 UTC"


def test_next_opening() -> None:
    w = parse_window("sat 02:00-04:00")
    assert w.next_opening(at(3, 10, 0)) == at(8, 2, 0)
    assert w.next_opening(at(1, 1, 0)) == at(1, 2, 0)
    assert w.next_opening(at(1, 2, 30)) == at(1, 2, 30)  # inside: now
    assert w.next_opening(at(1, 4, 0)) == at(8, 2, 0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sat 25:00-26:00", "'25:00' is not a valid HH:MM"),
        ("xyz 02:00-03:00", "unknown day 'xyz'"),
        ("sat 02:00-02:00", "is empty"),
        ("sat 02:00-03:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("saturday at two", "is not 'DAYS HH:MM-HH:MM [ZONE]'"),
        ("sat 02:60-03:00", "'02:60'"),
        ("sat 24:00-03:00", "'24:00'"),
    ],
)
def test_bad_windows_name_the_value(text: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        parse_window(text)
    assert needle in str(err.value)
    assert repr(text) in str(err.value)


def test_restart_permission_per_policy() -> None:
    windows = parse_windows(["sat 02:00-04:00", "wed 01:00-02:00"])
    never = restart_permission("never", windows, at(1, 3))
    assert not never.allowed_now and never.policy == "never"
    assert restart_permission("allowed", (), at(3, 12)).allowed_now
    inside = restart_permission("window", windows, at(1, 3))
    assert inside.allowed_now and inside.window == windows[0]
    outside = restart_permission("window", windows, at(3, 12))  # Monday noon: Wednesday comes first
    assert not outside.allowed_now
    assert outside.next_opening == at(5, 1, 0)
    assert outside.when == "in window wed 01:00-02:00 UTC (next opens 2024-06-05 01:00 UTC)"


def test_window_policy_needs_windows() -> None:
    with pytest.raises(InputError, match="needs at least one maintenance window"):
        check_policy("window", ())
    with pytest.raises(InputError, match="'sometimes' is unknown"):
        check_policy("sometimes", ())
