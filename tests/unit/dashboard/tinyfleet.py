"""A three-VM store with hand-chosen hourly numbers, so that dashboard figures can be computed by hand.

48 hourly points per VM ending 2026-03-12 00:00 UTC (interval 3600 s, ts = end of interval):

* ``pay-api`` (A): host h1, 2 vCPUs, 4 GiB, label machine_type=c1.2, 20 GB disk, CPU 0.5 vCPU except
  1.8 at 2026-03-11 12:00, memory used 1 GiB, backed up 2 h before the end (policy 24h).
* ``web-1`` (B): host h2, 1 vCPU, 4 GiB, label machine_type=g1.1, 50 GB disk, CPU 0.25, memory unknown,
  env=prod and never backed up.
* ``=cmd|calc`` (C): host h1, 1 vCPU, 2 GiB, shut off throughout, 10 GB disk, backup_policy=none.

Prices (data/, STACKIT eu01): c1.2 0.06065813333/h, g1.1 0.03791133333/h, capacity 0.0000907638 per
GB-hour, storage_premium_perf0 fee 0.00245833333 per disk-hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.catalogue import load_catalogue
from collector.model import UsagePoint, VmRecord, VmState
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.data import DashboardData, FindingView, OptionView

GIB = 1024**3
END = datetime(2026, 3, 12, 0, 0, tzinfo=UTC)
NOW = END + timedelta(hours=1)
A, B, C = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002", \
    "cccccccc-0000-4000-8000-000000000003"
SPIKE = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


def _record(uuid: str, name: str, host: str, vcpus: int, mem_gib: int, labels: dict[str, str],
            state: VmState = VmState.RUNNING) -> VmRecord:
    return VmRecord(uuid=uuid, name=name, uri="test:///x", host=host, state=state, vcpus=vcpus, max_vcpus=vcpus,
                    memory_bytes=mem_gib * GIB, max_memory_bytes=mem_gib * GIB, labels=labels,
                    first_seen=END - timedelta(hours=48), last_seen=END, source="demo")


RECORDS = [
    _record(A, "pay-api", "h1", 2, 4, {"team": "payments", "env": "prod", "machine_type": "c1.2",
                                       "backup_policy": "24h"}),
    _record(B, "web-1", "h2", 1, 4, {"team": "web", "env": "prod", "machine_type": "g1.1"}),
    _record(C, "=cmd|calc", "h1", 1, 2, {"team": "payments", "env": "dev", "backup_policy": "none"},
            state=VmState.SHUTOFF),
]


def points() -> Iterator[UsagePoint]:
    for k in range(48):
        ts = END - timedelta(hours=47 - k)
        yield UsagePoint(vm_uuid=A, ts=ts, state=VmState.RUNNING, vcpus=2, memory_bytes=4 * GIB,
                         cpu_vcpus=1.8 if ts == SPIKE else 0.5, memory_used_bytes=1 * GIB, disk_read_bps=1000.0,
                         disk_write_bps=2000.0, net_rx_bps=10.0, net_tx_bps=10.0,
                         disk_capacity_bytes=20 * 10**9, interval_s=3600.0)
        yield UsagePoint(vm_uuid=B, ts=ts, state=VmState.RUNNING, vcpus=1, memory_bytes=4 * GIB, cpu_vcpus=0.25,
                         disk_capacity_bytes=50 * 10**9, interval_s=3600.0)
        yield UsagePoint(vm_uuid=C, ts=ts, state=VmState.SHUTOFF, vcpus=1, memory_bytes=2 * GIB,
                         disk_capacity_bytes=10 * 10**9, interval_s=3600.0)


def with_source(view: FindingView, name: str) -> FindingView:
    """The view with the finding it shows (what ``finding_view`` keeps): the CSV export and headline read it."""
    from analytics.findings.finding import VmFinding
    from analytics.findings.risk import RiskLevel
    from analytics.rightsizing.base import Finding

    source = VmFinding(
        uuid=view.vm_uuid, name=name, uri="test:///default", host="", strategy="rightsizer",
        finding=Finding(view.finding), current_type=view.current_type, current_type_source="label",
        current_vcpus=2, current_memory_bytes=4 * GIB, need_vcpus=view.target_vcpus,
        need_memory_bytes=view.target_memory_bytes, target_type=view.recommended_type,
        target_vcpus=view.recommended_vcpus, target_memory_bytes=view.recommended_memory_bytes,
        price_before_per_hour=None, price_after_per_hour=None, currency="EUR", monthly_savings=view.monthly_savings,
        risk=RiskLevel(view.risk), excluded=view.excluded, reasons=dict(view.reasons), options=(),
        recommendation=None,  # type: ignore[arg-type]  # not read by the views under test
        action=view.action, savings_pct=view.savings_pct)
    return replace(view, source=source, currency="EUR")


def stub_findings(data: DashboardData, snap: object) -> dict[str, FindingView]:
    """Fixed findings: A over-provisioned (+20.50/month), B under-provisioned (-5.00), C idle (+3.00)."""
    names = {vm.uuid: vm.name for vm in RECORDS}
    return {uuid: with_source(view, names[uuid]) for uuid, view in _stub_views().items()}


def _stub_views() -> dict[str, FindingView]:
    return {
        A: FindingView(A, "over-provisioned", "c1.2", "g1.1", 20.5, "low", 0.6, 2 * GIB, recommended_vcpus=1,
                       recommended_memory_bytes=4 * GIB,
                       options=(OptionView("g1.1", 1, 4 * GIB, 27.30, 20.5),),
                       reasons={"overall": "g1.1 covers the need", "cpu": "p90 0.52 vCPU + 15 %",
                                "memory": "max 1 GiB + 15 %"},
                       evidence={"lookback": "14 days", "coverage": "48.0 h"}, savings_pct=42.9,
                       action="resize", need_statistic="p90 of daily peak-hour CPU demand",
                       need_memory_statistic="max of memory used",
                       risk_reasons=("0 of 48 h in the lookback above the new size (0.0%)",)),
        B: FindingView(B, "under-provisioned", "g1.1", "g1.2", -5.0, "medium", 1.2, 4 * GIB, recommended_vcpus=2,
                       recommended_memory_bytes=8 * GIB,
                       options=(OptionView("g1.2", 2, 8 * GIB, 54.59, -5.0),), reasons={"overall": "demand exceeds"},
                       action="resize"),
        C: FindingView(C, "idle", None, None, 3.0, "low", None, None, reasons={"overall": "=SUM(A1) idle"},
                       action="stop"),
    }


def make_data(store: SqliteStore, settings: Settings | None = None) -> DashboardData:
    """The view model over ``store`` with the fixed clock and the stub findings."""
    return DashboardData(settings or Settings(), store, load_catalogue(), data_mode="demo", clock=lambda: NOW,
                         findings_loader=stub_findings)


def components(tree: object) -> Iterator[Any]:
    """Every component in a Dash layout tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(node)
            continue
        yield node
        children = getattr(node, "children", None)
        if children is not None and not isinstance(children, str):
            stack.append(children)


def find_component(tree: object, component_id: str) -> Any:
    """The component with ``component_id`` in a Dash layout tree, or None."""
    return next((c for c in components(tree) if getattr(c, "id", None) == component_id), None)
