"""Weekly windows: ``DAYS HH:MM-HH:MM [ZONE]``, the grammar of maintenance windows and on/off schedules.

A window is written ``sat 02:00-04:00``, ``mon-fri 22:30-23:30 Europe/Berlin``, ``daily 01:00-02:00``,
``sun,wed 23:00-01:00`` (an end at or before the start runs past midnight into the next day). Days are ``mon``
… ``sun``, ranges (``mon-fri``, ``fri-mon``), comma lists, or ``daily``/``*``. The zone is an IANA name and
defaults to UTC. The start is inclusive, the end exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import InputError

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_WINDOW_RE = re.compile(
    r"^\s*(?P<days>[a-z*][a-z,*\-]*)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
    r"(?:\s+(?P<zone>\S+))?\s*$",
    re.IGNORECASE,
)
_EXAMPLE = "e.g. 'sat 02:00-04:00', 'mon-fri 22:00-23:00 Europe/Berlin' or 'daily 01:00-02:00'"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A weekly window in which a VM may be restarted; minutes count from local midnight."""

    days: frozenset[int]  # 0 = Monday … 6 = Sunday, the day the window opens
    start_minute: int  # 0 … 1439
    duration_minutes: int  # 1 … 1440
    zone: str = "UTC"
    text: str = ""

    def _week_minute(self, when: datetime) -> int:
        local = when.astimezone(ZoneInfo(self.zone))
        return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute

    def contains(self, when: datetime) -> bool:
        """Return True when the aware datetime ``when`` lies inside the window (start inclusive)."""
        t = self._week_minute(when)
        return any(
            (t - (d * MINUTES_PER_DAY + self.start_minute)) % MINUTES_PER_WEEK < self.duration_minutes
            for d in self.days
        )

    def next_opening(self, after: datetime) -> datetime:
        """Return when the window next opens at or after ``after`` (``after`` itself when inside)."""
        if self.contains(after):
            return after
        zone = ZoneInfo(self.zone)
        local = after.astimezone(zone)
        t = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        wait = min((d * MINUTES_PER_DAY + self.start_minute - t) % MINUTES_PER_WEEK for d in self.days)
        naive = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=wait)
        return naive.replace(tzinfo=zone)

    def __str__(self) -> str:
        return self.text or _describe(self)


def _describe(w: MaintenanceWindow) -> str:
    days = "daily" if len(w.days) == 7 else ",".join(DAY_NAMES[d] for d in sorted(w.days))
    end = (w.start_minute + w.duration_minutes) % MINUTES_PER_DAY
    return f"{days} {w.start_minute // 60:02d}:{w.start_minute % 60:02d}-{end // 60:02d}:{end % 60:02d} {w.zone}"


def _minutes(text: str, where: str, *, allow_24: bool) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise InputError(f"{where}: time {text!r} is not a valid HH:MM (00:00-24:00); {_EXAMPLE}")
    return hours * 60 + minutes


def _day(name: str, where: str) -> int:
    key = name.strip().lower()
    for i, full in enumerate(_FULL_DAY_NAMES):
        if len(key) >= 3 and full.startswith(key):
            return i
    raise InputError(f"{where}: unknown day {name!r}; use mon, tue, wed, thu, fri, sat, sun")


def _days(spec: str, where: str) -> frozenset[int]:
    spec = spec.lower()
    if spec in ("daily", "*", "every"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in spec.split(","):
        if not part:
            raise InputError(f"{where}: empty day in {spec!r}; {_EXAMPLE}")
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day(first, where), _day(last, where)
            out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
        else:
            out.add(_day(part, where))
    return frozenset(out)


def parse_window(text: str, *, kind: str = "Maintenance window", zone: str = "UTC") -> MaintenanceWindow:
    """Parse one window such as ``'sat 02:00-04:00'``; ``zone`` applies when the text names none.

    ``kind`` starts the error messages ("Maintenance window", "Schedule"). Raises InputError showing the bad text.
    """
    where = f"{kind} {text!r}"
    m = _WINDOW_RE.match(text)
    if m is None:
        raise InputError(f"{where} is not 'DAYS HH:MM-HH:MM [ZONE]'; {_EXAMPLE}")
    days = _days(m["days"], where)
    start = _minutes(m["start"], where, allow_24=False)
    end = _minutes(m["end"], where, allow_24=True)
    if end == start:
        raise InputError(f"{where} is empty (start equals end); give a later end time")
    duration = end - start if end > start else end + MINUTES_PER_DAY - start
    zone = m["zone"] or zone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"{where}: unknown time zone {zone!r}; use an IANA name such as 'Europe/Berlin'"
        ) from exc
    window = MaintenanceWindow(days=days, start_minute=start, duration_minutes=duration, zone=zone)
    return MaintenanceWindow(
        days=days, start_minute=start, duration_minutes=duration, zone=zone, text=_describe(window)
    )


def parse_windows(texts: Iterable[str]) -> tuple[MaintenanceWindow, ...]:
    """Parse every configured window; raises InputError on the first bad one."""
    return tuple(parse_window(t) for t in texts)
