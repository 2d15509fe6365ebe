"""Our profiles on the dev trace (Bitbrains Rnd 2013-8, 40 VMs) at every training split: on the frontier.

What issue 25 asks of the profiles, checked on the sweep's own points (``backtest --sweep``): no anchor
sweep point (aws, krr, vpa across their knobs) beats any profile ("beats" = at least as good on savings,
CPU overrun and memory overrun and strictly better on one); the default (balanced) weakly dominates
AWS's rule and saves more; and the two points more over AWS the issue asked for are out of reach for any
strategy that never sizes memory below the maximum used, as the hindsight bound shows at 7 and 10 days.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.catalogue import load_catalogue
from analytics.frontier import (
    JOINT_DAYS_STRATEGY,
    JOINT_HEADROOM_STRATEGY,
    JOINT_RECENT_HALF_LIFE_DAYS,
    JOINT_RECENT_STRATEGY,
    JOINT_STRATEGY,
    PEAKS_TRADE_STRATEGY,
    SWEEP_KNOBS,
    SWEEP_STRATEGIES,
    Frontier,
    SweepPoint,
    _point,
    dominates,
    knob_settings,
)
from analytics.hindsight import (
    hindsight_bound,
    max_memory_used,
    memory_evidence_needed,
    memory_level_recurrence,
    memory_trims_needed,
)
from analytics.rightsizing.settings import PROFILES, RightsizerSettings
from analytics.traces import read_bitbrains_dir
from bench.frontier_table import ANCHORS, beats, guarantee_gap

pytestmark = pytest.mark.integration

SPLITS = (7, 10, 14, 21)


@pytest.fixture(scope="module")
def fronts(bitbrains_dir: Path) -> dict[int, Frontier]:
    catalogue = load_catalogue()
    vms = read_bitbrains_dir(bitbrains_dir)
    return {d: Frontier(vms, catalogue, train_days=d, currency=catalogue.currency) for d in SPLITS}


@pytest.fixture(scope="module")
def points(fronts: dict[int, Frontier]) -> dict[int, dict[str, list[SweepPoint]]]:
    """Per split: every anchor sweep point, and each profile's point (as ``backtest --sweep`` scores them)."""
    out = {}
    for d, frontier in fronts.items():
        anchors = [_point(frontier.score(s, knob_settings(s, knob, v)), knob, v)
                   for s in ANCHORS for knob, values in (SWEEP_KNOBS[s],) for v in values]
        profiles = [_point(frontier.score("rightsizer", knob_settings("rightsizer", "profile", p)), "profile", p)
                    for p in PROFILES]
        out[d] = {"anchors": anchors, "profiles": profiles}
    return out


def _aws(split: dict[str, list[SweepPoint]]) -> SweepPoint:
    return next(p for p in split["anchors"] if p.strategy == "aws" and p.value == 0.2)


def _profile(split: dict[str, list[SweepPoint]], name: str) -> SweepPoint:
    return next(p for p in split["profiles"] if p.value == name)


@pytest.mark.parametrize("days", SPLITS)
def test_no_anchor_sweep_point_beats_any_profile(points: dict[int, dict[str, list[SweepPoint]]],
                                                 days: int) -> None:
    split = points[days]
    assert len(split["anchors"]) == 14 and len(split["profiles"]) == 3
    beaten = [(a.strategy, a.value, p.value) for p in split["profiles"] for a in split["anchors"] if beats(a, p)]
    assert beaten == []


@pytest.mark.parametrize("days", SPLITS)
def test_balanced_weakly_dominates_aws_and_saves_more(points: dict[int, dict[str, list[SweepPoint]]],
                                                      days: int) -> None:
    aws, balanced = _aws(points[days]), _profile(points[days], "balanced")
    assert balanced.cpu_overrun_pct <= aws.cpu_overrun_pct
    assert balanced.mem_overrun_pct <= aws.mem_overrun_pct
    # +0.31 / +1.22 / +1.79 / +1.32 points at 7 / 10 / 14 / 21 days (docs/backtest.md)
    assert balanced.savings_pct > aws.savings_pct + 0.25


@pytest.mark.parametrize("days", SPLITS)
def test_profiles_order_risk_and_savings(points: dict[int, dict[str, list[SweepPoint]]], days: int) -> None:
    cons, bal, agg = (_profile(points[days], p) for p in ("conservative", "balanced", "aggressive"))
    assert cons.cpu_overrun_pct <= bal.cpu_overrun_pct <= agg.cpu_overrun_pct
    assert cons.savings_pct <= bal.savings_pct <= agg.savings_pct
    aws = _aws(points[days])
    assert max(p.mem_overrun_pct for p in (cons, bal, agg)) <= aws.mem_overrun_pct


