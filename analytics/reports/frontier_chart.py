"""The savings-vs-risk chart, one definition for the dashboard and the HTML report: curves under human names,
one colour per curve on every surface, both axes padded so that no point sits on a clipped edge."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from analytics.frontier import (
    JOINT_DAYS_MEMORY_WEIGHT,
    JOINT_HEADROOM_FRACTION,
    JOINT_MEMORY_WEIGHT,
    JOINT_RECENT_HALF_LIFE_DAYS,
    SweepPoint,
)

#: (strategy, knob) -> the curve's name in a legend, and what its knob values mean on hover.
CURVE_NAMES: Mapping[tuple[str, str], tuple[str, str]] = {
    ("rightsizer", "cpu_percentile"): ("rightsizer, by CPU percentile", "CPU percentile P{value:g}"),
    ("rightsizer", "profile"): ("rightsizer profiles", "profile {value}"),
    ("aws", "cpu_headroom_fraction"): ("AWS Compute Optimizer style", "CPU headroom {value:.0%}"),
    ("krr", "cpu_percentile"): ("KRR style", "CPU percentile P{value:g}"),
    ("vpa", "target_percentile"): ("Kubernetes VPA style", "target percentile P{value:g}"),
    ("rightsizer-budget", "budget_pct"): ("rightsizer, fleet risk budget", "budget {value:g} %"),
    ("rightsizer-memory", "memory_percentile"): ("rightsizer, memory by percentile", "memory P{value:g}"),
    ("rightsizer-risk", "risk_pct"): ("rightsizer, per-VM headroom by accepted risk",
                                      "accepted risk {value:g} % of intervals"),
    ("rightsizer-peaks", "cpu_percentile"): ("rightsizer, memory from daily peaks", "CPU percentile P{value:g}"),
    ("rightsizer-peaks-headroom", "cpu_headroom_fraction"): ("rightsizer, daily peaks + CPU headroom",
                                                             "CPU headroom {value:.0%}"),
    ("rightsizer-memory-p99", "memory_percentile"): ("rightsizer, CPU P99 + memory percentile",
                                                     "memory P{value:g}"),
    ("rightsizer-peaks-risk", "memory_peak_risk_pct"): ("rightsizer, daily-peak memory by accepted risk",
                                                        "accepted memory risk {value:g} % of days (CPU P95)"),
    ("rightsizer-peaks-trade", "memory_peak_risk_pct"): ("rightsizer, memory traded by daily-peak risk",
                                                         "accepted memory risk {value:g} % of days, below the "
                                                         "maximum allowed (CPU P90)"),
    ("rightsizer-joint", "budget_pct"): ("rightsizer, CPU and memory by one fleet budget",
                                         "budget {value:g} % of training intervals (memory overruns "
                                         f"x{JOINT_MEMORY_WEIGHT:g})"),
    ("rightsizer-joint-recent", "budget_pct"): ("rightsizer, one fleet budget, recent days counted more",
                                                "budget {value:g} % of training intervals, weighted by a "
                                                f"{JOINT_RECENT_HALF_LIFE_DAYS:g}-day half-life (memory overruns "
                                                f"x{JOINT_MEMORY_WEIGHT:g})"),
    ("rightsizer-joint-days", "budget_pct"): ("rightsizer, one fleet budget, memory counted in days",
                                              "budget {value:g} % of training intervals (every interval of a day "
                                              f"whose memory peak is over counts x{JOINT_DAYS_MEMORY_WEIGHT:g})"),
    ("rightsizer-joint-headroom", "budget_pct"): (
        "rightsizer, one fleet budget, memory in days with headroom",
        "budget {value:g} % of training intervals, weighted by a "
        f"{JOINT_RECENT_HALF_LIFE_DAYS:g}-day half-life (every interval of a day whose memory peak comes within "
        f"{JOINT_HEADROOM_FRACTION:.0%} of the type's memory counts x{JOINT_DAYS_MEMORY_WEIGHT:g})"),
}
#: One colour per curve, the same in the dashboard and the report.
CURVE_COLOURS: Mapping[tuple[str, str], str] = {
    ("rightsizer", "cpu_percentile"): "#2b6cb0",
    ("rightsizer", "profile"): "#0f9960",
    ("aws", "cpu_headroom_fraction"): "#d9822b",
    ("krr", "cpu_percentile"): "#c23030",
    ("vpa", "target_percentile"): "#8f398f",
    ("rightsizer-budget", "budget_pct"): "#29a634",
    ("rightsizer-memory", "memory_percentile"): "#00998c",
    ("rightsizer-risk", "risk_pct"): "#7157d9",
    ("rightsizer-peaks", "cpu_percentile"): "#1f4b99",
    ("rightsizer-peaks-headroom", "cpu_headroom_fraction"): "#5c7080",
    ("rightsizer-memory-p99", "memory_percentile"): "#a67908",
    ("rightsizer-peaks-risk", "memory_peak_risk_pct"): "#db2c6f",
    ("rightsizer-peaks-trade", "memory_peak_risk_pct"): "#7a8f00",
    ("rightsizer-joint", "budget_pct"): "#8a5a44",
    ("rightsizer-joint-recent", "budget_pct"): "#14a3c7",
    ("rightsizer-joint-days", "budget_pct"): "#b30086",
    ("rightsizer-joint-headroom", "budget_pct"): "#4a7c59",
}
X_TITLE = "CPU overrun (% of evaluated {unit} over the recommended vCPUs)"
Y_TITLE = "savings (% of the evaluated VMs' compute price)"


def curve_name(strategy: str, knob: str) -> str:
    return CURVE_NAMES.get((strategy, knob), (f"{strategy} ({knob.replace('_', ' ')})", ""))[0]


def point_text(strategy: str, knob: str, value: float | str) -> str:
    template = CURVE_NAMES.get((strategy, knob), ("", ""))[1]
    try:
        return template.format(value=value) if template else f"{knob.replace('_', ' ')} {value}"
    except (ValueError, TypeError):
        return f"{knob.replace('_', ' ')} {value}"


def _along_knob(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """A curve's points in the order of its knob (the percentile, headroom or risk target a user picks), so the
    line follows the trade-off as the knob moves; named points (profiles) in their given order."""
    if any(isinstance(p.value, str) for p in points):
        return list(points)
    return sorted(points, key=lambda p: float(p.value))


def _padded(values: Sequence[float], *, floor_zero: bool) -> list[float]:
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    lo = min(lo, 0.0) if floor_zero else lo
    pad = max((hi - lo) * 0.08, 0.05 if floor_zero else 0.5)
    return [lo - pad, hi + pad]


def frontier_figure(points: Sequence[SweepPoint], chosen: SweepPoint | None = None, *,
                    unit: str = "VM-hours") -> dict[str, Any]:
    """Savings (%) against CPU overrun (% of the evaluated ``unit``: hourly rollups are "VM-hours", a raw
    backtest's "5-minute VM-intervals"), one line per curve, the point in use marked; a pure plotly dict."""
    curves: dict[tuple[str, str], list[SweepPoint]] = {}
    for p in points:
        curves.setdefault((p.strategy, p.knob), []).append(p)
    data: list[dict[str, Any]] = []
    for (strategy, knob), pts in curves.items():
        ordered = _along_knob(pts)
        colour = CURVE_COLOURS.get((strategy, knob), "#5c7080")
        data.append({
            "type": "scatter", "mode": "lines+markers" if len(pts) > 1 and knob != "profile" else "markers",
            "name": _e(curve_name(strategy, knob)), "cliponaxis": False,
            "line": {"color": colour}, "marker": {"color": colour, "size": 8},
            "x": [round(p.cpu_overrun_pct, 4) for p in ordered], "y": [round(p.savings_pct, 3) for p in ordered],
            "text": [_e(f"{point_text(strategy, knob, p.value)}; memory overrun {p.mem_overrun_pct:.3f} % "
                        f"of {unit}") for p in ordered],
            "hovertemplate": "%{text}<br>CPU overrun %{x:.3f} % of " + unit + "<br>savings %{y:.1f} %"
                             "<extra>%{fullData.name}</extra>",
        })
    if chosen is not None:
        value = chosen.value if chosen.knob == "profile" else point_text(chosen.strategy, chosen.knob, chosen.value)
        label = _e(f"in use: {value}")
        data.append({"type": "scatter", "mode": "markers+text", "name": label, "cliponaxis": False,
                     "x": [round(chosen.cpu_overrun_pct, 4)], "y": [round(chosen.savings_pct, 3)],
                     "text": [label], "textposition": "top right",
                     "marker": {"size": 16, "symbol": "star", "color": "black"}})
    xs = [p.cpu_overrun_pct for p in points]
    ys = [p.savings_pct for p in points]
    return {"data": data, "layout": {
        "xaxis": {"title": {"text": X_TITLE.format(unit=unit)}, "range": _padded(xs, floor_zero=True)},
        "yaxis": {"title": {"text": Y_TITLE}, "range": _padded(ys, floor_zero=False)},
        "margin": {"t": 30, "r": 10}, "hovermode": "closest",
        "legend": {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top"}}}


def _e(text: str) -> str:
    # plotly renders a small HTML subset in labels and decodes entities, so escaped text displays as typed
    return html.escape(text, quote=False)
