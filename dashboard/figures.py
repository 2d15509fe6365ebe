"""Plotly figures for the dashboard: pure functions from DataFrames to ``go.Figure``.

Every axis names its unit; money axes name the currency. Text that comes from users (VM names, labels)
is HTML-escaped before it reaches Plotly, which otherwise interprets a subset of HTML in labels.

Every figure is on the ``plotly_white`` template, set as plotly's default template when this module is
imported (``plotly.io.templates.default``): plotly gives each new figure its default template as it is,
while naming a template in ``update_layout`` validates all of its properties again: most of an
overview callback's figure building (cProfile of ``overview.update``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from analytics.findings.projection import Projection

GIB = 1024**3
MIB = 1024**2
TEMPLATE = "plotly_white"
pio.templates.default = TEMPLATE

FINDING_ORDER: tuple[str, ...] = (
    "over-provisioned", "under-provisioned", "contention", "resize-regret", "idle", "stopped", "below-threshold",
    "optimized", "insufficient-data",
)
FINDING_COLOURS: Mapping[str, str] = {
    "over-provisioned": "#d9822b",
    "under-provisioned": "#c23030",
    "idle": "#5c7080",
    "optimized": "#0f9960",
    "insufficient-data": "#a7b6c2",
    "below-threshold": "#7fa37a",
    "stopped": "#394b59",
    "resize-regret": "#8a1c1c",
    "contention": "#7157d9",
}
_USED = "#2b6cb0"
_USED_LIGHT = "#90b4de"
_ALLOCATED = "#1a1a1a"
_RECOMMENDED = "#d9822b"
_NEEDED = "#8f398f"
_HEIGHT = 300
#: Fixed margins (``autoexpand`` off): with auto-expanding margins plotly.js measures the legend and tick
#: labels after drawing and, when they overflow, draws the whole figure again -- about two thirds of the
#: overview's drawing time (bench/dashboard_bench.py). Every figure whose labels have a known length gets
#: margins wide enough for them; figures with user-named category axes keep auto-expansion.
_MARGIN = {"l": 80, "r": 20, "t": 44, "b": 40, "autoexpand": False}


def inert(text: object) -> str:
    """Return ``text`` with HTML metacharacters escaped, for Plotly labels (it renders some tags)."""
    return html.escape(str(text), quote=False)


def _base(title: str, *, height: int = _HEIGHT, margin: Mapping[str, object] | None = None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        height=height,
        margin={**_MARGIN, **(margin or {})},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )
    return fig


def empty_figure(title: str, message: str = "No data in the selected range") -> go.Figure:
    """Return a blank figure that says why it is blank."""
    fig = _base(title)
    fig.add_annotation(text=inert(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 13, "color": "#5c7080"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def spend_figure(frame: pd.DataFrame, *, currency: str, period: str) -> go.Figure:
    """Fleet spend per period from columns ``ts``, ``compute_cost``, ``storage_cost`` (currency units).

    ``period`` is "hour" (stacked area) or "day" (stacked bars).
    """
    title = f"Spend per {period} ({currency})"
    if frame.empty:
        return empty_figure(title)
    fig = _base(title)
    axis_note = ""
    if period == "day":
        axis_note = _day_bars(fig, frame, currency)
    else:
        whole, partial = _split_partial_hour(frame)
        fig.add_scatter(x=whole["ts"], y=whole["compute_cost"], name="compute", stackgroup="cost",
                        line={"color": _USED, "width": 1})
        fig.add_scatter(x=whole["ts"], y=whole["storage_cost"], name="storage", stackgroup="cost",
                        line={"color": _USED_LIGHT, "width": 1})
        if partial is not None:
            fig.add_scatter(x=[partial["ts"]], y=[partial["cost"]], mode="markers", name="this hour so far",
                            marker={"symbol": "circle-open", "size": 9, "color": _USED, "line": {"width": 2}},
                            hovertemplate=f"%{{y:,.4f}} {currency} in the first {partial['hours'] * 60:.0f} min "
                                          "of this hour<extra>partial hour</extra>")
    fig.update_yaxes(title_text=f"{currency} per {period}", rangemode="tozero", tickformat=",.2f")
    fig.update_xaxes(title_text="time (UTC)" + axis_note)
    return fig


def _day_bars(fig: go.Figure, frame: pd.DataFrame, currency: str) -> str:
    """Stacked compute and storage bars per day; a day the data covers partly (column ``hours`` < 24: the
    range's first day, today) is drawn pale and says so, so that it does not read as a drop in spend. Returns
    what the x-axis title adds when a day is partial."""
    hours = frame["hours"] if "hours" in frame else pd.Series(24.0, index=frame.index)
    partial = hours < 24 - 1e-6
    opacity = [0.4 if p else 1.0 for p in partial]
    note = [f"partial day: {h:.1f} h of 24" if p else "whole day" for h, p in zip(hours, partial, strict=True)]
    for column, name, colour in (("compute_cost", "compute", _USED), ("storage_cost", "storage", _USED_LIGHT)):
        fig.add_bar(x=frame["ts"], y=frame[column], name=name, marker={"color": colour, "opacity": opacity},
                    customdata=note, hovertemplate=f"%{{y:,.2f}} {currency} (%{{customdata}})<extra>{name}</extra>")
    fig.update_layout(barmode="stack")
    return "; pale bars: partial days" if partial.any() else ""


def _split_partial_hour(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series | None]:
    """The hours before the one still running, and that running hour (None when the last hour is whole)."""
    if "hours" not in frame or frame.empty or frame["hours"].iloc[-1] >= 1 - 1e-9:
        return frame, None
    return frame.iloc[:-1], frame.iloc[-1]


def utilisation_figure(frame: pd.DataFrame) -> go.Figure:
    """Fleet CPU (vCPUs) and memory (GiB), used vs allocated, from an hourly frame.

    Columns: ``ts``, ``cpu_used_vcpus``, ``cpu_allocated_vcpus``, ``memory_used_bytes``,
    ``memory_allocated_bytes``, ``memory_known_allocated_bytes`` (allocation of VMs reporting memory use).
    """
    title = "Fleet utilisation (running VMs)"
    if frame.empty:
        return empty_figure(title)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("CPU", "Memory"))
    fig.add_scatter(x=frame["ts"], y=frame["cpu_used_vcpus"], name="CPU used", row=1, col=1,
                    line={"color": _USED, "width": 1.5}, fill="tozeroy")
    fig.add_scatter(x=frame["ts"], y=frame["cpu_allocated_vcpus"], name="CPU allocated", row=1, col=1,
                    line={"color": _ALLOCATED, "width": 1.5, "shape": "hv"})
    fig.add_scatter(x=frame["ts"], y=frame["memory_used_bytes"] / GIB, name="memory used", row=2, col=1,
                    line={"color": "#0f9960", "width": 1.5}, fill="tozeroy")
    fig.add_scatter(x=frame["ts"], y=frame["memory_allocated_bytes"] / GIB, name="memory allocated",
                    row=2, col=1, line={"color": _ALLOCATED, "width": 1.5, "dash": "dot", "shape": "hv"})
    if "memory_known_allocated_bytes" in frame:
        fig.add_scatter(x=frame["ts"], y=frame["memory_known_allocated_bytes"] / GIB,
                        name="allocated where use is known", row=2, col=1,
                        line={"color": "#5c7080", "width": 1, "dash": "dash", "shape": "hv"})
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        height=2 * _HEIGHT, margin={**_MARGIN, "t": 90}, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "xanchor": "right", "x": 1.0},
    )
    fig.update_yaxes(title_text="vCPUs", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="GiB", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    return fig


def findings_figure(counts: Mapping[str, int]) -> go.Figure:
    """Horizontal bars: number of VMs per finding.

    As tall as the utilisation figure beside it on the overview: the grid row stretches the card to that
    height anyway, and a figure drawn at another height is drawn twice (once more when dcc.Graph resizes it).
    """
    title = "VMs by finding"
    if not counts or sum(counts.values()) == 0:
        return empty_figure(title, "No findings yet")
    keys = [k for k in FINDING_ORDER if k in counts] + sorted(k for k in counts if k not in FINDING_ORDER)
    fig = _base(title, height=2 * _HEIGHT, margin={"l": 12 + 7 * max(len(k) for k in keys)})
    fig.add_bar(
        y=[inert(k) for k in keys], x=[counts[k] for k in keys], orientation="h",
        marker_color=[FINDING_COLOURS.get(k, "#5c7080") for k in keys],
        text=[str(counts[k]) for k in keys], textposition="auto", hovertemplate="%{y}: %{x} VMs<extra></extra>",
    )
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(title_text="VMs", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    return fig


def spend_by_label_figure(key: str | None, spend: Mapping[str, float], *, currency: str, range_text: str) -> go.Figure:
    """Horizontal bars: spend over the range per value of the label ``key``, the biggest first."""
    title = f"Spend by {inert(key)}, {inert(range_text)} ({currency})" if key else f"Spend by label ({currency})"
    if not key or not spend:
        return empty_figure(title, "No VM carries a label to group spend by")
    names = list(spend)[:15]
    fig = _base(title, height=max(_HEIGHT, 40 + 26 * len(names)), margin={"l": 12 + 7 * max(len(n) for n in names),
                                                                           "r": 90})
    fig.add_bar(y=[inert(n) for n in names], x=[spend[n] for n in names], orientation="h", marker_color=_USED,
                text=[f"{spend[n]:,.2f}" for n in names], textposition="outside", cliponaxis=False,
                hovertemplate="%{y}: %{x:,.2f} " + currency + "<extra></extra>")
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(title_text=currency, rangemode="tozero", tickformat=",.0f")
    fig.update_yaxes(autorange="reversed")
    return fig


def _hline(fig: go.Figure, frame: pd.DataFrame, value: float | None, name: str, colour: str,
           dash: str, scale: float = 1.0) -> None:
    if value is None or frame.empty:
        return
    fig.add_scatter(x=[frame["ts"].min(), frame["ts"].max()], y=[value / scale, value / scale], name=name,
                    mode="lines", line={"color": colour, "width": 2, "dash": dash})


#: A VM chart with its legend under the plot: room for every line (allocated, recommended, need) in two rows.
VM_CHART_HEIGHT = 420


def _legend_below(fig: go.Figure) -> None:
    """Put the legend under the x axis: six entries do not fit the top margin beside the title, where plotly
    drops the rows it cannot place (the allocated line went missing)."""
    fig.update_layout(height=VM_CHART_HEIGHT, margin={**_MARGIN, "b": 150},
                      legend={"orientation": "h", "x": 0.0, "xanchor": "left", "y": -0.3, "yanchor": "top",
                              "entrywidth": 0.5, "entrywidthmode": "fraction", "font": {"size": 11}})


WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def weekly_grid(frame: pd.DataFrame, *, timezone: str = "UTC") -> pd.DataFrame:
    """Mean CPU (vCPUs) by weekday (7 rows, Monday first) and hour (24 columns) of hourly ``ts``,
    ``cpu_mean_vcpus`` in ``timezone``; NaN where the range holds no sample for that hour."""
    local = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(timezone)
    data = pd.DataFrame({"day": local.dt.day_of_week.to_numpy(), "hour": local.dt.hour.to_numpy(),
                         "cpu": pd.to_numeric(frame["cpu_mean_vcpus"], errors="coerce").to_numpy()})
    return data.groupby(["day", "hour"])["cpu"].mean().unstack("hour").reindex(index=range(7), columns=range(24))


def weekly_profile_figure(frame: pd.DataFrame, *, timezone: str = "UTC",
                          allocated_vcpus: float | None = None) -> go.Figure:
    """Weekday x hour heat map of one VM's mean CPU (vCPUs) from hourly columns ``ts``, ``cpu_mean_vcpus``.

    Drawn as one horizontal bar per (weekday, hour) cell, spanning [hour, hour + 1) and coloured by its
    value: the dashboard loads plotly.js's basic bundle (scatter, bar, pie; dashboard/web.py), which has
    no heatmap trace and would draw one as a scatter line. The colours run from 0 to ``allocated_vcpus`` (an
    absolute scale: an idle VM stays pale), or to the busiest cell when the allocation is unknown."""
    title = f"Weekly pattern: mean CPU by weekday and hour ({inert(timezone)})"
    if frame.empty or frame["cpu_mean_vcpus"].notna().sum() == 0:
        return empty_figure(title, "No CPU data in the selected range")
    cells = weekly_grid(frame, timezone=timezone).stack().dropna().rename("cpu").reset_index()
    values = cells["cpu"].astype(float)
    fig = _base(title, height=260, margin={"l": 48, "r": 96})  # the colour bar sits in the right margin
    fig.add_bar(orientation="h", y=[WEEKDAYS[d] for d in cells["day"]], x=[1.0] * len(cells),
                base=cells["hour"].astype(float).tolist(), width=1.0, customdata=cells["hour"].tolist(),
                marker={"color": values.tolist(), "colorscale": "Blues", "cmin": 0.0,
                        "cmax": max(float(values.max()), float(allocated_vcpus or 0.0), 1e-9), "line": {"width": 0},
                        "colorbar": {"title": {"text": "vCPUs"}, "tickformat": ",.3~r", "thickness": 14,
                                     "nticks": 5},
                        "showscale": True},
                hovertemplate="%{y} %{customdata:02d}:00: %{marker.color:.2f} vCPU<extra></extra>")
    fig.update_yaxes(categoryorder="array", categoryarray=list(WEEKDAYS), autorange="reversed")
    fig.update_xaxes(title_text="hour", range=[0, 24], tickvals=list(range(0, 24, 3)),
                     ticktext=[f"{h:02d}" for h in range(0, 24, 3)], showgrid=False)
    fig.update_layout(hovermode="closest", barmode="overlay", bargap=0, showlegend=False)
    return fig


def vm_cpu_figure(frame: pd.DataFrame, *, recommended_vcpus: float | None = None,
                  recommended_label: str = "recommended", needed_vcpus: float | None = None,
                  need_label: str = "needed") -> go.Figure:
    """One VM's CPU in vCPUs from hourly columns ``ts``, ``cpu_mean_vcpus``, ``cpu_p95_vcpus``,
    ``cpu_max_vcpus``, ``vcpus``, plus allocated, recommended-size and needed lines."""
    title = "CPU (vCPUs)"
    if frame.empty or frame["cpu_mean_vcpus"].notna().sum() == 0:
        return empty_figure(title, "No CPU data in the selected range")
    fig = _base(title)
    fig.add_scatter(x=frame["ts"], y=frame["cpu_max_vcpus"], name="hourly max", mode="lines",
                    line={"color": _USED_LIGHT, "width": 1})
    fig.add_scatter(x=frame["ts"], y=frame["cpu_p95_vcpus"], name="hourly p95", mode="lines",
                    line={"color": "#5a8fd0", "width": 1})
    fig.add_scatter(x=frame["ts"], y=frame["cpu_mean_vcpus"], name="hourly mean", mode="lines",
                    line={"color": _USED, "width": 1.5})
    fig.add_scatter(x=frame["ts"], y=frame["vcpus"], name="allocated", mode="lines",
                    line={"color": _ALLOCATED, "width": 2, "shape": "hv"})
    _hline(fig, frame, recommended_vcpus, inert(recommended_label), _RECOMMENDED, "dash")
    _hline(fig, frame, needed_vcpus, inert(need_label), _NEEDED, "dot")
    fig.update_yaxes(title_text="vCPUs", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    _legend_below(fig)
    return fig


def vm_memory_figure(frame: pd.DataFrame, *, recommended_bytes: float | None = None,
                     recommended_label: str = "recommended", needed_bytes: float | None = None,
                     need_label: str = "need") -> go.Figure:
    """One VM's memory in GiB from ``ts``, ``memory_used_max_bytes``, ``memory_used_mean_bytes``,
    ``memory_bytes``, plus allocated, recommended-size and needed lines."""
    title = "Memory (GiB)"
    if frame.empty:
        return empty_figure(title)
    fig = _base(title)
    known = frame["memory_used_max_bytes"].notna().sum() > 0
    if known:
        fig.add_scatter(x=frame["ts"], y=frame["memory_used_max_bytes"] / GIB, name="used, hourly max",
                        mode="lines", line={"color": "#0f9960", "width": 1.5})
        fig.add_scatter(x=frame["ts"], y=frame["memory_used_mean_bytes"] / GIB, name="used, hourly mean",
                        mode="lines", line={"color": "#7fcca8", "width": 1})
    else:
        fig.add_annotation(text="the guest reports no memory use (no balloon stats)", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper", font={"color": "#5c7080"})
    fig.add_scatter(x=frame["ts"], y=frame["memory_bytes"] / GIB, name="allocated", mode="lines",
                    line={"color": _ALLOCATED, "width": 2, "shape": "hv"})
    _hline(fig, frame, recommended_bytes, inert(recommended_label), _RECOMMENDED, "dash", scale=GIB)
    _hline(fig, frame, needed_bytes, inert(need_label), _NEEDED, "dot", scale=GIB)
    fig.update_yaxes(title_text="GiB", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    _legend_below(fig)
    return fig


#: Byte-rate units, smallest first: a chart uses the largest one its peak reaches (never "12µ MiB/s").
RATE_UNITS: tuple[tuple[str, float], ...] = (("B/s", 1.0), ("KiB/s", 1024.0), ("MiB/s", MIB), ("GiB/s", GIB))


def rate_unit(peak_bps: float) -> tuple[str, float]:
    """The unit (name, bytes) to show rates up to ``peak_bps`` in: the largest with the peak at 1 or more."""
    chosen = RATE_UNITS[0]
    for unit in RATE_UNITS:
        if peak_bps >= unit[1]:
            chosen = unit
    return chosen


def vm_disk_figure(frame: pd.DataFrame) -> go.Figure:
    """One VM's disk throughput from hourly byte totals ``disk_read_bytes``, ``disk_write_bytes``, in the
    byte-rate unit its peak reaches (B/s, KiB/s, MiB/s, GiB/s)."""
    if frame.empty or frame[["disk_read_bytes", "disk_write_bytes"]].notna().sum().sum() == 0:
        return empty_figure("Disk throughput (hourly average)", "No disk data in the selected range")
    peak = float(frame[["disk_read_bytes", "disk_write_bytes"]].max().max()) / 3600
    unit, size = rate_unit(peak)
    fig = _base(f"Disk throughput ({unit}, hourly average)")
    fig.add_scatter(x=frame["ts"], y=frame["disk_read_bytes"] / 3600 / size, name="read", mode="lines",
                    line={"color": _USED, "width": 1.5})
    fig.add_scatter(x=frame["ts"], y=frame["disk_write_bytes"] / 3600 / size, name="write", mode="lines",
                    line={"color": "#d9822b", "width": 1.5})
    fig.update_yaxes(title_text=unit, rangemode="tozero", tickformat=",.3~r")
    fig.update_xaxes(title_text="time (UTC)")
    return fig


def vm_cost_figure(frame: pd.DataFrame, *, currency: str) -> go.Figure:
    """One VM's cost per day from ``ts`` (day), ``compute_cost``, ``storage_cost``."""
    title = f"Cost per day ({currency})"
    if frame.empty:
        return empty_figure(title)
    fig = _base(title)
    axis_note = _day_bars(fig, frame, currency)
    fig.update_yaxes(title_text=f"{currency} per day", rangemode="tozero", tickformat=",.2f")
    fig.update_xaxes(title_text="day (UTC)" + axis_note)
    return fig


def savings_figure(frame: pd.DataFrame, *, currency: str, top: int = 15) -> go.Figure:
    """Top VMs by potential monthly savings from ``name``, ``monthly_savings``, ``finding``."""
    title = f"Potential savings, top {top} VMs ({currency} per month)"
    data = frame[frame["monthly_savings"] > 0].nlargest(top, "monthly_savings") if not frame.empty else frame
    if data.empty:
        return empty_figure(title, "No savings found")
    fig = _base(title, height=max(240, 28 * len(data) + 80), margin={"autoexpand": True})
    fig.add_bar(
        y=[inert(n) for n in data["name"]], x=data["monthly_savings"], orientation="h",
        marker_color=[FINDING_COLOURS.get(f, "#5c7080") for f in data["finding"]],
        hovertemplate="%{y}: %{x:,.2f} " + inert(currency) + "/month<extra></extra>",
    )
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(title_text=f"{currency} per month", rangemode="tozero", tickformat=",.2f")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def backup_age_figure(frame: pd.DataFrame) -> go.Figure:
    """Newest backup age vs policy, in hours, from ``name``, ``age_h``, ``policy_h``, ``status``."""
    title = "Newest backup age vs policy (hours)"
    data = frame.dropna(subset=["policy_h"]) if not frame.empty else frame
    if not data.empty:
        data = data[data["status"] != "unknown"]  # no source could show their backups: no age to draw
    if data.empty:
        return empty_figure(title, "No VM has a backup policy and a known backup state")
    data = data.sort_values("age_h", ascending=False, na_position="first")
    names = [inert(n) for n in data["name"]]
    colours = ["#c23030" if s != "ok" else "#0f9960" for s in data["status"]]
    # A VM never backed up is drawn past the longest policy so that it stands out.
    ages = data["age_h"].fillna(float(data["policy_h"].max()) * 1.5)
    fig = _base(title, height=max(260, 22 * len(data) + 100), margin={"autoexpand": True})
    fig.add_bar(y=names, x=ages, orientation="h", marker_color=colours, name="age",
                text=["never backed up" if s == "never" else "" for s in data["status"]], textposition="inside",
                customdata=data["status"], hovertemplate="%{y}: %{x:.1f} h (%{customdata})<extra></extra>")
    fig.add_scatter(y=names, x=data["policy_h"], mode="markers", name="policy limit",
                    marker={"symbol": "line-ns-open", "size": 16, "color": _ALLOCATED, "line": {"width": 2}})
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(title_text="hours since newest backup", rangemode="tozero")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def projection_figure(projection: Projection | None, *, target: str, lookback_days: float) -> go.Figure:
    """The lookback replayed on the recommended type: hourly peak CPU and memory as % of its size.

    Lines at 100 % (CPU saturated) and 90 % (memory tight); the title counts the hours over them.
    """
    title = f"Projected utilisation on {inert(target)} (last {lookback_days:g} days replayed)"
    if projection is None or projection.hours == 0:
        return empty_figure("Projected utilisation on the recommended type",
                            "No resize proposed: nothing to project")
    ts = pd.to_datetime(projection.hour_s, unit="s", utc=True)
    fig = _base(f"{title}: {projection.hours_cpu_over} h over 100 % CPU, "
                f"{projection.hours_memory_over} h over 90 % memory")
    fig.add_scatter(x=ts, y=projection.cpu_pct, name="CPU: hourly peak / new vCPUs (%)", mode="lines",
                    line={"color": _USED, "width": 1.5})
    if projection.memory_known:
        fig.add_scatter(x=ts, y=projection.memory_pct, name="memory: hourly max used / new memory (%)",
                        mode="lines", line={"color": _NEEDED, "width": 1.5})
    fig.add_hline(y=100.0, line={"color": "#c23030", "dash": "dash", "width": 1},
                  annotation_text="100 % CPU", annotation_position="top left")
    fig.add_hline(y=90.0, line={"color": _RECOMMENDED, "dash": "dot", "width": 1},
                  annotation_text="90 % memory", annotation_position="bottom left")
    fig.update_yaxes(title_text="% of the recommended size", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    return fig
