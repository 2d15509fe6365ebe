"""The Overview's top actions, spend by label, the range's lookback, and lookbacks beyond the loaded window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from tinyfleet import END, NOW, A, B, C, find_component, make_data

from collector.model import UsagePoint, VmState
from collector.store.sqlite import SqliteStore
from dashboard import ids
from dashboard.data import DashboardData, Filters
from dashboard.pages import overview
from dashboard.snapshot import hours_since
from dashboard.viewmodel.actions import spend_by_label, top_actions
from dashboard.viewmodel.history import available_lookbacks
from dashboard.viewmodel.overview import overview_view, range_lookback
from dashboard.viewmodel.vms import vm_rows
from dashboard.views import LOOKBACKS_DAYS, storage_class_text

GIB = 1024**3


def test_top_actions_rank_by_headline_saving_with_kind_and_risk(data: DashboardData) -> None:
    rows = top_actions(data, Filters("14d"))
    # A saves 20.50 by a resize, C 3.00 by stopping; B is an upsize (a cost, not an action that saves), but
    # B has never been backed up under the default policy: a backup action after the savings
    assert [(r.uuid, r.kinds, r.saving, r.risk) for r in rows] == [
        (A, ("resize",), 20.5, "low"), (C, ("stop",), 3.0, "low"), (B, ("backup",), 0.0, "high")]
    assert rows[0].what == "resize c1.2 -> g1.1 (20.50 EUR/month)"
    assert [r.uuid for r in top_actions(data, Filters("14d", ("team=web",)))] == [B]


def test_overview_page_names_the_largest_saving_first_and_links_to_its_page(data: DashboardData) -> None:
    page = overview.layout(data, Filters("14d"))
    actions = find_component(page, ids.OVERVIEW_ACTIONS)
    links = [c for c in _walk(actions.children) if type(c).__name__ == "Link"]
    assert [(link.children, link.href) for link in links] == [
        ("pay-api", f"/vm/{A}"), ("=cmd|calc", f"/vm/{C}"), ("web-1", f"/vm/{B}")]
    figure = find_component(page, ids.OVERVIEW_SPEND_LABEL).figure
    assert figure.layout.title.text.startswith("Spend by team")


def test_spend_by_label_sums_the_vms_range_cost_by_team(data: DashboardData) -> None:
    key, spend = spend_by_label(data, Filters("24h"))
    assert key == "team"
    rows = {r["id"]: r["range_cost"] or 0.0 for r in vm_rows(data, Filters("24h"))}
    assert set(spend) == {"payments", "web"}
    assert spend["payments"] == pytest.approx(sum(v for u, v in rows.items() if u != B))
    assert sum(spend.values()) == pytest.approx(sum(rows.values()))


def test_the_overview_judges_savings_over_the_ranges_days(data: DashboardData) -> None:
    assert [range_lookback(data, k) for k in ("24h", "7d", "14d", "30d")] == [14, 7, 14, 30]
    assert overview_view(data, Filters("30d")).lookback_days == 30
    assert overview_view(data, Filters("24h")).lookback_days == 14


def test_lookback_choices_reach_93_days_where_the_history_allows(data: DashboardData) -> None:
    assert LOOKBACKS_DAYS == (7, 14, 30, 93)
    assert data.lookback_days(93) == 93
    # the tiny store holds 2 days: only the shortest choice is backed by history
    assert available_lookbacks(data) == {7: True, 14: False, 30: False, 93: False}


def test_a_lookback_past_the_loaded_window_reads_its_hours_from_the_store(tmp_path: Path) -> None:
    from tinyfleet import RECORDS

    vm = RECORDS[1]
    store = SqliteStore(tmp_path / "long.db")
    hours = 40 * 24
    store.write_history([vm], [UsagePoint(vm_uuid=vm.uuid, ts=END - timedelta(hours=hours - 1 - k),
                                          state=VmState.RUNNING, vcpus=1, memory_bytes=4 * GIB, cpu_vcpus=0.25,
                                          interval_s=3600.0) for k in range(hours)])
    try:
        data = make_data(store)
        snap = data.snapshot()
        start = pd.Timestamp(END - timedelta(days=39))
        assert snap.hours["ts"].min() > start  # the snapshot holds 30 days and month to date
        frame = hours_since(data.store, snap, start, NOW)
        assert frame["ts"].min() == start and frame["ts"].max() == pd.Timestamp(END)
        assert len(frame) == 39 * 24 + 1
        assert available_lookbacks(data)[93] is True
    finally:
        store.close()


def test_storage_classes_read_as_words() -> None:
    assert storage_class_text("storage_premium_perf0") == "Premium perf0"
    assert storage_class_text("storage_hdd") == "HDD"


def _walk(tree: object) -> list[object]:
    out: list[object] = []
    stack = [tree]
    while stack:
        node = stack.pop(0)
        if isinstance(node, list | tuple):
            stack[:0] = list(node)
            continue
        out.append(node)
        children = getattr(node, "children", None)
        if children is not None and not isinstance(children, str):
            stack.insert(0, children)
    return out