@pytest.mark.parametrize("days", SPLITS)
def test_two_points_over_aws_need_memory_below_the_maximum_used(
        fronts: dict[int, Frontier], points: dict[int, dict[str, list[SweepPoint]]], days: int) -> None:
    # The oracle chooses every VM's type knowing its evaluation window, within aws's CPU and memory overrun
    # intervals. Holding each VM's maximum memory used (as every profile does) it gains under 2 points at
    # 7 and 10 days: no such rule can save 2 points more than aws there at no more overrun; keeping aws's vCPUs
    # too, at 21 days as well.
    frontier, types = fronts[days], load_catalogue().eligible()
    used = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, memory_at_least_used=True)
    free = hindsight_bound(frontier, types, strategy="aws", memory_rule=False)
    for oracle in (used.oracle, free.oracle):
        assert oracle.cpu_overrun_intervals <= used.reference.cpu_overrun_intervals
        assert oracle.mem_overrun_intervals <= used.reference.mem_overrun_intervals
    assert used.reference.savings_pct == pytest.approx(_aws(points[days]).savings_pct)
    balanced = _profile(points[days], "balanced")
    assert balanced.savings_pct <= used.oracle.savings_pct + 1e-9 <= free.oracle.savings_pct + 2e-9
    expected_used = {7: 1.528, 10: 1.764, 14: 2.255, 21: 2.067}[days]
    assert used.headroom_pct == pytest.approx(expected_used, abs=0.001)
    if days in (7, 10):
        assert used.headroom_pct < 2.0
        # which VMs it takes: at 7 days every allocation reaching +2 sizes VM 34 below its maximum used (9.34 GiB
        # in training: 8 GiB at most, a level its daily peaks passed on 2 of its 8 training days) and one more VM,
        # as one VM trimmed alone gives at most +1.80; at 10 days VM 22 or VM 34 trimmed alone would do
        needs = memory_trims_needed(frontier, types, strategy="aws")
        name = [vm.name for vm, _ in frontier.splits]
        assert needs.best_single is not None
        assert [(name[i], round(g, 3)) for i, g in needs.required] == {7: [("34", 1.976)], 10: []}[days]
        assert (name[needs.best_single[0]], round(needs.best_single[1], 3)) == {7: ("34", 1.802),
                                                                                 10: ("22", 2.123)}[days]
    # balanced's guarantee against aws: per VM no fewer vCPUs than aws's type (or its allocation, where fewer)
    # and memory at or above the maximum used. balanced keeps it, so the oracle held to it saves at least as
    # much as balanced; and held to it even the oracle gains under 2 points at 7, 10 and 21 days
    kept = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, memory_at_least_used=True,
                           vcpus_at_least_reference=True)
    assert balanced.savings_pct <= kept.oracle.savings_pct + 1e-9 <= used.oracle.savings_pct + 2e-9
    assert kept.headroom_pct == pytest.approx({7: 1.334, 10: 1.655, 14: 2.146, 21: 1.850}[days], abs=0.001)
    assert (kept.headroom_pct < 2.0) is (days != 14)
    # the vCPU half of the guarantee alone, memory sized at will: at 7 days no rule giving every VM at least
    # aws's vCPUs reaches +2 however it sizes memory, so there +2 takes CPU below aws's rule on some VM too
    vcpus = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, vcpus_at_least_reference=True)
    assert kept.oracle.savings_pct <= vcpus.oracle.savings_pct + 1e-9 <= free.oracle.savings_pct + 2e-9
    assert vcpus.headroom_pct == pytest.approx({7: 1.848, 10: 2.955, 14: 4.045, 21: 3.834}[days], abs=0.001)
    assert (vcpus.headroom_pct < 2.0) is (days == 7)


