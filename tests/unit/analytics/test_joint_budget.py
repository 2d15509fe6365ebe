"""The joint fleet budget (``rightsizer-joint``): vCPUs and memory chosen together by one price of risk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import JOINT_STRATEGY, SWEEP_KNOBS, Frontier
from analytics.rightsizing.budget import JointVm, allocate_joint, joint_candidates, joint_price_path
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


def test_the_evaluation_window_cannot_move_the_joint_allocation(trace_dir: Path) -> None:
    # Honest evaluation: the allocation reads the training window only. Shuffle (and scale) every VM's
    # evaluation arrays: the types chosen stay, while the overruns scored against them change.
    catalogue = CsvPriceCatalogue(backtest_types())
    frontier = Frontier(read_bitbrains_dir(trace_dir), catalogue, train_days=14)
    budgets = SWEEP_KNOBS[JOINT_STRATEGY][1]
    before = [frontier.score_joint(b) for b in budgets]
    rng = np.random.default_rng(7)
    moved = Frontier(read_bitbrains_dir(trace_dir), catalogue, train_days=14)
    moved.splits = [(vm, replace(sp, cpu_vcpus=rng.permutation(sp.cpu_vcpus) * 3.0,
                                 mem_used_bytes=rng.permutation(sp.mem_used_bytes) * 3.0))
                    for vm, sp in moved.splits]
    after = [moved.score_joint(b) for b in budgets]
    for b, a in zip(before, after, strict=True):
        assert [r.recommended_type for r in b.per_vm] == [r.recommended_type for r in a.per_vm]
    assert any(b.cpu_overrun_intervals != a.cpu_overrun_intervals for b, a in zip(before, after, strict=True))
