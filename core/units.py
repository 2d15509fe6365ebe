"""Units and the constants every package reckons with: one home each."""

from __future__ import annotations

from datetime import datetime

KIB = 1024
MIB = 1024**2
GIB = 1024**3
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
#: Months are 720 hours when a monthly figure is made from an hourly price (30 days).
HOURS_PER_MONTH = 720.0
#: The default history judged by a right-sizing finding (``[rightsizing] lookback_days``), days.
DEFAULT_LOOKBACK_DAYS = 14
#: Lookbacks the surfaces offer (AWS Compute Optimizer offers 14, 32 and 93 days).
LOOKBACK_CHOICES_DAYS: tuple[int, ...] = (7, 14, 30, 93)


def hour_floor(when: datetime) -> datetime:
    """The start of the hour that holds ``when`` (cost windows start on whole hours everywhere)."""
    return when.replace(minute=0, second=0, microsecond=0)
