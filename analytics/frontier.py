"""Savings-risk frontiers: each strategy backtested across its own knob, and our fleet risk budget.

A sweep point is one backtest (:mod:`analytics.backtest`, same split, same scoring) of one strategy
with one knob value: ``{strategy, knob, value, savings_pct, cpu_overrun_pct, mem_overrun_pct}``.
The knobs are the anchors' own published choices where they have them (AWS Compute Optimizer's CPU
headroom 0/10/20/30 %; KRR's CPU percentile; VPA's target percentile), ours its CPU percentile (the
uniform-percentile family) and its profiles, ``rightsizer-budget`` the fleet risk budget
(:mod:`analytics.rightsizing.budget`) as a share of training intervals, ``rightsizer-memory`` the
aggressive end where memory is traded too (:data:`MEMORY_CURVE_BASE`), and ``rightsizer-risk`` our
fleet-calibrated per-VM headroom (:mod:`analytics.rightsizing.calibrated`) across its risk target
(knob ``risk_pct``: the CPU overrun target in % of intervals, memory at :data:`MEMORY_RISK_SHARE` of it);
``rightsizer-peaks`` and ``rightsizer-peaks-headroom`` size memory from the spread of each VM's daily peaks
(:mod:`analytics.rightsizing.peak_spread`) with KRR's and AWS's CPU rules across their knobs, and
``rightsizer-peaks-risk`` at KRR's P95 across that rule's risk target;
``rightsizer-memory-p99`` trades memory like ``rightsizer-memory`` at CPU P99; ``rightsizer-peaks-trade``
trades memory by the daily-peak rule with no floor at the maximum used, across its risk target;
``rightsizer-joint`` chooses every VM's whole type (vCPUs and memory together) by one fleet risk budget
(:func:`analytics.rightsizing.budget.allocate_joint`), across that budget; ``rightsizer-joint-recent`` the same
with recent training intervals counted more (:data:`JOINT_RECENT_HALF_LIFE_DAYS`), ``rightsizer-joint-days``
with memory risk counted in days (:data:`JOINT_DAYS_MEMORY_WEIGHT`), ``rightsizer-joint-headroom`` both, with
memory headroom (:data:`JOINT_HEADROOM_FRACTION`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from analytics.backtest import (
    StrategyResult,
    _Named,
    _recommend,
    _score,
    _Split,
    _split,
    fleet_settings,
    summarise,
)
from analytics.catalogue import MachineType
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import FittingCatalogue, Recommendation, UsageHistory
from analytics.rightsizing.budget import (
    BudgetVm,
    JointVm,
    allocate,
    day_peak_memory,
    joint_allocation,
    joint_price_path,
    price_path,
    recency_weights,
    with_headroom,
)
from analytics.rightsizing.settings import (
    PERCENTILE_RULE,
    PROFILES,
    SETTINGS_TYPES,
    RightsizerSettings,
    StrategySettings,
    profile_settings,
)
from analytics.traces import TraceVm

BUDGET_STRATEGY = "rightsizer-budget"
MEMORY_STRATEGY = "rightsizer-memory"
RISK_STRATEGY = "rightsizer-risk"
PEAKS_STRATEGY = "rightsizer-peaks"
PEAKS_HEADROOM_STRATEGY = "rightsizer-peaks-headroom"
MEMORY_P99_STRATEGY = "rightsizer-memory-p99"
PEAKS_RISK_STRATEGY = "rightsizer-peaks-risk"
PEAKS_TRADE_STRATEGY = "rightsizer-peaks-trade"
JOINT_STRATEGY = "rightsizer-joint"
#: ``rightsizer-joint``: a training interval whose memory used exceeds a type's memory is priced as this many
#: intervals whose CPU demand exceeds its vCPUs (memory is not compressible: an overrun swaps or kills, a CPU
#: overrun queues). Chosen on 40 random halves of the dev trace (``python -m bench.fleet_subsets --joint``),
#: not on the whole trace: every weight from 3 to 300 adds anchor points beaten there, 30 the most, and the
#: gain is flat across the range (docs/backtest.md).
JOINT_MEMORY_WEIGHT = 30.0
JOINT_RECENT_STRATEGY = "rightsizer-joint-recent"
#: ``rightsizer-joint-recent``: the joint budget with each training interval counted at ``0.5 ** (age / this)``
#: (age in days before the end of the training window): a peak of a week ago weighs a tenth of today's, so old
#: peaks that did not come back are forgotten, as VPA's decaying histograms forget them. Chosen on random halves
#: of the dev trace, two draws of 40 (``python -m bench.fleet_subsets --recent 1,2,3,5,8``, seeds 20261207 and
#: 99): (anchor point, half) pairs it beats that the rest of our sweep leaves, +29 and +29 at 2 days, 22-32 from
#: 1 to 5 days, 10-11 at 8, against +8 and +5 for a second joint curve without the decay (docs/backtest.md).
JOINT_RECENT_HALF_LIFE_DAYS = 2.0
JOINT_DAYS_STRATEGY = "rightsizer-joint-days"
#: ``rightsizer-joint-days``: the joint budget with memory risk counted in days
#: (:func:`analytics.rightsizing.budget.day_peak_memory`): every interval of a training day whose memory peak
#: exceeds a type's memory counts as over, at this weight against a CPU interval over. Chosen on random halves of
#: the dev trace, two draws of 40 (``python -m bench.fleet_subsets --days 0.3,1,3,10``, seeds 20261207 and 99):
#: the weights 0.3 to 3 add about the same (anchor point, half) pairs to the rest of our sweep, 10 a quarter of it,
#: a second plain joint curve (the control) almost none (docs/backtest.md); 1 is the middle of that plateau.
JOINT_DAYS_MEMORY_WEIGHT = 1.0
JOINT_HEADROOM_STRATEGY = "rightsizer-joint-headroom"
#: ``rightsizer-joint-headroom``: the joint budget with recent days counted more (:data:`JOINT_RECENT_HALF_LIFE_DAYS`)
#: and memory counted in days (:data:`JOINT_DAYS_MEMORY_WEIGHT`), where a type holds a day only with this share of
#: its peak to spare: a day whose peak came within 10 % of a type's memory counts as over, as KRR and AWS size
#: memory with 15-20 % above the peak. Without it the two together add nothing to the rest of our sweep on the
#: halves. Chosen on random halves of the dev trace, two draws of 40 (``python -m bench.fleet_subsets --headroom
#: 0,0.05,0.1,0.15,0.2``, seeds 20261207 and 99): (anchor point, half) pairs it beats that the rest of our sweep
#: leaves, +54 and +43 at 10 %, +42 / +35 at 5 %, +24 / +22 at 15 %, +6 / +4 without headroom, against +1 / +2 for
#: the control (docs/backtest.md).
JOINT_HEADROOM_FRACTION = 0.1
#: Our aggressive end: CPU at P90 of interval demand, no headroom, no vCPU floor, and memory sized at a
#: percentile of used memory (below 100 memory overruns become possible: memory is traded too).
MEMORY_CURVE_BASE: dict[str, float | None] = {
    **PERCENTILE_RULE, "cpu_percentile": 90.0, "cpu_headroom_fraction": 0.0, "memory_headroom_fraction": 0.0,
    "vcpu_floor_memory_headroom_fraction": 0.0}
#: ``rightsizer-peaks``: CPU at a percentile of interval demand (the knob, no headroom), memory at the maximum
#: used plus a headroom fitted per VM from the spread of its daily peaks (:mod:`analytics.rightsizing.
#: peak_spread`, at most KRR's 15 %) for :data:`PEAK_CURVE_RISK` % of held-out training days, and never
#: fewer vCPUs than the type holding KRR's memory need (max x 1.15) has: at a CPU percentile its needs are
#: never larger than KRR's and its vCPUs never fewer.
PEAK_CURVE_RISK = 3.0
PEAK_CURVE_BASE: dict[str, float | None] = {
    **PERCENTILE_RULE, "cpu_headroom_fraction": 0.0, "memory_headroom_fraction": 0.15,
    "vcpu_floor_memory_headroom_fraction": 0.15, "memory_peak_risk_pct": PEAK_CURVE_RISK}
#: ``rightsizer-peaks-headroom``: the same memory rule with AWS's CPU rule across AWS's knob (P99.5 + the
#: CPU headroom) and balanced's vCPU floor (the type holding max x 1.2 memory, AWS's): balanced's rules
#: with memory from the daily peaks. Its needs are never larger than AWS's and its vCPUs never fewer.
PEAK_HEADROOM_CURVE_BASE: dict[str, float | None] = {**PERCENTILE_RULE, "memory_peak_risk_pct": PEAK_CURVE_RISK}
#: ``rightsizer-peaks-risk``: ``rightsizer-peaks`` at KRR's P95 across the memory risk target itself (share of
#: held-out training days above the need); past ~20 % every VM sits at its maximum used, no headroom.
PEAK_RISK_CURVE_BASE: dict[str, float | None] = {**PEAK_CURVE_BASE, "cpu_percentile": 95.0}
#: ``rightsizer-memory-p99``: memory traded as in ``rightsizer-memory`` at the careful CPU end (P99 of interval
#: demand): the low-CPU-risk corner where an anchor trades memory (VPA at its P99).
MEMORY_P99_CURVE_BASE: dict[str, float | None] = {**MEMORY_CURVE_BASE, "cpu_percentile": 99.0}
#: ``rightsizer-peaks-trade``: memory traded the calibrated way. CPU as ``rightsizer-memory`` (P90 of interval
#: demand, no headroom, no vCPU floor); memory from the daily-peak rule with no floor at the maximum used
#: (``memory_peak_min_headroom_fraction`` -1), so each VM's need is ``median + k x spread`` of its own daily peaks
#: and the knob, the share of held-out training days allowed above the need, moves one fleet margin ``k``. Where
#: VPA's lower percentiles give every VM the same quantile of its peaks, this spends the memory risk on the VMs
#: whose peaks are spread: at a risk of half the days the need is near each VM's median daily peak.
PEAK_TRADE_CURVE_BASE: dict[str, float | None] = {
    **MEMORY_CURVE_BASE, "memory_headroom_fraction": 0.15, "memory_peak_min_headroom_fraction": -1.0}
#: Our curves that are our strategy at fixed settings plus their knob.
OUR_CURVES: dict[str, dict[str, float | None]] = {}
#: Our knobs that size by the percentile rule (the uniform-headroom family), not the calibrated one.
PERCENTILE_KNOBS = frozenset({"cpu_percentile", "cpu_headroom_fraction", "memory_percentile",
                              "memory_headroom_fraction"})


def risk_curve_settings(risk_pct: float) -> dict[str, float]:
    """Our calibrated rules at one risk target: CPU at ``risk_pct``, memory at :data:`MEMORY_RISK_SHARE` of it."""
    return {"cpu_risk_pct": risk_pct, "memory_risk_pct": risk_pct * MEMORY_RISK_SHARE}


MEMORY_RISK_SHARE = 0.01
#: Strategy -> (knob, values). VPA's knob moves its CPU and memory target percentiles together.
SWEEP_KNOBS: dict[str, tuple[str, tuple[float, ...]]] = {
    "rightsizer": ("cpu_percentile", (80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0)),
    "aws": ("cpu_headroom_fraction", (0.0, 0.1, 0.2, 0.3)),
    "krr": ("cpu_percentile", (80.0, 90.0, 95.0, 99.0, 100.0)),
    "vpa": ("target_percentile", (50.0, 75.0, 90.0, 95.0, 99.0)),
    BUDGET_STRATEGY: ("budget_pct", (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)),
    MEMORY_STRATEGY: ("memory_percentile", (99.5, 99.8, 99.9, 99.95, 100.0)),
    RISK_STRATEGY: ("risk_pct", (0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 35.0, 50.0)),
    PEAKS_STRATEGY: ("cpu_percentile", (80.0, 90.0, 95.0, 99.0, 99.5, 100.0)),
    PEAKS_HEADROOM_STRATEGY: ("cpu_headroom_fraction", (0.0, 0.1, 0.2, 0.3)),
    MEMORY_P99_STRATEGY: ("memory_percentile", (99.5, 99.8, 99.9, 99.95, 100.0)),
    PEAKS_RISK_STRATEGY: ("memory_peak_risk_pct", (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 35.0, 50.0)),
    PEAKS_TRADE_STRATEGY: ("memory_peak_risk_pct", tuple(float(r) for r in range(5, 85, 5))),
    JOINT_STRATEGY: ("budget_pct", (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0,
                                    5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)),
}
SWEEP_KNOBS[JOINT_RECENT_STRATEGY] = SWEEP_KNOBS[JOINT_STRATEGY]
SWEEP_KNOBS[JOINT_DAYS_STRATEGY] = SWEEP_KNOBS[JOINT_STRATEGY]
SWEEP_KNOBS[JOINT_HEADROOM_STRATEGY] = SWEEP_KNOBS[JOINT_STRATEGY]
OUR_CURVES.update({PEAKS_STRATEGY: PEAK_CURVE_BASE, PEAKS_HEADROOM_STRATEGY: PEAK_HEADROOM_CURVE_BASE,
                   MEMORY_P99_STRATEGY: MEMORY_P99_CURVE_BASE, PEAKS_RISK_STRATEGY: PEAK_RISK_CURVE_BASE,
                   PEAKS_TRADE_STRATEGY: PEAK_TRADE_CURVE_BASE})
SWEEP_STRATEGIES: tuple[str, ...] = tuple(SWEEP_KNOBS)
POINT_COLUMNS: tuple[str, ...] = ("strategy", "knob", "value", "savings_pct", "cpu_overrun_pct", "mem_overrun_pct")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One strategy at one knob value, scored like a backtest (percentages 0..100)."""

    strategy: str
    knob: str
    value: float | str
    savings_pct: float
    cpu_overrun_pct: float
    mem_overrun_pct: float
    vms_changed: int
    train_days: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["savings_pct"] = round(self.savings_pct, 3)
        out["cpu_overrun_pct"] = round(self.cpu_overrun_pct, 4)
        out["mem_overrun_pct"] = round(self.mem_overrun_pct, 4)
        return out


