"""Month to date, the trailing run-rate and the month-end forecast of a fleet's priced hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.frames import utc_timestamp

#: The forecast extrapolates the cost of this many trailing days.
RUN_RATE_DAYS = 7
_HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """Month to date, the trailing run-rate and the month-end forecast of a set of priced hours."""

    month_start: datetime
    month_to_date: float
    run_rate_per_hour: float
    run_rate_hours: float
    remaining_hours: float
    forecast_month_end: float
    forecast_basis: str


def month_figures(ts_ns: np.ndarray, cost: np.ndarray, *, now: datetime, currency: str) -> MonthFigures:
    """Month figures of priced hours: ``ts_ns`` (epoch ns, UTC) and ``cost`` per row, in the frame's row order.

    Month to date sums rows from the first of ``now``'s month up to ``now``; the forecast adds the run-rate of
    the trailing ``RUN_RATE_DAYS`` (or the shorter span the rows hold) times the hours left in the month.
    """
    now_ts = utc_timestamp(now)
    month_start = now_ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0, nanosecond=0)
    next_month = month_start + pd.DateOffset(months=1)
    before_now = ts_ns < now_ts.value
    mtd = float(pd.Series(cost[(ts_ns >= month_start.value) & before_now]).sum())
    rate_start = now_ts - pd.Timedelta(days=RUN_RATE_DAYS)
    if len(ts_ns):
        rate_start = max(rate_start, pd.Timestamp(int(ts_ns.min()), tz="UTC"))
    rate_hours = max((now_ts - rate_start) / _HOUR, 0.0)
    rate_cost = float(pd.Series(cost[(ts_ns >= rate_start.value) & before_now]).sum())
    rate = rate_cost / rate_hours if rate_hours > 0 else 0.0
    remaining = max((next_month - now_ts) / _HOUR, 0.0)
    span = "last 7 days" if rate_hours >= RUN_RATE_DAYS * 24 - 1e-9 else f"last {rate_hours:.1f} h (all data)"
    basis = (
        f"month to date {mtd:.2f} {currency} + run-rate of the {span} "
        f"{rate:.4f} {currency}/h x {remaining:.1f} h left in the month"
    )
    return MonthFigures(month_start.to_pydatetime(), mtd, rate, float(rate_hours), float(remaining),
                        mtd + rate * remaining, basis)