@pytest.mark.parametrize("days", (7, 10))
def test_two_points_over_aws_bet_against_levels_the_vms_memory_passed(fronts: dict[int, Frontier],
                                                                      days: int) -> None:
    # How far below what it saw a rule must size memory to gain 2 points over aws at its overruns, knowing
    # the evaluation window: with each VM's type holding its 2nd largest daily memory peak the oracle gains
    # +1.659 at 7 days, under 2, so every allocation reaching +2 there sizes some VM below a level its memory
    # passed on 2 or more of its 8 training days; at 10 days one day will do (+2.397 at the 2nd peak)
    frontier, types = fronts[days], load_catalogue().eligible()
    evidence = memory_evidence_needed(frontier, types, strategy="aws", target_pct=2.0)
    assert [round(g, 3) for g in evidence.gains_pct] == {7: [1.528, 1.659, 2.104], 10: [1.764, 2.397]}[days]
    assert evidence.days_passed == {7: 2, 10: 1}[days]
    # and in this trace such levels mostly came back: of the (VM, catalogue memory size) pairs whose training
    # window passed the size on 1, 2, 3, or 4 and more days, these many passed it again after training
    recurrence = memory_level_recurrence(frontier, types, frontier.lookback_days or 14.0)
    assert [(r.passed_again, r.pairs) for r in recurrence] == {
        7: [(3, 4), (8, 9), (2, 2), (58, 59)], 10: [(5, 8), (6, 8), (2, 3), (59, 60)]}[days]


def test_at_14_days_the_gain_left_under_the_guarantee_is_three_vms_one_memory_step_over(
        fronts: dict[int, Frontier], points: dict[int, dict[str, list[SweepPoint]]]) -> None:
    # At 14 days the oracle keeping balanced's guarantee gains +2.146 over aws, balanced +1.579. All of the
    # difference is three VMs whose need lies just over a memory step while everything they used, in training
    # and after, fits the step below: the oracle takes that step, balanced the next one up.
    frontier, types = fronts[14], load_catalogue().eligible()
    kept = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, memory_at_least_used=True,
                           vcpus_at_least_reference=True)
    gap = guarantee_gap(frontier, kept.oracle)
    assert [(g["vm"], g["balanced_type"], g["oracle_type"]) for g in gap] == [
        ("28", "b3i.1", "m1.1"), ("8", "s1.2", "t1.2"), ("37", "m1.1", "g1.1")]
    evaluated = {vm.name: split.mem_used_bytes for vm, split in frontier.splits}
    for g in gap:
        assert g["oracle_memory_gib"] * 2 == g["balanced_memory_gib"]  # one step down
        assert g["max_used_gib"] <= g["oracle_memory_gib"] < g["balanced_need_gib"]
        assert evaluated[g["vm"]].max() <= g["oracle_memory_gib"] * 1024**3  # and no overrun after training
    balanced = _profile(points[14], "balanced")
    assert sum(g["gain_pt"] for g in gap) == pytest.approx(kept.oracle.savings_pct - balanced.savings_pct, abs=0.002)
    # VM 28's need is its maximum + 15 % (the cap; its daily peaks spread widely), 8.17 GiB over m1.1's 8: a cap
    # below 12.6 % would take the step. But the VMs on the other edge of a step are near too: below 10.7 % VM 35
    # (3.62 GiB used) and VM 40 (0.90 GiB) drop onto 4 and 1 GiB and overrun where aws does not. A cap is safe
    # on this trace only in between, a window three VMs set, so no profile takes it (docs/backtest.md).
    assert gap[0]["balanced_need_gib"] == pytest.approx(gap[0]["max_used_gib"] * 1.15, abs=0.002)
    aws = _aws(points[14])
    for cap, holds in ((0.12, True), (0.10, False)):
        rule = RightsizerSettings.model_validate({"memory_peak_min_headroom_fraction": 0.0,
                                                  "memory_headroom_fraction": cap})
        r = frontier.score("rightsizer", rule)
        assert dominates(r, aws) is holds, cap
        if holds:
            assert r.savings_pct == pytest.approx(kept.oracle.savings_pct, abs=1e-6)


