"""Which lookbacks the stored history allows (a lookback beyond the loaded window reads its hours from the
store: ``dashboard.snapshot.hours_since``)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from dashboard.views import LOOKBACKS_DAYS

if TYPE_CHECKING:
    from dashboard.data import DashboardData


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
