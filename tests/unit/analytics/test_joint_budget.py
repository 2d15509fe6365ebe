"""The joint fleet budget (``rightsizer-joint``): vCPUs and memory chosen together by one price of risk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import (
    JOINT_DAYS_MEMORY_WEIGHT,
    JOINT_DAYS_STRATEGY,
    JOINT_HEADROOM_FRACTION,
    JOINT_HEADROOM_STRATEGY,
    JOINT_RECENT_HALF_LIFE_DAYS,
    JOINT_RECENT_STRATEGY,
    JOINT_STRATEGY,
    SWEEP_KNOBS,
    Frontier,
)
from analytics.rightsizing.base import SECONDS_PER_DAY
from analytics.rightsizing.budget import (
    JointVm,
    _risked,
    allocate_joint,
    day_peak_memory,
    joint_allocation,
    joint_candidates,
    joint_price_path,
    recency_weights,
    training_intervals,
    with_headroom,
)
from analytics.traces import read_bitbrains_dir
from tests.helpers.backtest import backtest_types

GIB = 1024**3
# Same price, opposite shortfalls: "cpu-short" holds the memory but not the CPU peaks, "mem-short" the reverse.
TYPES = [MachineType("cpu-short", 1, 4 * GIB, 0.02, "EUR"), MachineType("mem-short", 2, GIB, 0.02, "EUR"),
         MachineType("both", 2, 4 * GIB, 0.04, "EUR"), MachineType("dear", 2, 4 * GIB, 0.05, "EUR"),
         MachineType("small", 1, GIB, 0.01, "EUR")]


def _vm() -> JointVm:
    # 100 training intervals: CPU above 1 vCPU in 5 of them, memory above 1 GiB in 3 (and one gap in each)
    cpu = np.r_[np.full(94, 0.5), np.full(5, 1.5), [np.nan]]
    mem = np.r_[np.full(96, 0.5 * GIB), np.full(3, 2.0 * GIB), [np.nan]]
    return JointVm(cpu, mem)


def test_candidates_count_cpu_and_weighted_memory_intervals_and_drop_dominated_types() -> None:
    c = joint_candidates(_vm(), TYPES, memory_weight=10.0)
    # cheapest first; "dear" is never cheapest for price plus risk ("both" risks nothing for less) and
    # "mem-short" (30 weighted intervals) risks more than "cpu-short" at the same price
    assert [t.name for t in c.types] == ["small", "cpu-short", "both"]
    assert list(c.risks) == [5 + 10 * 3, 5, 0]


def test_the_memory_weight_decides_which_shortfall_the_budget_buys() -> None:
    # A budget of 5 % of the 99 CPU-read intervals (4.95) buys neither shortfall at weight 10 (cpu-short risks
    # 5 intervals, mem-short 30); 6 % (5.94) buys cpu-short; at weight 1 mem-short's 3 intervals fit first
    assert [t.name for t in allocate_joint([_vm()], TYPES, budget_fraction=0.05, memory_weight=10.0)] == ["both"]
    assert [t.name for t in allocate_joint([_vm()], TYPES, budget_fraction=0.06, memory_weight=10.0)] == ["cpu-short"]
    assert [t.name for t in allocate_joint([_vm()], TYPES, budget_fraction=0.04, memory_weight=1.0)] == ["mem-short"]
    assert [t.name for t in allocate_joint([_vm()], TYPES, budget_fraction=0.0, memory_weight=1.0)] == ["both"]
    assert [t.name for t in allocate_joint([_vm()], TYPES, budget_fraction=1.0, memory_weight=1.0)] == ["small"]


def test_price_path_walks_from_the_cheapest_type_to_the_safest() -> None:
    path = joint_price_path([_vm()], TYPES, memory_weight=10.0)
    assert [[t.name for t in types] for _, types in path] == [["small"], ["cpu-short"], ["both"]]


@pytest.mark.parametrize(("kwargs", "match"), [({"budget_fraction": -0.1, "memory_weight": 1.0}, "budget_fraction"),
                                               ({"budget_fraction": 0.1, "memory_weight": -1.0}, "memory_weight")])
def test_negative_budget_or_weight_is_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        allocate_joint([_vm()], TYPES, **kwargs)


def test_no_types_is_refused() -> None:
    with pytest.raises(ValueError, match="no machine types"):
        allocate_joint([_vm()], [], budget_fraction=0.1, memory_weight=1.0)


@pytest.mark.parametrize(("half_life", "by_day", "headroom"), [
    (None, False, 0.0), (JOINT_RECENT_HALF_LIFE_DAYS, False, 0.0), (None, True, 0.0),
    (JOINT_RECENT_HALF_LIFE_DAYS, True, JOINT_HEADROOM_FRACTION)])
def test_the_evaluation_window_cannot_move_the_joint_allocation(trace_dir: Path, half_life: float | None,
                                                                by_day: bool, headroom: float) -> None:
    # Honest evaluation: the allocation reads the training window only (and the recency weights count back
    # from its end, not from the evaluation's; the daily peaks are the training days'). Shuffle (and scale)
    # every VM's evaluation arrays: the types chosen stay, while the overruns scored against them change.
    catalogue = CsvPriceCatalogue(backtest_types())
    frontier = Frontier(read_bitbrains_dir(trace_dir), catalogue, train_days=14)
    budgets = SWEEP_KNOBS[JOINT_STRATEGY][1]
    weight = JOINT_DAYS_MEMORY_WEIGHT if by_day else 30.0
    before = [frontier.score_joint(b, weight, half_life, by_day, headroom) for b in budgets]
    rng = np.random.default_rng(7)
    moved = Frontier(read_bitbrains_dir(trace_dir), catalogue, train_days=14)
    moved.splits = [(vm, replace(sp, cpu_vcpus=rng.permutation(sp.cpu_vcpus) * 3.0,
                                 mem_used_bytes=rng.permutation(sp.mem_used_bytes) * 3.0))
                    for vm, sp in moved.splits]
    after = [moved.score_joint(b, weight, half_life, by_day, headroom) for b in budgets]
    for b, a in zip(before, after, strict=True):
        assert [r.recommended_type for r in b.per_vm] == [r.recommended_type for r in a.per_vm]
    assert any((b.cpu_overrun_intervals, b.mem_overrun_intervals) != (a.cpu_overrun_intervals, a.mem_overrun_intervals)
               for b, a in zip(before, after, strict=True))


def test_recency_weights_halve_every_half_life_back_from_the_end() -> None:
    end = 30 * SECONDS_PER_DAY
    ts = end - np.array([0.0, 2.5, 5.0, 10.0]) * SECONDS_PER_DAY
    assert np.allclose(recency_weights(ts, end, 5.0), [1.0, 2 ** -0.5, 0.5, 0.25])
    with pytest.raises(ValueError, match="half_life_days must be positive"):
        recency_weights(ts, end, 0.0)


def test_weighted_risk_is_the_weight_of_the_intervals_above_each_level() -> None:
    rng = np.random.default_rng(3)
    values = rng.random(500)
    values[rng.random(500) < 0.1] = np.nan
    weights = rng.random(500)
    levels = np.linspace(-0.1, 1.1, 25)
    by_hand = [weights[~np.isnan(values) & (values > level)].sum() for level in levels]
    assert np.allclose(_risked(values, levels, weights), by_hand)
    # weights of one count intervals, exactly as the unweighted count does
    assert list(_risked(values, levels, np.ones(500))) == list(_risked(values, levels))


def test_recent_intervals_decide_what_the_budget_buys() -> None:
    # The same five CPU and three memory shortfalls, once at the start of 20 training days and once at the
    # end. Counted plainly both VMs risk the same; weighted by a 2-day half-life the old ones are nearly
    # forgotten, so at a budget of 1 % of the weighted intervals the VM whose peaks were long ago gives them up
    # and the one whose peaks are recent keeps a type that holds them.
    vm = _vm()
    ts = np.linspace(0.0, 20 * SECONDS_PER_DAY, 100)
    old = JointVm(vm.demand_vcpus[::-1].copy(), vm.memory_used_bytes[::-1].copy())
    assert list(joint_candidates(old, TYPES, 10.0).risks) == list(joint_candidates(vm, TYPES, 10.0).risks)
    weighted = [JointVm(v.demand_vcpus, v.memory_used_bytes, recency_weights(ts, ts[-1], 2.0)) for v in (vm, old)]
    assert training_intervals(weighted) == pytest.approx(sum(float(w.weights[~np.isnan(w.demand_vcpus)].sum())
                                                              for w in weighted if w.weights is not None))
    picked = allocate_joint(weighted, TYPES, budget_fraction=0.01, memory_weight=10.0)
    assert [t.name for t in picked] == ["both", "small"]


@pytest.mark.parametrize(("curve", "kwargs"), [
    (JOINT_RECENT_STRATEGY, {"half_life_days": JOINT_RECENT_HALF_LIFE_DAYS}),
    (JOINT_DAYS_STRATEGY, {"memory_weight": JOINT_DAYS_MEMORY_WEIGHT, "memory_by_day": True}),
    (JOINT_HEADROOM_STRATEGY, {"memory_weight": JOINT_DAYS_MEMORY_WEIGHT, "half_life_days": JOINT_RECENT_HALF_LIFE_DAYS,
                               "memory_by_day": True, "memory_headroom": JOINT_HEADROOM_FRACTION})])
def test_the_joint_variants_are_on_the_sweep_beside_the_plain_one(trace_dir: Path, curve: str,
                                                                  kwargs: dict[str, Any]) -> None:
    catalogue = CsvPriceCatalogue(backtest_types())
    frontier = Frontier(read_bitbrains_dir(trace_dir), catalogue, train_days=14)
    assert SWEEP_KNOBS[curve] == SWEEP_KNOBS[JOINT_STRATEGY]
    point = frontier.point_result(curve, "budget_pct", 1.0)
    assert point.strategy == curve
    assert point == frontier.score_joint(1.0, **kwargs)


def test_one_allocation_serves_every_budget() -> None:
    # joint_allocation prices the candidates once; at each budget it gives what allocate_joint gives
    allocation = joint_allocation([_vm(), _vm()], TYPES, memory_weight=10.0)
    for budget in (0.0, 0.03, 0.06, 0.2, 1.0):
        assert allocation(budget) == allocate_joint([_vm(), _vm()], TYPES, budget_fraction=budget, memory_weight=10.0)
    with pytest.raises(ValueError, match="budget_fraction"):
        allocation(-0.01)


def test_day_peak_memory_gives_each_reading_its_days_largest() -> None:
    day = SECONDS_PER_DAY
    ts = np.array([0.1, 0.5, 0.9, 1.2, 1.8, 2.5, 0.3]) * day  # the last reading out of order, back on day 0
    mem = np.array([1.0, 3.0, np.nan, 2.0, 1.0, np.nan, 4.0])
    assert np.array_equal(day_peak_memory(ts, mem), [4.0, 4.0, np.nan, 2.0, 2.0, np.nan, 4.0], equal_nan=True)
    assert np.isnan(day_peak_memory(ts[:1], np.array([np.nan]))).all()
    assert len(day_peak_memory(np.empty(0), np.empty(0))) == 0


def test_memory_counted_in_days_gives_up_the_one_long_peak_not_the_daily_one() -> None:
    # Ten days, hourly. "daily" crosses 1 GiB for one hour every day (10 intervals over, on 10 days); "once"
    # stays above it for 20 hours on one day (20 intervals over, on 1 day). Counted in intervals the daily
    # crossings look cheaper to give up; counted in days (every interval of a day whose peak is over) they
    # are the risk that comes back, and the budget gives up the one long peak instead.
    hours = np.arange(240)
    ts = hours * 3600.0
    low, high = 0.5 * GIB, 2.0 * GIB
    daily = np.where(hours % 24 == 12, high, low)
    once = np.where((hours >= 50) & (hours < 70), high, low)
    cpu = np.full(240, 0.5)
    types = [MachineType("small", 1, GIB, 0.01, "EUR"), MachineType("big", 1, 4 * GIB, 0.02, "EUR")]
    by_interval = [JointVm(cpu, daily), JointVm(cpu, once)]
    by_day = [JointVm(cpu, day_peak_memory(ts, daily)), JointVm(cpu, day_peak_memory(ts, once))]
    assert list(joint_candidates(by_interval[0], types, 1.0).risks) == [10, 0]
    assert list(joint_candidates(by_interval[1], types, 1.0).risks) == [20, 0]
    assert list(joint_candidates(by_day[0], types, 1.0).risks) == [240, 0]
    assert list(joint_candidates(by_day[1], types, 1.0).risks) == [24, 0]
    # a budget of 6 % of the 480 intervals (28.8) buys one shortfall, not both
    assert [t.name for t in allocate_joint(by_interval, types, budget_fraction=0.06, memory_weight=1.0)] == [
        "small", "big"]
    assert [t.name for t in allocate_joint(by_day, types, budget_fraction=0.06, memory_weight=1.0)] == [
        "big", "small"]


def test_with_headroom_raises_each_reading_by_its_share() -> None:
    mem = np.array([1.0, np.nan, 2.0]) * GIB
    assert np.array_equal(with_headroom(mem, 0.1), np.array([1.1, np.nan, 2.2]) * GIB, equal_nan=True)
    assert with_headroom(mem, 0.0) is mem  # nothing to raise: the readings as they are
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="headroom must be >= 0"):
            with_headroom(mem, bad)


def test_memory_headroom_counts_the_near_misses_as_days_over() -> None:
    # Ten days, hourly. "near" peaks at 0.95 GiB every day, 5 % under the 1 GiB type, never over it; "over"
    # crossed 1 GiB (1.2 GiB) on its first day only. Counted as the readings are, "near" risks nothing on the
    # small type and the budget gives it that type; with 10 % headroom its every day is a near miss, counted
    # over, and a budget that buys one shortfall gives the small type to the VM whose one day over is old.
    hours = np.arange(240)
    ts = hours * 3600.0
    near = np.where(hours % 24 == 12, 0.95 * GIB, 0.5 * GIB)
    over = np.where(hours == 12, 1.2 * GIB, 0.5 * GIB)
    cpu = np.full(240, 0.5)
    types = [MachineType("small", 1, GIB, 0.01, "EUR"), MachineType("big", 1, 4 * GIB, 0.02, "EUR")]
    weights = recency_weights(ts, ts[-1], JOINT_RECENT_HALF_LIFE_DAYS)

    def fleet(headroom: float) -> list[JointVm]:
        return [JointVm(cpu, with_headroom(day_peak_memory(ts, m), headroom), weights) for m in (near, over)]

    plain, spared = fleet(0.0), fleet(0.1)
    assert joint_candidates(plain[0], types, 1.0).risks[0] == 0
    assert joint_candidates(spared[0], types, 1.0).risks[0] == pytest.approx(weights.sum())
    assert joint_candidates(spared[1], types, 1.0).risks[0] == pytest.approx(weights[:24].sum())
    budget = 1.5 * float(weights[:24].sum()) / training_intervals(spared)  # room for the old day, not every day
    assert [t.name for t in allocate_joint(plain, types, budget_fraction=budget, memory_weight=1.0)] == [
        "small", "small"]
    assert [t.name for t in allocate_joint(spared, types, budget_fraction=budget, memory_weight=1.0)] == [
        "big", "small"]


def test_a_negative_memory_headroom_is_refused(trace_dir: Path) -> None:
    frontier = Frontier(read_bitbrains_dir(trace_dir), CsvPriceCatalogue(backtest_types()), train_days=14)
    with pytest.raises(ValueError, match="headroom must be >= 0"):
        frontier.score_joint(1.0, memory_headroom=-0.1)
