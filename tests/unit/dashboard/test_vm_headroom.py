"""The VM page's "Headroom" line: the finding's headroom in words, the same words as ``recommend --explain``."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from tinyfleet import NOW, A, components

from analytics.catalogue import load_catalogue
from analytics.findings.finding import VmFinding
from analytics.findings.headroom import dimension_text, headroom_text
from collector.model import UsagePoint, VmRecord, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard import ids
from dashboard.data import DashboardData, Filters
from dashboard.pages import vm_detail
from dashboard.viewmodel.vm_detail import vm_detail_view

GIB = 1024**3


def _store(path: Path) -> tuple[SqliteStore, str]:
    """One VM at 0.5 of 4 vCPUs (with a noon bump) and 1 GiB used, 14 days of hourly history."""
    first = NOW - timedelta(days=14)
    vm = VmRecord(uuid=str(uuid_mod.uuid5(uuid_mod.NAMESPACE_DNS, "headroom")), name="headroom",
                  uri="test:///default", host="h1", state=VmState.RUNNING, vcpus=4, max_vcpus=4,
                  memory_bytes=16 * GIB, max_memory_bytes=16 * GIB, labels={}, first_seen=first, last_seen=NOW)
    cpu = 0.5 + 0.3 * (np.arange(14 * 24) % 24 == 12)
    points = [UsagePoint(vm_uuid=vm.uuid, ts=first + timedelta(hours=i), state=VmState.RUNNING, vcpus=4,
                         memory_bytes=vm.memory_bytes, cpu_vcpus=float(c), memory_used_bytes=GIB, disk_read_bps=1e6,
                         disk_write_bps=1e6, net_rx_bps=1e6, net_tx_bps=1e6, interval_s=3600.0)
              for i, c in enumerate(cpu)]
    store = SqliteStore(path / "h.db")
    store.write_history([vm], points)
    return store, vm.uuid


def _headroom_cell(rec: object) -> str | None:
    cell = next((c for c in components(rec) if getattr(c, "id", None) == ids.VM_HEADROOM), None)
    return None if cell is None else str(cell.children)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[object, VmFinding]]:
    """The VM page's recommendation part and the finding behind it, for the one VM of :func:`_store`."""
    store, uuid = _store(tmp_path)
    try:
        data = DashboardData(Settings(), store, load_catalogue(), data_mode="live", clock=lambda: NOW)
        *_parts, rec, _options = vm_detail.update(data, uuid, "7d", None, None)
        view = vm_detail_view(data, uuid, Filters.of("7d", None, None), 14)
        assert view is not None and view.finding is not None and view.finding.source is not None
        yield rec, view.finding.source
    finally:
        store.close()


def test_vm_page_says_the_headroom_of_its_finding_in_words(page: tuple[object, VmFinding]) -> None:
    rec, finding = page
    expected = headroom_text(finding.recommendation)
    line = _headroom_cell(rec)
    # one wording for the page and the CLI: the line is the finding's, each dimension with its amount
    assert line == expected and line.startswith(("CPU: ", "steady CPU", "variable CPU", "spiky CPU"))
    assert "% headroom over its " in line and "memory" in line.split("; ")[1]


def test_the_default_profile_says_its_fixed_cpu_headroom(page: tuple[object, VmFinding]) -> None:
    rec, finding = page
    evidence = finding.recommendation.evidence
    assert evidence is not None and evidence.memory is not None
    # balanced: the AWS rule for CPU (P99.5 + 20 %), the same for every VM; memory as its rule says it
    assert _headroom_cell(rec) == ("CPU: 20 % headroom over its P99.5 (fixed, not fitted to this VM); "
                                   + dimension_text("memory", evidence.memory))


def test_no_headroom_line_without_the_findings_need(data: DashboardData) -> None:
    # the tiny fleet's stub findings carry no recommendation: no line rather than an empty one
    *_parts, rec, _options = vm_detail.update(data, A, "7d", None, None)
    assert _headroom_cell(rec) is None
