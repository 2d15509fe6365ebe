"""The VM page's weekly pattern heat map is a 7 (weekday) x 24 (hour) grid of mean CPU.

The dashboard ships plotly.js's basic bundle, which has no heatmap trace (it drew one as a diagonal
scatter line), so the grid is drawn with bar cells; these tests read the cells back from the figure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import figures


def cells_of(fig: go.Figure) -> dict[tuple[str, int], float]:
    """(weekday label, hour) -> value of every cell the figure draws."""
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert bar.type == "bar" and bar.orientation == "h"
    assert all(w == 1.0 for w in bar.x)  # each cell spans exactly one hour
    return {(day, int(start)): float(v) for day, start, v in zip(bar.y, bar.base, bar.marker.color, strict=True)}


def two_weeks(start: str = "2026-11-02T00:00:00Z") -> pd.DataFrame:
    """Hourly CPU over two weeks from a Monday: day * 10 + hour / 10 in week one, that + 2 in week two."""
    ts = pd.date_range(start, periods=14 * 24, freq="h")
    week = np.arange(len(ts)) // (7 * 24)
    cpu = ts.day_of_week * 10 + ts.hour / 10 + 2 * week
    return pd.DataFrame({"ts": ts, "cpu_mean_vcpus": cpu})


def test_heat_map_is_a_seven_by_twenty_four_grid_of_hourly_means() -> None:
    fig = figures.weekly_profile_figure(two_weeks())
    cells = cells_of(fig)
    assert len(cells) == 7 * 24
    assert {d for d, _ in cells} == set(figures.WEEKDAYS)
    assert {h for _, h in cells} == set(range(24))
    for i, day in enumerate(figures.WEEKDAYS):
        for hour in range(24):
            assert math.isclose(cells[(day, hour)], i * 10 + hour / 10 + 1), (day, hour)
    assert list(fig.layout.yaxis.categoryarray) == list(figures.WEEKDAYS)
    assert tuple(fig.layout.xaxis.range) == (0, 24)
    assert fig.layout.barmode == "overlay" and fig.data[0].marker.colorscale is not None


def test_heat_map_grid_follows_the_time_zone_and_leaves_missing_hours_blank() -> None:
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-11-02T23:00:00Z", "2026-11-03T05:00:00Z"]),
                          "cpu_mean_vcpus": [3.0, float("nan")]})
    grid = figures.weekly_grid(frame, timezone="Europe/Berlin")
    assert grid.shape == (7, 24)
    assert grid.loc[1, 0] == 3.0  # Monday 23:00 UTC is Tuesday 00:00 in Berlin (UTC+1 in November)
    assert int(grid.notna().sum().sum()) == 1
    assert cells_of(figures.weekly_profile_figure(frame, timezone="Europe/Berlin")) == {("Tue", 0): 3.0}
