"""A fleet risk budget: spend a fleet-wide CPU overrun budget where it buys the most savings.

Instead of one percentile for every VM, each VM's vCPU count is chosen jointly: a VM whose demand has a
cheap tail (a few spikes above a much lower level) gives up vCPUs, a VM that is busy near its peak for
long keeps them. Decided from the training window only:

* for each VM and each vCPU level ``k`` up to its allocation the candidate is the cheapest type with
  ``k`` or more vCPUs and the memory the base rule needs (memory is not traded: it is not compressible);
* its estimated risk is the number of training intervals whose demand times ``1 + headroom`` exceeds
  ``k`` (the headroom is the base rule's CPU headroom, so an in-sample estimate is not taken at face
  value);
* one price of risk ``lam`` (currency per risked interval) is shared by the fleet; each VM takes the
  candidate minimising ``price + lam x risk``; ``lam`` is bisected until the fleet's risked intervals
  fit the budget (a share of all training intervals). This is the Lagrangian of "minimise cost subject
  to total risk <= budget", so every VM spends risk at the same marginal saving per risked interval.

**The joint budget** (:func:`allocate_joint`, ``backtest --sweep``'s ``rightsizer-joint``) drops the base rule:
every eligible type is a candidate for every VM, risked by its training CPU intervals above the type's vCPUs
*plus* ``memory_weight`` x its training memory intervals above the type's memory, so vCPUs and memory are
chosen together and a VM whose memory peaks are rare single intervals may take a type below its maximum used,
while one busy near its maximum keeps it. The Lagrangian is the same; the risk is counted in the training
window (the problem the hindsight bound of :mod:`analytics.hindsight` solves on the evaluation window, here
priced instead of solved exactly, so that it scales to fleets). No profile uses it: it trades memory.
With :class:`JointVm` ``weights`` (:func:`recency_weights`, ``rightsizer-joint-recent``) an interval counts by
its recency instead of once, and the budget is a share of the weighted intervals: old peaks that did not come
back cost little, recent ones nearly their full count. With the memory readings replaced by their day's peak
(:func:`day_peak_memory`, ``rightsizer-joint-days``) memory risk is counted in days: a type below a day's peak
is over on every interval of that day, so a VM that crosses a level for a few minutes every day risks as much
as one that stays above it all day, and more than one that stayed above it for hours once. Memory used rises
and stays; whether it crosses a level *on a day* is what the next weeks repeat, not how many of that day's
samples happened to land above it. With the readings raised by a headroom first (:func:`with_headroom`,
``rightsizer-joint-headroom``, together with the recency weights) a type is over on a day whose peak it holds
with less than that share to spare: the near misses of the training window count as the misses they would
have been a little later.

Pure numpy over arrays passed in; nothing is fitted per VM. No learned model (e.g. a scikit-learn
quantile regressor of future peaks across the fleet) is used: each VM's own training tail already ranks
its candidates, and on the dev trace this allocation lands on the uniform-percentile curve rather than
above it, so a model would have nothing measured to improve on (README, "Backtest").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.catalogue import MachineType
from analytics.rightsizing.base import SECONDS_PER_DAY, FittingCatalogue


@dataclass(frozen=True, slots=True)
class BudgetVm:
    """One VM as the budget sees it: training CPU demand (vCPUs, NaN = not running), the memory its
    type must hold (bytes), its allocation, and the type the base rule chose (the upper end)."""

    demand_vcpus: np.ndarray
    memory_need_bytes: float
    vcpus: int
    base_type: MachineType


@dataclass(frozen=True, slots=True)
class JointVm:
    """One VM as the joint budget sees it: its training CPU demand (vCPUs) and memory used (bytes), NaN
    where an interval has no reading, and optionally what each interval counts for (``weights``, same
    length; None: every interval counts once; see :func:`recency_weights`)."""

    demand_vcpus: np.ndarray
    memory_used_bytes: np.ndarray
    weights: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _Candidates:
    types: tuple[MachineType, ...]
    prices: np.ndarray
    risks: np.ndarray  # risked training intervals per candidate


def _risked(values: np.ndarray, levels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """How many of ``values`` (NaN skipped) lie above each of ``levels``; with ``weights``, their summed weight."""
    known = ~np.isnan(values)
    if weights is None:
        ordered = np.sort(values[known])
        return len(ordered) - np.searchsorted(ordered, levels, side="right")
    order = np.argsort(values[known], kind="stable")
    ordered, w = values[known][order], weights[known][order]
    above = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])  # above[i]: weight of ordered[i:]
    return above[np.searchsorted(ordered, levels, side="right")]


def training_intervals(vms: Sequence[BudgetVm] | Sequence[JointVm]) -> float:
    """The fleet's training intervals with a CPU reading (weighted where a VM has weights): what a budget
    is a share of."""
    total = 0.0
    for vm in vms:
        known = ~np.isnan(vm.demand_vcpus)
        if isinstance(vm, JointVm) and vm.weights is not None:
            total += float(vm.weights[known].sum())
        else:
            total += float(np.count_nonzero(known))
    return total


def recency_weights(timestamps_s: np.ndarray, end_s: float, half_life_days: float) -> np.ndarray:
    """Each interval's weight when recent intervals count more: 1 at ``end_s``, halving every
    ``half_life_days`` before it. Raises ValueError for a half-life that is not positive."""
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days!r}")
    age_days = (float(end_s) - np.asarray(timestamps_s, dtype=np.float64)) / SECONDS_PER_DAY
    weights: np.ndarray = 0.5 ** (np.maximum(age_days, 0.0) / half_life_days)
    return weights


def day_peak_memory(timestamps_s: np.ndarray, memory_used_bytes: np.ndarray) -> np.ndarray:
    """Each memory reading replaced by the largest reading of its UTC day (NaN stays NaN): on it, the joint
    budget counts a type's memory risk as the intervals of the days whose peak the type does not hold."""
    memory = np.asarray(memory_used_bytes, dtype=np.float64)
    out = np.full(len(memory), np.nan)
    known = ~np.isnan(memory)
    days = np.floor(np.asarray(timestamps_s, dtype=np.float64)[known] / SECONDS_PER_DAY)
    each_day, day_of = np.unique(days, return_inverse=True)  # readings in any order
    peaks = np.full(len(each_day), -np.inf)
    np.maximum.at(peaks, day_of, memory[known])
    out[known] = peaks[day_of]
    return out


