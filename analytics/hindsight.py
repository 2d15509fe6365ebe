"""The hindsight bound: the most any strategy could save at a reference strategy's overrun, knowing the future.

For one training split (a :class:`analytics.frontier.Frontier`) and a reference strategy (e.g. ``krr``),
the oracle chooses every VM's machine type *knowing its evaluation window* so that the fleet's cost is
lowest while its CPU and memory overrun intervals stay at or below the reference's. No strategy that sees
only the training window can save more at that risk, so a strategy weakly dominating the reference is
possible only when the bound is above the reference's savings, and only with an allocation like the
oracle's (the bench prints the per-VM difference with the training evidence for each change).

Two oracles:

* ``memory_rule=True``: every type must hold the reference's memory need (its training-window rule,
  e.g. maximum used + 15 %); only the vCPUs are chosen in hindsight. This bounds every strategy that
  shares the reference's memory rule (ours does) and isolates the CPU question.
* ``memory_rule=False``: CPU and memory both chosen in hindsight (any eligible type).
* ``memory_at_least_used=True`` (with ``memory_rule=False``): CPU and memory chosen in hindsight, but
  every type holds the VM's largest memory used in the window the reference saw. This bounds every
  strategy that never sizes memory below the maximum used (memory is not compressible: none of our
  profiles does), whatever its headroom. With ``vcpus_at_least_reference=True`` as well, no VM gets fewer
  vCPUs than the reference's type (or its own allocation, where fewer): the bound of every rule that keeps
  ``balanced``'s guarantee against ``aws``.

And one count, ``Hindsight.least_mem_overrun_intervals``: the fewest memory overrun intervals at which the
oracle still saves as much as the reference at no more CPU overrun, so the least memory overrun any rule of
the oracle's family beating the reference has (read off the same knapsack table).

And which VMs a target takes below their maximum memory used (:func:`memory_trims_needed`): with
``memory_free_vms`` only those VMs are exempt from ``memory_at_least_used``, so releasing one VM, or all but
one, tells whether one trimmed VM is enough and which VM every allocation reaching the target trims.

The choice is an exact two-constraint knapsack solved by dynamic programming over (CPU overrun intervals,
memory overrun intervals) used so far: O(VMs x candidates x CPU budget x memory budget), with each VM's
candidates pruned to those no other candidate beats on price and both overruns. VMs the reference could
not judge (insufficient data, no current type) keep what the backtest gives them. Scoring reuses the
backtest's own rule (:func:`analytics.backtest._score`), so the oracle's figures are comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from analytics.backtest import StrategyResult
from analytics.catalogue import MachineType
from analytics.frontier import Frontier
from analytics.rightsizing.base import SECONDS_PER_DAY, Recommendation, UsageHistory, group_starts
from analytics.rightsizing.settings import SETTINGS_TYPES, StrategySettings

HINDSIGHT = "hindsight"
#: Bytes of back-pointers (VMs x (CPU budget + 1) x (memory budget + 1), one byte each while no VM has more
#: than 127 candidates, else two) above which the bound is refused; the time grows with it too (a 40-VM
#: split at VPA's P50 overruns: 121 million cells, about 20 s).
MAX_DP_BYTES = 400_000_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """One machine type for one VM and the overrun intervals it would have had in the evaluation window."""

    machine_type: MachineType
    cpu_overrun_intervals: int
    mem_overrun_intervals: int

    @property
    def price_per_month(self) -> float:
        return self.machine_type.price_per_month


@dataclass(frozen=True, slots=True)
class Hindsight:
    """The reference strategy's result and the oracle's, scored the same way on the same split."""

    reference: StrategyResult
    oracle: StrategyResult
    memory_rule: bool
    within_reference_tail: bool = False
    #: The fewest memory overrun intervals at which this oracle still saves as much as the reference at no more
    #: CPU overrun (None where it cannot within the reference's): the least memory overrun any rule of the
    #: oracle's family that beats the reference has. Read off the same knapsack table as the oracle.
    least_mem_overrun_intervals: int | None = None

    @property
    def headroom_pct(self) -> float:
        """Savings points the oracle gains over the reference at no more overrun (>= 0)."""
        return self.oracle.savings_pct - self.reference.savings_pct


def vm_candidates(cpu_vcpus: np.ndarray, mem_used_bytes: np.ndarray,
                  types: Sequence[MachineType]) -> list[Candidate]:
    """``types`` with their overruns on the evaluation arrays, Pareto-pruned.

    ``cpu_vcpus``: running intervals' CPU demand (vCPUs); ``mem_used_bytes``: intervals' memory used.
    A candidate is dropped when another is no dearer and overruns no more in either dimension. Sorted by
    price. Empty for no types.
    """
    cpu = np.sort(cpu_vcpus[~np.isnan(cpu_vcpus)])
    mem = np.sort(mem_used_bytes[~np.isnan(mem_used_bytes)])
    every = [Candidate(t, len(cpu) - int(np.searchsorted(cpu, t.vcpus + 1e-9, side="right")),
                       len(mem) - int(np.searchsorted(mem, t.memory_bytes, side="right")))
             for t in dict.fromkeys(types)]
    every.sort(key=lambda c: (c.price_per_month, c.cpu_overrun_intervals, c.mem_overrun_intervals))
    kept: list[Candidate] = []
    for c in every:  # cheapest first: keep c only if no cheaper-or-equal kept one overruns no more
        if not any(k.cpu_overrun_intervals <= c.cpu_overrun_intervals
                   and k.mem_overrun_intervals <= c.mem_overrun_intervals for k in kept):
            kept.append(c)
    return kept


def _least_costs(candidates: Sequence[Sequence[Candidate]], cpu_budget: int,
                 mem_budget: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The knapsack's table: ``best[c, m]``, the least total price of all VMs with CPU overruns <= c and memory
    overruns <= m (inf where nothing fits), and each VM's back-pointers.
    See :func:`cheapest_within`."""
    if cpu_budget < 0 or mem_budget < 0:
        raise ValueError(f"budgets must be >= 0, got cpu {cpu_budget!r}, memory {mem_budget!r}")
    widest = max((len(c) for c in candidates), default=0)
    pointer = np.int8 if widest <= np.iinfo(np.int8).max else np.int16
    if len(candidates) * (cpu_budget + 1) * (mem_budget + 1) * np.dtype(pointer).itemsize > MAX_DP_BYTES:
        raise ValueError(f"hindsight problem too large: {len(candidates)} VMs x {cpu_budget} CPU x {mem_budget} "
                         "memory overrun intervals")
    # best[c, m]: least cost of the VMs so far with CPU overruns <= c and memory overruns <= m
    best = np.zeros((cpu_budget + 1, mem_budget + 1))
    picks: list[np.ndarray] = []
    for i, cands in enumerate(candidates):
        if not 0 < len(cands) <= np.iinfo(np.int16).max:
            raise ValueError(f"VM #{i} has {len(cands)} candidate types; need 1 to {np.iinfo(np.int16).max}")
        new = np.full_like(best, math.inf)
        pick = np.full(best.shape, -1, dtype=pointer)
        for j, c in enumerate(cands):
            dc, dm = c.cpu_overrun_intervals, c.mem_overrun_intervals
            if dc > cpu_budget or dm > mem_budget:
                continue
            trial = best[: cpu_budget + 1 - dc, : mem_budget + 1 - dm] + c.price_per_month
            target = new[dc:, dm:]
            better = trial < target
            target[better] = trial[better]
            pick[dc:, dm:][better] = j
        best = new
        picks.append(pick)
    return best, picks


