"""Hourly history for a lookback longer than the loaded window, and which lookbacks the history allows.

The dashboard's snapshot holds the longest range (30 days) plus month to date; a 93-day lookback reads its
hours from the store when asked (the same columns the snapshot reads), once per snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from dashboard.snapshot import SNAPSHOT_COLUMNS, Snapshot, prepared_hours
from dashboard.views import LOOKBACKS_DAYS

if TYPE_CHECKING:
    from dashboard.adapters import AnalysisInputs
    from dashboard.data import DashboardData


def hours_since(data: AnalysisInputs, snap: Snapshot, start: pd.Timestamp, end: datetime) -> pd.DataFrame:
    """The snapshot's hourly rows in [start, end), read from the store when ``start`` is before the loaded window."""
    hours = snap.hours
    if not len(hours) or start >= pd.Timestamp(snap.window_start):
        return hours[(hours["ts"] >= start) & (hours["ts"] < end)] if len(hours) else hours

    def read() -> pd.DataFrame:
        frame = data.store.frame(start.to_pydatetime(), end, resolution="hour", columns=SNAPSHOT_COLUMNS)
        return prepared_hours(frame, snap.vms, SNAPSHOT_COLUMNS)

    frame: pd.DataFrame = snap.memoised(("hours-since", start, end), read)
    return frame[(frame["ts"] >= start) & (frame["ts"] < end)] if len(frame) else frame


def history_days(data: DashboardData) -> float:
    """Days of stored history (oldest to newest raw sample); 0 when the store is empty."""
    snap = data.snapshot()

    def compute() -> float:
        span = data.store.time_range()
        return 0.0 if span is None else (span[1] - span[0]) / timedelta(days=1)

    return data.memo(snap, ("history-days",), compute)


def available_lookbacks(data: DashboardData) -> dict[int, bool]:
    """Each lookback choice and whether the history allows it: the shortest always; a longer one when the
    history is longer than the choice before it (93 days once more than 30 days are stored)."""
    days = history_days(data)
    return {d: i == 0 or days > LOOKBACKS_DAYS[i - 1] for i, d in enumerate(LOOKBACKS_DAYS)}