def with_headroom(memory_used_bytes: np.ndarray, headroom: float) -> np.ndarray:
    """Memory readings as a type must hold them with ``headroom`` (a share, e.g. 0.1) to spare: each reading
    times ``1 + headroom`` (NaN stays NaN; 0 returns the readings as they are). Raises ValueError for a
    negative headroom."""
    if not headroom >= 0:
        raise ValueError(f"headroom must be >= 0, got {headroom!r}")
    memory = np.asarray(memory_used_bytes, dtype=np.float64)
    return memory if headroom == 0 else memory * (1.0 + headroom)


def _candidates(vm: BudgetVm, catalogue: FittingCatalogue, headroom: float) -> _Candidates:
    types: list[MachineType] = []
    for k in range(1, max(vm.base_type.vcpus, vm.vcpus, 1) + 1):
        t = catalogue.cheapest_fitting(float(k), vm.memory_need_bytes)
        if t is not None and t not in types:
            types.append(t)
    if vm.base_type not in types:
        types.append(vm.base_type)
    risks = _risked(vm.demand_vcpus * (1.0 + headroom), np.array([t.vcpus for t in types], dtype=np.float64))
    return _Candidates(tuple(types), np.array([t.price_per_month for t in types]), risks.astype(np.float64))


def _pick(cands: Sequence[_Candidates], lam: float) -> tuple[list[int], float]:
    picks = [int(np.argmin(c.prices + lam * c.risks)) for c in cands]
    return picks, float(sum(c.risks[i] for c, i in zip(cands, picks, strict=True)))


def allocate(
    vms: Sequence[BudgetVm], catalogue: FittingCatalogue, *, budget_fraction: float, headroom: float
) -> list[MachineType]:
    """One type per VM (same order) minimising fleet cost with risked intervals <= budget x all intervals.

    ``budget_fraction`` is a share (0..1) of the fleet's training intervals. A VM never gets a type
    dearer than its base type. Raises ValueError for a negative budget.
    """
    if budget_fraction < 0:
        raise ValueError(f"budget_fraction must be >= 0, got {budget_fraction!r}")
    cands = [_candidates(vm, catalogue, headroom) for vm in vms]
    picks = _fit_budget(cands, budget_fraction * training_intervals(vms))
    return [c.types[i] for c, i in zip(cands, picks, strict=True)]


def _fit_budget(cands: Sequence[_Candidates], budget: float) -> list[int]:
    """Each VM's candidate at the lowest price of risk whose picks risk at most ``budget`` intervals."""
    lo, hi = 0.0, 1.0
    picks, used = _pick(cands, hi)
    while used > budget and hi < 1e12:  # find a price of risk high enough to fit the budget
        hi *= 10.0
        picks, used = _pick(cands, hi)
    best = picks
    for _ in range(60):
        mid = (lo + hi) / 2.0
        picks, used = _pick(cands, mid)
        if used <= budget:
            hi, best = mid, picks
        else:
            lo = mid
    return best