def cheapest_within(candidates: Sequence[Sequence[Candidate]], *, cpu_budget: int,
                    mem_budget: int) -> list[int] | None:
    """Index of one candidate per VM minimising total price with summed overruns within both budgets.

    Exact (dynamic programming). None when no choice fits the budgets. Raises ValueError for a negative
    budget, a VM without candidates (or more than 32,767), or a problem larger than :data:`MAX_DP_BYTES`.
    """
    best, picks = _least_costs(candidates, cpu_budget, mem_budget)
    if not math.isfinite(best[cpu_budget, mem_budget]):
        return None
    return _backtrack(candidates, picks, cpu_budget, mem_budget)


def _backtrack(candidates: Sequence[Sequence[Candidate]], picks: Sequence[np.ndarray], cpu_budget: int,
               mem_budget: int) -> list[int]:
    """The candidate indices the knapsack's back-pointers give at (``cpu_budget``, ``mem_budget``)."""
    out: list[int] = []
    c_left, m_left = cpu_budget, mem_budget
    for cands, pick in zip(reversed(candidates), reversed(picks), strict=True):
        j = int(pick[c_left, m_left])
        out.append(j)
        c_left -= cands[j].cpu_overrun_intervals
        m_left -= cands[j].mem_overrun_intervals
    return out[::-1]


