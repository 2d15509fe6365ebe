"""Adapters from analytics to the dashboard's views: findings and backup checks for one snapshot."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from analytics.analysis import AnalysisOptions, analyse_frame, analysis_time
from analytics.backups import check_backups
from analytics.findings.finding import VmFinding
from dashboard.snapshot import Snapshot, hours_since
from dashboard.views import GIB, BackupView, FindingView, OptionView

if TYPE_CHECKING:
    from analytics.findings.context import FleetCatalogue
    from analytics.own_frontier import OwnFrontier
    from collector.store.base import TimeSeriesStore
    from core.settings import Settings

_BACKUP_STATUS = {"not-required": "no-policy"}


class AnalysisInputs(Protocol):
    """What the adapters read of the view model: its settings, store and catalogue."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> TimeSeriesStore: ...
    @property
    def catalogue(self) -> FleetCatalogue: ...


def load_backups(data: AnalysisInputs, snap: Snapshot) -> Mapping[str, BackupView]:
    """Judge every VM's newest backup against its policy (analytics.backups) at the snapshot's time."""
    findings = check_backups(list(snap.vms), data.store.backups(), data.settings.backups, snap.now,
                             hour_frame=snap.hours)
    return {
        f.vm_uuid: BackupView(
            vm_uuid=f.vm_uuid,
            policy=f.policy,
            policy_h=f.max_age_s / 3600.0 if f.max_age_s is not None else None,
            newest=f.newest,
            age_h=f.age_s / 3600.0 if f.age_s is not None else None,
            status=_BACKUP_STATUS.get(f.status, f.status),
            urgency=f.urgency,
            detail=f.reason,
        )
        for f in findings
    }


def load_findings(data: AnalysisInputs, snap: Snapshot,
                  lookback_days: float | None = None) -> Mapping[str, FindingView]:
    """Analyse the fleet on the snapshot's hourly rollups with the one analysis core, judged at the snapshot's
    cost time (``[rightsizing] lookback_days`` unless ``lookback_days`` is given), and flatten each finding."""
    # judged as of the newest data, as the CLI, the API, /metrics and the report judge it
    now = min(analysis_time(data.store, None), snap.cost_now)
    options = AnalysisOptions.from_settings(data.settings, data.catalogue, lookback_days=lookback_days, now=now)
    start = pd.Timestamp(now) - pd.Timedelta(days=options.effective_lookback_days)
    # the rows a store returns for [start, now): the same hours the other surfaces read
    frame = hours_since(data.store, snap, start, now)  # beyond the loaded window (93 days): read from the store
    analysis = analyse_frame(frame, list(snap.vms), data.store, data.catalogue, options, now=now)
    return {f.uuid: finding_view(f, options.effective_lookback_days) for f in analysis.findings}


def load_frontier(data: AnalysisInputs, snap: Snapshot, lookback_days: float) -> OwnFrontier:
    """The savings-vs-risk frontier of the last ``lookback_days`` (first half trains, second half scores)."""
    from analytics.own_frontier import own_fleet_frontier

    rs = data.settings.rightsizing
    start = pd.Timestamp(snap.cost_now) - pd.Timedelta(days=lookback_days)
    frame = hours_since(data.store, snap, start, snap.cost_now + timedelta(hours=1))
    return own_fleet_frontier(frame, list(snap.vms), data.catalogue, now=snap.cost_now,
                              lookback_days=lookback_days, profile=rs.profile)


