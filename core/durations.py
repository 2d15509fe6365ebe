"""One duration grammar for every flag and setting: ``24h``, ``7d``, ``1d12h``, ``90m``, ``2w`` or ISO ``P1DT12H``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from core.errors import InputError

MAX_DURATION_S = 100 * 365 * 86400.0
_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """Parse a duration like ``"24h"``, ``"7d"``, ``"1d12h"``, ``"90m"``, ``"2w"`` or ISO ``"P1DT12H"``.

    Units: s, m (minutes), h, d, w; case and spaces are ignored; the result is > 0.
    Raises InputError naming the bad value and the accepted forms.
    """
    raw = text
    cleaned = text.strip().lower().replace(" ", "")
    total_s = 0.0
    if cleaned.startswith("p"):
        match = _ISO_DURATION.fullmatch(cleaned)
        if match is not None and any(match.groups()):
            scales = (7 * 86400, 86400, 3600, 60, 1)
            total_s = sum(float(g) * k for g, k in zip(match.groups(), scales, strict=True) if g)
    else:
        parts = _DURATION_PART.findall(cleaned)
        if parts and "".join(n + u for n, u in parts) == cleaned:
            total_s = sum(float(n) * _DURATION_UNITS_S[u] for n, u in parts)
    if math.isfinite(total_s) and 0 < total_s <= MAX_DURATION_S:
        return timedelta(seconds=total_s)
    raise InputError(
        f"Duration {raw!r} is not understood; use a positive number with a unit s/m/h/d/w "
        "such as '24h', '7d', '1d12h', or ISO 8601 like 'P1D'"
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_ISO_DURATION = re.compile(
    r"p(?:(\d+(?:\.\d+)?)w)?(?:(\d+(?:\.\d+)?)d)?"
    r"(?:t(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?)?"
)


def duration_days(text: str) -> float:
    """Days in a duration of :func:`parse_duration`'s grammar. Raises InputError naming the value."""
    return parse_duration(text).total_seconds() / 86400.0