def max_memory_used(memory_used_bytes: np.ndarray) -> float:
    """The largest memory used (bytes) of a window; 0 when it has no reading."""
    known = memory_used_bytes[~np.isnan(memory_used_bytes)]
    return float(known.max()) if len(known) else 0.0


def daily_memory_peaks(history: UsageHistory) -> np.ndarray:
    """The largest memory used (bytes) of each UTC day of ``history`` with a reading, in day order."""
    known = ~np.isnan(history.memory_used_bytes)
    if not known.any():
        return np.empty(0)
    days = np.floor(history.timestamps_s[known] / SECONDS_PER_DAY)
    return np.maximum.reduceat(history.memory_used_bytes[known], group_starts(days))


def daily_memory_peak(history: UsageHistory, rank: int = 1) -> float:
    """The ``rank``-th largest of a window's daily memory peaks (bytes; 1 = the maximum used): the level the VM's
    memory passed on at most ``rank`` - 1 of its days and reached on ``rank``. 0 when the window has fewer days
    with a reading."""
    peaks = daily_memory_peaks(history)
    return float(np.sort(peaks)[::-1][rank - 1]) if rank <= len(peaks) else 0.0


def training_exceedance(demand_vcpus: np.ndarray, vcpus: float) -> float:
    """Share (0..1) of the training intervals with a CPU reading whose demand exceeds ``vcpus``."""
    known = demand_vcpus[~np.isnan(demand_vcpus)]
    return float(np.count_nonzero(known > vcpus + 1e-9)) / len(known) if len(known) else 0.0


@dataclass(frozen=True, slots=True)
class VmDiff:
    """One VM on which two results chose different types: each side's type, cost, overruns, and how often
    the VM's training window exceeded each side's vCPUs (0..1)."""

    vm: str
    a_type: str | None
    a_vcpus: int | None
    a_monthly_cost: float
    a_cpu_overrun_intervals: int
    a_mem_overrun_intervals: int
    a_train_exceedance: float
    b_type: str | None
    b_vcpus: int | None
    b_monthly_cost: float
    b_cpu_overrun_intervals: int
    b_mem_overrun_intervals: int
    b_train_exceedance: float


