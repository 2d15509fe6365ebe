"""Backtest right-sizing strategies on a VM trace: train on the first days, judge on the rest.

Per DESIGN.md ("Backtest"): for each VM the *current* machine type is the cheapest generally available
catalogue type with vCPUs >= the trace's cores and memory >= its provisioned memory (the largest
provisioned while the strategy watched: allocations change inside some traces). Each strategy sees only
the first ``train_days`` and its need is mapped to the cheapest eligible type covering it, under the same
rules (and the shared right-sizing rules of :mod:`analytics.rightsizing.base`). The rest of the trace is
the evaluation window:

* ``cpu_overrun_pct``: share of evaluated VM-intervals whose CPU demand (vCPU-equivalents,
  usage MHz / (capacity MHz / cores)) exceeds the recommended type's vCPUs;
* ``mem_overrun_pct``: share of evaluated VM-intervals (with a memory reading) whose memory used exceeds
  the recommended type's memory;
* costs are monthly (720 h) over every VM that has a current type; a VM without a recommendation
  (insufficient data) keeps its current type. Overruns count only VMs with a recommendation and at least
  one running interval in the evaluation window (``vms_evaluated``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from analytics.catalogue import HOURS_PER_MONTH, MachineType
from analytics.rightsizing.base import SECONDS_PER_DAY, FittingCatalogue, Recommendation, UsageHistory, VmSpec
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.settings import StrategySettings
from analytics.traces import TraceVm


@dataclass(frozen=True, slots=True)
class VmResult:
    """One VM under one strategy: what it ran, what was recommended, how the evaluation went."""

    vm: str
    cores: int
    memory_bytes: int
    current_type: str | None
    current_monthly_cost: float
    recommended_type: str | None
    recommended_vcpus: int | None
    recommended_memory_bytes: int | None
    recommended_monthly_cost: float
    finding: str
    risk: int
    need_vcpus: float | None
    need_memory_bytes: int | None
    evaluated: bool
    eval_intervals: int
    cpu_overrun_intervals: int
    mem_eval_intervals: int
    mem_overrun_intervals: int
    reason: str


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """Totals of one strategy over the fleet (percentages are 0..100, costs per 720-hour month)."""

    strategy: str
    train_days: float
    vms: int
    vms_evaluated: int
    currency: str
    current_monthly_cost: float
    recommended_monthly_cost: float
    savings_pct: float
    cpu_overrun_pct: float
    mem_overrun_pct: float
    eval_intervals: int
    cpu_overrun_intervals: int
    mem_eval_intervals: int
    mem_overrun_intervals: int
    vms_changed: int
    per_vm: tuple[VmResult, ...]

    def as_dict(self, *, per_vm: bool = True) -> dict[str, Any]:
        """JSON-ready dict (DESIGN.md keys first)."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "vms": self.vms,
            "vms_evaluated": self.vms_evaluated,
            "current_monthly_cost": round(self.current_monthly_cost, 4),
            "recommended_monthly_cost": round(self.recommended_monthly_cost, 4),
            "savings_pct": round(self.savings_pct, 3),
            "cpu_overrun_pct": round(self.cpu_overrun_pct, 4),
            "mem_overrun_pct": round(self.mem_overrun_pct, 4),
            "currency": self.currency,
            "train_days": self.train_days,
            "hours_per_month": HOURS_PER_MONTH,
            "vms_changed": self.vms_changed,
            "eval_intervals": self.eval_intervals,
            "cpu_overrun_intervals": self.cpu_overrun_intervals,
            "mem_eval_intervals": self.mem_eval_intervals,
            "mem_overrun_intervals": self.mem_overrun_intervals,
        }
        if per_vm:
            out["per_vm"] = [asdict(r) for r in self.per_vm]
        return out


def _monthly(t: MachineType | None) -> float:
    return t.price_per_month if t is not None else 0.0


class _Named(Protocol):
    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Split:
    """One VM cut at the end of training: its history, spec, current type, and the evaluation arrays."""

    history: UsageHistory
    spec: VmSpec
    current: MachineType | None
    cpu_vcpus: np.ndarray  # evaluation window, running intervals
    mem_used_bytes: np.ndarray  # evaluation window, running intervals with a reading


