"""Fleet-wide lookups shared by the analyses: the machine type a VM is billed as, labels, durations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from analytics.catalogue import MachineType, PriceCatalogue
from collector.errors import InputError
from collector.model import VmRecord
from core.durations import MAX_DURATION_S, parse_duration
from core.instants import EARLIEST, checked, parse_iso_instant

#: How a VM's machine type was found: its ``machine_type`` label, or the cheapest type that fits it.
TypeSource = Literal["label", "inferred", "unknown"]
MACHINE_TYPE_LABEL = "machine_type"


def resolve_machine_type(vm: VmRecord, catalogue: PriceCatalogue) -> tuple[MachineType | None, TypeSource]:
    """Return the VM's machine type and how it was chosen.

    "label": the ``machine_type`` label names a type the catalogue knows. "inferred": the cheapest
    generally available type with at least the VM's vCPUs and memory (bytes). ``(None, "unknown")``
    when the label is unknown and nothing in the catalogue is big enough. Never raises.
    """
    name = (vm.labels or {}).get(MACHINE_TYPE_LABEL, "").strip()
    if name:
        found = catalogue.get(name)
        if found is not None:
            return found, "label"
    inferred = catalogue.cheapest_fitting(vm.vcpus, vm.memory_bytes)
    if inferred is not None:
        return inferred, "inferred"
    return None, "unknown"


def label_value(labels: Mapping[str, str] | None, key: str, default: str = "(none)") -> str:
    """Return the label's value, or ``default`` when absent or blank."""
    value = (labels or {}).get(key, "")
    return value if value.strip() else default




def format_duration(delta: timedelta) -> str:
    """Render a duration compactly, e.g. ``"2d 3h"``, ``"45m"``; negative durations get a minus sign."""
    total_s = int(round(delta.total_seconds()))
    sign = "-" if total_s < 0 else ""
    total_s = abs(total_s)
    days, rest = divmod(total_s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    return f"{sign}{minutes}m"


def parse_instant(text: str, *, now: datetime, flag: str = "--since") -> datetime:
    """Parse an ISO 8601 date/time (naive = UTC) or a duration back from ``now`` (``"7d"``) to UTC.

    Raises InputError naming ``flag``, the bad value and the accepted forms, also for an instant outside
    the one accepted range (core.instants: 1970-01-01 .. 2199-12-31). A duration reaching back before
    1970 starts at 1970-01-01 (nothing is stored earlier).
    """
    cleaned = text.strip()
    try:
        return parse_iso_instant(cleaned, flag)
    except InputError as exc:
        if _looks_iso(cleaned):
            raise exc from None
    try:
        back = parse_duration(cleaned)
    except InputError:
        if _DURATION_SHAPE.fullmatch(cleaned.lower().replace(" ", "")):
            raise InputError(f"{flag} {text!r} is a duration longer than the longest accepted "
                             f"({MAX_DURATION_S / 86400:.0f} days); pass a shorter one or a date") from None
        raise InputError(
            f"{flag} {text!r} is neither an ISO date/time (2024-05-01, 2024-05-01T12:00Z) nor a duration "
            "back from now (7d, 24h, 90m)"
        ) from None
    try:
        return max(checked(now, flag, text) - back, EARLIEST)
    except OverflowError:
        return EARLIEST


def _looks_iso(text: str) -> bool:
    """Whether ``text`` is shaped like a date (so its error is the date's, not "not a duration")."""
    return bool(re.match(r"[+-]?\d{4,}-\d", text))


_DURATION_SHAPE = re.compile(r"(\d+(?:\.\d+)?[smhdw])+|p[0-9.wdthms]+")


def data_as_of(newest: datetime | None, now: datetime, *, stale_after: timedelta = timedelta(days=1)) -> datetime:
    """The time to report as of: ``now``, or the newest stored data when that ended over a day ago.

    Imported traces end long before today; a window ending "now" would hold none of them.
    """
    if newest is not None and newest < now - stale_after:
        return newest
    return now
