"""The Recommendations page's views: rows (resizes, stops, schedules, storage), CSV export, apply choices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.own_frontier import OwnFrontier
from analytics.storage import StorageAdvice
from collector.model import VmRecord
from core.textsafe import findings_csv
from dashboard.adapters import load_frontier
from dashboard.apply import ApplyHook, apply_resize
from dashboard.apply import apply_choices as choices_of
from dashboard.snapshot import Snapshot
from dashboard.viewmodel.common import round_or_none
from dashboard.views import GIB, Filters, FindingView, labels_text, storage_class_text

if TYPE_CHECKING:
    from dashboard.data import DashboardData


def savings_risk(data: DashboardData, lookback: int | str | None = None) -> OwnFrontier:
    """The fleet's savings-vs-risk frontier over ``lookback`` days (a valid choice, else the configured
    lookback) of stored history, memoised per snapshot and lookback."""
    snap = data.snapshot()
    days = data.lookback_days(lookback)
    if not snap.complete:  # the short first window backtests nothing
        return OwnFrontier((), data.settings.rightsizing.profile, 0.0, 0.0, 0)
    return data.memo(snap, ("frontier", days), lambda: load_frontier(data, snap, float(days)))


def recommendation_rows(data: DashboardData, filters: Filters,
                        lookback: int | str | None = None) -> list[dict[str, Any]]:
    """Findings that call for action (not optimized) over ``lookback`` days, biggest saving first."""
    snap = data.snapshot()
    days = data.lookback_days(lookback)
    key = ("recs", filters.labels, filters.hosts) + ((days,) if days != data.lookback_days(None) else ())
    return data.memo(snap, key, lambda: rec_rows(data, snap, filters, days))


def need_statistic(data: DashboardData, lookback: int | str | None = None) -> str:
    """The CPU statistic the findings call "need" (the same on every page, the report and the CLI)."""
    snap = data.snapshot()
    return next((f.need_statistic for f in data.findings_for(snap, lookback).values() if f.need_statistic), "")


def rec_rows(data: DashboardData, snap: Snapshot, filters: Filters,
              lookback: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    findings = data.findings_for(snap, lookback)
    for uuid in data.selected(snap, filters):
        f = findings.get(uuid)
        if f is not None and f.schedule:
            rows.append({**_schedule_row(snap.by_uuid[uuid], f), "dismissed": dismissed_text(f, ("schedule",))})
        if f is not None and f.storage is not None and f.storage.is_change:
            rows.append({**_storage_row(snap.by_uuid[uuid], f, f.storage),
                         "dismissed": dismissed_text(f, ("storage",))})
        if f is None or f.finding == "optimized":
            continue
        vm = snap.by_uuid[uuid]
        rows.append({
            "id": uuid,
            "name": vm.name,
            "host": vm.host,
            "labels": labels_text(vm.labels),
            "finding": f.finding,
            "current_type": f.current_type or "",
            "recommended_type": f.recommended_type or "",
            "target_vcpus": round_or_none(f.target_vcpus, 2),
            "target_memory_gib": round_or_none(f.target_memory_bytes / GIB if f.target_memory_bytes else None, 2),
            "monthly_savings": round_or_none(f.monthly_savings, 2),
            "savings_pct": round_or_none(f.savings_pct, 1),
            "action": f.action,
            "risk": f.risk,
            "risk_reasons": "; ".join(f.risk_reasons),
            "options": "; ".join(
                f"{o.machine_type} ({o.vcpus} vCPU, {o.memory_bytes / GIB:g} GiB, "
                f"{o.price_per_month:.2f} {data.currency}/month)" for o in f.options)
            + ("; " if f.options and f.other_options else "") + "; ".join(f.other_options),
            "reason": f.reasons.get("overall", ""),
            "excluded": "yes" if f.excluded else "",
            "dismissed": dismissed_text(f, ("resize", "stop")),
        })
    for r in rows:  # the reason column says it first, so no wider table is needed to show it
        if r["dismissed"]:
            r["reason"] = f"{r['dismissed'][0].upper()}{r['dismissed'][1:]}. {r['reason']}"
    rows.sort(key=lambda r: (-(r["monthly_savings"] or 0.0), r["name"]))
    return rows


def dismissed_text(f: FindingView, kinds: tuple[str, ...]) -> str:
    """How a row reads when the VM's finding of one of ``kinds`` is dismissed ("" when it is not)."""
    d = f.dismissed
    if d is None or d.kind not in kinds:
        return ""
    until = f"until {d.until:%Y-%m-%d %H:%M} UTC" if d.until is not None else "until restored"
    return f"{d.state} by {d.actor} {until}: {d.reason}"