def _split(vm: TraceVm, catalogue: FittingCatalogue, train_days: float) -> _Split:
    train_end = vm.start_s + train_days * SECONDS_PER_DAY
    history = vm.history(vm.start_s, train_end)
    spec = VmSpec(vcpus=vm.cores, memory_bytes=history.memory_bytes)
    evaluation = vm.rows_between(train_end, vm.end_s + vm.step_s)
    running = evaluation["running"].to_numpy()
    mem = evaluation["memory_used_bytes"].to_numpy()[running]
    return _Split(history, spec, catalogue.cheapest_fitting(spec.vcpus, spec.memory_bytes),
                  evaluation["cpu_vcpus"].to_numpy()[running], mem[~np.isnan(mem)])


def _recommend(split: _Split, strategy: Strategy, catalogue: FittingCatalogue,
               settings: StrategySettings | None) -> Recommendation:
    spec, current = split.spec, split.current
    if current is None:
        return Recommendation.undetermined(
            f"no eligible machine type has {spec.vcpus} vCPUs and {spec.memory_bytes} bytes")
    return strategy.recommend(split.history, spec, settings, catalogue=catalogue, current_type=current)


def _score(vm: _Named, split: _Split, rec: Recommendation, recommended: MachineType | None) -> VmResult:
    """Score a recommended type on the evaluation window (``recommended`` None = keep the current type)."""
    current, cpu, mem = split.current, split.cpu_vcpus, split.mem_used_bytes
    recommended = recommended or current
    evaluated = rec.is_determined and current is not None and len(cpu) > 0
    if recommended is not None and evaluated:
        cpu_over = int(np.count_nonzero(cpu > recommended.vcpus + 1e-9))
        mem_over = int(np.count_nonzero(mem > recommended.memory_bytes))
    else:
        cpu_over = mem_over = 0
    return VmResult(
        vm=vm.name,
        cores=split.spec.vcpus,
        memory_bytes=split.spec.memory_bytes,
        current_type=current.name if current else None,
        current_monthly_cost=_monthly(current),
        recommended_type=recommended.name if recommended else None,
        recommended_vcpus=recommended.vcpus if recommended else None,
        recommended_memory_bytes=recommended.memory_bytes if recommended else None,
        recommended_monthly_cost=_monthly(recommended),
        finding=rec.finding.value,
        risk=rec.risk,
        need_vcpus=_finite_or_none(rec.target_vcpus),
        need_memory_bytes=rec.target_memory_bytes,
        evaluated=evaluated,
        eval_intervals=len(cpu) if evaluated else 0,
        cpu_overrun_intervals=cpu_over,
        mem_eval_intervals=len(mem) if evaluated else 0,
        mem_overrun_intervals=mem_over,
        reason=rec.reasons.get("overall", ""),
    )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def evaluate_vm(
    vm: TraceVm,
    strategies: Sequence[Strategy],
    catalogue: FittingCatalogue,
    *,
    train_days: float,
    settings: Mapping[str, StrategySettings] | None = None,
) -> dict[str, VmResult]:
    """Train every strategy on the VM's first ``train_days`` and score it on the rest (per strategy name).

    A strategy with a fleet pass (ours: calibrated margins) runs it on this VM alone here; a fleet
    backtest (:func:`run_backtest`) runs it once over every VM's training window.
    """
    split = _split(vm, catalogue, train_days)
    out: dict[str, VmResult] = {}
    for strategy in strategies:
        chosen = fleet_settings(strategy, [split], (settings or {}).get(strategy.name))
        rec = _recommend(split, strategy, catalogue, chosen)
        out[strategy.name] = _score(vm, split, rec, rec.recommended_type)
    return out


def fleet_settings(strategy: Strategy, splits: Sequence[_Split],
                   settings: StrategySettings | None) -> StrategySettings:
    """The strategy's settings after its fleet pass over the splits' *training* histories only."""
    return strategy.fleet_settings([sp.history for sp in splits], settings or strategy.default_settings())


