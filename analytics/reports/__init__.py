"""Fleet reports: build one ``Report`` from the store, write it with formatters registered by name.

Built-in formatters: ``html`` (report.html, plotly charts, self-contained), ``csv`` (findings.csv,
formula-safe) and ``json`` (report.json). ``write_report`` is what the CLI and the scheduled job call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from analytics.backups import check_backups
from analytics.catalogue import CsvPriceCatalogue, StoragePrices, load_storage_prices
from analytics.costs import fleet_costs, realised_savings_for_store, summarise_costs
from analytics.idle import find_idle
from analytics.reports import csv_report, html_report, json_report  # noqa: F401  (register formatters)
from analytics.reports.base import FORMATTERS, Report, ReportFormatter, VmReportRow, register
from collector.config import Settings
from collector.errors import InputError
from collector.model import VmRecord
from collector.store.faults import write_failure

if TYPE_CHECKING:
    from collector.store.base import TimeSeriesStore

__all__ = [
    "FORMATTERS", "RightsizingSummary", "Report", "ReportFormatter", "VmReportRow", "build_report", "register",
    "write_report",
]

DEFAULT_FORMATS: tuple[str, ...] = ("html", "csv", "json")
#: Labels tried, in order, for the "spend by label" chart.
PREFERRED_LABELS: tuple[str, ...] = ("team", "project", "env")
_NOT_GROUPING_LABELS = frozenset({"machine_type", "backup_policy", "rightsizer_exclude"})


@dataclass(frozen=True, slots=True)
class RightsizingSummary:
    """The part of a right-sizing finding the report shows."""

    finding: str
    recommended_type: str | None
    monthly_savings: float
    risk: str
    reason: str
    savings_pct: float = 0.0
    need_vcpus: float | None = None
    need_statistic: str = ""


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


def _recommendations(
    store: TimeSeriesStore, catalogue: CsvPriceCatalogue, settings: Settings, strategy: str, now: datetime
) -> tuple[dict[str, RightsizingSummary] | None, str | None]:
    """Right-sizing per VM UUID from analytics.recommend, or (None, why not) when unavailable.

    Raises InputError for an unknown strategy name.
    """
    from analytics.recommend import findings_for_settings

    try:
        findings = findings_for_settings(store, catalogue, settings, now=now, strategy=strategy)
    except KeyError as exc:
        raise InputError(f"{exc.args[0] if exc.args else exc}; pass one of them to --strategy") from exc
    return {
        f.uuid: RightsizingSummary(
            finding=f.finding.value,
            recommended_type=f.target_type if f.changes_type else None,
            monthly_savings=float(f.monthly_savings) if f.is_actionable or f.finding == "stopped" else 0.0,
            risk=f.risk.value,
            reason="; ".join(f"{k}: {v}" for k, v in f.reasons.items()),
            savings_pct=f.savings_pct if f.is_actionable or f.finding == "stopped" else 0.0,
            need_vcpus=f.need_vcpus,
            need_statistic=f.need_cpu_statistic,
        )
        for f in findings
    }, None


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
    recommendations: Mapping[str, RightsizingSummary] | None = None,
) -> Report:
    """Collect costs, utilisation, right-sizing, idle and backup findings into one ``Report``.

    The window is ``since`` (default: ``costs.window_days`` before ``now``) to ``now``, UTC.
    ``recommendations`` replaces the call to analytics.recommend (for tests and callers that have them).
    Raises InputError on a bad storage class or backup policy setting, StoreError from the store.
    """
    now = _utc(now)
    start = _utc(since or now - timedelta(days=settings.costs.window_days)).replace(
        minute=0, second=0, microsecond=0)
    notes: list[str] = []
    vms = store.vms()
    storage = storage or load_storage_prices()
    cost_settings = settings.costs
    if cost_settings.include_storage and storage.currency != catalogue.currency:
        cost_settings = cost_settings.model_copy(update={"include_storage": False})
        notes.append(f"Storage is not priced: its prices are in {storage.currency}, the catalogue's in "
                     f"{catalogue.currency}.")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    hours = store.frame(min(start, month_start, now - timedelta(days=7)), now, resolution="hour")
    cost_frame = fleet_costs(hours, vms, catalogue, storage, cost_settings, now=now)
    by_host = summarise_costs(cost_frame, vms, group_by="host", now=now, start=start, end=now,
                              currency=catalogue.currency)
    label_key = choose_label_key(vms)
    by_label = (
        summarise_costs(cost_frame, vms, group_by=label_key, now=now, start=start, end=now,
                        currency=catalogue.currency).groups if label_key else ()
    )
    window_hours = hours[pd.to_datetime(hours["ts"], utc=True) >= pd.Timestamp(start)] if len(hours) else hours
    cpu_p95, mem_max = _utilisation(window_hours)
    idle = find_idle(window_hours, settings.idle, include_all=True) if len(window_hours) else {}
    backups = check_backups(vms, store.backups(), settings.backups, now, hour_frame=hours)
    savings = realised_savings_for_store(store, now, currency=catalogue.currency)

    wanted_strategy = strategy or settings.rightsizing.strategy
    used_strategy: str | None = wanted_strategy
    if recommendations is None:
        recs, why_not = _recommendations(store, catalogue, settings, wanted_strategy, now)
        if recs is None:
            used_strategy = None
            notes.append(why_not or "no recommendations")
        recommendations = recs or {}
    if by_host.unpriced_vms:
        notes.append(f"{len(by_host.unpriced_vms)} VM(s) fit no machine type in the catalogue and are not priced.")
    if not vms:
        notes.append("The store holds no VMs yet; run 'rightsizer collect' or 'rightsizer import'.")

    costs_by_vm = {v.vm_uuid: v for v in by_host.per_vm}
    backup_by_vm = {b.vm_uuid: b for b in backups}
    rows: list[VmReportRow] = []
    for vm in vms:
        cost = costs_by_vm.get(vm.uuid)
        rec = recommendations.get(vm.uuid)
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
            finding=rec.finding if rec else None,
            recommended_type=rec.recommended_type if rec else None,
            monthly_savings=rec.monthly_savings if rec else None,
            risk=rec.risk if rec else None,
            savings_pct=rec.savings_pct if rec else None,
            cpu_need_vcpus=rec.need_vcpus if rec else None,
            cpu_need_statistic=rec.need_statistic if rec else "",
            recommendation_reason=rec.reason if rec else "",
            idle_status=idle_f.status if idle_f else None,
            backup_status=bk.status if bk else None,
            backup_urgency=bk.urgency if bk else None,
            backup_reason=bk.reason if bk else "",
        ))
    rows.sort(key=lambda r: (-r.cost, r.name))
    frontier = None
    if used_strategy is not None and vms and len(window_hours):
        from analytics.own_frontier import own_fleet_frontier

        frontier = own_fleet_frontier(window_hours, vms, catalogue, now=now,
                                      lookback_days=(now - start).total_seconds() / 86400.0,
                                      profile=settings.rightsizing.profile)
    return Report(
        generated_at=now,
        window_start=start,
        window_end=now,
        currency=catalogue.currency,
        stopped_vm_billing=cost_settings.stopped_vm_billing,
        strategy=used_strategy,
        costs=by_host,
        label_key=label_key,
        spend_by_label=tuple(by_label),
        spend_by_host=by_host.groups,
        vms=tuple(rows),
        idle=tuple(sorted(idle.values(), key=lambda i: i.vm_uuid)),
        backups=tuple(backups),
        realised_savings=tuple(savings),
        notes=tuple(notes),
        frontier=frontier,
    )


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
