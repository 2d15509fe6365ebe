from __future__ import annotations

import pandas as pd
import pytest

from dashboard import figures

GIB = 1024**3
TS = pd.date_range("2026-03-10", periods=3, freq="h", tz="UTC")


def test_inert_escapes_markup() -> None:
    assert figures.inert("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert figures.inert("a & b") == "a &amp; b"


def test_spend_figure_per_day_stacks_compute_and_storage_with_currency_axis() -> None:
    frame = pd.DataFrame({"ts": TS, "compute_cost": [1.0, 2.0, 3.0], "storage_cost": [0.5, 0.5, 0.5]})
    fig = figures.spend_figure(frame, currency="EUR", period="day")
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert list(fig.data[0].y) == [1.0, 2.0, 3.0] and list(fig.data[1].y) == [0.5, 0.5, 0.5]
    assert fig.layout.barmode == "stack"
    assert fig.layout.yaxis.title.text == "EUR per day"
    assert fig.layout.title.text == "Spend per day (EUR)"


def test_spend_figure_per_hour_is_a_stacked_area() -> None:
    frame = pd.DataFrame({"ts": TS, "compute_cost": [1.0, 2.0, 3.0], "storage_cost": [0.1, 0.1, 0.1]})
    fig = figures.spend_figure(frame, currency="USD", period="hour")
    assert {t.stackgroup for t in fig.data} == {"cost"}
    assert fig.layout.yaxis.title.text == "USD per hour"


def test_empty_frames_give_an_explaining_figure() -> None:
    empty = pd.DataFrame({"ts": [], "compute_cost": [], "storage_cost": []})
    fig = figures.spend_figure(empty, currency="EUR", period="hour")
    assert fig.data == ()
    assert fig.layout.annotations[0].text == "No data in the selected range"
    assert figures.findings_figure({}).layout.annotations[0].text == "No findings yet"


def test_utilisation_figure_converts_memory_to_gib() -> None:
    frame = pd.DataFrame({
        "ts": TS, "cpu_used_vcpus": [1.0, 1.5, 2.0], "cpu_allocated_vcpus": [4.0, 4.0, 4.0],
        "memory_used_bytes": [2 * GIB, 3 * GIB, 4 * GIB], "memory_allocated_bytes": [8 * GIB] * 3,
        "memory_known_allocated_bytes": [6 * GIB] * 3,
    })
    fig = figures.utilisation_figure(frame)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["memory used"].y) == [2.0, 3.0, 4.0]
    assert list(by_name["memory allocated"].y) == [8.0, 8.0, 8.0]
    assert list(by_name["CPU allocated"].y) == [4.0, 4.0, 4.0]
    assert fig.layout.yaxis.title.text == "vCPUs" and fig.layout.yaxis2.title.text == "GiB"


def test_findings_figure_orders_and_colours_findings() -> None:
    fig = figures.findings_figure({"optimized": 5, "idle": 2, "over-provisioned": 3})
    bar = fig.data[0]
    assert list(bar.y) == ["over-provisioned", "idle", "optimized"]
    assert list(bar.x) == [3, 2, 5]
    assert list(bar.marker.color) == [figures.FINDING_COLOURS[k] for k in ("over-provisioned", "idle", "optimized")]


def test_findings_figure_is_drawn_at_the_height_of_the_utilisation_figure_beside_it() -> None:
    frame = pd.DataFrame({"ts": TS, "cpu_used_vcpus": [1.0] * 3, "cpu_allocated_vcpus": [4.0] * 3,
                          "memory_used_bytes": [GIB] * 3, "memory_allocated_bytes": [8 * GIB] * 3})
    found = figures.findings_figure({"optimized": 5, "idle": 2})
    assert found.layout.height == figures.utilisation_figure(frame).layout.height


def _vm_hours() -> pd.DataFrame:
    return pd.DataFrame({
        "ts": TS, "cpu_mean_vcpus": [0.2, 0.3, 0.4], "cpu_p95_vcpus": [0.3, 0.4, 0.5],
        "cpu_max_vcpus": [0.5, 0.6, 0.7], "vcpus": [4.0, 4.0, 2.0],
        "memory_used_max_bytes": [1 * GIB, 2 * GIB, 3 * GIB], "memory_used_mean_bytes": [GIB / 2] * 3,
        "memory_bytes": [8 * GIB] * 3, "disk_read_bytes": [3600 * 1024**2, 0.0, 7200 * 1024**2],
        "disk_write_bytes": [0.0, 0.0, 0.0],
    })


