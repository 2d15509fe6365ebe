"""Fleet-wide lookups shared by the analyses: the machine type a VM is billed as, labels, durations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from analytics.catalogue import MachineType, PriceCatalogue
from collector.errors import InputError
from collector.model import VmRecord
from core.durations import parse_duration

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


#: Instants the store and pandas can hold (epoch seconds; pandas ends in 2262): 1970-01-01 .. 2199-12-31.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_instant(text: str, *, now: datetime, flag: str = "--since") -> datetime:
    """Parse an ISO 8601 date/time (naive = UTC) or a duration back from ``now`` (``"7d"``) to UTC.

    Raises InputError naming ``flag``, the bad value and the accepted forms, also for an instant outside
    1970-01-01 .. 2199-12-31.
    """
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        try:
            parsed = now - parse_duration(cleaned)
        except InputError:
            raise InputError(
                f"{flag} {text!r} is neither an ISO date/time (2024-05-01, 2024-05-01T12:00Z) nor a duration "
                "back from now (7d, 24h, 90m)"
            ) from None
        except OverflowError:
            parsed = EARLIEST - timedelta(days=1)
    except OverflowError:  # e.g. 0001-01-01 with a zone that moves it before year 1
        parsed = EARLIEST - timedelta(days=1)
    if not EARLIEST <= parsed < LATEST:
        raise InputError(f"{flag} {text!r} is outside {EARLIEST:%Y-%m-%d} .. {LATEST - timedelta(days=1):%Y-%m-%d}; "
                         "pass a time in that range")
    return parsed


def data_as_of(newest: datetime | None, now: datetime, *, stale_after: timedelta = timedelta(days=1)) -> datetime:
    """The time to report as of: ``now``, or the newest stored data when that ended over a day ago.

    Imported traces end long before today; a window ending "now" would hold none of them.
    """
    if newest is not None and newest < now - stale_after:
        return newest
    return now
