"""The savings-risk frontier of the user's own fleet: backtest the stored hourly history.

The lookback is cut in two: every strategy trains on the first part (``train_fraction``, default half)
and is scored on the rest, exactly like the trace backtest (:mod:`analytics.backtest`) but on the
store's hourly rollups: CPU demand per interval is the hour's P95 (its peak feeds the daily-peak rule),
an overrun is an evaluated VM-hour whose *peak* CPU demand exceeds the recommended vCPUs or whose peak
memory used exceeds the recommended memory (so overruns here read higher than on 5-minute traces). A VM
keeps its current type (resolved as for costs) when a strategy cannot judge it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.backtest import _Split
from analytics.findings.context import FleetCatalogue
from analytics.fleet import resolve_machine_type
from analytics.frontier import PEAKS_RISK_STRATEGY, RISK_STRATEGY, Frontier, SweepPoint
from analytics.hourcolumns import hour_columns
from analytics.rightsizing.base import SECONDS_PER_DAY, UsageHistory, VmSpec
from analytics.rightsizing.settings import PROFILES
from collector.model import VmRecord

#: (strategy, knob, values) drawn for the own fleet: our uniform CPU-percentile curve, our profiles, our
#: fleet-calibrated per-VM headroom across its risk target (``rightsizer-risk``; :mod:`analytics.rightsizing.
#: calibrated`), memory from the spread of daily peaks at KRR's CPU P95 across its risk target
#: (``rightsizer-peaks-risk``; :mod:`analytics.rightsizing.peak_spread`) -- both the curves ``backtest --sweep``
#: draws under the same names and colours -- and each anchor at its published defaults. A few points keep this
#: cheap enough for a page load: on 5,000 VMs x 14 days of hourly rollups a percentile point scores in about
#: 0.3 s and a risk-target point in about 0.45 s, its fleet calibration included (python -m
#: bench.own_frontier_bench); together the two risk-target curves add a quarter to the section's time (5.6 ->
#: 7.0 s), so the daily-peak curve has its two ends only. The CPU risk targets stop at 10 %: on the demo fleet
#: 35 % lands at 15-17 % of VM-hours over the vCPUs and squeezes every other curve against the chart's left edge.
OWN_CURVES: tuple[tuple[str, str, tuple[float | str, ...]], ...] = (
    ("rightsizer", "cpu_percentile", (90.0, 95.0, 99.0, 99.5, 100.0)),
    ("rightsizer", "profile", tuple(PROFILES)),
    (RISK_STRATEGY, "risk_pct", (0.3, 1.0, 3.0, 10.0)),
    (PEAKS_RISK_STRATEGY, "memory_peak_risk_pct", (1.0, 10.0)),
    ("aws", "cpu_headroom_fraction", (0.0, 0.2)),
    ("krr", "cpu_percentile", (95.0,)),
    ("vpa", "target_percentile", (90.0,)),
)


@dataclass(frozen=True, slots=True)
class OwnFrontier:
    """The points, the profile in use, and how the lookback was cut (days, VMs evaluated)."""

    points: tuple[SweepPoint, ...]
    profile: str
    train_days: float
    eval_days: float
    vms_evaluated: int

    @property
    def chosen(self) -> SweepPoint | None:
        """The point of the profile in use."""
        return next((p for p in self.points if p.knob == "profile" and p.value == self.profile), None)


@dataclass(frozen=True, slots=True)
class _Vm:
    name: str


def _split_vm(vm: VmRecord, ts: np.ndarray, cpu_p95: np.ndarray, cpu_max: np.ndarray, mem: np.ndarray,
              catalogue: FleetCatalogue, *, split_s: float, end_s: float) -> _Split:
    train = ts < split_s
    history = UsageHistory.from_arrays(ts[train], cpu_p95[train], mem[train], vcpus=vm.vcpus,
                                       memory_bytes=vm.memory_bytes, interval_s=3600.0,
                                       cpu_peak_vcpus=cpu_max[train], end_s=split_s)
    ev = ~train & (ts < end_s) & ~np.isnan(cpu_max)
    current, _ = resolve_machine_type(vm, catalogue)
    mem_ev = mem[ev]
    return _Split(history, VmSpec(vm.vcpus, vm.memory_bytes), current, cpu_max[ev], mem_ev[~np.isnan(mem_ev)])


def own_fleet_splits(
    frame: pd.DataFrame, vms: Sequence[VmRecord], catalogue: FleetCatalogue, *, now: datetime,
    lookback_days: float, train_fraction: float = 0.5,
) -> Frontier:
    """The stored lookback (hourly frame, ``collector.store.base`` columns) cut into training and evaluation
    per VM, ready to be scored (:meth:`analytics.frontier.Frontier.point`).

    Raises ValueError for a naive ``now`` or ``train_fraction`` outside (0, 1).
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (UTC), got {now!r}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction!r}")
    end_s = now.timestamp()
    start_s = end_s - lookback_days * SECONDS_PER_DAY
    split_s = start_s + train_fraction * lookback_days * SECONDS_PER_DAY
    series = hour_columns(frame).series()
    splits = []
    for vm in vms:
        s = series.get(vm.uuid)
        if s is None:
            continue
        keep = (s.ts_s >= start_s) & (s.ts_s < end_s)
        splits.append((_Vm(vm.name), _split_vm(vm, s.ts_s[keep], s.cpu_p95[keep], s.cpu_max[keep], s.mem_max[keep],
                                               catalogue, split_s=split_s, end_s=end_s)))
    return Frontier.from_splits(splits, catalogue, train_days=train_fraction * lookback_days,
                                currency=getattr(catalogue, "currency", "EUR"))


def own_fleet_frontier(
    frame: pd.DataFrame, vms: Sequence[VmRecord], catalogue: FleetCatalogue, *, now: datetime,
    lookback_days: float, profile: str = "balanced", train_fraction: float = 0.5,
    curves: Sequence[tuple[str, str, tuple[float | str, ...]]] = OWN_CURVES,
) -> OwnFrontier:
    """Backtest the stored lookback (hourly frame, ``collector.store.base`` columns) across ``curves``.

    Raises ValueError for a naive ``now`` or ``train_fraction`` outside (0, 1).
    """
    frontier = own_fleet_splits(frame, vms, catalogue, now=now, lookback_days=lookback_days,
                                train_fraction=train_fraction)
    points = []
    evaluated = 0
    train_days = frontier.train_days
    for strategy, knob, values in curves:
        for value in values:
            result = frontier.point_result(strategy, knob, value)
            evaluated = max(evaluated, result.vms_evaluated)
            points.append(SweepPoint(strategy, knob, value, result.savings_pct, result.cpu_overrun_pct,
                                     result.mem_overrun_pct, result.vms_changed, train_days))
    return OwnFrontier(tuple(points), profile, train_days, lookback_days - train_days, evaluated)
