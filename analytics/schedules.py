"""On/off schedules: a weekly window for VMs whose demand fits one, priced by hourly billing.

Only ``office-hours`` and ``nightly-batch`` VMs (see :mod:`analytics.patterns`) get a proposal, never an
excluded or idle VM, and never an ``env=prod`` VM unless it opts in (a ``schedule`` label, a policy with
``schedules = true``, or ``[schedules] allow_prod``).

* **Demand hour**: an hour whose mean CPU (``cpu_mean_vcpus``) exceeds both the idle threshold and
  ``demand_fraction`` of the VM's p95 hourly demand.
* **Window**: a weekday-hour (in ``[schedules] timezone``) is on duty when demand fell in it in at least
  ``recurrence_share`` of the weeks observed; the window is the shortest daily span covering every on-duty
  hour, on the days that have one, widened by ``margin_minutes`` before and after. It may run past midnight.
* **Saving**: hours off per week x 720/168 x the compute price per hour (the price after a proposed resize,
  so a resize and a schedule never count the same hour twice). Disks are billed whether the VM runs or not,
  so they save nothing.
* **Risk**: demand hours in the lookback that fell outside the window, their share of all demand hours,
  and the peak CPU outside the window: low (none), medium (<= 5 %), high.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH
from analytics.frames import numeric_column
from analytics.patterns import DAY_LABELS, HOURS_PER_WEEK, FleetPatterns, week_bins
from analytics.rightsizing.settings import Policy
from collector.errors import InputError
from collector.model import VmRecord
from core.settings import ScheduleSettings
from core.windows import MINUTES_PER_DAY, MINUTES_PER_WEEK, MaintenanceWindow, parse_window

SCHEDULE_LABEL = "schedule"
AUTO_SCHEDULE = "auto"  # label value: apply the proposed window
SCHEDULABLE_PATTERNS = frozenset({"office-hours", "nightly-batch"})
_TRUE = frozenset({"1", "true", "yes", "on"})
RiskLevel = Literal["low", "medium", "high"]


def format_days(days: frozenset[int]) -> str:
    """``Mon-Fri``, ``Mon-Sun``, ``Sat-Sun``, ``Mon,Wed,Fri``: ranges of consecutive days, Monday first."""
    ordered = sorted(days)
    runs: list[list[int]] = []
    for d in ordered:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(DAY_LABELS[r[0]] if len(r) == 1 else f"{DAY_LABELS[r[0]]}-{DAY_LABELS[r[-1]]}" for r in runs)


def format_window(days: frozenset[int], start_minute: int, duration_minutes: int) -> str:
    """``Mon-Fri 07:00-19:00`` for a window opening on ``days`` at ``start_minute`` for ``duration_minutes``."""
    end = (start_minute + duration_minutes) % MINUTES_PER_DAY
    if duration_minutes >= MINUTES_PER_DAY:  # a whole day is written 00:00-24:00; 00:00-00:00 would be empty
        start_minute, end = 0, MINUTES_PER_DAY
    return (f"{format_days(days)} {start_minute // 60:02d}:{start_minute % 60:02d}-"
            f"{end // 60:02d}:{end % 60:02d}")


def _week_minutes(w: MaintenanceWindow) -> np.ndarray:
    """Bool mask of the 10,080 minutes of a week (Monday 00:00 first) the window covers."""
    mask = np.zeros(MINUTES_PER_WEEK, dtype=bool)
    for d in w.days:
        first = d * MINUTES_PER_DAY + w.start_minute
        idx = (np.arange(first, first + w.duration_minutes)) % MINUTES_PER_WEEK
        mask[idx] = True
    return mask


def parse_schedule(text: str, zone: str = "UTC") -> tuple[MaintenanceWindow, ...]:
    """Parse a schedule: one or more windows separated by ``;`` (``Mon-Fri 07:00-19:00; Sat 09:00-13:00``).

    ``zone`` applies to windows that name none. Raises InputError on a malformed window, an unknown time
    zone, or windows that overlap.
    """
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        raise InputError(f"Schedule {text!r} is empty; give a window such as 'Mon-Fri 07:00-19:00'")
    windows = tuple(parse_window(p, kind="Schedule", zone=zone) for p in parts)
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            if a.zone == b.zone and bool((_week_minutes(a) & _week_minutes(b)).any()):
                raise InputError(f"Schedule {text!r}: windows {parts[i]!r} and {parts[windows.index(b)]!r} overlap; "
                                 "merge them into one window")
            if a.zone != b.zone:
                raise InputError(f"Schedule {text!r}: windows name different time zones ({a.zone}, {b.zone}); "
                                 "use one zone per schedule")
    return windows


def hour_mask(windows: Sequence[MaintenanceWindow]) -> np.ndarray:
    """Bool mask of the 168 weekday-hours lying wholly inside one of the windows (all in one zone)."""
    minutes = np.zeros(MINUTES_PER_WEEK, dtype=bool)
    for w in windows:
        minutes |= _week_minutes(w)
    return np.asarray(minutes.reshape(HOURS_PER_WEEK, 60).all(axis=1), dtype=bool)


def on_hours_per_week(windows: Sequence[MaintenanceWindow]) -> float:
    """Hours per week inside the windows."""
    minutes = np.zeros(MINUTES_PER_WEEK, dtype=bool)
    for w in windows:
        minutes |= _week_minutes(w)
    return float(minutes.sum()) / 60.0


def infer_window(on_duty: np.ndarray, margin_minutes: int) -> tuple[frozenset[int], int, int] | None:
    """(days, start minute, duration minutes) covering every on-duty weekday-hour, or None when there is none.

    ``on_duty`` is a 168-bool array (Monday 00:00 first). The daily span is the complement of the longest
    run of hours without duty on any day (circular, so a span may cross midnight); margins widen it.
    """
    grid = on_duty.reshape(7, 24)
    if not grid.any():
        return None
    any_hour = grid.any(axis=0)
    if any_hour.all():
        start_h, length_h = 0, 24
    else:
        doubled = np.concatenate([~any_hour, ~any_hour])
        best_len, best_end = 0, 0
        run = 0
        for i, free in enumerate(doubled):
            run = run + 1 if free else 0
            if run > best_len:
                best_len, best_end = run, i
        best_len = min(best_len, 24)
        start_h = (best_end + 1) % 24
        length_h = 24 - best_len
    days = frozenset(
        (d - (1 if h < start_h and start_h + length_h > 24 else 0)) % 7
        for d, h in zip(*np.nonzero(grid), strict=True)
    )
    if start_h * 60 < margin_minutes:  # the margin moves the opening to the evening before
        days = frozenset((d - 1) % 7 for d in days)
    if length_h * 60 + 2 * margin_minutes >= MINUTES_PER_DAY:  # the span fills whole days: on all day
        return frozenset(int(d) for d in np.nonzero(grid.any(axis=1))[0]), 0, MINUTES_PER_DAY
    start = (start_h * 60 - margin_minutes) % MINUTES_PER_DAY
    return days, start, length_h * 60 + 2 * margin_minutes


@dataclass(frozen=True, slots=True)
class ScheduleProposal:
    """A proposed weekly window for one VM, its saving and its risk (prices per hour in ``currency``)."""

    vm_uuid: str
    on: str  # e.g. "Mon-Fri 07:00-19:00"
    timezone: str
    on_hours_per_week: float
    off_hours_per_month: float
    price_per_hour: float
    monthly_savings: float
    currency: str
    demand_hours: int
    missed_demand_hours: int
    missed_peak_vcpus: float
    lookback_days: float
    risk: RiskLevel
    risk_text: str

    def as_json(self) -> dict[str, Any]:
        """The ``schedule`` object of the recommend JSON."""
        return {
            "on": self.on, "timezone": self.timezone, "monthly_savings": round(self.monthly_savings, 4),
            "missed_demand_hours": self.missed_demand_hours, "missed_peak_vcpus": round(self.missed_peak_vcpus, 3),
            "demand_hours": self.demand_hours, "on_hours_per_week": round(self.on_hours_per_week, 2),
            "off_hours_per_month": round(self.off_hours_per_month, 1), "price_per_hour": self.price_per_hour,
            "currency": self.currency, "risk": self.risk, "risk_text": self.risk_text,
        }

    def windows(self) -> tuple[MaintenanceWindow, ...]:
        return parse_schedule(self.on, self.timezone)


def schedule_opt_in(vm: VmRecord, policies: Sequence[Policy]) -> bool:
    """True when the VM opted into schedules: a ``schedule`` label or a matching policy with ``schedules``."""
    labels = vm.labels or {}
    if labels.get(SCHEDULE_LABEL, "").strip():
        return True
    matching = [p for p in policies if p.matches(uuid=vm.uuid, name=vm.name, labels=labels)]
    return any(p.schedules is True for p in matching)


def ineligible_reason(
    vm: VmRecord, pattern: str, *, excluded: bool, policies: Sequence[Policy], settings: ScheduleSettings
) -> str | None:
    """Why the VM gets no schedule proposal, or None when it may get one."""
    labels = vm.labels or {}
    if excluded:
        return "excluded from changes"
    if pattern not in SCHEDULABLE_PATTERNS:
        return f"pattern {pattern}: demand does not fit a weekly window"
    prod = labels.get("env", "").strip().lower() in ("prod", "production")
    if prod and not settings.allow_prod and not schedule_opt_in(vm, policies):
        return "env=prod: needs a 'schedule' label or a policy with schedules = true"
    return None


@dataclass(frozen=True, slots=True)
class _Hours:
    bins: np.ndarray
    demand: np.ndarray
    peak: np.ndarray


def _hours_of(frame: pd.DataFrame, zone: str, idle_vcpus: float, demand_fraction: float) -> _Hours:
    cpu = numeric_column(frame, "cpu_mean_vcpus")
    peak = numeric_column(frame, "cpu_max_vcpus")
    ok = np.isfinite(cpu)
    _epoch, bins = week_bins(frame["ts"][ok], zone)
    cpu = cpu[ok]
    p95 = float(np.percentile(cpu, 95)) if cpu.size else 0.0
    threshold = max(idle_vcpus, demand_fraction * p95)
    return _Hours(bins, cpu > threshold, np.where(np.isfinite(peak[ok]), peak[ok], cpu))  # cpu: already [ok]


def propose_schedule(
    vm_frame: pd.DataFrame,
    vm_uuid: str,
    *,
    price_per_hour: float,
    currency: str,
    settings: ScheduleSettings,
    idle_vcpus: float,
    lookback_days: float,
) -> ScheduleProposal | None:
    """A schedule for one VM's hourly frame (``vm``, ``ts``, ``cpu_mean_vcpus``, ``cpu_max_vcpus``), or None.

    None when no weekday-hour is on duty or the window leaves fewer than ``min_off_hours_per_week`` off.
    """
    if vm_frame.empty:
        return None
    h = _hours_of(vm_frame, settings.timezone, idle_vcpus, settings.demand_fraction)
    seen = np.bincount(h.bins, minlength=HOURS_PER_WEEK)
    busy = np.bincount(h.bins[h.demand], minlength=HOURS_PER_WEEK)
    share = np.divide(busy, seen, out=np.zeros(HOURS_PER_WEEK), where=seen > 0)
    found = infer_window(share >= settings.recurrence_share, settings.margin_minutes)
    if found is None:
        return None
    days, start, duration = found
    text = format_window(days, start, duration)
    windows = parse_schedule(text, settings.timezone)
    on_h = on_hours_per_week(windows)
    off_week = HOURS_PER_WEEK - on_h
    if off_week < settings.min_off_hours_per_week:
        return None
    inside = hour_mask(windows)[h.bins]
    outside_demand = h.demand & ~inside
    missed = int(outside_demand.sum())
    demand_hours = int(h.demand.sum())
    peak_out = float(np.nanmax(h.peak[~inside])) if (~inside).any() else 0.0
    risk, words = _risk(missed, demand_hours, peak_out, lookback_days)
    off_month = off_week * HOURS_PER_MONTH / HOURS_PER_WEEK
    return ScheduleProposal(
        vm_uuid=vm_uuid, on=text, timezone=settings.timezone, on_hours_per_week=on_h, off_hours_per_month=off_month,
        price_per_hour=price_per_hour, monthly_savings=off_month * price_per_hour, currency=currency,
        demand_hours=demand_hours, missed_demand_hours=missed, missed_peak_vcpus=peak_out,
        lookback_days=lookback_days, risk=risk, risk_text=words,
    )


def _risk(missed: int, demand_hours: int, peak_out: float, lookback_days: float) -> tuple[RiskLevel, str]:
    span = f"in the last {lookback_days:g} days"
    if missed == 0:
        return "low", f"low: no demand outside the window {span} (CPU peak outside it {peak_out:.2f} vCPU)"
    share = missed / max(demand_hours, 1)
    level: RiskLevel = "medium" if share <= 0.05 else "high"
    return level, (f"{level}: {missed} demand hour(s) outside the window {span} ({share:.0%} of {demand_hours}), "
                   f"peak {peak_out:.2f} vCPU; they would have found the VM stopped")


def propose_fleet(
    frame: pd.DataFrame,
    vms: Sequence[VmRecord],
    patterns: FleetPatterns,
    prices: Mapping[str, tuple[float, str]],
    *,
    settings: ScheduleSettings,
    idle_vcpus: float,
    lookback_days: float,
    excluded: frozenset[str] = frozenset(),
    policies: Sequence[Policy] = (),
) -> dict[str, ScheduleProposal]:
    """Schedule proposals by VM UUID for every eligible VM of an hourly frame.

    ``prices`` maps UUID -> (compute price per hour after any proposed resize, currency); unpriced VMs get none.
    """
    out: dict[str, ScheduleProposal] = {}
    if frame.empty:
        return out
    wanted = {
        vm.uuid for vm in vms
        if vm.uuid in prices and ineligible_reason(vm, patterns.pattern_of(vm.uuid), excluded=vm.uuid in excluded,
                                                   policies=policies, settings=settings) is None
    }
    if not wanted:
        return out
    sub = frame[frame["vm"].isin(wanted)]
    for uuid, group in sub.groupby("vm", sort=False):
        price, currency = prices[str(uuid)]
        proposal = propose_schedule(group, str(uuid), price_per_hour=price, currency=currency, settings=settings,
                                    idle_vcpus=idle_vcpus, lookback_days=lookback_days)
        if proposal is not None:
            out[str(uuid)] = proposal
    return out


@dataclass(frozen=True, slots=True)
class PlannedPower:
    """One start or stop the schedule will make (dry run)."""

    when: datetime
    action: Literal["start", "stop"]
    window: str


def upcoming_actions(
    windows: Sequence[MaintenanceWindow], start: datetime, *, days: float = 7.0
) -> list[PlannedPower]:
    """Every start (window opens) and stop (window closes) from ``start`` (aware) over ``days``, in time order."""
    end = start + timedelta(days=days)
    out: list[PlannedPower] = []
    for w in windows:
        zone = ZoneInfo(w.zone)
        text = f"{format_window(w.days, w.start_minute, w.duration_minutes)} {w.zone}"
        cursor = start
        while True:
            opening = w.next_opening(cursor) if not w.contains(cursor) else _current_opening(w, cursor)
            opening = opening.astimezone(zone)
            if opening >= end:
                break
            closing = opening + timedelta(minutes=w.duration_minutes)  # wall-clock minutes in the zone
            if closing.astimezone(UTC) <= opening.astimezone(UTC):  # a window the spring change swallowed
                cursor = closing
                continue
            if opening >= start:
                out.append(PlannedPower(_on_the_clock(opening, zone), "start", text))
            if start <= closing < end:
                out.append(PlannedPower(_on_the_clock(closing, zone), "stop", text))
            cursor = closing
    return sorted(out, key=lambda p: (p.when, p.action))


def _on_the_clock(when: datetime, zone: ZoneInfo) -> datetime:
    """The same instant as the zone's clocks show it: a wall time skipped by a spring change (02:30 on the
    night clocks go 02:00 -> 03:00) reads as the 03:30 it falls on; an autumn repeat keeps its first pass."""
    return when.astimezone(UTC).astimezone(zone)


def _current_opening(w: MaintenanceWindow, inside: datetime) -> datetime:
    """When the window that contains ``inside`` opened (minute resolution, in the window's zone)."""
    probe = inside.replace(second=0, microsecond=0)
    for _ in range(w.duration_minutes):
        before = probe - timedelta(minutes=1)
        if not w.contains(before):
            return probe
        probe = before
    return probe


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE
