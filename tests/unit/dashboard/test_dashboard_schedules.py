"""Patterns and schedules on the dashboard: VMs column, recommendation kind with its total, VM heat map."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dash import dcc, html

from analytics.catalogue import load_catalogue
from bench.patterns_bench import raw_frame_from_hourly, synthetic_pattern_frame
from collector.model import VmRecord, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard import figures, ids
from dashboard.data import DashboardData
from dashboard.pages import recommendations, vm_detail, vms

END = datetime(2026, 11, 2, tzinfo=UTC)
NAMES = ("office-hours-00000", "steady-00000")


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DashboardData]:
    hourly, _ = synthetic_pattern_frame(1, 21, seed=3, end=END)
    hourly = hourly[hourly["vm"].isin(NAMES)]
    records = [VmRecord(uuid=n, name=n, uri="test:///x", host="h1", state=VmState.RUNNING, vcpus=4, max_vcpus=4,
                        memory_bytes=8 << 30, max_memory_bytes=8 << 30, labels={"env": "dev"},
                        first_seen=END - timedelta(days=21), last_seen=END) for n in NAMES]
    store = SqliteStore(tmp_path / "p.db")
    store.write_history(records, raw_frame_from_hourly(hourly))
    yield DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: END)
    store.close()


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list | tuple) else ([children] if children is not None else []):
        yield from _walk(child)


def test_vms_table_shows_the_pattern(data: DashboardData) -> None:
    rows, _note = vms.update(data, "30d", None, None)
    assert {r["name"]: r["pattern"] for r in rows} == {"office-hours-00000": "office-hours", "steady-00000": "steady"}
    assert "pattern" in {c["id"] for c in vms.columns("EUR")}


def test_schedules_are_their_own_kind_with_a_total(data: DashboardData) -> None:
    rows, cards, _fig, _choices = recommendations.update(data, "30d", None, None)
    scheduled = [r for r in rows if r["finding"] == "schedule"]
    assert [r["name"] for r in scheduled] == ["office-hours-00000"]
    row = scheduled[0]
    assert row["recommended_type"] == "on Mon-Fri 07:00-19:00 UTC" and row["risk"] == "low"
    assert row["monthly_savings"] > 0
    texts = [getattr(n, "children", None) for n in _walk(html.Div(cards))]
    assert "Schedules per month" in texts
    assert f"{row['monthly_savings']:,.2f} EUR" in " ".join(str(t) for t in texts)
    csv_text = recommendations.export(data, 1, "30d", None, None)["content"]
    assert "schedule" in csv_text and "office-hours-00000" in csv_text


def test_vm_page_draws_the_weekly_heat_map(data: DashboardData) -> None:
    _header, *_figs, rec, _options = vm_detail.update(data, "office-hours-00000", "30d", None, None)
    nodes = list(_walk(html.Div(rec)))
    graph = next(n for n in nodes if isinstance(n, dcc.Graph) and n.id == ids.VM_HEATMAP)
    heat = graph.figure.data[0]  # bar cells: the basic plotly.js bundle has no heatmap trace
    cells = {(d, int(h)): v for d, h, v in zip(heat.y, heat.base, heat.marker.color, strict=True)}
    assert {d for d, _ in cells} == set(figures.WEEKDAYS) and {h for _, h in cells} == set(range(24))
    assert cells[("Mon", 10)] > 10 * cells[("Sat", 10)]  # Monday 10:00 busy, Saturday 10:00 quiet
    text = next(n for n in nodes if getattr(n, "id", None) == ids.VM_PATTERN).children
    assert "Pattern: office-hours" in text and "Mon-Fri 07:00-19:00 UTC" in text


def test_heat_map_without_data_says_why() -> None:
    import pandas as pd

    fig = figures.weekly_profile_figure(pd.DataFrame({"ts": [], "cpu_mean_vcpus": []}))
    assert fig.layout.annotations[0].text == "No CPU data in the selected range"
