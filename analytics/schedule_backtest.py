"""Backtest of on/off schedules on a trace: savings against the demand a window would have missed.

Each VM's current machine type follows the backtest rule (the cheapest eligible type holding its cores and
provisioned memory). Patterns are fitted fleet-wide on the first ``train_days`` of every VM, and schedules
proposed from the same days (:mod:`analytics.patterns`, :mod:`analytics.schedules`). The rest of the trace
scores them:

* **saving**: the share of evaluated hours outside the window x the compute price x 720 h per month
  (hourly billing; disks are billed anyway);
* **missed demand**: evaluated hours outside the window whose mean CPU exceeds the VM's demand threshold
  (the idle threshold and ``demand_fraction`` of its p95 hourly demand in training) -- work that would have
  found the VM stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analytics.catalogue import HOURS_PER_MONTH
from analytics.patterns import fit_patterns, week_bins
from analytics.rightsizing.base import FittingCatalogue
from analytics.schedules import hour_mask, parse_schedule, propose_fleet
from analytics.traces import TraceVm
from core.settings import IdleSettings, ScheduleSettings

SECONDS_PER_DAY = 86400.0


def trace_hourly_frame(vms: Sequence[TraceVm]) -> pd.DataFrame:
    """Hourly rollups of trace VMs (vm = UUID, ts, cpu_mean_vcpus, cpu_max_vcpus) over their running rows."""
    parts = []
    for vm in vms:
        f = vm.frame[vm.frame["running"].to_numpy(dtype=bool)]
        hour = (f["ts_s"].to_numpy(dtype=np.float64) // 3600).astype(np.int64)
        parts.append(pd.DataFrame({"vm": vm.uuid, "hour": hour, "cpu": f["cpu_vcpus"].to_numpy(dtype=np.float64)}))
    if not parts:
        return pd.DataFrame(columns=["vm", "ts", "cpu_mean_vcpus", "cpu_max_vcpus"])
    data = pd.concat(parts, ignore_index=True)
    hourly = data.groupby(["vm", "hour"], sort=True)["cpu"].agg(["mean", "max"]).reset_index()
    return pd.DataFrame({
        "vm": hourly["vm"], "ts": pd.to_datetime(hourly["hour"].to_numpy() * 3600, unit="s", utc=True),
        "cpu_mean_vcpus": hourly["mean"], "cpu_max_vcpus": hourly["max"],
    })


@dataclass(frozen=True, slots=True)
class ScheduledVmScore:
    name: str
    pattern: str
    schedule: str
    price_per_hour: float
    eval_hours: int
    off_hours: int
    monthly_savings: float
    demand_hours: int
    missed_demand_hours: int


@dataclass(frozen=True, slots=True)
class ScheduleBacktest:
    """Fleet totals (per 720-hour month) and one row per scheduled VM."""

    vms: int
    vms_evaluated: int
    vms_scheduled: int
    patterns: dict[str, int]
    current_monthly_cost: float
    scheduled_monthly_savings: float
    savings_pct: float
    demand_hours: int
    missed_demand_hours: int
    missed_demand_pct: float
    train_days: float
    per_vm: tuple[ScheduledVmScore, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["strategy"] = "schedules"
        return out


def score_schedules(
    vms: Sequence[TraceVm],
    catalogue: FittingCatalogue,
    *,
    train_days: float,
    settings: ScheduleSettings | None = None,
    idle: IdleSettings | None = None,
) -> ScheduleBacktest:
    """Propose schedules on the training days and score them on the rest. Raises ValueError for train_days <= 0."""
    if train_days <= 0:
        raise ValueError(f"train_days must be positive, got {train_days!r}")
    settings = settings or ScheduleSettings()
    idle = idle or IdleSettings()
    frame = trace_hourly_frame(vms)
    train_end = {vm.uuid: vm.start_s + train_days * SECONDS_PER_DAY for vm in vms}
    epoch_s, _bins = week_bins(frame["ts"], settings.timezone)
    is_train = epoch_s < frame["vm"].map(train_end).to_numpy(dtype=np.float64)
    train, evaluation = frame[is_train], frame[~is_train]
    patterns = fit_patterns(train, timezone=settings.timezone, idle_vcpus=idle.cpu_vcpus_below,
                            idle_share=idle.share_of_time)
    prices: dict[str, tuple[float, str]] = {}
    for vm in vms:
        current = catalogue.cheapest_fitting(vm.cores, vm.memory_bytes)
        if current is not None:
            prices[vm.uuid] = (current.price_per_hour, current.currency)
    records = [vm.record(dataset="backtest") for vm in vms]
    proposals = propose_fleet(train, records, patterns, prices, settings=settings, idle_vcpus=idle.cpu_vcpus_below,
                              lookback_days=train_days)
    names = {vm.uuid: vm.name for vm in vms}
    eval_groups = dict(tuple(evaluation.groupby("vm", sort=False)))
    train_groups = dict(tuple(train.groupby("vm", sort=False)))
    evaluated = [u for u in prices if u in eval_groups]
    current_cost = sum(prices[u][0] * HOURS_PER_MONTH for u in evaluated)
    rows = [_score(names[u], patterns.pattern_of(u), p, train_groups[u], eval_groups[u], settings, idle)
            for u, p in proposals.items() if u in eval_groups]
    saved = sum(r.monthly_savings for r in rows)
    demand = sum(r.demand_hours for r in rows)
    missed = sum(r.missed_demand_hours for r in rows)
    return ScheduleBacktest(
        vms=len(vms), vms_evaluated=len(evaluated), vms_scheduled=len(rows), patterns=patterns.counts(),
        current_monthly_cost=round(current_cost, 2), scheduled_monthly_savings=round(saved, 2),
        savings_pct=round(100 * saved / current_cost, 2) if current_cost else 0.0, demand_hours=demand,
        missed_demand_hours=missed, missed_demand_pct=round(100 * missed / demand, 2) if demand else 0.0,
        train_days=train_days, per_vm=tuple(sorted(rows, key=lambda r: -r.monthly_savings)),
    )


def _score(name: str, pattern: str, proposal: Any, train: pd.DataFrame, evaluation: pd.DataFrame,
           settings: ScheduleSettings, idle: IdleSettings) -> ScheduledVmScore:
    p95 = float(np.nanpercentile(train["cpu_mean_vcpus"].to_numpy(dtype=np.float64), 95))
    threshold = max(idle.cpu_vcpus_below, settings.demand_fraction * p95)
    _epoch, bins = week_bins(evaluation["ts"], proposal.timezone)
    inside = hour_mask(parse_schedule(proposal.on, proposal.timezone))[bins]
    demand = evaluation["cpu_mean_vcpus"].to_numpy(dtype=np.float64) > threshold
    off = int((~inside).sum())
    share_off = off / len(evaluation) if len(evaluation) else 0.0
    return ScheduledVmScore(
        name=name, pattern=pattern, schedule=proposal.on, price_per_hour=proposal.price_per_hour,
        eval_hours=len(evaluation), off_hours=off,
        monthly_savings=round(share_off * proposal.price_per_hour * HOURS_PER_MONTH, 4),
        demand_hours=int(demand.sum()), missed_demand_hours=int((demand & ~inside).sum()),
    )