def joint_candidates(vm: JointVm, types: Sequence[MachineType], memory_weight: float) -> _Candidates:
    """Every type a VM could take, priced and risked: training CPU intervals above its vCPUs plus
    ``memory_weight`` x training memory intervals above its memory; only types less risky than every
    cheaper one are kept (no other is ever the cheapest for price plus risk)."""
    ordered = sorted(types, key=lambda t: (t.price_per_month, t.name))
    risks = (_risked(vm.demand_vcpus, np.array([t.vcpus for t in ordered], dtype=np.float64) + 1e-9, vm.weights)
             + memory_weight * _risked(vm.memory_used_bytes,
                                       np.array([t.memory_bytes for t in ordered], dtype=np.float64), vm.weights))
    kept, lowest = [], math.inf
    for i, r in enumerate(risks):
        if r < lowest:
            kept.append(i)
            lowest = float(r)
    return _Candidates(tuple(ordered[i] for i in kept), np.array([ordered[i].price_per_month for i in kept]),
                       np.asarray(risks[kept], dtype=np.float64))


def allocate_joint(vms: Sequence[JointVm], types: Sequence[MachineType], *, budget_fraction: float,
                   memory_weight: float) -> list[MachineType]:
    """One type per VM (same order), CPU and memory chosen together: the cheapest fleet whose risked
    training intervals (CPU + ``memory_weight`` x memory) are at most ``budget_fraction`` of
    :func:`training_intervals`. Raises ValueError for a negative budget or weight, or no types."""
    return joint_allocation(vms, types, memory_weight=memory_weight)(budget_fraction)


def joint_allocation(vms: Sequence[JointVm], types: Sequence[MachineType], *,
                     memory_weight: float) -> Callable[[float], list[MachineType]]:
    """:func:`allocate_joint` for one fleet at many budgets: each VM's candidates are priced and risked once,
    and the function returned gives the allocation at a budget fraction (a sweep's 22 budgets then cost one
    pass over the training arrays, not 22). Raises ValueError as :func:`allocate_joint` does."""
    if memory_weight < 0:
        raise ValueError(f"memory_weight must be >= 0, got {memory_weight!r}")
    if not types:
        raise ValueError("no machine types to choose from")
    cands = [joint_candidates(vm, types, memory_weight) for vm in vms]
    total = training_intervals(vms)

    def at(budget_fraction: float) -> list[MachineType]:
        if budget_fraction < 0:
            raise ValueError(f"budget_fraction must be >= 0, got {budget_fraction!r}")
        picks = _fit_budget(cands, budget_fraction * total)
        return [c.types[i] for c, i in zip(cands, picks, strict=True)]

    return at


def joint_price_path(vms: Sequence[JointVm], types: Sequence[MachineType], *,
                     memory_weight: float) -> list[tuple[float, list[MachineType]]]:
    """Every distinct allocation :func:`allocate_joint` can give, cheapest fleet first (as :func:`price_path`)."""
    return _path([joint_candidates(vm, types, memory_weight) for vm in vms])


def _breakpoints(c: _Candidates) -> set[float]:
    """Prices of risk at which this VM's cheapest-for-price-plus-risk candidate can change."""
    out = set()
    for a in range(len(c.types)):
        for b in range(len(c.types)):
            if c.risks[a] > c.risks[b] and c.prices[a] < c.prices[b]:
                out.add(float((c.prices[b] - c.prices[a]) / (c.risks[a] - c.risks[b])))
    return out


def price_path(vms: Sequence[BudgetVm], catalogue: FittingCatalogue, *,
               headroom: float) -> list[tuple[float, list[MachineType]]]:
    """Every distinct allocation along the Lagrangian path: (price of risk, one type per VM).

    From price 0 (each VM's cheapest candidate, whatever its risk) up past the last breakpoint (each VM
    its least risky candidate): the whole family :func:`allocate` picks from, with no budget grid between.
    """
    return _path([_candidates(vm, catalogue, headroom) for vm in vms])


def _path(cands: Sequence[_Candidates]) -> list[tuple[float, list[MachineType]]]:
    prices = sorted(set().union(*(_breakpoints(c) for c in cands)) if cands else set())
    out: list[tuple[float, list[MachineType]]] = []
    seen: set[tuple[int, ...]] = set()
    for lam in [0.0, *(p * (1 + 1e-9) for p in prices)]:
        picks, _ = _pick(cands, lam)
        key = tuple(picks)
        if key not in seen:
            seen.add(key)
            out.append((lam, [c.types[i] for c, i in zip(cands, picks, strict=True)]))
    return out
