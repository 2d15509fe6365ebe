"""Charts that read right: the heat map on an absolute scale, partial hours and days drawn as partial, every
line of a VM chart in its legend, one colour per savings-vs-risk curve on every surface."""

from __future__ import annotations

import pandas as pd
import pytest

from analytics.frontier import SweepPoint
from analytics.reports.frontier_chart import CURVE_COLOURS, frontier_figure
from dashboard import figures

GIB = 1024**3


def test_heat_map_of_an_idle_vm_runs_from_zero_to_its_vcpus() -> None:
    ts = pd.date_range("2026-03-02", periods=7 * 24, freq="h", tz="UTC")
    frame = pd.DataFrame({"ts": ts, "cpu_mean_vcpus": [0.006] * len(ts)})
    marker = figures.weekly_profile_figure(frame, allocated_vcpus=4).data[0].marker
    assert (marker.cmin, marker.cmax) == (0.0, 4.0)  # not 0 to 0.006: an idle VM stays pale
    assert figures.weekly_profile_figure(frame).data[0].marker.cmax == pytest.approx(0.006)


def test_partial_days_are_pale_and_the_running_hour_is_a_marker() -> None:
    days = pd.DataFrame({"ts": pd.date_range("2026-03-01", periods=3, freq="D", tz="UTC"),
                         "compute_cost": [1.0, 24.0, 5.0], "storage_cost": [0.0, 0.0, 0.0],
                         "cost": [1.0, 24.0, 5.0], "hours": [1.0, 24.0, 5.5]})
    fig = figures.spend_figure(days, currency="EUR", period="day")
    compute = fig.data[0]
    assert list(compute.marker.opacity) == [0.4, 1.0, 0.4]
    assert compute.customdata[2] == "partial day: 5.5 h of 24"
    assert fig.layout.xaxis.title.text == "time (UTC); pale bars: partial days"
    hours = pd.DataFrame({"ts": pd.date_range("2026-03-01", periods=3, freq="h", tz="UTC"),
                          "compute_cost": [1.0, 1.0, 0.25], "storage_cost": [0.0] * 3, "cost": [1.0, 1.0, 0.25],
                          "hours": [1.0, 1.0, 0.25]})
    fig = figures.spend_figure(hours, currency="EUR", period="hour")
    assert [len(t.x) for t in fig.data] == [2, 2, 1]  # the area stops before the hour still running
    assert fig.data[2].name == "this hour so far" and "15 min" in fig.data[2].hovertemplate


def test_vm_charts_keep_every_line_in_a_legend_under_the_plot() -> None:
    frame = pd.DataFrame({"ts": pd.date_range("2026-03-01", periods=3, freq="h", tz="UTC"),
                          "cpu_mean_vcpus": [0.2] * 3, "cpu_p95_vcpus": [0.3] * 3, "cpu_max_vcpus": [0.4] * 3,
                          "vcpus": [2.0] * 3})
    fig = figures.vm_cpu_figure(frame, recommended_vcpus=1, needed_vcpus=0.5, need_label="need: p95 + headroom")
    assert "allocated" in [t.name for t in fig.data]
    assert fig.layout.legend.y < 0 and fig.layout.legend.yanchor == "top"
    assert fig.layout.margin.b >= 100


def test_savings_vs_risk_curves_have_one_colour_and_a_padded_axis() -> None:
    points = [SweepPoint("krr", "cpu_percentile", 95.0, 30.0, 0.0, 0.0, 3, 7.0),
              SweepPoint("vpa", "target_percentile", 90.0, 35.0, 0.0, 0.0, 3, 7.0),
              SweepPoint("aws", "cpu_headroom_fraction", 0.2, 20.0, 0.0, 0.0, 3, 7.0)]
    fig = frontier_figure(points)
    colours = {t["name"]: t["marker"]["color"] for t in fig["data"]}
    assert colours == {"KRR style": CURVE_COLOURS[("krr", "cpu_percentile")],
                       "Kubernetes VPA style": CURVE_COLOURS[("vpa", "target_percentile")],
                       "AWS Compute Optimizer style": CURVE_COLOURS[("aws", "cpu_headroom_fraction")]}
    low, high = fig["layout"]["xaxis"]["range"]
    assert low < 0 < high  # every point sits on x = 0 at 7 days: none on the clipped edge
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("CPU overrun (% of evaluated VM-hours")


def test_the_risk_target_curve_is_drawn_in_order_of_its_target_with_a_fixed_colour() -> None:
    # overrun is not monotone in the target here: the line must still run 0.3 -> 1 -> 3 -> 10, not by overrun
    risk = [SweepPoint("rightsizer-risk", "risk_pct", v, s, o, 0.0, 3, 7.0)
            for v, s, o in ((10.0, 50.0, 2.0), (0.3, 30.0, 0.5), (3.0, 45.0, 0.4), (1.0, 40.0, 0.9))]
    fig = frontier_figure([*risk, SweepPoint("krr", "cpu_percentile", 95.0, 48.0, 1.0, 0.0, 3, 7.0)])
    trace = next(t for t in fig["data"] if t["name"] == "rightsizer, per-VM headroom by accepted risk")
    assert [t.split(";")[0] for t in trace["text"]] == [f"accepted risk {v:g} % of intervals"
                                                        for v in (0.3, 1.0, 3.0, 10.0)]
    assert trace["x"] == [0.5, 0.9, 0.4, 2.0] and trace["y"] == [30.0, 40.0, 45.0, 50.0]
    assert trace["mode"] == "lines+markers"
    assert trace["marker"]["color"] == CURVE_COLOURS[("rightsizer-risk", "risk_pct")]


def test_every_sweep_and_own_fleet_curve_has_a_human_name_and_its_own_colour() -> None:
    from analytics.frontier import SWEEP_KNOBS
    from analytics.own_frontier import OWN_CURVES
    from analytics.reports.frontier_chart import CURVE_NAMES

    curves = {(s, k) for s, (k, _) in SWEEP_KNOBS.items()} | {(s, k) for s, k, _ in OWN_CURVES}
    assert curves <= CURVE_NAMES.keys() and curves <= CURVE_COLOURS.keys()
    assert len({CURVE_COLOURS[c] for c in curves}) == len(curves)  # no two curves share a colour
    assert len({CURVE_NAMES[c][0] for c in curves}) == len(curves)


def test_every_sweep_curve_has_a_name_and_a_colour_of_its_own() -> None:
    from analytics.frontier import SWEEP_KNOBS
    from analytics.reports.frontier_chart import CURVE_NAMES

    curves = [(s, knob) for s, (knob, _) in SWEEP_KNOBS.items()] + [("rightsizer", "profile")]
    assert all(c in CURVE_NAMES and c in CURVE_COLOURS for c in curves), [c for c in curves if c not in CURVE_NAMES]
    colours = [CURVE_COLOURS[c] for c in curves]
    assert len(set(colours)) == len(colours)
    names = [CURVE_NAMES[c][0] for c in curves]
    assert len(set(names)) == len(names)