def test_every_anchor_point_is_beaten(fronts: dict[int, Frontier]) -> None:
    # The whole sweep (backtest --sweep, every curve of ours): each aws, krr and vpa point at every split is
    # beaten by a point of ours (docs/backtest.md); the memory-trading curve alone beats VPA at P75 with 10 days,
    # the joint budget with memory counted in days alone VPA at P50 with 10, and with memory headroom alone VPA
    # at P50 with 14.
    unbeaten, by_trade, by_joint, by_recent, by_days, by_headroom = set(), set(), set(), set(), set(), set()
    for days, frontier in fronts.items():
        points = frontier.sweep(SWEEP_STRATEGIES)
        ours = [p for p in points if p.strategy not in ANCHORS]
        for a in (p for p in points if p.strategy in ANCHORS):
            by = {o.strategy for o in ours if beats(o, a)}
            if not by:
                unbeaten.add((days, a.strategy, a.value))
            if by == {PEAKS_TRADE_STRATEGY}:
                by_trade.add((days, a.strategy, a.value))
            if JOINT_STRATEGY in by:
                by_joint.add((days, a.strategy, a.value))
            if JOINT_RECENT_STRATEGY in by:
                by_recent.add((days, a.strategy, a.value))
            if JOINT_DAYS_STRATEGY in by:
                by_days.add((days, a.strategy, a.value, len(by)))
            if JOINT_HEADROOM_STRATEGY in by:
                by_headroom.add((days, a.strategy, a.value, len(by)))
    assert unbeaten == set()
    # with memory headroom: at 14 days VPA P50 on its own; elsewhere points the rest beats too
    assert {(d, s, v) for d, s, v, n in by_headroom if n == 1} == {(14, "vpa", 50.0)}
    assert {(d, s, v) for d, s, v, _ in by_headroom if d < 21} == {
        (7, "vpa", 50.0), (7, "vpa", 90.0), (10, "vpa", 99.0), (14, "vpa", 50.0)}
    assert {(s, v) for d, s, v, _ in by_headroom if d == 21} == {
        *(("aws", v) for v in SWEEP_KNOBS["aws"][1]), *(("krr", v) for v in SWEEP_KNOBS["krr"][1]), ("vpa", 95.0)}
    assert by_trade == {(10, "vpa", 75.0)}
    # with memory counted in days: VPA's middle points at 7-14 days, at 10 days P50 on its own (94.101 / 3.5313 /
    # 0.1681 % at 6 %, against 94.082 / 3.5313 / 0.1694 %: 0.02 points and 3 memory intervals, a narrow win the
    # halves, not this trace, have to bear out), and at 21 days every aws and krr point
    assert {(d, s, v) for d, s, v, _ in by_days if d < 21} == {
        (7, "vpa", 50.0), (7, "vpa", 75.0), (7, "vpa", 90.0), (10, "vpa", 50.0), (10, "vpa", 95.0),
        (10, "vpa", 99.0), (14, "vpa", 75.0), (14, "vpa", 90.0)}
    assert {(d, s, v) for d, s, v, n in by_days if n == 1} == {(10, "vpa", 50.0)}
    assert {(s, v) for d, s, v, _ in by_days if d == 21} == {
        *(("aws", v) for v in SWEEP_KNOBS["aws"][1]), *(("krr", v) for v in SWEEP_KNOBS["krr"][1])}
    # the joint budget chooses vCPUs and memory together: it beats VPA's middle points at 7-14 days, and at
    # 21 days every aws and krr point and VPA at P95
    assert {(d, s, v) for d, s, v in by_joint if d < 21} == {
        (7, "vpa", 50.0), (7, "vpa", 75.0), (7, "vpa", 90.0), (10, "vpa", 90.0), (10, "vpa", 95.0),
        (10, "vpa", 99.0), (14, "vpa", 75.0), (14, "vpa", 90.0), (14, "vpa", 95.0), (14, "vpa", 99.0)}
    assert {(s, v) for d, s, v in by_joint if d == 21} == {
        *(("aws", v) for v in SWEEP_KNOBS["aws"][1]), *(("krr", v) for v in SWEEP_KNOBS["krr"][1]), ("vpa", 95.0)}
    # with recent intervals counted more it beats no point the rest leaves, but at 21 days every anchor point
    # (forgetting old peaks, as VPA does); at 10 days only VPA's P99 of the plain budget's three
    assert {(d, s, v) for d, s, v in by_recent if d < 21} == {
        (7, "vpa", 50.0), (7, "vpa", 75.0), (7, "vpa", 90.0), (10, "vpa", 99.0), (14, "vpa", 75.0),
        (14, "vpa", 90.0), (14, "vpa", 95.0), (14, "vpa", 99.0)}
    assert {(s, v) for d, s, v in by_recent if d == 21} == {(a, v) for a in ANCHORS for v in SWEEP_KNOBS[a][1]}


@pytest.mark.parametrize("curve", (JOINT_STRATEGY, JOINT_RECENT_STRATEGY, JOINT_DAYS_STRATEGY,
                                   JOINT_HEADROOM_STRATEGY))
