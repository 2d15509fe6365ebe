"""The savings-risk frontier per training split: which anchor sweep points a point of ours beats.

    python -m bench.frontier_table TRACE_DIR [--splits 7,10,14,21] [--json | --markdown]

For every split, every ``aws``/``krr``/``vpa`` sweep point (``backtest --sweep``'s knobs) is listed with the
first point of ours that beats it ("beaten" = at least as good on savings, CPU overrun and memory overrun
and strictly better on one; a tie does not count), and each curve of ours that does. An anchor point no
point of ours beats gets the hindsight bound at its own overruns (:mod:`analytics.hindsight`, CPU and
memory chosen knowing the evaluation window, an exact knapsack; only where that is too large, the looser bound with
only memory overruns limited): if the oracle saves no more than the anchor, nothing can beat it; otherwise
the gap says how much a strategy seeing only the training window could at most still win there. Two more
figures say what winning it takes: the same bound when no VM's memory may be sized below its maximum used
(below the anchor: only a rule that trims memory can beat it), and the fewest memory overrun intervals at
which even the oracle reaches the anchor's savings at its CPU overrun. Then each
profile of ours with the anchor points that beat it and its difference to ``aws`` (P99.5 + 20 %), and the
default against ``aws`` with three hindsight bounds at ``aws``'s own overrun intervals: the most any strategy
could save over it knowing the evaluation window, the same when memory is never sized below each VM's maximum
used (as every profile of ours sizes it), and when besides no VM gets fewer vCPUs than ``aws``'s type gives it
(or than its allocation, where that is fewer): what ``balanced``'s guarantee against ``aws`` leaves, and on
which VMs that last oracle picks another type than ``balanced`` (both types' memory, the VM's maximum used and
balanced's need): where the gain balanced leaves under its own guarantee lies. A fourth bound keeps only the
vCPU half of that guarantee and sizes memory at will. Where two points more than ``aws`` need memory below the
maximum used, which VMs every allocation reaching them trims, and below a level that VM's memory passed on how
many days of its window; then, for every split, how often levels passed on 1, 2, 3 or more days came back after
training.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from analytics.backtest import StrategyResult
from analytics.catalogue import load_catalogue
from analytics.frontier import (
    JOINT_DAYS_STRATEGY,
    JOINT_HEADROOM_STRATEGY,
    JOINT_RECENT_STRATEGY,
    JOINT_STRATEGY,
    PEAKS_HEADROOM_STRATEGY,
    PEAKS_RISK_STRATEGY,
    PEAKS_STRATEGY,
    PEAKS_TRADE_STRATEGY,
    RISK_STRATEGY,
    SWEEP_KNOBS,
    SWEEP_STRATEGIES,
    Frontier,
    SweepPoint,
    knob_settings,
)
from analytics.hindsight import (
    hindsight_bound,
    max_memory_used,
    memory_evidence_needed,
    memory_level_recurrence,
    memory_trims_needed,
)
from analytics.traces import read_bitbrains_dir
from core.units import GIB

ANCHORS = ("aws", "krr", "vpa")


def beats(a: SweepPoint, b: SweepPoint) -> bool:
    """``a`` at least as good as ``b`` on all three axes and strictly better on one."""
    at_least = (a.savings_pct >= b.savings_pct and a.cpu_overrun_pct <= b.cpu_overrun_pct
                and a.mem_overrun_pct <= b.mem_overrun_pct)
    strictly = (a.savings_pct > b.savings_pct or a.cpu_overrun_pct < b.cpu_overrun_pct
                or a.mem_overrun_pct < b.mem_overrun_pct)
    return at_least and strictly


def _name(p: SweepPoint) -> str:
    return f"{p.strategy} {p.knob}={p.value}"


def _axes(p: SweepPoint) -> str:
    return f"{p.savings_pct:7.3f} % / {p.cpu_overrun_pct:.4f} % / {p.mem_overrun_pct:.4f} %"


def split_table(frontier: Frontier, types: Any) -> dict[str, Any]:
    """One split: the anchors' rows, our profiles' rows, and the default against aws."""
    points = frontier.sweep(SWEEP_STRATEGIES)
    ours = [p for p in points if p.strategy not in ANCHORS]
    rows = []
    for a in (p for p in points if p.strategy in ANCHORS):
        by = [o for o in ours if beats(o, a)]
        row: dict[str, Any] = {"anchor": _name(a), "savings_pct": round(a.savings_pct, 3),
                               "cpu_overrun_pct": round(a.cpu_overrun_pct, 4),
                               "mem_overrun_pct": round(a.mem_overrun_pct, 4),
                               "beaten_by": _name(by[0]) if by else None,
                               "curves_beating": sorted({o.strategy for o in by})}
        if not by:
            settings = knob_settings(a.strategy, a.knob, a.value)
            try:
                bound = hindsight_bound(frontier, types, strategy=a.strategy, settings=settings, memory_rule=False)
                row["hindsight_savings_pct"] = round(bound.oracle.savings_pct, 3)
                row["hindsight_gap_pct"] = round(bound.headroom_pct, 3)
                row["mem_overrun_intervals"] = bound.reference.mem_overrun_intervals
                row["least_mem_overrun_intervals_to_beat"] = bound.least_mem_overrun_intervals
                used = hindsight_bound(frontier, types, strategy=a.strategy, settings=settings, memory_rule=False,
                                       memory_at_least_used=True)
                row["hindsight_memory_at_least_used_savings_pct"] = round(used.oracle.savings_pct, 3)
            except ValueError:  # the exact knapsack is too large at this many CPU overrun intervals:
                # bound with memory overruns limited alone (looser: the oracle may overrun CPU more)
                bound = hindsight_bound(frontier, types, strategy=a.strategy, memory_rule=False, relax_cpu=True,
                                        settings=knob_settings(a.strategy, a.knob, a.value))
                row["hindsight_memory_only_savings_pct"] = round(bound.oracle.savings_pct, 3)
                row["hindsight_gap_pct"] = round(bound.headroom_pct, 3)
        rows.append(row)
    profiles: list[dict[str, Any]] = [{"profile": p.value, "savings_pct": round(p.savings_pct, 3),
                                       "cpu_overrun_pct": round(p.cpu_overrun_pct, 4),
                                       "mem_overrun_pct": round(p.mem_overrun_pct, 4),
                                       "beaten_by": [_name(a) for a in points if a.strategy in ANCHORS and beats(a, p)]}
                                      for p in points if p.knob == "profile"]
    balanced = next(p for p in points if p.knob == "profile" and p.value == "balanced")
    aws = next(p for p in points if p.strategy == "aws" and p.value == 0.2)
    for row, p in zip(profiles, (p for p in points if p.knob == "profile"), strict=True):
        row["vs_aws"] = {"savings_pt": round(p.savings_pct - aws.savings_pct, 3),
                         "cpu_overrun_pt": round(p.cpu_overrun_pct - aws.cpu_overrun_pct, 4),
                         "mem_overrun_pt": round(p.mem_overrun_pct - aws.mem_overrun_pct, 4)}
    return {"train_days": frontier.train_days, "anchors": rows, "profiles": profiles,
            "beaten": sum(1 for r in rows if r["beaten_by"]), "anchor_points": len(rows),
            "balanced_vs_aws": {"weakly_dominates": (balanced.savings_pct >= aws.savings_pct
                                                     and balanced.cpu_overrun_pct <= aws.cpu_overrun_pct
                                                     and balanced.mem_overrun_pct <= aws.mem_overrun_pct),
                                "savings_gain_pct": round(balanced.savings_pct - aws.savings_pct, 3),
                                **aws_bounds(frontier, types)},
            "risk_curve": _curve(points, RISK_STRATEGY), "peaks_curve": _curve(points, PEAKS_STRATEGY),
            "peaks_headroom_curve": _curve(points, PEAKS_HEADROOM_STRATEGY),
            "peaks_risk_curve": _curve(points, PEAKS_RISK_STRATEGY),
            "peaks_trade_curve": _curve(points, PEAKS_TRADE_STRATEGY), "joint_curve": _curve(points, JOINT_STRATEGY),
            "joint_recent_curve": _curve(points, JOINT_RECENT_STRATEGY),
            "joint_days_curve": _curve(points, JOINT_DAYS_STRATEGY),
            "joint_headroom_curve": _curve(points, JOINT_HEADROOM_STRATEGY)}


#: The gain over aws the issue asked of the default profile (points of savings at no more overrun).
TARGET_GAIN_PCT = 2.0


def aws_bounds(frontier: Frontier, types: Any, *, per_vm: bool = True) -> dict[str, Any]:
    """The most any strategy could save over ``aws`` (P99.5 + 20 %) at its CPU and memory overrun intervals,
    knowing the evaluation window: sizing memory at will; never below each VM's maximum used; and that with no
    VM given fewer vCPUs than aws's type (or its allocation, where fewer), balanced's guarantee (points). With
    ``per_vm`` also that vCPU floor alone with memory sized at will, and the VMs behind the bounds: where the
    guarantee's bound differs from balanced (:func:`guarantee_gap`) and, where :data:`TARGET_GAIN_PCT` needs
    memory below the maximum used, which VMs every allocation reaching it trims
    (:func:`analytics.hindsight.memory_trims_needed`), below a level passed on how many of its days
    (:func:`analytics.hindsight.memory_evidence_needed`), and how often such levels came back in this trace
    (:func:`analytics.hindsight.memory_level_recurrence`)."""
    free = hindsight_bound(frontier, types, strategy="aws", memory_rule=False)
    used = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, memory_at_least_used=True)
    kept = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, memory_at_least_used=True,
                           vcpus_at_least_reference=True)
    out: dict[str, Any] = {"hindsight_gain_pct": round(free.headroom_pct, 3),
                           "hindsight_gain_memory_at_least_used_pct": round(used.headroom_pct, 3),
                           "hindsight_gain_keeping_aws_vcpus_pct": round(kept.headroom_pct, 3)}
    if not per_vm:
        return out
    vcpus = hindsight_bound(frontier, types, strategy="aws", memory_rule=False, vcpus_at_least_reference=True)
    out["hindsight_gain_aws_vcpus_memory_free_pct"] = round(vcpus.headroom_pct, 3)
    out["guarantee_gap_vms"] = guarantee_gap(frontier, kept.oracle)
    if used.headroom_pct < TARGET_GAIN_PCT <= free.headroom_pct:
        needs = memory_trims_needed(frontier, types, strategy="aws", target_pct=TARGET_GAIN_PCT)
        name = [vm.name for vm, _ in frontier.splits]
        out["memory_trims_for_target"] = {
            "target_pct": TARGET_GAIN_PCT,
            "required": [{"vm": name[i], "gain_without_it_pct": round(g, 3)} for i, g in needs.required],
            "best_single": None if needs.best_single is None else {
                "vm": name[needs.best_single[0]], "gain_pct": round(needs.best_single[1], 3)}}
        evidence = memory_evidence_needed(frontier, types, strategy="aws", target_pct=TARGET_GAIN_PCT)
        out["memory_evidence_for_target"] = {
            "target_pct": TARGET_GAIN_PCT, "days_passed": evidence.days_passed,
            "gain_by_floor_pct": [round(g, 3) for g in evidence.gains_pct]}
    lookback = frontier.lookback_days or knob_settings("aws", "cpu_headroom_fraction", 0.2).lookback_days
    out["memory_level_recurrence"] = [
        {"days_passed": r.days_passed, "pairs": r.pairs, "passed_again": r.passed_again}
        for r in memory_level_recurrence(frontier, types, lookback)]
    return out


def guarantee_gap(frontier: Frontier, oracle: StrategyResult) -> list[dict[str, Any]]:
    """Where the gain ``balanced`` leaves under its own guarantee lies: each VM on which ``oracle`` (the bound
    keeping that guarantee at aws's overruns, knowing the evaluation window) picks another type than balanced,
    with both types' memory, the VM's maximum memory used in the window balanced reads, balanced's memory need,
    and the points of fleet savings the oracle's type adds."""
    settings = knob_settings("rightsizer", "profile", "balanced")
    balanced = frontier.score("rightsizer", settings)
    lookback = frontier.lookback_days or settings.lookback_days
    rows = []
    for (_, split), b, o in zip(frontier.splits, balanced.per_vm, oracle.per_vm, strict=True):
        if b.recommended_type == o.recommended_type:
            continue
        used = max_memory_used(split.history.window(lookback).memory_used_bytes)
        rows.append({"vm": b.vm, "balanced_type": b.recommended_type, "oracle_type": o.recommended_type,
                     "balanced_memory_gib": _gib(b.recommended_memory_bytes),
                     "oracle_memory_gib": _gib(o.recommended_memory_bytes),
                     "max_used_gib": _gib(used), "balanced_need_gib": _gib(b.need_memory_bytes),
                     "gain_pt": round(100 * (b.recommended_monthly_cost - o.recommended_monthly_cost)
                                      / balanced.current_monthly_cost, 3)})
    return sorted(rows, key=lambda r: -r["gain_pt"])


def _gib(value: float | None) -> float | None:
    return None if value is None else round(value / GIB, 3)


def _curve(points: list[SweepPoint], strategy: str) -> list[dict[str, Any]]:
    knob = SWEEP_KNOBS[strategy][0]
    return [{knob: p.value, "savings_pct": round(p.savings_pct, 3), "cpu_overrun_pct": round(p.cpu_overrun_pct, 4),
             "mem_overrun_pct": round(p.mem_overrun_pct, 4)} for p in points if p.strategy == strategy]


def _print(table: dict[str, Any]) -> None:
    print(f"== {table['train_days']:g} training days: {table['beaten']}/{table['anchor_points']} anchor points "
          "beaten (savings / CPU overrun / memory overrun)")
    for r in table["anchors"]:
        axes = f"{r['savings_pct']:7.3f} % / {r['cpu_overrun_pct']:.4f} % / {r['mem_overrun_pct']:.4f} %"
        if r["beaten_by"]:
            verdict = f"beaten by {r['beaten_by']} (curves: {', '.join(r['curves_beating'])})"
        elif "hindsight_savings_pct" in r:
            verdict = (f"NOT beaten; hindsight bound {r['hindsight_savings_pct']:.3f} % "
                       f"({r['hindsight_gap_pct']:+.3f} pt), {_beyond(r)}")
        else:
            verdict = (f"NOT beaten; hindsight bound, memory overruns alone limited, "
                       f"{r['hindsight_memory_only_savings_pct']:.3f} % ({r['hindsight_gap_pct']:+.3f} pt)")
        print(f"  {r['anchor']:32} {axes}  {verdict}")
    for p in table["profiles"]:
        beaten = ", ".join(p["beaten_by"]) or "no anchor point"
        d = p["vs_aws"]
        print(f"  profile {p['profile']:12} {p['savings_pct']:7.3f} % / {p['cpu_overrun_pct']:.4f} % / "
              f"{p['mem_overrun_pct']:.4f} %  vs aws {d['savings_pt']:+.3f} / {d['cpu_overrun_pt']:+.4f} / "
              f"{d['mem_overrun_pt']:+.4f} pt  beaten by: {beaten}")
    b = table["balanced_vs_aws"]
    print(f"  balanced vs aws (P99.5 + 20 %): weakly dominates {b['weakly_dominates']}, "
          f"savings {b['savings_gain_pct']:+.3f} pt; hindsight at aws's overruns {b['hindsight_gain_pct']:+.3f} pt, "
          f"with memory never below the maximum used {b['hindsight_gain_memory_at_least_used_pct']:+.3f} pt, "
          f"and no VM below aws's vCPUs too {b['hindsight_gain_keeping_aws_vcpus_pct']:+.3f} pt; "
          f"no VM below aws's vCPUs, memory free {b['hindsight_gain_aws_vcpus_memory_free_pct']:+.3f} pt")
    if gap := b.get("guarantee_gap_vms"):
        print("    the bound keeping balanced's guarantee differs from balanced on "
              + "; ".join(f"VM {g['vm']} ({g['balanced_type']} {g['balanced_memory_gib']:g} GiB -> {g['oracle_type']} "
                          f"{g['oracle_memory_gib']:g} GiB, max used {g['max_used_gib']:.2f} GiB, need "
                          f"{g['balanced_need_gib']:.2f} GiB, {g['gain_pt']:+.3f} pt)" for g in gap))
    if (trims := b.get("memory_trims_for_target")) is not None:
        required = ", ".join(f"VM {r['vm']} (without it {r['gain_without_it_pct']:+.3f} pt)" for r in trims["required"])
        single = trims["best_single"]
        print(f"    {trims['target_pct']:+g} pt needs memory below the maximum used: "
              + (f"every allocation reaching it trims {required}" if required
                 else "no one VM is trimmed by every allocation reaching it")
              + f"; one VM trimmed alone gives at most {single['gain_pct']:+.3f} pt (VM {single['vm']})")
    if (evidence := b.get("memory_evidence_for_target")) is not None:
        floors = ", ".join(f"{k}: {g:+.3f}" for k, g in enumerate(evidence["gain_by_floor_pct"], start=1))
        print(f"    with each VM's memory at least its k-th largest daily peak the bound is (k: pt) {floors}; every "
              f"allocation reaching {evidence['target_pct']:+g} pt sizes a VM below a level it passed on "
              f"{evidence['days_passed']} or more days of its window")
    if recurrence := b.get("memory_level_recurrence"):
        last = recurrence[-1]["days_passed"]
        print("    memory levels (the catalogue's sizes) a VM's window passed on d days, passed again after it: "
              + ", ".join(f"d={r['days_passed']}{'+' if r['days_passed'] == last else ''}: "
                          f"{r['passed_again']}/{r['pairs']}" for r in recurrence))
    for key, strategy in (("risk_curve", RISK_STRATEGY), ("peaks_curve", PEAKS_STRATEGY),
                          ("peaks_headroom_curve", PEAKS_HEADROOM_STRATEGY), ("peaks_risk_curve", PEAKS_RISK_STRATEGY),
                          ("peaks_trade_curve", PEAKS_TRADE_STRATEGY), ("joint_curve", JOINT_STRATEGY),
                          ("joint_recent_curve", JOINT_RECENT_STRATEGY), ("joint_days_curve", JOINT_DAYS_STRATEGY),
                          ("joint_headroom_curve", JOINT_HEADROOM_STRATEGY)):
        knob = SWEEP_KNOBS[strategy][0]
        curve = "; ".join(f"{c[knob]:g}: {c['savings_pct']:.2f}/{c['cpu_overrun_pct']:.3f}/{c['mem_overrun_pct']:.4f}"
                          for c in table[key])
        print(f"  {strategy} ({knob}: savings/CPU/memory) {curve}")


def _beyond(row: dict[str, Any]) -> str:
    """What beating an unbeaten anchor point takes, from the two further bounds of its row."""
    return (f"with no VM's memory below its maximum used {row['hindsight_memory_at_least_used_savings_pct']:.3f} %; "
            f"to save as much at its CPU overrun even the oracle overruns memory in "
            f"{row['least_mem_overrun_intervals_to_beat']} of its {row['mem_overrun_intervals']} intervals")


def _anchor_label(name: str) -> str:
    """"aws cpu_headroom_fraction=0.2" -> "aws P99.5 + 20 %", "krr cpu_percentile=95.0" -> "krr P95"."""
    strategy, setting = name.split(" ", 1)
    value = float(setting.split("=")[1])
    return f"aws P99.5 + {value * 100:.0f} %" if strategy == "aws" else f"{strategy} P{value:g}"


def markdown(table: dict[str, Any]) -> str:
    """One split as docs/backtest.md shows it: the anchors with what beats each, then the profiles."""
    lines = [f"**{table['train_days']:g} training days: {table['beaten']} / {table['anchor_points']} anchor points "
             "beaten**", "",
             "| anchor point | savings % / CPU overrun % / memory overrun % | beaten by (first point of ours) |",
             "|---|---|---|"]
    for a in table["anchors"]:
        if a["beaten_by"]:
            verdict = f"`{a['beaten_by']}`"
        elif "hindsight_savings_pct" in a:
            verdict = ("not beaten (exact hindsight bound at its CPU and memory overruns "
                       f"{a['hindsight_savings_pct']:.3f} %; {_beyond(a)})")
        else:
            verdict = ("not beaten (hindsight bound, memory overruns alone "
                       f"{a['hindsight_memory_only_savings_pct']:.3f} %)")
        lines.append(f"| {_anchor_label(a['anchor'])} | {a['savings_pct']:.3f} / {a['cpu_overrun_pct']:.4f} / "
                     f"{a['mem_overrun_pct']:.4f} | {verdict} |")
    lines += ["", "| profile | savings % / CPU overrun % / memory overrun % | vs aws (points) | beaten by |",
              "|---|---|---|---|"]
    for p in table["profiles"]:
        d = p["vs_aws"]
        lines.append(f"| {p['profile']} | {p['savings_pct']:.3f} / {p['cpu_overrun_pct']:.4f} / "
                     f"{p['mem_overrun_pct']:.4f} | {d['savings_pt']:+.2f} / {d['cpu_overrun_pt']:+.4f} / "
                     f"{d['mem_overrun_pt']:+.4f} | {', '.join(p['beaten_by']) or 'none'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.frontier_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", help="Bitbrains trace directory")
    parser.add_argument("--splits", default="7,10,14,21", help="training days, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--markdown", action="store_true",
                        help="print each split's tables as docs/backtest.md has them instead")
    args = parser.parse_args(argv)
    catalogue = load_catalogue()
    vms = read_bitbrains_dir(args.trace)
    tables = []
    for days in (float(x) for x in args.splits.split(",")):
        table = split_table(Frontier(vms, catalogue, train_days=days, currency=catalogue.currency),
                            catalogue.eligible())
        tables.append(table)
        if args.markdown:
            print(markdown(table))
        elif not args.json:
            _print(table)
        sys.stdout.flush()
    if args.json:
        print(json.dumps(tables, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