def knob_settings(strategy: str, knob: str, value: float | str) -> StrategySettings:
    """The strategy's settings with one knob set (``profile`` names one of ours)."""
    model = SETTINGS_TYPES[strategy]
    if knob == "profile":
        return model.model_validate(profile_settings(str(value)))
    if knob == "target_percentile":
        return model.model_validate({"cpu_percentile": value, "memory_percentile": value})
    if model is RightsizerSettings and knob in PERCENTILE_KNOBS:  # our uniform-percentile family
        return model.model_validate({**PERCENTILE_RULE, knob: value})
    if knob == "risk_pct":
        return model.model_validate(risk_curve_settings(float(value)))
    return model.model_validate({knob: value})


def _point(result: StrategyResult, knob: str, value: float | str) -> SweepPoint:
    return SweepPoint(result.strategy, knob, value, result.savings_pct, result.cpu_overrun_pct,
                      result.mem_overrun_pct, result.vms_changed, result.train_days)


class Frontier:
    """The VMs of one trace cut at one training split, ready to be scored many times."""

    def __init__(self, vms: Iterable[TraceVm], catalogue: FittingCatalogue, *, train_days: float,
                 currency: str = "EUR", lookback_days: float | None = None) -> None:
        if train_days <= 0:
            raise ValueError(f"train_days must be positive, got {train_days!r}")
        self.catalogue = catalogue
        self.train_days = train_days
        self.currency = currency
        #: settings' lookback for every point (None: each strategy's own, as in the backtest)
        self.lookback_days = lookback_days
        self.splits: list[tuple[_Named, _Split]] = [(vm, _split(vm, catalogue, train_days)) for vm in vms]
        #: score_joint's base recommendations, the VMs it chooses for and those VMs' training windows, built once
        self._joint: tuple[list[Recommendation], list[int], list[UsageHistory]] | None = None
        #: score_joint's allocation at any budget, per (memory weight, half-life, memory by day, memory headroom):
        #: candidates built once
        self._joint_allocations: dict[tuple[float, float | None, bool, float],
                                      Callable[[float], list[MachineType]]] = {}

    @classmethod
    def from_splits(cls, splits: Sequence[tuple[_Named, _Split]], catalogue: FittingCatalogue, *,
                    train_days: float, currency: str) -> Frontier:
        """A frontier over splits built elsewhere (e.g. from stored hourly rollups)."""
        out = cls((), catalogue, train_days=train_days, currency=currency, lookback_days=train_days)
        out.splits = list(splits)
        return out

    def _settings(self, settings: StrategySettings) -> StrategySettings:
        if self.lookback_days is None:
            return settings
        return settings.model_copy(update={"lookback_days": self.lookback_days})

    def recommendations(self, strategy: str, settings: StrategySettings) -> list[Recommendation]:
        """Each VM's recommendation from its training window (same order as ``splits``)."""
        chosen = get_strategy(strategy)
        settings = fleet_settings(chosen, [sp for _, sp in self.splits], self._settings(settings))
        return [_recommend(sp, chosen, self.catalogue, settings) for _, sp in self.splits]

    def score_types(self, name: str, recs: Sequence[Recommendation],
                    chosen: Mapping[int, MachineType]) -> StrategyResult:
        """Score ``recs`` with some VMs' types replaced (``chosen``: index into ``splits`` -> type)."""
        rows = [_score(vm, sp, rec, chosen.get(i, rec.recommended_type))
                for i, ((vm, sp), rec) in enumerate(zip(self.splits, recs, strict=True))]
        return summarise(name, rows, train_days=self.train_days, currency=self.currency)

    def score(self, strategy: str, settings: StrategySettings) -> StrategyResult:
        """One backtest of ``strategy`` with ``settings``."""
        return self.score_types(strategy, self.recommendations(strategy, settings), {})

    def _budget_vms(self, base: RightsizerSettings) -> tuple[list[Recommendation], list[int], list[BudgetVm]]:
        """The base profile's recommendations, the VMs the budget may move, and those VMs as it sees them."""
        recs = self.recommendations("rightsizer", base)
        movable = [i for i, rec in enumerate(recs) if rec.is_determined and rec.recommended_type is not None
                   and rec.target_memory_bytes is not None]
        budget_vms = [BudgetVm(self.splits[i][1].history.cpu_vcpus, float(recs[i].target_memory_bytes or 0),
                               self.splits[i][1].spec.vcpus, recs[i].recommended_type)  # type: ignore[arg-type]
                      for i in movable]
        return recs, movable, budget_vms

    def score_budget(self, budget_pct: float, base: RightsizerSettings | None = None) -> StrategyResult:
        """Our base profile's memory rule, vCPUs chosen by the fleet risk budget (``budget_pct`` of intervals)."""
        base = base or RightsizerSettings.model_validate(PERCENTILE_RULE)
        recs, movable, budget_vms = self._budget_vms(base)
        chosen = dict(zip(movable, allocate(budget_vms, self.catalogue, budget_fraction=budget_pct / 100.0,
                                            headroom=base.cpu_headroom_fraction), strict=True))
        return self.score_types(BUDGET_STRATEGY, recs, chosen)

    def score_joint(self, budget_pct: float, memory_weight: float = JOINT_MEMORY_WEIGHT,
                    half_life_days: float | None = None, memory_by_day: bool = False,
                    memory_headroom: float = 0.0) -> StrategyResult:
        """Every judged VM's type chosen by the joint fleet budget (``budget_pct`` % of the fleet's training
        intervals, CPU overruns plus ``memory_weight`` x memory overruns, counted on the training window
        only; with ``half_life_days`` each interval weighted by its recency, ``rightsizer-joint-recent``; with
        ``memory_by_day`` memory counted in days, ``rightsizer-joint-days``; with ``memory_headroom`` a type's
        memory over where it holds a reading with less than that share of it to spare,
        ``rightsizer-joint-headroom``); VMs the default profile cannot judge keep its answer. Raises ValueError
        for a negative budget or headroom."""
        if budget_pct < 0:
            raise ValueError(f"budget_pct must be >= 0, got {budget_pct!r}")
        key = (memory_weight, half_life_days, memory_by_day, memory_headroom)
        if key not in self._joint_allocations:
            vms = self._joint_vms(half_life_days, memory_by_day, memory_headroom)[2]
            types = self.catalogue.fitting(0.0, 0.0, n=1 << 30)  # every eligible type, cheapest first
            self._joint_allocations[key] = (joint_allocation(vms, types, memory_weight=memory_weight)
                                            if vms and types else lambda _: [])
        recs, free, _ = self._joint_base()
        chosen = self._joint_allocations[key](budget_pct / 100.0)
        return self.score_types(_joint_name(half_life_days, memory_by_day, memory_headroom), recs,
                                dict(zip(free, chosen, strict=True)))

    def joint_path(self, memory_weight: float = JOINT_MEMORY_WEIGHT, half_life_days: float | None = None,
                   memory_by_day: bool = False, memory_headroom: float = 0.0) -> list[StrategyResult]:
        """The joint budget at every distinct allocation of its Lagrangian path, cheapest fleet first: every
        fleet :meth:`score_joint` can give at any budget, not only at the grid of :data:`SWEEP_KNOBS`."""
        recs, free, vms = self._joint_vms(half_life_days, memory_by_day, memory_headroom)
        types = self.catalogue.fitting(0.0, 0.0, n=1 << 30)
        name = _joint_name(half_life_days, memory_by_day, memory_headroom)
        return [self.score_types(name, recs, dict(zip(free, chosen, strict=True)))
                for _, chosen in joint_price_path(vms, types, memory_weight=memory_weight)]

    def _joint_base(self) -> tuple[list[Recommendation], list[int], list[UsageHistory]]:
        """The default profile's recommendations, the VMs the joint budget chooses for (judged, with a current
        type) and their training windows; built once."""
        if self._joint is None:
            recs = self.recommendations("rightsizer", RightsizerSettings.model_validate({}))
            free = [i for i, rec in enumerate(recs) if rec.is_determined and self.splits[i][1].current is not None]
            windows = [self.splits[i][1].history if self.lookback_days is None
                       else self.splits[i][1].history.window(self.lookback_days) for i in free]
            self._joint = (recs, free, windows)
        return self._joint

    def _joint_vms(self, half_life_days: float | None, memory_by_day: bool = False,
                   memory_headroom: float = 0.0) -> tuple[list[Recommendation], list[int], list[JointVm]]:
        """:meth:`_joint_base` with the windows as the joint budget sees them (recency-weighted with
        ``half_life_days``; memory readings at their day's peak with ``memory_by_day``; raised by
        ``memory_headroom``, :func:`~analytics.rightsizing.budget.with_headroom`)."""
        recs, free, windows = self._joint_base()
        return recs, free, [JointVm(w.cpu_vcpus,
                                    with_headroom(day_peak_memory(w.timestamps_s, w.memory_used_bytes)
                                                  if memory_by_day else w.memory_used_bytes, memory_headroom),
                                    None if half_life_days is None
                                    else recency_weights(w.timestamps_s, w.analysis_end_s, half_life_days))
                            for w in windows]

    def budget_path(self, base: RightsizerSettings | None = None) -> list[SweepPoint]:
        """The fleet risk budget at every distinct allocation of its Lagrangian path (knob ``risk_price``:
        currency per risked training interval), not only at the budget grid of :data:`SWEEP_KNOBS`."""
        base = base or RightsizerSettings.model_validate(PERCENTILE_RULE)
        recs, movable, budget_vms = self._budget_vms(base)
        points = []
        for lam, types in price_path(budget_vms, self.catalogue, headroom=base.cpu_headroom_fraction):
            result = self.score_types(BUDGET_STRATEGY, recs, dict(zip(movable, types, strict=True)))
            points.append(_point(result, "risk_price", round(lam, 6)))
        return points

    def sweep(self, strategies: Sequence[str] = SWEEP_STRATEGIES,
              progress: Callable[[str], None] | None = None) -> list[SweepPoint]:
        """Every strategy across its knob; ours also at each profile."""
        points: list[SweepPoint] = []
        for strategy in strategies:
            if progress is not None:
                progress(strategy)
            knob, values = SWEEP_KNOBS[strategy]
            points += [self.point(strategy, knob, value) for value in values]
            if strategy == "rightsizer":
                points += [self.point(strategy, "profile", name) for name in PROFILES]
        return points

    def point(self, strategy: str, knob: str, value: float | str) -> SweepPoint:
        """One sweep point: ``strategy`` (an anchor, ``rightsizer`` or one of our named curves) at one knob
        value, scored as :meth:`sweep` scores it. Raises KeyError for an unknown strategy."""
        return _point(self.point_result(strategy, knob, value), knob, value)

    def point_result(self, strategy: str, knob: str, value: float | str) -> StrategyResult:
        """The backtest behind :meth:`point`, under the curve's name."""
        if strategy == BUDGET_STRATEGY:
            return self.score_budget(float(value))
        if strategy == JOINT_STRATEGY:
            return self.score_joint(float(value))
        if strategy == JOINT_RECENT_STRATEGY:
            return self.score_joint(float(value), half_life_days=JOINT_RECENT_HALF_LIFE_DAYS)
        if strategy == JOINT_DAYS_STRATEGY:
            return self.score_joint(float(value), memory_weight=JOINT_DAYS_MEMORY_WEIGHT, memory_by_day=True)
        if strategy == JOINT_HEADROOM_STRATEGY:
            return self.score_joint(float(value), memory_weight=JOINT_DAYS_MEMORY_WEIGHT,
                                    half_life_days=JOINT_RECENT_HALF_LIFE_DAYS, memory_by_day=True,
                                    memory_headroom=JOINT_HEADROOM_FRACTION)
        if strategy == MEMORY_STRATEGY:
            chosen = RightsizerSettings.model_validate({**MEMORY_CURVE_BASE, knob: value})
            return replace(self.score("rightsizer", chosen), strategy=strategy)
        if strategy in OUR_CURVES:
            chosen = RightsizerSettings.model_validate({**OUR_CURVES[strategy], knob: value})
            return replace(self.score("rightsizer", chosen), strategy=strategy)
        if strategy == RISK_STRATEGY:
            return replace(self.score("rightsizer", knob_settings("rightsizer", knob, value)), strategy=strategy)
        return self.score(strategy, knob_settings(strategy, knob, value))


