"""Storage advice on the dashboard: a Recommendations row of kind "storage" with its total, and the VM page."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dash import html

from analytics.catalogue import load_catalogue
from collector.guestfs import GuestFsUsage, record_usage
from collector.model import UsagePoint, VmRecord, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard import ids
from dashboard.data import DashboardData
from dashboard.pages import recommendations, vm_detail

END = datetime(2026, 11, 2, tzinfo=UTC)
GIB = 1 << 30


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DashboardData]:
    first = END - timedelta(days=10)
    vms = [VmRecord(uuid=n, name=n, uri="test:///x", host="h1", state=VmState.RUNNING, vcpus=2, max_vcpus=2,
                    memory_bytes=4 * GIB, max_memory_bytes=4 * GIB, labels={}, first_seen=first, last_seen=END)
           for n in ("big-disk", "busy-disk")]
    points = [UsagePoint(vm.uuid, first + timedelta(hours=h), VmState.RUNNING, 2, 4 * GIB, cpu_vcpus=0.5,
                         memory_used_bytes=GIB, disk_read_bps=40e6 if vm.name == "busy-disk" else 1e6,
                         disk_write_bps=40e6 if vm.name == "busy-disk" else 1e6, interval_s=3600.0,
                         disk_capacity_bytes=200_000_000_000, disk_allocation_bytes=190_000_000_000,
                         disk_read_iops=20.0, disk_write_iops=20.0)
              for vm in vms for h in range(240)]
    store = SqliteStore(tmp_path / "s.db")
    store.write_history(vms, points)
    record_usage(store, {"big-disk": GuestFsUsage(20_000_000_000, 190_000_000_000, 2, END)})
    yield DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: END)
    store.close()


def _texts(node: Any) -> list[str]:
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        children = getattr(n, "children", None)
        if isinstance(children, str):
            out.append(children)
        elif isinstance(children, list | tuple):
            stack.extend(children)
        elif children is not None:
            stack.append(children)
    return out


def test_storage_is_a_recommendation_kind_with_a_total(data: DashboardData) -> None:
    rows, cards, _fig, choices = recommendations.update(data, "30d", None, None)
    storage = {r["name"]: r for r in rows if r["finding"] == "storage"}
    # big-disk: 20 GB used in the guest -> 25 GB kept of 200; busy-disk writes 80 MB/s: perf0 (25 MB/s) is too
    # slow, so it needs a dearer class and saves nothing: no row
    assert list(storage) == ["big-disk"]
    row = storage["big-disk"]
    assert row["recommended_type"] == "Premium perf0, 25 GB" and row["monthly_savings"] > 0
    assert "guest-agent" in row["options"] and "guest-agent" in row["reason"]
    assert f"{row['monthly_savings']:,.2f} EUR" in " ".join(_texts(html.Div(cards)))
    assert "Storage per month" in _texts(html.Div(cards))
    assert all(c["value"] != "big-disk#storage" for c in choices)  # nothing to apply
    csv_lines = recommendations.export(data, 1, "30d", None, None)["content"].splitlines()
    exported = {r["name"]: r for r in csv.DictReader(csv_lines)}
    assert exported["big-disk"]["storage_recommended_class"] == "storage_premium_perf0"
    assert float(exported["big-disk"]["storage_monthly_savings"]) == pytest.approx(row["monthly_savings"], abs=0.01)


def test_vm_page_shows_the_storage_advice(data: DashboardData) -> None:
    _header, *_figs, rec, _options = vm_detail.update(data, "busy-disk", "30d", None, None)
    table = next(n for n in _walk(html.Div(rec)) if getattr(n, "id", None) == ids.VM_STORAGE)
    text = " ".join(_texts(table))
    assert "Premium perf0 -> Premium perf2" in text  # 80 MB/s needs perf2 (100 MB/s)
    assert "190.0 GB (allocation)" in text and "200.0 GB (no change)" in text


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list | tuple) else ([children] if children is not None else []):
        yield from _walk(child)