def test_the_joint_budget_buys_savings_with_risk_in_order(fronts: dict[int, Frontier], curve: str) -> None:
    # a larger budget of (weighted) training intervals never costs more; from nothing risked in training to
    # 20 % the savings rise at every split
    for frontier in fronts.values():
        points = [frontier.point(curve, "budget_pct", b) for b in SWEEP_KNOBS[curve][1]]
        savings = [p.savings_pct for p in points]
        assert savings == sorted(savings) and savings[-1] > savings[0] + 5


@pytest.mark.parametrize("half_life", [None, JOINT_RECENT_HALF_LIFE_DAYS])
def test_the_joint_path_holds_every_fleet_of_the_budget_grid(fronts: dict[int, Frontier],
                                                            half_life: float | None) -> None:
    # joint_path walks the Lagrangian path from the cheapest fleet to the safest; each budget of the sweep's
    # grid lands on one of its fleets
    frontier = fronts[14]
    path = frontier.joint_path(half_life_days=half_life)
    savings = [r.savings_pct for r in path]
    assert savings == sorted(savings, reverse=True) and len(path) > 20
    fleets = [[v.recommended_type for v in r.per_vm] for r in path]
    for budget in SWEEP_KNOBS[JOINT_STRATEGY][1]:
        point = frontier.score_joint(budget, half_life_days=half_life)
        assert [v.recommended_type for v in point.per_vm] in fleets


@pytest.mark.parametrize("days", (10, 14))
def test_no_fleet_of_the_joint_budgets_in_intervals_reaches_vpa_p50_at_10_or_14_days(fronts: dict[int, Frontier],
                                                                                    days: int) -> None:
    # Not a bound, the edge of the joint budget with memory counted in intervals: every distinct allocation of
    # its Lagrangian path (any budget, not only the sweep's grid), plain or with recent intervals counted more
    # (half-lives 1-5 days), at memory weights 3 to 100, is worse than VPA P50 on some axis; fleets that save
    # more at no more CPU overrun exist, and all of them overrun memory more. (Counted in days it reaches the
    # 10-day point, and in days with memory headroom the 14-day one: the next two tests.)
    frontier = fronts[days]
    vpa = frontier.score("vpa", knob_settings("vpa", "target_percentile", 50.0))
    richer_at_vpa_cpu = 0
    for half_life in (None, 1.0, 2.0, 3.0, 5.0):
        for weight in (3.0, 10.0, 30.0, 100.0):
            for fleet in frontier.joint_path(weight, half_life):
                assert not dominates(fleet, vpa)
                if fleet.savings_pct > vpa.savings_pct and fleet.cpu_overrun_intervals <= vpa.cpu_overrun_intervals:
                    assert fleet.mem_overrun_intervals > vpa.mem_overrun_intervals
                    richer_at_vpa_cpu += 1
    assert richer_at_vpa_cpu > 0


def test_memory_counted_in_days_beats_vpa_p50_at_10_days_at_every_weight_and_not_at_14(
        fronts: dict[int, Frontier]) -> None:
    # The 10-day win of rightsizer-joint-days is one fleet (94.101 % / 7,920 CPU / 377 memory overrun intervals
    # against VPA's 94.082 % / 7,920 / 380) that the budget in days reaches at every weight from 0.3 to 10, not
    # a weight picked for it; at 14 days no fleet of that family, plain or with a 2-day half-life, reaches VPA.
    for days, reached in ((10, True), (14, False)):
        frontier = fronts[days]
        vpa = frontier.point("vpa", "target_percentile", 50.0)
        for half_life in (None, 2.0):
            for weight in (0.3, 1.0, 3.0, 10.0):
                fleets = [_point(r, "budget_pct", 0.0)
                          for r in frontier.joint_path(weight, half_life, memory_by_day=True)]
                assert any(beats(f, vpa) for f in fleets) is (reached and half_life is None), (days, half_life, weight)


