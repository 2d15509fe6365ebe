"""The first half hour on a real host: raw samples only, at most one partial hourly rollup.

Cycles go through the real SqliteStore.write, as the collector writes them (the first point of a VM
has no interval). The Overview's "run-rate now" comes from the VMs running in the newest raw samples
and their hourly prices, not from the hourly rollups the run-rate of the forecast averages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics.catalogue import load_catalogue
from collector.model import SampleBatch, UsagePoint, VmRef, VmSample, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.data import DashboardData
from dashboard.viewmodel.overview import overview_view
from dashboard.viewmodel.vms import vm_rows
from dashboard.views import Filters

GIB = 1024**3
NOW = datetime(2026, 11, 27, 5, 20, tzinfo=UTC)
BUSY = VmRef("test:///x", "00000000-0000-0000-0000-00000000000a", "busy")
CALM = VmRef("test:///x", "00000000-0000-0000-0000-00000000000b", "calm")
HALTED = VmRef("test:///x", "00000000-0000-0000-0000-00000000000c", "halted")  # stopped in the newest cycle


def _state(ref: VmRef, cycle: int, last: int) -> VmState:
    return VmState.SHUTOFF if ref is HALTED and cycle == last else VmState.RUNNING


def _cycle(store: SqliteStore, cycle: int, last: int) -> None:
    ts = NOW - timedelta(minutes=30) + timedelta(minutes=5 * cycle)
    cpu = {BUSY.uuid: 1.0, CALM.uuid: 0.1, HALTED.uuid: 0.2}
    samples, points = [], []
    for ref in (BUSY, CALM, HALTED):
        state = _state(ref, cycle, last)
        samples.append(VmSample(ref=ref, host="h1", state=state, vcpus=1, max_vcpus=1, memory_bytes=GIB,
                                max_memory_bytes=GIB,
                                labels={"machine_type": "g1.1", "team": "web" if ref is CALM else "ops"}))
        first = cycle == 0
        points.append(UsagePoint(vm_uuid=ref.uuid, ts=ts, state=state, vcpus=1, memory_bytes=GIB,
                                 cpu_vcpus=None if first else cpu[ref.uuid], memory_used_bytes=GIB // 2,
                                 interval_s=None if first else 300.0))
    store.write(SampleBatch(uri="test:///x", host="h1", taken_at=ts, samples=tuple(samples)), points, [])


def _half_hour_store(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    for cycle in range(7):  # 30 minutes of 5-minute cycles ending at NOW
        _cycle(store, cycle, 6)
    return store


def test_first_half_hour_shows_run_rate_utilisation_and_when_findings_are_ready(tmp_path: Path) -> None:
    store = _half_hour_store(tmp_path / "s.db")
    try:
        catalogue = load_catalogue()
        data = DashboardData(Settings(), store, catalogue, data_mode="live", clock=lambda: NOW)
        price = catalogue.get("g1.1")
        assert price is not None
        view = overview_view(data, Filters())
        assert view.running_now == 2  # busy and calm; halted stopped in the newest cycle
        assert view.run_rate_now > 0
        assert abs(view.run_rate_now - 2 * price.price_per_hour) < 1e-9  # no disks: compute only
        rows = {r["name"]: r for r in vm_rows(data, Filters())}
        assert rows["busy"]["cpu_p95_vcpus"] == 1.0 and rows["calm"]["cpu_p95_vcpus"] == 0.1
        assert rows["busy"]["memory_used_gib"] == 0.5
        only_web = overview_view(data, Filters.of(None, ["team=web"], None))
        assert only_web.running_now == 1 and abs(only_web.run_rate_now - price.price_per_hour) < 1e-9
        for uuid in (BUSY.uuid, CALM.uuid):
            f = data.snapshot().findings[uuid]
            assert f.finding == "insufficient-data"
            assert re.search(r"insufficient data: [0-9.]+ h of data in the last \d+ days, need 30 h",
                             f.reasons["overall"]), f.reasons
    finally:
        store.close()


def test_insufficient_data_counts_the_covered_time_not_hourly_points(tmp_path: Path) -> None:
    """30 minutes of collection over two clock hours is 0.5 h of data, not 2 hourly points = 2 h."""
    store = SqliteStore(tmp_path / "s.db", current_hour_refresh_s=0.0)  # the current hour rolled up each cycle
    try:
        for cycle in range(7):
            _cycle(store, cycle, 6)
        assert len(store.frame(NOW - timedelta(hours=2), NOW + timedelta(hours=1), resolution="hour")) == 6
        data = DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: NOW)
        f = data.snapshot().findings[BUSY.uuid]
        assert f.finding == "insufficient-data"
        assert f.reasons["overall"].startswith("insufficient data: 0.5 h of data in the last"), f.reasons
    finally:
        store.close()


def test_first_hour_forecast_runs_on_the_run_rate_now(tmp_path: Path) -> None:
    """Month end = month to date + "Run-rate now" x hours left, not the rollups' diluted trailing average."""
    store = _half_hour_store(tmp_path / "s.db")
    try:
        data = DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: NOW)
        view = overview_view(data, Filters())
        left_h = (datetime(2026, 12, 1, tzinfo=UTC) - NOW).total_seconds() / 3600
        assert view.run_rate_now > 0
        assert abs(view.forecast_month_end - (view.month_to_date + view.run_rate_now * left_h)) < 1e-6
        assert "run-rate now" in view.forecast_basis and f"{left_h:.1f} h left" in view.forecast_basis
    finally:
        store.close()


def test_vms_table_cpu_in_the_first_minutes_comes_from_the_raw_samples(tmp_path: Path) -> None:
    """The current hour is rolled up by the writer at most every 5 minutes; readers still see it up to date."""
    store = SqliteStore(tmp_path / "s.db")  # default refresh: the current hour is rolled up at the first cycle only
    start = NOW.replace(minute=2)
    try:
        for minute in range(4):  # 05:02 .. 05:05, one-minute cycles; the first point has no interval
            ts = start + timedelta(minutes=minute)
            first = minute == 0
            sample = VmSample(ref=BUSY, host="h1", state=VmState.RUNNING, vcpus=2, max_vcpus=2, memory_bytes=GIB,
                              max_memory_bytes=GIB, labels={"machine_type": "g1.2"})
            point = UsagePoint(vm_uuid=BUSY.uuid, ts=ts, state=VmState.RUNNING, vcpus=2, memory_bytes=GIB,
                               cpu_vcpus=None if first else 1.0 + minute / 10, memory_used_bytes=GIB // 4,
                               interval_s=None if first else 60.0)
            store.write(SampleBatch(uri="test:///x", host="h1", taken_at=ts, samples=(sample,)), [point], [])
        clock_now = start + timedelta(minutes=3, seconds=20)
        hour = store.frame(NOW.replace(minute=0), clock_now, resolution="hour")
        assert hour["samples"].tolist() == [4.0] and hour["running_s"].tolist() == [180.0]
        data = DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: clock_now)
        [row] = vm_rows(data, Filters())
        assert row["cpu_p95_vcpus"] is not None and abs(row["cpu_p95_vcpus"] - 1.2) < 1e-9  # mean of 1.1..1.3
    finally:
        store.close()


def test_running_hour_without_any_cpu_measurement_reads_as_unknown(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    try:
        _cycle(store, 0, 6)  # one first cycle: no interval, so no CPU figure yet
        hour = store.frame(NOW - timedelta(hours=2), NOW + timedelta(hours=1), resolution="hour")
        assert len(hour) == 3 and hour["cpu_p95_vcpus"].isna().all() and (hour["samples"] == 1).all()
    finally:
        store.close()
