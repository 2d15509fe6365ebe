"""The one range of instants every command, flag and API parameter accepts: 1970-01-01 .. 2199-12-31 (UTC).

The store keeps epoch seconds and pandas ends in 2262; Python's datetime arithmetic overflows near years 1 and
9999. Whatever the surface (``costs --since``, ``report --until``, ``schedule --from``, ``recommend --now``, the
API's ``since``/``until``), an instant outside this range is bad input with the same message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.errors import InputError

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
#: the first instant refused
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def out_of_range(flag: str, text: str) -> InputError:
    """The InputError for ``flag``'s value ``text`` outside ``EARLIEST`` .. ``LATEST``."""
    return InputError(f"{flag} {text!r} is outside {EARLIEST:%Y-%m-%d} .. {LATEST - timedelta(days=1):%Y-%m-%d}; "
                      "pass a time in that range")


def checked(when: datetime, flag: str, text: str) -> datetime:
    """``when`` (aware) in UTC when it lies in the range; raises ``out_of_range`` otherwise."""
    try:
        utc = when.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a zone that moves it before year 1
        raise out_of_range(flag, text) from None
    if not EARLIEST <= utc < LATEST:
        raise out_of_range(flag, text)
    return utc


def parse_iso_instant(text: str, flag: str) -> datetime:
    """Parse an ISO 8601 date/time (naive = UTC, ``Z`` accepted) in the range; returns it in UTC.

    Raises InputError naming ``flag`` for text that is not ISO 8601 or an instant outside the range.
    """
    cleaned = text.strip()
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag} {text!r} is not an ISO 8601 date/time such as 2026-11-02 or "
                         "2026-11-02T10:00:00+00:00") from None
    return checked(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC), flag, text)