def _joint_name(half_life_days: float | None, memory_by_day: bool, memory_headroom: float = 0.0) -> str:
    if memory_headroom:
        return JOINT_HEADROOM_STRATEGY
    if memory_by_day:
        return JOINT_DAYS_STRATEGY
    return JOINT_STRATEGY if half_life_days is None else JOINT_RECENT_STRATEGY


def dominates(a: SweepPoint | StrategyResult, b: SweepPoint | StrategyResult) -> bool:
    """True when ``a`` weakly dominates ``b``: savings >=, CPU overrun <=, memory overrun <=."""
    return (a.savings_pct >= b.savings_pct - 1e-9 and a.cpu_overrun_pct <= b.cpu_overrun_pct + 1e-12
            and a.mem_overrun_pct <= b.mem_overrun_pct + 1e-12)


__all__ = [
    "BUDGET_STRATEGY", "JOINT_DAYS_MEMORY_WEIGHT", "JOINT_DAYS_STRATEGY", "JOINT_HEADROOM_FRACTION",
    "JOINT_HEADROOM_STRATEGY", "JOINT_MEMORY_WEIGHT",
    "JOINT_RECENT_HALF_LIFE_DAYS", "JOINT_RECENT_STRATEGY", "JOINT_STRATEGY", "MEMORY_P99_STRATEGY", "MEMORY_STRATEGY",
    "PEAKS_HEADROOM_STRATEGY", "PEAKS_RISK_STRATEGY",
    "PEAKS_TRADE_STRATEGY",
    "PEAKS_STRATEGY", "RISK_STRATEGY", "Frontier", "POINT_COLUMNS", "SWEEP_KNOBS", "SweepPoint", "dominates",
    "knob_settings",
]