def summarise(strategy: str, rows: Sequence[VmResult], *, train_days: float, currency: str) -> StrategyResult:
    """Fleet totals of one strategy's per-VM results."""
    current = sum(r.current_monthly_cost for r in rows)
    recommended = sum(r.recommended_monthly_cost for r in rows)
    ev = sum(r.eval_intervals for r in rows)
    cpu_over = sum(r.cpu_overrun_intervals for r in rows)
    mev = sum(r.mem_eval_intervals for r in rows)
    mem_over = sum(r.mem_overrun_intervals for r in rows)
    return StrategyResult(
        strategy=strategy,
        train_days=train_days,
        vms=len(rows),
        vms_evaluated=sum(1 for r in rows if r.evaluated),
        currency=currency,
        current_monthly_cost=current,
        recommended_monthly_cost=recommended,
        savings_pct=100.0 * (current - recommended) / current if current > 0 else 0.0,
        cpu_overrun_pct=100.0 * cpu_over / ev if ev else 0.0,
        mem_overrun_pct=100.0 * mem_over / mev if mev else 0.0,
        eval_intervals=ev,
        cpu_overrun_intervals=cpu_over,
        mem_eval_intervals=mev,
        mem_overrun_intervals=mem_over,
        vms_changed=sum(1 for r in rows if r.recommended_type != r.current_type),
        per_vm=tuple(rows),
    )


def run_backtest(
    vms: Iterable[TraceVm],
    strategies: Sequence[Strategy],
    catalogue: FittingCatalogue,
    *,
    train_days: float = 14.0,
    settings: Mapping[str, StrategySettings] | None = None,
    currency: str = "EUR",
    progress: Callable[[Iterable[TraceVm]], Iterable[TraceVm]] | None = None,
) -> list[StrategyResult]:
    """Backtest each strategy over the VMs; one result per strategy, in the order given.

    ``progress`` may wrap the VM iterable (e.g. ``tqdm``). Raises ValueError for ``train_days <= 0``.
    """
    if train_days <= 0:
        raise ValueError(f"train_days must be positive, got {train_days!r}")
    splits = [(vm, _split(vm, catalogue, train_days)) for vm in (progress(vms) if progress is not None else vms)]
    out = []
    for strategy in strategies:
        chosen = fleet_settings(strategy, [sp for _, sp in splits], (settings or {}).get(strategy.name))
        rows = [_score(vm, sp, rec, rec.recommended_type)
                for vm, sp in splits for rec in (_recommend(sp, strategy, catalogue, chosen),)]
        out.append(summarise(strategy.name, rows, train_days=train_days, currency=currency))
    return out


COMPARISON_COLUMNS: tuple[str, ...] = (
    "strategy", "vms", "vms_evaluated", "vms_changed", "current_monthly_cost", "recommended_monthly_cost",
    "savings_pct", "cpu_overrun_pct", "mem_overrun_pct",
)


def comparison_rows(results: Sequence[StrategyResult]) -> list[dict[str, Any]]:
    """One row per strategy for a side-by-side table (no per-VM detail)."""
    return [{k: v for k, v in r.as_dict(per_vm=False).items() if k in COMPARISON_COLUMNS} for r in results]


def memory_hindsight_savings_pct(
    vms: Iterable[TraceVm], catalogue: FittingCatalogue, *, train_days: float = 14.0
) -> float:
    """Upper bound on savings (%) of any strategy with zero memory overruns on these VMs.

    Each VM gets, with hindsight, the cheapest eligible type whose memory holds its evaluation-window
    memory peak (CPU ignored); VMs without a recommendation keep their current type, as in the backtest.
    A strategy saving more than this must overrun memory somewhere.
    """
    current_total = hindsight_total = 0.0
    for vm in vms:
        train_end = vm.start_s + train_days * SECONDS_PER_DAY
        train = vm.rows_between(vm.start_s, train_end)
        running = train["running"].to_numpy()
        memory = train["memory_bytes"].to_numpy()[running]
        current = catalogue.cheapest_fitting(vm.cores, float(memory.max()) if len(memory) else vm.memory_bytes)
        if current is None:
            continue
        current_total += current.price_per_month
        evaluation = vm.rows_between(train_end, vm.end_s + vm.step_s)
        used = evaluation["memory_used_bytes"].to_numpy()[evaluation["running"].to_numpy()]
        used = used[~np.isnan(used)]
        enough_history = int(np.count_nonzero(running)) * vm.step_s >= 30 * 3600
        best = catalogue.cheapest_fitting(0.0, float(used.max())) if len(used) and enough_history else None
        hindsight_total += (best or current).price_per_month
    return 100.0 * (current_total - hindsight_total) / current_total if current_total > 0 else 0.0