def test_vm_cpu_figure_draws_allocated_recommended_and_needed_lines() -> None:
    fig = figures.vm_cpu_figure(_vm_hours(), recommended_vcpus=2, recommended_label="recommended: g1.2",
                                needed_vcpus=1.2)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["allocated"].y) == [4.0, 4.0, 2.0]
    assert list(by_name["recommended: g1.2"].y) == [2, 2]
    assert list(by_name["needed"].y) == [1.2, 1.2]
    assert fig.layout.yaxis.title.text == "vCPUs"


def test_vm_memory_figure_in_gib_and_unknown_use() -> None:
    fig = figures.vm_memory_figure(_vm_hours(), recommended_bytes=4 * GIB)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["used, hourly max"].y) == [1.0, 2.0, 3.0]
    assert list(by_name["recommended"].y) == [4.0, 4.0]
    unknown = _vm_hours().assign(memory_used_max_bytes=float("nan"), memory_used_mean_bytes=float("nan"))
    fig = figures.vm_memory_figure(unknown)
    assert [t.name for t in fig.data] == ["allocated"]
    assert "no balloon stats" in fig.layout.annotations[0].text


def test_vm_disk_figure_is_mib_per_second() -> None:
    fig = figures.vm_disk_figure(_vm_hours())
    assert list(fig.data[0].y) == pytest.approx([1.0, 0.0, 2.0])  # 3600 MiB in an hour = 1 MiB/s
    assert fig.layout.yaxis.title.text == "MiB/s"


def test_vm_disk_figure_picks_the_unit_its_peak_reaches() -> None:
    slow = _vm_hours().assign(disk_read_bytes=[3600 * 12.0, 0.0, 3600 * 3.0], disk_write_bytes=0.0)
    fig = figures.vm_disk_figure(slow)  # a 12 B/s peak: B/s, where MiB/s would read "11.4µ"
    assert fig.layout.yaxis.title.text == "B/s" and "B/s" in fig.layout.title.text
    assert list(fig.data[0].y) == pytest.approx([12.0, 0.0, 3.0])
    assert figures.rate_unit(12 * 1024.0) == ("KiB/s", 1024.0)
    assert figures.rate_unit(3 * 1024.0**3)[0] == "GiB/s"


def test_savings_figure_keeps_top_positive_and_escapes_names() -> None:
    frame = pd.DataFrame({"name": ["<b>x</b>", "b", "c"], "monthly_savings": [5.0, -3.0, 9.0],
                          "finding": ["idle", "under-provisioned", "over-provisioned"]})
    fig = figures.savings_figure(frame, currency="EUR", top=15)
    assert list(fig.data[0].y) == ["c", "&lt;b&gt;x&lt;/b&gt;"]
    assert list(fig.data[0].x) == [9.0, 5.0]


def test_backup_age_figure_marks_gaps_and_escapes_names() -> None:
    frame = pd.DataFrame({"name": ["<img src=x onerror=alert(1)>", "ok-vm", "never-vm"],
                          "age_h": [50.0, 3.0, None], "policy_h": [24.0, 24.0, 168.0],
                          "status": ["overdue", "ok", "never"]})
    fig = figures.backup_age_figure(frame)
    bars = fig.data[0]
    assert list(bars.y) == ["never-vm", "&lt;img src=x onerror=alert(1)&gt;", "ok-vm"]
    assert list(bars.x) == [252.0, 50.0, 3.0]  # never backed up: drawn at 1.5 x the longest policy
    assert list(bars.marker.color) == ["#c23030", "#c23030", "#0f9960"]
    assert list(fig.data[1].x) == [168.0, 24.0, 24.0]


def test_every_figure_is_on_the_white_template_without_naming_it() -> None:
    import plotly.io as pio

    frame = pd.DataFrame({"ts": TS, "cpu_used_vcpus": [1.0] * 3, "cpu_allocated_vcpus": [4.0] * 3,
                          "memory_used_bytes": [GIB] * 3, "memory_allocated_bytes": [8 * GIB] * 3})
    spend = pd.DataFrame({"ts": TS, "compute_cost": [1.0] * 3, "storage_cost": [0.1] * 3})
    white = pio.templates["plotly_white"]
    for fig in (figures.utilisation_figure(frame), figures.findings_figure({"idle": 1}),
                figures.spend_figure(spend, currency="EUR", period="hour"), figures.empty_figure("x")):
        assert fig.layout.template == white