def test_memory_headroom_beats_vpa_p50_at_14_days_at_four_budgets_and_every_weight(
        fronts: dict[int, Frontier]) -> None:
    # rightsizer-joint-headroom at 14 days: VPA P50 (93.652 % / 7,984 CPU / 225 memory overrun intervals) is beaten
    # at four budgets of the sweep's grid, from 93.652 % / 7,984 / 222 at 3 % to 94.286 % / 7,984 / 225 at 6 %;
    # the path in days with the same half-life and no headroom reaches no such fleet (the test above), so it is
    # the headroom that does it, and at every memory weight from 0.3 to 10, not at one picked for it.
    frontier = fronts[14]
    vpa = frontier.point("vpa", "target_percentile", 50.0)
    assert (vpa.savings_pct, frontier.score("vpa", knob_settings("vpa", "target_percentile", 50.0))
            .mem_overrun_intervals) == (pytest.approx(93.652, abs=0.001), 225)
    winners = [b for b in SWEEP_KNOBS[JOINT_HEADROOM_STRATEGY][1]
               if beats(frontier.point(JOINT_HEADROOM_STRATEGY, "budget_pct", b), vpa)]
    assert winners == [3.0, 4.0, 5.0, 6.0]
    best = frontier.point_result(JOINT_HEADROOM_STRATEGY, "budget_pct", 6.0)
    assert (round(best.savings_pct, 3), best.cpu_overrun_intervals, best.mem_overrun_intervals) == (94.286, 7984, 225)
    for weight in (0.3, 1.0, 3.0, 10.0):
        fleets = [_point(r, "budget_pct", 0.0) for r in frontier.joint_path(
            weight, JOINT_RECENT_HALF_LIFE_DAYS, memory_by_day=True, memory_headroom=0.1)]
        assert any(beats(f, vpa) for f in fleets), weight


@pytest.mark.parametrize("days", (10, 14))
def test_vpa_p50_at_10_and_14_days_is_below_its_hindsight_bound(fronts: dict[int, Frontier], days: int) -> None:
    # Not a proof that it cannot be beaten: the oracle at VPA P50's own overrun intervals saves more than it
    # (95.346 / 95.035 % against 94.082 / 93.652 %), so a rule seeing only the training window might (at 10 days
    # rightsizer-joint-days does, by a little; at 14 days rightsizer-joint-headroom).
    frontier = fronts[days]
    settings = knob_settings("vpa", "target_percentile", 50.0)
    bound = hindsight_bound(frontier, load_catalogue().eligible(), strategy="vpa", settings=settings,
                            memory_rule=False)
    assert bound.oracle.cpu_overrun_intervals <= bound.reference.cpu_overrun_intervals
    assert bound.oracle.mem_overrun_intervals <= bound.reference.mem_overrun_intervals
    assert bound.oracle.savings_pct == pytest.approx({10: 95.346, 14: 95.035}[days], abs=0.001)
    assert bound.oracle.savings_pct > bound.reference.savings_pct
    # What beating them takes. VPA P50 sizes 13 of the 40 VMs' memory below their maximum used; no rule that
    # keeps every VM at or above it can save as much at its overruns, even knowing the evaluation window ...
    lookback = frontier.lookback_days or settings.lookback_days
    trimmed = [rt.memory_bytes < max_memory_used(sp.history.window(lookback).memory_used_bytes) - 1
               for (_, sp), r in zip(frontier.splits, bound.reference.per_vm, strict=True)
               if r.recommended_type is not None and (rt := load_catalogue().get(r.recommended_type)) is not None]
    assert (sum(trimmed), len(trimmed)) == (13, 40)
    used = hindsight_bound(frontier, load_catalogue().eligible(), strategy="vpa", settings=settings,
                           memory_rule=False, memory_at_least_used=True)
    assert used.oracle.savings_pct == pytest.approx({10: 89.993, 14: 89.759}[days], abs=0.001)
    assert used.oracle.savings_pct < bound.reference.savings_pct - 3.5
    # ... and to save as much at its CPU overrun the oracle overruns memory in 145 of its 380 intervals (60 of
    # 225): a rule that beats it trims memory and lands its overruns in between
    assert (bound.least_mem_overrun_intervals, bound.reference.mem_overrun_intervals) == {
        10: (145, 380), 14: (60, 225)}[days]


@pytest.mark.parametrize("days", SPLITS)
def test_the_frontier_tables_in_the_docs_are_what_the_code_gives(fronts: dict[int, Frontier], days: int) -> None:
    # docs/backtest.md carries `python -m bench.frontier_table TRACE --markdown` verbatim: a change of a rule that
    # moves a figure fails here until the docs are regenerated
    from bench.frontier_table import markdown, split_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "backtest.md").read_text(encoding="utf-8")
    block = markdown(split_table(fronts[days], load_catalogue().eligible()))
    assert block.startswith(f"**{days} training days: ")
    assert block in docs, block