def per_vm_diff(frontier: Frontier, a: StrategyResult, b: StrategyResult,
                lookback_days: float = 14.0) -> list[VmDiff]:
    """The VMs on which ``a`` and ``b`` (both scored on ``frontier``) differ, in ``splits`` order.

    Training exceedance is measured over the last ``lookback_days`` of the training window (the
    frontier's own lookback when it has one).
    """
    lookback = frontier.lookback_days or lookback_days
    out = []
    for (_, split), ra, rb in zip(frontier.splits, a.per_vm, b.per_vm, strict=True):
        if ra.recommended_type == rb.recommended_type:
            continue
        demand = split.history.window(lookback).cpu_vcpus
        out.append(VmDiff(
            ra.vm, ra.recommended_type, ra.recommended_vcpus, ra.recommended_monthly_cost,
            ra.cpu_overrun_intervals, ra.mem_overrun_intervals,
            training_exceedance(demand, ra.recommended_vcpus or 0),
            rb.recommended_type, rb.recommended_vcpus, rb.recommended_monthly_cost,
            rb.cpu_overrun_intervals, rb.mem_overrun_intervals,
            training_exceedance(demand, rb.recommended_vcpus or 0)))
    return out


def hindsight_bound(frontier: Frontier, types: Sequence[MachineType], *, strategy: str = "krr",
                    settings: StrategySettings | None = None, memory_rule: bool = True,
                    within_reference_tail: bool = False, relax_cpu: bool = False,
                    memory_at_least_used: bool = False, vcpus_at_least_reference: bool = False,
                    memory_free_vms: frozenset[int] = frozenset(), memory_floor_days: int = 1) -> Hindsight:
    """The oracle at ``strategy``'s CPU and memory overrun on ``frontier``'s split (see the module doc).

    ``types``: the eligible machine types (e.g. ``CsvPriceCatalogue.eligible()``). ``settings`` default to
    the strategy's own. With ``within_reference_tail`` a VM may only get a type whose vCPUs its training
    window exceeded no more often than the reference's riskiest choice did (for KRR at P95: at most 5 % of
    intervals): the oracle may not take more *visible* risk on any VM than the reference accepts. The
    reference's allocation is always feasible, so the oracle saves at least as much as the reference.
    With ``relax_cpu`` the CPU budget is dropped (only memory overruns are limited): a looser bound, for
    references whose exact two-budget problem is too large; its oracle may overrun CPU more. With
    ``memory_at_least_used`` every type holds the largest memory used in the VM's lookback window, the
    reference's own choices too (a reference sizing memory below it, like VPA at a low percentile, may then
    save more than the oracle: no rule keeping memory at or above the maximum used can reach it); raises
    ValueError when no such allocation stays within the reference's overruns. With ``vcpus_at_least_reference``
    no VM gets fewer vCPUs than the reference's type has, or than its own allocation where that is fewer: with
    ``memory_at_least_used`` the bound of every rule that, like ``balanced`` against ``aws``, keeps the
    reference's vCPUs and the memory used (so that its CPU overrun is never the reference's plus more).
    ``memory_free_vms`` (indices into ``frontier.splits``) exempts those VMs from ``memory_at_least_used``: the
    bound of every rule that sizes memory below the maximum used on those VMs at most
    (:func:`memory_trims_needed`). ``memory_floor_days`` k > 1 lowers that floor from the maximum to the k-th
    largest daily peak (:func:`daily_memory_peak`): the bound of every rule that never sizes a VM below a level
    its memory passed on k - 1 days of its window (:func:`memory_evidence_needed`).
    """
    p = _problem(frontier, types, strategy, settings, memory_rule=memory_rule,
                 within_reference_tail=within_reference_tail, relax_cpu=relax_cpu,
                 memory_at_least_used=memory_at_least_used, vcpus_at_least_reference=vcpus_at_least_reference,
                 memory_free_vms=memory_free_vms, memory_floor_days=memory_floor_days)
    reference = p.reference
    cpu_budget, mem_budget = 0 if relax_cpu else reference.cpu_overrun_intervals, reference.mem_overrun_intervals
    best, picks = _solve(p.candidates, cpu_budget, mem_budget, strategy, reference)
    # the least memory budget at which the oracle's cost is down to the reference's (its VMs' types)
    target = sum(rt.price_per_month for i in p.free if (rt := p.recs[i].recommended_type) is not None)
    reached = np.flatnonzero(best[cpu_budget] <= target * (1 + 1e-12) + 1e-9)
    return Hindsight(reference, p.score(_backtrack(p.candidates, picks, cpu_budget, mem_budget)), memory_rule,
                     within_reference_tail, int(reached[0]) if len(reached) else None)