def recommendations_csv(data: DashboardData, filters: Filters, lookback: int | str | None = None) -> str:
    """The selected VMs' findings as CSV text in the one findings schema (the report's findings.csv and
    ``recommend --output csv``), in the order of the Recommendations table."""
    snap = data.snapshot()
    findings = data.findings_for(snap, lookback)
    uuids = dict.fromkeys(r["id"].split("#")[0] for r in recommendation_rows(data, filters, lookback))
    rows = [src.csv_row() for u in uuids if (src := findings[u].source) is not None]
    return findings_csv(rows, FINDING_CSV_COLUMNS)


def apply_choices(data: DashboardData, filters: Filters) -> list[tuple[str, str, list[str]]]:
    """(UUID, VM name, option type names) of findings that could be applied."""
    snap = data.snapshot()
    rows = data.memo(snap, ("recs", filters.labels, filters.hosts), lambda: rec_rows(data, snap, filters))
    return choices_of(snap, [(r["id"], r["name"]) for r in rows if r["finding"] not in ("schedule", "storage")])


def apply_choice(data: DashboardData, hook: ApplyHook | None, vm_uuid: str | None, machine_type: str | None,
                 token: str | None) -> str:
    """Check the token and call the apply hook; returns the message to show (never raises ActionError)."""
    return apply_resize(data.settings.actions, data.snapshot(), hook, vm_uuid, machine_type, token, data.principal())


SCHEDULE_ROW_SUFFIX = "#schedule"


def _schedule_row(vm: VmRecord, f: FindingView) -> dict[str, Any]:
    """A schedule proposal as its own recommendation row (kind "schedule"), saving after any resize."""
    return {
        "id": vm.uuid + SCHEDULE_ROW_SUFFIX, "name": vm.name, "host": vm.host, "labels": labels_text(vm.labels),
        "finding": "schedule", "current_type": f.current_type or "", "recommended_type": f"on {f.schedule}",
        "target_vcpus": None, "target_memory_gib": None, "monthly_savings": round_or_none(f.schedule_savings, 2),
        "risk": f.schedule_risk, "options": f"pattern {f.pattern}; stop outside the window (hourly billing)",
        "reason": f.schedule_risk_text, "excluded": "",
    }


STORAGE_ROW_SUFFIX = "#storage"


def _storage_row(vm: VmRecord, f: FindingView, advice: StorageAdvice) -> dict[str, Any]:
    """Storage advice as its own recommendation row (kind "storage"): class and capacity, priced per month."""
    size = (f"{advice.recommended_capacity_bytes / 1e9:,.0f} GB" if advice.recommended_capacity_bytes is not None
            else f"{advice.capacity_bytes / 1e9:,.0f} GB")
    return {
        "id": vm.uuid + STORAGE_ROW_SUFFIX, "name": vm.name, "host": vm.host, "labels": labels_text(vm.labels),
        "finding": "storage", "action": "none", "current_type": f"{storage_class_text(advice.current_class)}, "
        f"{advice.capacity_bytes / 1e9:,.0f} GB",
        "recommended_type": f"{storage_class_text(advice.recommended_class)}, {size}",
        "target_vcpus": None, "target_memory_gib": None, "monthly_savings": round_or_none(advice.monthly_savings, 2),
        "savings_pct": round_or_none(
            100.0 * advice.monthly_savings / advice.monthly_cost if advice.monthly_cost else None, 1),
        "risk": "low", "options": f"used bytes from {advice.used_source}; a volume is resized by its owner",
        "reason": advice.reason, "excluded": "yes" if f.excluded else "",
    }