def finding_view(f: VmFinding, lookback_days: float = 14.0) -> FindingView:
    """Flatten one VmFinding, turning its evidence into labelled text."""
    return FindingView(
        vm_uuid=f.uuid,
        finding=f.finding.value,
        current_type=f.current_type,
        recommended_type=f.target_type,
        monthly_savings=f.monthly_savings,
        risk=f.risk.value,
        target_vcpus=f.need_vcpus,
        target_memory_bytes=f.need_memory_bytes,
        recommended_vcpus=f.target_vcpus,
        recommended_memory_bytes=f.target_memory_bytes,
        options=tuple(
            OptionView(str(o["machine_type"]), int(o["vcpus"]), int(o["memory_bytes"]),
                       float(o["price_per_month"]), float(o["monthly_savings"]))
            for o in f.options if o.get("action", "resize") == "resize"
        ),
        reasons=dict(f.reasons),
        evidence=_evidence(f),
        excluded=f.excluded,
        savings_pct=f.savings_pct,
        action=f.action,
        risk_reasons=f.risk_reasons,
        need_statistic=f.need_cpu_statistic,
        need_memory_statistic=f.need_memory_statistic,
        pattern=f.pattern,
        schedule=f"{f.schedule.on} {f.schedule.timezone}" if f.schedule else "",
        schedule_savings=f.schedule.monthly_savings if f.schedule else 0.0,
        schedule_risk=f.schedule.risk if f.schedule else "",
        schedule_risk_text=f.schedule.risk_text if f.schedule else "",
        other_options=tuple(f"{o['action']}: saves {float(o['monthly_savings']):.2f} {f.currency}/month"
                            + (f" ({o['note']})" if o.get("note") else "")
                            for o in f.options if o.get("action", "resize") != "resize"),
        projection=f.projection,
        lookback_days=lookback_days,
        storage=f.storage,
        currency=f.currency,
        source=f,
        dismissed=f.dismissed,
    )


def _evidence(f: VmFinding) -> dict[str, str]:
    ev = f.recommendation.evidence
    out: dict[str, str] = {"Strategy": f.strategy}
    if f.current_type:
        out["Current type"] = f"{f.current_type} ({f.current_type_source})"
    if f.price_before_per_hour is not None:
        after = f" -> {f.price_after_per_hour:.4f}" if f.price_after_per_hour is not None else ""
        out["Price per hour"] = f"{f.price_before_per_hour:.4f}{after} {f.currency}"
    if ev is None:
        return out
    out["Lookback"] = f"{ev.lookback_days:g} days"
    out["Data"] = f"{ev.coverage_hours:.1f} h over {ev.span_days:.1f} days ({ev.samples} hourly points)"
    if ev.cpu is not None:
        out["CPU"] = (f"{ev.cpu.statistic} = {ev.cpu.observed:.3f} vCPU, +{ev.cpu.headroom_fraction:.0%} headroom "
                      f"= {ev.cpu.value:.3f} vCPU; peak {ev.cpu.peak:.3f} vCPU")
    if ev.memory is not None:
        out["Memory"] = (f"{ev.memory.statistic} = {ev.memory.observed / GIB:.2f} GiB, "
                         f"+{ev.memory.headroom_fraction:.0%} headroom = {ev.memory.value / GIB:.2f} GiB; "
                         f"peak {ev.memory.peak / GIB:.2f} GiB")
    for label, trend, scale, unit in (("CPU trend", ev.cpu_trend, 1.0, "vCPU"),
                                      ("Memory trend", ev.memory_trend, GIB, "GiB")):
        if trend is not None:
            out[label] = (f"{trend.slope_per_day / scale:+.3f} {unit}/day over {trend.days} days, projected "
                          f"{trend.projected / scale:.2f} {unit} in {trend.horizon_days:g} days"
                          + (" (growing)" if trend.growing else ""))
    if ev.min_savings_per_month is not None and math.isfinite(ev.min_savings_per_month):
        out["Savings threshold"] = f"{ev.min_savings_per_month:.2f} {f.currency}/month"
    if f.idle is not None:
        share = f.idle.cpu_idle_share
        out["Idle"] = (f"CPU below {f.idle.cpu_threshold_vcpus:g} vCPU for "
                       f"{'?' if share is None else f'{share:.0%}'} of {f.idle.observed_days:.1f} running days")
    return out