def _solve(candidates: Sequence[Sequence[Candidate]], cpu_budget: int, mem_budget: int, strategy: str,
           reference: StrategyResult) -> tuple[np.ndarray, list[np.ndarray]]:
    """The knapsack's table and back-pointers at the budgets; raises ValueError where nothing fits them."""
    best, picks = _least_costs(candidates, cpu_budget, mem_budget)
    if not math.isfinite(best[cpu_budget, mem_budget]):
        # the reference's own choice always fits unless memory_at_least_used took it away
        raise ValueError(f"no allocation holding each VM's maximum memory used stays within {strategy}'s "
                         f"{reference.cpu_overrun_intervals} CPU and {reference.mem_overrun_intervals} memory "
                         "overrun intervals")
    return best, picks


@dataclass(frozen=True, slots=True)
class _Problem:
    """The oracle's problem on one split: the reference, the VMs it may re-type and their candidates."""

    frontier: Frontier
    recs: list[Recommendation]
    reference: StrategyResult
    free: list[int]
    candidates: list[list[Candidate]]

    def score(self, chosen_idx: Sequence[int]) -> StrategyResult:
        """The backtest's score of the allocation picking ``candidates[k][chosen_idx[k]]`` for ``free[k]``."""
        chosen = {i: self.candidates[k][j].machine_type
                  for k, (i, j) in enumerate(zip(self.free, chosen_idx, strict=True))}
        return self.frontier.score_types(HINDSIGHT, self.recs, chosen)


def _problem(frontier: Frontier, types: Sequence[MachineType], strategy: str, settings: StrategySettings | None, *,
             memory_rule: bool, within_reference_tail: bool = False, relax_cpu: bool = False,
             memory_at_least_used: bool = False, vcpus_at_least_reference: bool = False,
             memory_free_vms: frozenset[int] = frozenset(), memory_floor_days: int = 1) -> _Problem:
    settings = settings or SETTINGS_TYPES[strategy].model_validate({})
    recs = frontier.recommendations(strategy, settings)
    reference = frontier.score_types(strategy, recs, {})
    free = [i for i, rec in enumerate(recs)
            if rec.is_determined and frontier.splits[i][1].current is not None]
    lookback = frontier.lookback_days or settings.lookback_days
    demand = {i: frontier.splits[i][1].history.window(lookback).cpu_vcpus for i in free}
    tail = max((training_exceedance(demand[i], rt.vcpus) for i in free
                if (rt := recs[i].recommended_type) is not None), default=0.0)
    cands = []
    for i in free:
        split, rec = frontier.splits[i][1], recs[i]
        floor = float(rec.target_memory_bytes or 0) if memory_rule else 0.0
        if memory_at_least_used and i not in memory_free_vms:
            floor = max(floor, daily_memory_peak(split.history.window(lookback), memory_floor_days))
        rt = rec.recommended_type
        least_vcpus = min(rt.vcpus, split.spec.vcpus) if vcpus_at_least_reference and rt is not None else 0
        allowed = [t for t in types if t.memory_bytes >= floor - 1 and t.vcpus >= least_vcpus and (
            not within_reference_tail or training_exceedance(demand[i], t.vcpus) <= tail)]
        if rt is not None and (not memory_at_least_used or i in memory_free_vms):  # the reference's own choice
            allowed.append(rt)
        cpu = np.empty(0) if relax_cpu else split.cpu_vcpus  # no CPU reading: no CPU overrun to count
        cands.append(vm_candidates(cpu, split.mem_used_bytes, allowed))
    return _Problem(frontier, recs, reference, free, cands)


