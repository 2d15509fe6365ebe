"""The column-limited, staged snapshot shows the same numbers as a build from every column, once complete."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics.catalogue import load_catalogue
from bench.dashboard_seed import seed_history_fast
from collector.store.base import HOUR_COLUMNS
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard import ids, snapshot
from dashboard.adapters import load_findings
from dashboard.app import shell
from dashboard.data import DashboardData, Filters, FindingView, Snapshot
from dashboard.snapshot import QUICK_WINDOW, build_snapshot
from dashboard.viewmodel.backups import backup_rows
from dashboard.viewmodel.overview import host_loads_view, overview_view
from dashboard.viewmodel.recommendations import recommendation_rows, savings_risk
from dashboard.viewmodel.vm_detail import vm_detail_view
from dashboard.viewmodel.vms import vm_rows
from rightsizer.demo import demo_fleet

END = datetime(2026, 11, 20, 12, tzinfo=UTC)
FILTER_SETS = [Filters(), Filters("30d"), Filters("7d", ("team=payments",)), Filters("24h", hosts=("demo-host-2",))]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteStore]:
    s = SqliteStore(Path(tmp_path_factory.mktemp("staged")) / "fleet.db")
    seed_history_fast(s, demo_fleet(40, seed=11), days=30, now=END, seed=11)
    yield s
    s.close()


def _data(store: Any, **kw: Any) -> DashboardData:
    return DashboardData(Settings(), store, load_catalogue(), data_mode="demo", ttl_s=3600,
                         clock=lambda: END + timedelta(minutes=20), **kw)


def _same(a: Any, b: Any) -> None:
    """Deep equality of views: dataclasses, mappings, sequences, arrays and frames (NaN equals NaN)."""
    assert type(a) is type(b)
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, Mapping):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b


def test_column_limited_snapshot_equals_the_every_column_build(store: SqliteStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings, catalogue = Settings(), load_catalogue()
    before = _data(store, staged_above_vm_hours=None)
    after = _data(store, staged_above_vm_hours=None)
    with monkeypatch.context() as patch:
        patch.setattr(snapshot, "SNAPSHOT_COLUMNS", None)  # the build before: every column read and kept
        old = before.snapshot()
    new = after.snapshot()
    assert new.complete and len(new.hours) == len(old.hours) == 40 * 30 * 24
    assert len(new.hours.columns) < len(old.hours.columns) == len(HOUR_COLUMNS)
    pd.testing.assert_frame_equal(new.hours, old.hours[list(new.hours.columns)])
    assert list(new.arrays) == list(old.arrays)
    for name in new.arrays:
        np.testing.assert_array_equal(new.arrays[name], old.arrays[name])
    assert new.latest_cost == old.latest_cost and new.running_now == old.running_now
    _same(new.findings, old.findings)
    _same(new.backups, old.backups)
    assert {f.finding for f in new.findings.values()} >= {"over-provisioned", "idle", "optimized"}
    for filters in FILTER_SETS:
        _same(overview_view(after, filters), overview_view(before, filters))
        _same(vm_rows(after, filters), vm_rows(before, filters))
        _same(recommendation_rows(after, filters), recommendation_rows(before, filters))
        _same(backup_rows(after, filters), backup_rows(before, filters))
    for lookback in (7, 30):
        _same(recommendation_rows(after, Filters(), lookback), recommendation_rows(before, Filters(), lookback))
    _same(host_loads_view(after), host_loads_view(before))
    uuid = new.vms[0].uuid
    detail_new, detail_old = vm_detail_view(after, uuid, Filters("30d")), vm_detail_view(before, uuid, Filters("30d"))
    assert detail_new is not None and detail_old is not None
    _same(dataclasses.replace(detail_new, hours=detail_new.hours),
          dataclasses.replace(detail_old, hours=detail_old.hours[list(detail_new.hours.columns)]))
    first = build_snapshot(settings, store, catalogue, after.storage, after.clock, quick_above_vm_hours=10**9)
    assert first.complete  # a fleet under the threshold is read whole at once


def test_staged_snapshot_shows_a_short_window_first_then_the_full_numbers(store: SqliteStore) -> None:
    full = _data(store, staged_above_vm_hours=None)
    release = threading.Event()

    def findings_after_release(data: DashboardData, snap: Snapshot) -> Mapping[str, FindingView]:
        release.wait(300)  # the full build waits here until the first window has been looked at
        return load_findings(data, snap)

    staged = _data(store, staged_above_vm_hours=1000, findings_loader=findings_after_release)
    first = staged.snapshot()
    assert not first.complete and first.findings == {} and first.backups == {}
    assert first.window_end - first.window_start == QUICK_WINDOW
    assert "showing the last 24 h" in staged.loading_note()
    view = overview_view(staged, Filters())  # the 14-day range is cut to the window shown
    assert len(view.spend_hour) == 24 and view.vms_total == 40
    assert math.isnan(view.month_to_date) and math.isnan(view.potential_monthly_savings)
    assert view.forecast_basis == staged.loading_note()
    reference = overview_view(full, Filters())
    assert view.run_rate_now == pytest.approx(reference.run_rate_now)
    pd.testing.assert_frame_equal(view.spend_hour.reset_index(drop=True),
                                  reference.spend_hour.tail(24).reset_index(drop=True))
    assert staged.range_text("14d") == "last 24 h (loading last 14d)"
    assert ids.STAGED_POLL in str(shell(staged))  # the page polls, and reloads once the full window is in
    staged.warm()  # the default views of the first window, then the full window in the background
    release.set()
    staged.wait_for_refresh(300)
    assert staged.is_complete() and staged.loading_note() == "" and staged.range_text("14d") == "last 14d"
    assert ids.STAGED_POLL not in str(shell(staged))
    for filters in FILTER_SETS:
        _same(overview_view(staged, filters), overview_view(full, filters))
        _same(vm_rows(staged, filters), vm_rows(full, filters))
        _same(recommendation_rows(staged, filters), recommendation_rows(full, filters))
    _same(savings_risk(staged, 14), savings_risk(full, 14))
