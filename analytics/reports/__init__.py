"""Fleet reports: build one ``Report`` from the store, write it with formatters registered by name.

Built-in formatters: ``html`` (report.html, plotly charts, self-contained), ``csv`` (findings.csv,
formula-safe) and ``json`` (report.json). ``write_report`` is what the CLI and the scheduled job call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analytics.analysis import FleetAnalysis, storage_pricing
from analytics.backups import BackupFinding, check_backups
from analytics.catalogue import CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.cost_summary import CostSummary, GroupCost, summarise_costs
from analytics.costs import fleet_costs
from analytics.findings.finding import VmFinding
from analytics.findings.headline import saving_kind
from analytics.idle import IdleFinding, find_idle
from analytics.realised import realised_savings_for_store
from analytics.reports import csv_report, html_report, json_report, vms_csv_report  # noqa: F401  (register formatters)
from analytics.reports.base import FORMATTERS, Report, ReportFormatter, VmReportRow, register
from collector.errors import InputError
from collector.model import VmRecord
from collector.store.faults import write_failure
from core.settings import CostSettings, Settings

if TYPE_CHECKING:
    from analytics.own_frontier import OwnFrontier
    from collector.store.base import TimeSeriesStore

__all__ = [
    "FORMATTERS", "Report", "ReportFormatter", "VmReportRow", "build_report", "register",
    "write_report",
]

DEFAULT_FORMATS: tuple[str, ...] = ("html", "csv", "vms-csv", "json")
#: Labels tried, in order, for the "spend by label" chart.
PREFERRED_LABELS: tuple[str, ...] = ("team", "project", "env")
_NOT_GROUPING_LABELS = frozenset({"machine_type", "backup_policy", "rightsizer_exclude"})


def choose_label_key(vms: Sequence[VmRecord]) -> str | None:
    """The label to chart spend by: team, project or env if any VM has it, else the first other label."""
    keys = {k for vm in vms for k, v in vm.labels.items() if v.strip()}
    for key in PREFERRED_LABELS:
        if key in keys:
            return key
    rest = sorted(keys - _NOT_GROUPING_LABELS)
    return rest[0] if rest else None


def _utilisation(hours: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    if hours.empty:
        return {}, {}
    vm = hours["vm"].astype(str)
    cpu = pd.to_numeric(hours["cpu_p95_vcpus"], errors="coerce").groupby(vm).quantile(0.95).dropna()
    mem = pd.to_numeric(hours["memory_used_max_bytes"], errors="coerce").groupby(vm).max().dropna()
    return {str(k): float(v) for k, v in cpu.items()}, {str(k): float(v) for k, v in mem.items()}


def _analysis(
    store: TimeSeriesStore, catalogue: CsvPriceCatalogue, settings: Settings, strategy: str | None, now: datetime
) -> FleetAnalysis:
    """The one fleet analysis at ``now`` (the surfaces' shared entry point). Raises InputError for an unknown
    strategy name."""
    from analytics.analysis import AnalysisOptions, analyse_fleet

    return analyse_fleet(store, catalogue, AnalysisOptions.from_settings(settings, catalogue, strategy=strategy,
                                                                         now=now))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def build_report(
    store: TimeSeriesStore,
    catalogue: CsvPriceCatalogue,
    settings: Settings,
    now: datetime,
    *,
    strategy: str | None = None,
    since: datetime | None = None,
    storage: StoragePrices | None = None,
    analysis: FleetAnalysis | None = None,
) -> Report:
    """Collect costs, utilisation, right-sizing, idle and backup findings into one ``Report``.

    The window is ``since`` (default: ``costs.window_days`` before ``now``) to ``now``, UTC.
    ``analysis`` is the fleet analysis when the caller has it already (else it is made here).
    Raises InputError on a bad storage class or backup policy setting, StoreError from the store.
    """
    now = _utc(now)
    start = _utc(since or now - timedelta(days=settings.costs.window_days)).replace(
        minute=0, second=0, microsecond=0)
    notes: list[str] = []
    vms = store.vms()
    storage = storage or load_storage_prices()
    cost_settings, storage_note = storage_pricing(settings, catalogue.currency)
    if storage_note:
        notes.append(storage_note)
    hours = store.frame(_first_hour_read(now, start), now, resolution="hour")
    by_host, label_key, by_label = _spend(hours, vms, catalogue, storage, cost_settings, now=now, start=start)
    window_hours = hours[pd.to_datetime(hours["ts"], utc=True) >= pd.Timestamp(start)] if len(hours) else hours
    cpu_p95, mem_max = _utilisation(window_hours)
    idle = find_idle(window_hours, settings.idle, include_all=True) if len(window_hours) else {}
    backups = check_backups(vms, store.backups(), settings.backups, now, hour_frame=hours)
    savings = realised_savings_for_store(store, now, currency=catalogue.currency)
    if analysis is None:
        analysis = _analysis(store, catalogue, settings, strategy, now)
    notes.extend(_coverage_notes(by_host, vms))
    rows = _report_rows(vms, by_host, analysis.by_uuid(), idle, backups, cpu_p95, mem_max)
    frontier = _frontier(analysis.options.strategy, window_hours, vms, catalogue, settings, now=now, start=start)
    return Report(
        generated_at=now,
        window_start=start,
        window_end=now,
        currency=catalogue.currency,
        stopped_vm_billing=cost_settings.stopped_vm_billing,
        strategy=analysis.options.strategy,
        costs=by_host,
        label_key=label_key,
        spend_by_label=by_label,
        spend_by_host=by_host.groups,
        vms=tuple(rows),
        idle=tuple(sorted(idle.values(), key=lambda i: i.vm_uuid)),
        backups=tuple(backups),
        realised_savings=tuple(savings),
        notes=tuple(notes),
        frontier=frontier,
        findings=analysis.findings,
        headline=analysis.headline,
    )


def _first_hour_read(now: datetime, start: datetime) -> datetime:
    """The oldest hour the report reads: its window, the month to date and the forecast's trailing 7 days."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return min(start, month_start, now - timedelta(days=7))


def _spend(
    hours: pd.DataFrame, vms: Sequence[VmRecord], catalogue: CsvPriceCatalogue, storage: StoragePrices,
    cost_settings: CostSettings, *, now: datetime, start: datetime,
) -> tuple[CostSummary, str | None, tuple[GroupCost, ...]]:
    """The window's costs by host (with month figures), the label charted and the spend by that label."""
    cost_frame = fleet_costs(hours, vms, catalogue, storage, cost_settings, now=now)
    by_host = summarise_costs(cost_frame, vms, group_by="host", now=now, start=start, end=now,
                              currency=catalogue.currency)
    label_key = choose_label_key(vms)
    by_label = (
        summarise_costs(cost_frame, vms, group_by=label_key, now=now, start=start, end=now,
                        currency=catalogue.currency).groups if label_key else ()
    )
    return by_host, label_key, tuple(by_label)


def _coverage_notes(by_host: CostSummary, vms: Sequence[VmRecord]) -> list[str]:
    """Notes on what the report could not cover: unpriced VMs, an empty store."""
    notes: list[str] = []
    if by_host.unpriced_vms:
        notes.append(f"{len(by_host.unpriced_vms)} VM(s) fit no machine type in the catalogue and are not priced.")
    if not vms:
        notes.append("The store holds no VMs yet; run 'rightsizer collect' or 'rightsizer import'.")
    return notes


def _report_rows(
    vms: Sequence[VmRecord],
    by_host: CostSummary,
    findings: Mapping[str, VmFinding],
    idle: Mapping[str, IdleFinding],
    backups: Sequence[BackupFinding],
    cpu_p95: Mapping[str, float],
    mem_max: Mapping[str, float],
) -> list[VmReportRow]:
    """One row per VM (cost, size, utilisation, finding, idle and backup state), most expensive first."""
    costs_by_vm = {v.vm_uuid: v for v in by_host.per_vm}
    backup_by_vm = {b.vm_uuid: b for b in backups}
    rows: list[VmReportRow] = []
    for vm in vms:
        cost = costs_by_vm.get(vm.uuid)
        rec = findings.get(vm.uuid)
        bk = backup_by_vm.get(vm.uuid)
        idle_f = idle.get(vm.uuid)
        rows.append(VmReportRow(
            vm_uuid=vm.uuid,
            name=vm.name,
            host=vm.host,
            labels=dict(vm.labels),
            machine_type=cost.machine_type if cost else None,
            type_source=cost.type_source if cost else "no data",
            price_per_hour=cost.price_per_hour if cost else None,
            running_hours=cost.running_hours if cost else 0.0,
            cost=cost.cost if cost else 0.0,
            vcpus=vm.vcpus,
            memory_bytes=vm.memory_bytes,
            cpu_p95_vcpus=cpu_p95.get(vm.uuid),
            memory_used_max_bytes=mem_max.get(vm.uuid),
            **_finding_fields(rec),
            idle_status=idle_f.status if idle_f else None,
            backup_status=bk.status if bk else None,
            backup_urgency=bk.urgency if bk else None,
            backup_reason=bk.reason if bk else "",
        ))
    rows.sort(key=lambda r: (-r.cost, r.name))
    return rows


def _frontier(
    strategy: str | None, window_hours: pd.DataFrame, vms: Sequence[VmRecord], catalogue: CsvPriceCatalogue,
    settings: Settings, *, now: datetime, start: datetime,
) -> OwnFrontier | None:
    """The own-fleet frontier over the window, when a strategy ran and there is data."""
    if strategy is None or not vms or not len(window_hours):
        return None
    from analytics.own_frontier import own_fleet_frontier

    return own_fleet_frontier(window_hours, vms, catalogue, now=now,
                              lookback_days=(now - start).total_seconds() / 86400.0,
                              profile=settings.rightsizing.profile)


def _finding_fields(f: VmFinding | None) -> dict[str, Any]:
    """A report row's right-sizing columns, from the VM's finding (its headline saving, signed for upsizes)."""
    if f is None:
        return {}
    kind = saving_kind(f)
    return {
        "finding": f.finding.value, "recommended_type": f.target_type if f.changes_type else None,
        "monthly_savings": f.monthly_savings if kind is not None else 0.0, "risk": f.risk.value,
        "savings_pct": f.savings_pct if kind is not None else 0.0, "cpu_need_vcpus": f.need_vcpus,
        "cpu_need_statistic": f.need_cpu_statistic,
        "recommendation_reason": "; ".join(f"{k}: {v}" for k, v in f.reasons.items()),
        "pattern": f.pattern, "schedule": f.schedule.as_json() if f.schedule is not None else None,
        "schedule_monthly_savings": (f.schedule.monthly_savings if f.schedule is not None and not f.excluded
                                     else 0.0),
    }


def write_files(report: Report, out_dir: Path | str, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Render ``report`` with each named formatter into ``out_dir`` (created); returns the paths written.

    Each file is replaced atomically. Raises InputError for an unknown format or an unwritable directory.
    """
    out = Path(out_dir)
    unknown = [f for f in formats if f not in FORMATTERS]
    if unknown:
        raise InputError(f"Unknown report format(s) {unknown!r}; known: {', '.join(sorted(FORMATTERS))}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(out, exc, InputError(f"Cannot create report directory {str(out)!r}: {exc}; pass a "
                                                 "writable --out")) from exc
    paths: list[Path] = []
    for name in formats:
        formatter = FORMATTERS[name]
        target = out / formatter.filename
        _atomic_write(target, formatter.render(report))
        paths.append(target)
    return paths


def _atomic_write(target: Path, text: str) -> None:
    # a sibling temp file (mode from the umask, unlike mkstemp's 0600) renamed over the target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise write_failure(target, exc, InputError(f"Cannot write report file {str(target)!r}: {exc}; pass a "
                                                    "writable --out")) from exc


def write_report(
    store: TimeSeriesStore,
    catalogue: CsvPriceCatalogue,
    settings: Settings,
    out_dir: Path | str,
    now: datetime,
    *,
    strategy: str | None = None,
    since: datetime | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> list[Path]:
    """Build the fleet report at ``now`` (UTC) and write report.html, findings.csv and report.json.

    Returns the paths written. Raises InputError (bad settings, unwritable ``out_dir``) or StoreError.
    """
    report = build_report(store, catalogue, settings, now, strategy=strategy, since=since)
    return write_files(report, out_dir, formats)