@dataclass(frozen=True, slots=True)
class TrimNeeds:
    """What saving ``target_pct`` points more than a reference at its overruns takes of memory below the maximum
    used (:func:`memory_trims_needed`): the oracle's gain with every VM's memory free and with none below its
    maximum used, the best gain when one VM alone may go below it (and which), and the VMs every allocation
    reaching the target sizes below their maximum used (the gain with all but that one free is under it)."""

    target_pct: float
    free_gain_pct: float
    held_gain_pct: float
    best_single: tuple[int, float] | None
    required: tuple[tuple[int, float], ...]


def memory_trims_needed(frontier: Frontier, types: Sequence[MachineType], *, strategy: str = "aws",
                        settings: StrategySettings | None = None, target_pct: float = 2.0) -> TrimNeeds:
    """Which VMs a rule must size below their maximum memory used to save ``target_pct`` points more than
    ``strategy`` (with ``settings``, default its own) at its CPU and memory overrun intervals, even knowing the
    evaluation window. Exact over the oracle's family (:func:`hindsight_bound` with ``memory_rule=False``): a
    VM is *required* when the bound with every other VM's memory free and this one held at its maximum used is
    below the target, so every allocation reaching the target trims it; ``best_single`` is the best bound with
    one VM's memory free, so a target above it needs two or more VMs trimmed. Each VM's candidates are priced
    once held and once free; then an exact knapsack per VM, and one more per VM the free oracle trims."""
    # each VM's candidates built twice, held at its maximum used and free; a bound mixes the two lists
    everyone = frozenset(range(len(frontier.splits)))
    held_p = _problem(frontier, types, strategy, settings, memory_rule=False, memory_at_least_used=True)
    free_p = _problem(frontier, types, strategy, settings, memory_rule=False, memory_at_least_used=True,
                      memory_free_vms=everyone)
    reference = held_p.reference
    budgets = (reference.cpu_overrun_intervals, reference.mem_overrun_intervals)

    def oracle(released: frozenset[int]) -> StrategyResult:
        cands = [free_p.candidates[k] if i in released else held_p.candidates[k] for k, i in enumerate(held_p.free)]
        _, picks = _solve(cands, *budgets, strategy, reference)
        return replace(held_p, candidates=cands).score(_backtrack(cands, picks, *budgets))

    def gain(released: frozenset[int]) -> float:
        return oracle(released).savings_pct - reference.savings_pct

    released = oracle(everyone)
    held, free = gain(frozenset()), released.savings_pct - reference.savings_pct
    singles = {i: gain(frozenset({i})) for i in everyone}
    # a VM the oracle with every VM's memory free leaves at or above its maximum used is never required: that
    # allocation holds it there and reaches the free bound
    own = settings or SETTINGS_TYPES[strategy].model_validate({})
    lookback = frontier.lookback_days or own.lookback_days
    memory = {t.name: t.memory_bytes for t in types}
    trimmed = [i for i, ((_, split), r) in enumerate(zip(frontier.splits, released.per_vm, strict=True))
               if memory.get(r.recommended_type or "", math.inf)
               < max_memory_used(split.history.window(lookback).memory_used_bytes) - 1]
    required = tuple((i, g) for i in trimmed if (g := gain(everyone - {i})) < target_pct)
    best = max(singles.items(), key=lambda kv: (kv[1], -kv[0]), default=None)
    return TrimNeeds(target_pct, free, held, best, required)


@dataclass(frozen=True, slots=True)
class EvidenceNeeds:
    """How far below the memory a VM showed a rule must go to save ``target_pct`` points more than a reference at
    its overruns, even knowing the evaluation window (:func:`memory_evidence_needed`). ``gains_pct[k - 1]``: the
    oracle's gain when no VM's type may hold less than its k-th largest daily memory peak."""

    target_pct: float
    gains_pct: tuple[float, ...]

    @property
    def days_passed(self) -> int | None:
        """Every allocation reaching the target sizes some VM below a level its memory passed on at least this
        many days of its window (0: one need not go below any VM's maximum used; None: not even at the least
        floor tried)."""
        reached = [k for k, g in enumerate(self.gains_pct, start=1) if g >= self.target_pct - 1e-9]
        return reached[0] - 1 if reached else None


