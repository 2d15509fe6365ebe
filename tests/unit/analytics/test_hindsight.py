"""Hindsight bound: the exact knapsack, candidate pruning, the oracle against krr, and the aggressive floor."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from analytics.backtest import StrategyResult
from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import Frontier, knob_settings
from analytics.hindsight import (
    Candidate,
    cheapest_within,
    daily_memory_peak,
    daily_memory_peaks,
    hindsight_bound,
    max_memory_used,
    memory_evidence_needed,
    memory_level_recurrence,
    memory_trims_needed,
    per_vm_diff,
    training_exceedance,
    vm_candidates,
)
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import Recommendation, UsageHistory, VmSpec
from analytics.rightsizing.settings import KrrSettings, RightsizerSettings, profile_settings
from analytics.traces import read_bitbrains_dir
from core.units import SECONDS_PER_DAY
from tests.helpers.backtest import T0
from tests.helpers.bitbrains import HEADER, usage_row

GIB = 1024**3


def _types() -> list[MachineType]:
    return [MachineType("s.1", 1, GIB, 0.01, "EUR"), MachineType("s.2", 2, 2 * GIB, 0.02, "EUR"),
            MachineType("c.4", 4, 2 * GIB, 0.04, "EUR")]


@pytest.fixture
def swap_trace(tmp_path: Path) -> Path:
    """Two 4-core VMs, 14 training days + 6 evaluation days, hourly, 0.5 GiB used.

    "a": 1.5 vCPU in training (krr: s.2), 3.0 in evaluation (overruns s.2 and s.1 alike).
    "b": 1.5 vCPU with 34 of 336 training hours at 3.5 (P95 3.5: krr keeps c.4), 1.5 in evaluation.
    Knowing the future, a goes to s.1 and b to s.2 for less money at the same overrun; but b at s.2 was
    exceeded in 10 % of its training hours, more than krr accepts anywhere.
    """
    d = tmp_path / "swap"
    d.mkdir()
    a = [usage_row(T0 + 3600 * i, 4, 1.5 if i < 336 else 3.0, 2, 0.5) for i in range(480)]
    b = [usage_row(T0 + 3600 * i, 4, 3.5 if i < 336 and i % 10 == 0 else 1.5, 2, 0.5) for i in range(480)]
    (d / "a.csv").write_text("\n".join([HEADER, *a]) + "\n")
    (d / "b.csv").write_text("\n".join([HEADER, *b]) + "\n")
    return d


def _cost(cands: list[list[Candidate]], combo: tuple[int, ...] | list[int]) -> float:
    return sum(cands[v][j].price_per_month for v, j in enumerate(combo))


def test_cheapest_within_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    t = MachineType("x", 1, GIB, 0.0, "EUR")
    for _ in range(40):
        cands = [[Candidate(MachineType(f"t{j}", 1, GIB, float(rng.uniform(0.01, 1.0)), "EUR"),
                            int(rng.integers(0, 6)), int(rng.integers(0, 3))) for j in range(3)] for _ in range(4)]
        cpu_budget, mem_budget = int(rng.integers(0, 12)), int(rng.integers(0, 5))
        feasible = [combo for combo in itertools.product(range(3), repeat=4)
                    if sum(cands[v][j].cpu_overrun_intervals for v, j in enumerate(combo)) <= cpu_budget
                    and sum(cands[v][j].mem_overrun_intervals for v, j in enumerate(combo)) <= mem_budget]
        got = cheapest_within(cands, cpu_budget=cpu_budget, mem_budget=mem_budget)
        if not feasible:
            assert got is None
            continue
        assert got is not None
        assert _cost(cands, got) == pytest.approx(min(_cost(cands, c) for c in feasible))
        assert sum(cands[v][j].cpu_overrun_intervals for v, j in enumerate(got)) <= cpu_budget
    with pytest.raises(ValueError, match="budgets"):
        cheapest_within([[Candidate(t, 0, 0)]], cpu_budget=-1, mem_budget=0)
    with pytest.raises(ValueError, match="0 candidate types"):
        cheapest_within([[]], cpu_budget=1, mem_budget=0)


def test_candidates_count_overruns_and_drop_dominated_types() -> None:
    small = MachineType("small", 1, GIB, 0.01, "EUR")
    dear_small = MachineType("dear-small", 1, GIB, 0.05, "EUR")
    big = MachineType("big", 2, 2 * GIB, 0.04, "EUR")
    cpu = np.array([0.5, 1.5, np.nan, 1.2])
    mem = np.array([0.5 * GIB, 1.5 * GIB, np.nan, 0.9 * GIB])
    got = vm_candidates(cpu, mem, [dear_small, big, small, small])
    assert [(c.machine_type.name, c.cpu_overrun_intervals, c.mem_overrun_intervals) for c in got] == [
        ("small", 2, 1), ("big", 0, 0)]
    assert training_exceedance(cpu, 1.0) == pytest.approx(2 / 3)
    assert training_exceedance(np.array([np.nan]), 1.0) == 0.0


def test_oracle_beats_krr_only_by_taking_more_training_risk_than_krr(swap_trace: Path) -> None:
    catalogue = CsvPriceCatalogue(_types())
    frontier = Frontier(read_bitbrains_dir(swap_trace), catalogue, train_days=14)
    free = hindsight_bound(frontier, catalogue.eligible())
    ref = {r.vm: r.recommended_type for r in free.reference.per_vm}
    assert ref == {"a": "s.2", "b": "c.4"}
    assert {r.vm: r.recommended_type for r in free.oracle.per_vm} == {"a": "s.1", "b": "s.2"}
    assert free.oracle.cpu_overrun_intervals <= free.reference.cpu_overrun_intervals == 144
    assert free.oracle.recommended_monthly_cost == pytest.approx(0.03 * 720)
    assert free.headroom_pct > 0
    tail = hindsight_bound(frontier, catalogue.eligible(), within_reference_tail=True)
    assert tail.headroom_pct == pytest.approx(0.0)
    full = hindsight_bound(frontier, catalogue.eligible(), memory_rule=False)
    assert full.oracle.savings_pct >= free.oracle.savings_pct
    # dropping the CPU budget loosens the bound: at least as much saved, CPU overruns no longer held
    loose = hindsight_bound(frontier, catalogue.eligible(), memory_rule=False, relax_cpu=True)
    assert loose.oracle.savings_pct >= full.oracle.savings_pct
    assert loose.oracle.mem_overrun_intervals <= loose.reference.mem_overrun_intervals
    assert loose.oracle.cpu_overrun_intervals > loose.reference.cpu_overrun_intervals
    # held to krr's vCPUs per VM the oracle cannot move b off c.4 to s.2, and nothing is gained
    kept = hindsight_bound(frontier, catalogue.eligible(), memory_rule=False, vcpus_at_least_reference=True)
    assert {r.vm: r.recommended_type for r in kept.oracle.per_vm} == {"a": "s.2", "b": "c.4"}
    assert kept.headroom_pct == pytest.approx(0.0)
    diffs = {d.vm: d for d in per_vm_diff(frontier, free.reference, free.oracle)}
    assert set(diffs) == {"a", "b"}
    assert diffs["b"].a_train_exceedance == 0.0
    assert diffs["b"].b_train_exceedance == pytest.approx(34 / 336)


def test_aggressive_never_gets_fewer_vcpus_than_krr_even_when_memory_is_trimmed() -> None:
    # 0.95 GiB used: krr needs 1.09 GiB -> s.2 (2 vCPU); memory trimmed to no headroom fits s.1 (1 vCPU).
    catalogue = CsvPriceCatalogue(_types())
    n = 24 * 7
    history = UsageHistory.from_arrays(T0 + 3600.0 * np.arange(n), np.full(n, 0.4), np.full(n, 0.95 * GIB),
                                       vcpus=4, memory_bytes=2 * GIB, interval_s=3600.0)
    spec = VmSpec(4, 2 * GIB)
    krr = get_strategy("krr").recommend(history, spec, KrrSettings(), catalogue=catalogue)
    ours = get_strategy("rightsizer")
    trimmed = RightsizerSettings.model_validate({**profile_settings("aggressive"), "memory_headroom_fraction": 0.0})
    no_floor = trimmed.model_copy(update={"vcpu_floor_memory_headroom_fraction": 0.0})
    assert krr.recommended_type is not None and krr.recommended_type.name == "s.2"
    kept = ours.recommend(history, spec, trimmed, catalogue=catalogue).recommended_type
    bare = ours.recommend(history, spec, no_floor, catalogue=catalogue).recommended_type
    assert kept is not None and kept.vcpus >= krr.recommended_type.vcpus
    assert bare is not None and bare.vcpus == 1


def test_aggressive_profile_picks_krrs_types(swap_trace: Path) -> None:
    frontier = Frontier(read_bitbrains_dir(swap_trace), CsvPriceCatalogue(_types()), train_days=14)
    ours = frontier.score("rightsizer", knob_settings("rightsizer", "profile", "aggressive"))
    krr = frontier.score("krr", KrrSettings())
    assert [r.recommended_type for r in ours.per_vm] == [r.recommended_type for r in krr.per_vm]


def test_a_problem_too_large_for_the_exact_knapsack_is_refused() -> None:
    one = [Candidate(MachineType("x", 1, GIB, 0.01, "EUR"), 0, 0)]
    with pytest.raises(ValueError, match="too large"):
        cheapest_within([one] * 100, cpu_budget=5_000_000, mem_budget=0)


def test_memory_at_least_used_keeps_each_vms_training_maximum(tmp_path: Path) -> None:
    # "m" used 1.5 GiB once in training, 0.5 GiB in evaluation: knowing the future, memory could go to s.1
    # (1 GiB); never below the maximum used it stays on a 2 GiB type, and the bound drops to aws's own.
    d = tmp_path / "mem"
    d.mkdir()
    rows = [usage_row(T0 + 3600 * i, 2, 0.4, 2, 1.5 if i == 100 else 0.5) for i in range(480)]
    (d / "m.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    catalogue = CsvPriceCatalogue(_types())
    frontier = Frontier(read_bitbrains_dir(d), catalogue, train_days=14)
    free = hindsight_bound(frontier, catalogue.eligible(), strategy="aws", memory_rule=False)
    used = hindsight_bound(frontier, catalogue.eligible(), strategy="aws", memory_rule=False,
                           memory_at_least_used=True)
    assert [r.recommended_type for r in free.reference.per_vm] == ["s.2"]
    assert [r.recommended_type for r in free.oracle.per_vm] == ["s.1"] and free.headroom_pct > 0
    assert [r.recommended_type for r in used.oracle.per_vm] == ["s.2"] and used.headroom_pct == 0.0
    assert max_memory_used(np.array([np.nan, 2.0, 1.0])) == 2.0 and max_memory_used(np.array([np.nan])) == 0.0


def _memory_trace(root: Path, seed: int, cores: int = 4) -> Path:
    """Four VMs of ``cores`` and 2 GiB, 14 training + 6 evaluation days, hourly: CPU uniform in 0.2-1.04 vCPU,
    memory 0.8 GiB with three hours at 1.3 GiB on about 30 % of days, so a type of 1 GiB overruns memory on
    those days only."""
    d = root / f"mem{seed}-{cores}"
    d.mkdir()
    rng = np.random.default_rng(seed)
    for name in "abcd":
        cpu = rng.uniform(0.2, 1.04, 480)
        spike_days = np.repeat(rng.random(20) < 0.3, 24)
        used = np.where(spike_days & (np.arange(480) % 24 < 3), 1.3, 0.8)
        rows = [usage_row(T0 + 3600 * i, cores, cpu[i], 2, used[i]) for i in range(480)]
        (d / f"{name}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return d


#: KRR's CPU rule with memory at the median used, no headroom: a reference that trims memory below the maximum.
_TRIMMING = KrrSettings(memory_percentile=50.0, memory_headroom_fraction=0.0)


def _trimming_reference(tmp_path: Path, seed: int) -> tuple[list[MachineType], Frontier, list[Recommendation],
                                                             StrategyResult]:
    """The types, the four-VM memory trace's frontier, and the trimming reference's recommendations and score."""
    types = [*_types(), MachineType("m.1", 1, 2 * GIB, 0.015, "EUR")]
    frontier = Frontier(read_bitbrains_dir(_memory_trace(tmp_path, seed)), CsvPriceCatalogue(types), train_days=14)
    recs = frontier.recommendations("krr", _TRIMMING)
    return types, frontier, recs, frontier.score_types("krr", recs, {})


@pytest.mark.parametrize("seed", (0, 1, 4, 5))
def test_the_least_memory_overrun_to_match_the_reference_is_brute_forces(tmp_path: Path, seed: int) -> None:
    types, frontier, recs, ref = _trimming_reference(tmp_path, seed)
    fewest = min(r.mem_overrun_intervals for combo in itertools.product(types, repeat=4)
                 if (r := frontier.score_types("x", recs, dict(enumerate(combo)))).savings_pct
                 >= ref.savings_pct - 1e-9 and r.cpu_overrun_intervals <= ref.cpu_overrun_intervals)
    got = hindsight_bound(frontier, types, strategy="krr", settings=_TRIMMING,
                          memory_rule=False).least_mem_overrun_intervals
    assert got == fewest <= ref.mem_overrun_intervals
    assert ref.mem_overrun_intervals > 0  # the reference trims memory: the count is not trivially zero
    if seed in (0, 4):  # on these draws choosing which VMs to trim, knowing the future, avoids overruns
        assert got < ref.mem_overrun_intervals


def test_memory_at_least_used_holds_the_references_own_choices_to_it_too(tmp_path: Path) -> None:
    catalogue = CsvPriceCatalogue([*_types(), MachineType("m.1", 1, 2 * GIB, 0.015, "EUR")])
    frontier = Frontier(read_bitbrains_dir(_memory_trace(tmp_path, 0)), catalogue, train_days=14)
    used = hindsight_bound(frontier, catalogue.eligible(), strategy="krr", settings=_TRIMMING, memory_rule=False,
                           memory_at_least_used=True)
    # the reference puts VMs on 1 GiB below their training maximum; no rule holding it can save as much
    maxima = [max_memory_used(sp.history.window(14).memory_used_bytes) / GIB for _, sp in frontier.splits]
    sizes = {t.name: t.memory_bytes / GIB for t in catalogue.eligible()}
    assert any(sizes[r.recommended_type or ""] < m for r, m in zip(used.reference.per_vm, maxima, strict=True))
    assert all(sizes[r.recommended_type or ""] >= m for r, m in zip(used.oracle.per_vm, maxima, strict=True))
    assert used.oracle.savings_pct < used.reference.savings_pct
    # 1-core VMs where every type holding the maximum has one vCPU and the reference's type two: nothing
    # holding the maximum stays within the reference's CPU overruns
    narrow = CsvPriceCatalogue([MachineType("s.2", 2, GIB, 0.01, "EUR"), MachineType("m.1", 1, 2 * GIB, 0.02, "EUR")])
    frontier = Frontier(read_bitbrains_dir(_memory_trace(tmp_path, 0, cores=1)), narrow, train_days=14)
    assert {r.recommended_type for r in frontier.score("krr", _TRIMMING).per_vm} == {"s.2"}
    with pytest.raises(ValueError, match="no allocation holding each VM's maximum memory used stays within krr's"):
        hindsight_bound(frontier, narrow.eligible(), strategy="krr", settings=_TRIMMING, memory_rule=False,
                        memory_at_least_used=True)


@pytest.mark.parametrize("seed", (0, 1, 4, 5))
def test_the_memory_trims_a_target_needs_are_brute_forced(tmp_path: Path, seed: int) -> None:
    # Every allocation of the four VMs within krr's overruns, each VM trimmed (below its training maximum used)
    # or not: the best gain with no VM trimmed, with one, with all, and the VMs every allocation reaching a
    # target between "none trimmed" and "all free" trims, are what memory_trims_needed reads off its knapsacks.
    types, frontier, recs, ref = _trimming_reference(tmp_path, seed)
    lookback = _TRIMMING.lookback_days
    used = [max_memory_used(sp.history.window(lookback).memory_used_bytes) for _, sp in frontier.splits]
    gains: list[tuple[frozenset[int], float]] = []  # (VMs trimmed, gain) of every allocation within the overruns
    for combo in itertools.product(types, repeat=4):
        r = frontier.score_types("x", recs, dict(enumerate(combo)))
        if (r.cpu_overrun_intervals <= ref.cpu_overrun_intervals
                and r.mem_overrun_intervals <= ref.mem_overrun_intervals):
            trimmed = frozenset(i for i, t in enumerate(combo) if t.memory_bytes < used[i] - 1)
            gains.append((trimmed, r.savings_pct - ref.savings_pct))
    held = max(g for t, g in gains if not t)
    free = max(g for _, g in gains)
    target = (held + free) / 2
    needs = memory_trims_needed(frontier, types, strategy="krr", settings=_TRIMMING,
                                target_pct=target)
    assert needs.held_gain_pct == pytest.approx(held, abs=1e-9) and needs.free_gain_pct == pytest.approx(free, abs=1e-9)
    assert needs.best_single is not None
    assert needs.best_single[1] == pytest.approx(max(g for t, g in gains if len(t) <= 1), abs=1e-9)
    required = [i for i in range(4) if max(g for t, g in gains if i not in t) < target]
    assert [i for i, _ in needs.required] == required
    assert free > held  # the trace makes trimming pay, so the check is not of an empty case
    assert bool(required) is (seed in (0, 4))  # on these draws one VM is in every allocation reaching the target


def test_the_daily_memory_peak_of_a_rank_is_the_level_passed_on_fewer_days() -> None:
    # three UTC days with peaks 3, 5 and 4 GiB (one reading missing), then a day with none
    day = SECONDS_PER_DAY
    ts = [T0, T0 + 60, T0 + day, T0 + day + 60, T0 + 2 * day, T0 + 3 * day]
    used = np.array([1.0, 3.0, 5.0, np.nan, 4.0, np.nan]) * GIB
    h = UsageHistory.from_arrays(ts, [0.1] * 6, used, vcpus=2, memory_bytes=8 * GIB)
    assert list(daily_memory_peaks(h) / GIB) == [3.0, 5.0, 4.0]
    assert [daily_memory_peak(h, k) / GIB for k in (1, 2, 3, 4)] == [5.0, 4.0, 3.0, 0.0]
    assert daily_memory_peak(h) == max_memory_used(used)  # rank 1 is the maximum used
    empty = UsageHistory.from_arrays(ts[:2], [0.1, 0.1], None, vcpus=2, memory_bytes=8 * GIB)
    assert daily_memory_peak(empty) == 0.0


@pytest.mark.parametrize("seed", (0, 1, 4, 5))
def test_the_evidence_a_target_bets_against_is_brute_forced(tmp_path: Path, seed: int) -> None:
    # Every allocation of the four VMs within krr's overruns: on how many training days each VM's memory passed
    # its type's memory; the fewest such days (the most, over the VMs) among allocations reaching a target is
    # what memory_evidence_needed reports, and its gain at each floor is the best allocation within it.
    types, frontier, recs, ref = _trimming_reference(tmp_path, seed)
    lookback = _TRIMMING.lookback_days
    days = [daily_memory_peaks(sp.history.window(lookback)) for _, sp in frontier.splits]
    allocations: list[tuple[int, float]] = []  # (most days passed on one VM, gain)
    for combo in itertools.product(types, repeat=4):
        r = frontier.score_types("x", recs, dict(enumerate(combo)))
        if (r.cpu_overrun_intervals <= ref.cpu_overrun_intervals
                and r.mem_overrun_intervals <= ref.mem_overrun_intervals):
            passed = max(int(np.count_nonzero(d > t.memory_bytes + 1)) for d, t in zip(days, combo, strict=True))
            allocations.append((passed, r.savings_pct - ref.savings_pct))
    held = max(g for p, g in allocations if p == 0)
    free = max(g for _, g in allocations)
    assert free > held  # the trace makes trimming pay
    target = (held + free) / 2
    needs = memory_evidence_needed(frontier, types, strategy="krr", settings=_TRIMMING, target_pct=target,
                                   most_days=14)
    assert needs.days_passed == min(p for p, g in allocations if g >= target - 1e-9)  # its tolerance
    for k, gain in enumerate(needs.gains_pct, start=1):
        assert gain == pytest.approx(max(g for p, g in allocations if p <= k - 1), abs=1e-9)
    first = hindsight_bound(frontier, types, strategy="krr", settings=_TRIMMING, memory_rule=False,
                            memory_at_least_used=True)
    assert needs.gains_pct[0] == pytest.approx(first.headroom_pct, abs=1e-12)
    assert needs.days_passed is not None and needs.days_passed >= 1  # reaching it takes memory below the maximum
    never = memory_evidence_needed(frontier, types, strategy="krr", settings=_TRIMMING, target_pct=free + 1,
                                   most_days=2)
    assert never.days_passed is None and len(never.gains_pct) == 2


def test_memory_level_recurrence_counts_levels_by_the_days_they_were_passed(tmp_path: Path) -> None:
    # "a" passes 1 GiB (0.5 -> 1.5 GiB for an hour) on days 0 and 5 of its last 14 training days and again
    # after; "b" on day 13 only and never after; "c" never
    d = tmp_path / "rec"
    d.mkdir()
    spikes = {"a": ({0, 5}, True), "b": ({13}, False), "c": (set(), False)}
    for name, (days, after) in spikes.items():
        rows = [usage_row(T0 + 3600 * i, 2, 0.4, 2,
                          1.5 if (i % 24 == 12 and (i // 24 in days or (after and i // 24 == 16))) else 0.5)
                for i in range(480)]
        (d / f"{name}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    catalogue = CsvPriceCatalogue(_types())
    frontier = Frontier(read_bitbrains_dir(d), catalogue, train_days=14)
    got = memory_level_recurrence(frontier, catalogue.eligible(), 14, most_days=2)
    assert [(r.days_passed, r.pairs, r.passed_again) for r in got] == [(1, 1, 0), (2, 1, 1)]
    capped = memory_level_recurrence(frontier, catalogue.eligible(), 14, most_days=1)
    assert [(r.days_passed, r.pairs, r.passed_again) for r in capped] == [(1, 2, 1)]