def memory_evidence_needed(frontier: Frontier, types: Sequence[MachineType], *, strategy: str = "aws",
                           settings: StrategySettings | None = None, target_pct: float = 2.0,
                           most_days: int | None = None) -> EvidenceNeeds:
    """The oracle (:func:`hindsight_bound` with ``memory_rule=False``, ``memory_at_least_used``) with each VM's
    memory floor lowered from the maximum used to its k-th largest daily peak, k = 1, 2, ... until the gain over
    ``strategy`` reaches ``target_pct``, or k passes ``most_days`` (by default one more than the most days any VM's
    window has: there no VM has a floor left and the bound is the memory-free one). Where the gain at k is under
    the target,
    every allocation reaching it, hindsight or not, sizes some VM below a level that VM's memory passed on k or
    more days of the window the reference saw: a rule reaching the target must bet against that much of its own
    evidence (how often such a level came back in this trace: :func:`memory_level_recurrence`)."""
    if most_days is None:
        lookback = frontier.lookback_days or (settings or SETTINGS_TYPES[strategy].model_validate({})).lookback_days
        most_days = 1 + max((len(daily_memory_peaks(split.history.window(lookback))) for _, split in frontier.splits),
                            default=0)
    gains: list[float] = []
    for k in range(1, most_days + 1):
        try:
            bound = hindsight_bound(frontier, types, strategy=strategy, settings=settings, memory_rule=False,
                                    memory_at_least_used=True, memory_floor_days=k)
        except ValueError:  # no allocation on those floors fits the reference's overruns: the gain is below it
            gains.append(-math.inf)
            continue
        gains.append(bound.headroom_pct)
        if bound.headroom_pct >= target_pct - 1e-9:
            break
    return EvidenceNeeds(target_pct, tuple(gains))


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Of the (VM, memory level) pairs whose window's daily peaks passed the level on ``days_passed`` days, how
    many passed it again in the evaluation window (so sizing the VM to that level would have overrun)."""

    days_passed: int
    pairs: int
    passed_again: int


def memory_level_recurrence(frontier: Frontier, types: Sequence[MachineType], lookback_days: float,
                            most_days: int = 4) -> list[Recurrence]:
    """For every VM with memory readings on both sides of its split and every memory size of ``types`` below
    its maximum used in the last ``lookback_days`` of training: on how many UTC days the window's memory passed
    that size, and whether the evaluation window passed it too. Counted by days passed, 1 to ``most_days``
    (levels passed on more days are counted under ``most_days``)."""
    levels = sorted({t.memory_bytes for t in types})
    pairs = [0] * most_days
    again = [0] * most_days
    for _, split in frontier.splits:
        peaks = daily_memory_peaks(split.history.window(lookback_days))
        after = split.mem_used_bytes[~np.isnan(split.mem_used_bytes)]
        if not len(peaks) or not len(after):
            continue
        most_after = after.max()
        for level in levels:
            passed = int(np.count_nonzero(peaks > level))
            if passed:
                pairs[min(passed, most_days) - 1] += 1
                again[min(passed, most_days) - 1] += int(most_after > level)
    return [Recurrence(d, n, a) for d, n, a in zip(range(1, most_days + 1), pairs, again, strict=True)]


__all__ = ["HINDSIGHT", "Candidate", "EvidenceNeeds", "Hindsight", "Recurrence", "TrimNeeds", "VmDiff",
           "cheapest_within", "daily_memory_peak", "daily_memory_peaks", "hindsight_bound", "max_memory_used",
           "memory_evidence_needed", "memory_level_recurrence", "memory_trims_needed", "per_vm_diff",
           "training_exceedance", "vm_candidates"]
