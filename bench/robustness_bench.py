"""Robustness of the right-sizing strategies across training splits: the table (split x strategy).

    python -m bench.robustness_bench [--trace DIR] [--train-days 7,10,14,21] [--strict]
    python -m bench robustness

For each training split, every strategy (our three profiles, the aws, krr and vpa anchors, and the fleet
risk budget at 0.1 % of training intervals) is backtested on the Bitbrains trace exactly as
``rightsizer backtest DIR --train-days N`` does. Printed per row: savings %, CPU and memory overrun %
and, as the floor measured in the same run, the hindsight bound (the savings of choosing each VM's type
with hindsight of its evaluation-window memory peak: no strategy without memory overruns saves more)
with the ratio savings / bound. Then per split the verdict the quality bar asks for: does ``balanced``
weakly dominate ``aws`` (savings >=, CPU overrun <=, memory overrun <=) and beat it strictly on
savings or CPU overrun; and at each split which of our frontier's points (the sweep) weakly dominate
krr and vpa, each marked ``=`` when it ties the anchor on all three figures and ``>`` when it is strictly
better on one. Per split the hindsight bound at krr's overrun (:mod:`analytics.hindsight`): the most any
strategy could save with krr's CPU and memory overrun or less, choosing each VM's vCPUs knowing the
evaluation window (memory by krr's rule), the same oracle restricted to sizes the training window exceeded
no more often than krr's riskiest choice (P95: 5 %), and CPU and memory both in hindsight. And the fleet
risk budget along its whole Lagrangian path (every distinct allocation), against the uniform-percentile
curves (ours and KRR's at every half percentile from P80 to P100): how many of its points no uniform point
weakly dominates (new points on the frontier), and how many uniform points one of its points beats.

Then, for each split in ``--frontier-days`` (default 14): the whole frontier table (every strategy across its knob, with
the anchors it weakly dominates) and the per-VM differences that explain it: krr against our aggressive
profile, against aggressive with balanced's vCPU floor (AWS's 20 % memory headroom), and against the
hindsight oracle, each with how often the training window exceeded each side's vCPUs.
``--strict`` exits 1 when balanced fails against aws at any split.

The trace defaults to ``../shared/data/traces/bitbrains-rnd-2013-08/2013-8`` from the repository root
(``RIGHTSIZER_SHARED_DIR`` overrides ``../shared``); pass ``--trace`` for any other Bitbrains folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from analytics.backtest import StrategyResult, memory_hindsight_savings_pct
from analytics.catalogue import CsvPriceCatalogue, load_catalogue
from analytics.frontier import (
    BUDGET_STRATEGY,
    MEMORY_STRATEGY,
    SWEEP_STRATEGIES,
    Frontier,
    SweepPoint,
    dominates,
    knob_settings,
)
from analytics.hindsight import hindsight_bound, per_vm_diff
from analytics.rightsizing.settings import PROFILES, SETTINGS_TYPES, RightsizerSettings, profile_settings
from analytics.traces import TraceVm, read_bitbrains_dir

REPO = Path(__file__).resolve().parent.parent
BUDGET_PCT = 0.1
ANCHORS = ("aws", "krr", "vpa")


def default_trace() -> Path:
    shared = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))
    return shared / "data" / "traces" / "bitbrains-rnd-2013-08" / "2013-8"


def _rows(frontier: Frontier) -> list[SweepPoint]:
    rows = []
    for name in PROFILES:
        r = frontier.score("rightsizer", knob_settings("rightsizer", "profile", name))
        rows.append(SweepPoint(f"rightsizer:{name}", "profile", name, r.savings_pct, r.cpu_overrun_pct,
                               r.mem_overrun_pct, r.vms_changed, frontier.train_days))
    for name in ANCHORS:
        r = frontier.score(name, SETTINGS_TYPES[name].model_validate({}))
        rows.append(SweepPoint(name, "default", "", r.savings_pct, r.cpu_overrun_pct, r.mem_overrun_pct,
                               r.vms_changed, frontier.train_days))
    r = frontier.score_budget(BUDGET_PCT)
    rows.append(SweepPoint(BUDGET_STRATEGY, "budget_pct", BUDGET_PCT, r.savings_pct, r.cpu_overrun_pct,
                           r.mem_overrun_pct, r.vms_changed, frontier.train_days))
    return rows


def _relation(p: SweepPoint, anchor: SweepPoint | StrategyResult) -> str:
    """'>' when ``p`` weakly dominates ``anchor`` and beats it on a figure, '=' when it ties, '' otherwise."""
    if not dominates(p, anchor):
        return ""
    return "=" if dominates(anchor, p) else ">"


def _verdicts(frontier: Frontier, by: dict[str, SweepPoint]) -> None:
    points = frontier.sweep(["rightsizer", BUDGET_STRATEGY, MEMORY_STRATEGY])
    for anchor in ("krr", "vpa"):
        winners = [f"{p.strategy} {p.knob}={p.value} ({_relation(p, by[anchor])})" for p in points
                   if _relation(p, by[anchor])]
        print(f"       our frontier points weakly dominating {anchor}: {', '.join(winners) or 'none'}")


def _hindsight(frontier: Frontier, catalogue: CsvPriceCatalogue, vpa: SweepPoint) -> None:
    types = catalogue.eligible()
    try:
        cpu = hindsight_bound(frontier, types)
        tail = hindsight_bound(frontier, types, within_reference_tail=True)
        full = hindsight_bound(frontier, types, memory_rule=False)
    except ValueError as exc:  # a fleet too large for the exact knapsack
        print(f"       hindsight bound skipped: {exc}")
        return
    print(f"       hindsight at krr's overrun ({cpu.reference.savings_pct:.2f} %): vCPUs in hindsight "
          f"{cpu.oracle.savings_pct:.2f} % ({cpu.headroom_pct:+.2f} pt); within krr's training tail "
          f"{tail.oracle.savings_pct:.2f} % ({tail.headroom_pct:+.2f} pt); CPU and memory in hindsight "
          f"{full.oracle.savings_pct:.2f} % ({full.headroom_pct:+.2f} pt)")
    both = ("not ruled out by hindsight" if full.oracle.savings_pct >= vpa.savings_pct - 1e-9
            else "impossible even with hindsight")
    print(f"       one point weakly dominating both krr and vpa: {both} (full hindsight at krr's overrun saves "
          f"{full.oracle.savings_pct:.2f} %, vpa {vpa.savings_pct:.2f} %)")


#: The uniform-percentile families the budget is measured against: ours (balanced's headroom and memory rule)
#: and KRR's (no headroom), every half percentile from P80 to P100.
UNIFORM_PERCENTILES = tuple(80.0 + 0.5 * i for i in range(41))


def _budget_vs_uniform(frontier: Frontier, by: dict[str, SweepPoint]) -> None:
    uniform = [_point_of(frontier, s, q) for s in ("rightsizer", "krr") for q in UNIFORM_PERCENTILES]
    path = frontier.budget_path()
    new = [p for p in path if not any(dominates(u, p) for u in uniform)]
    beaten = [u for u in uniform if any(_relation(p, u) == ">" for p in path)]
    behind = [p for p in path if any(_relation(u, p) == ">" for u in uniform)]
    krr = [f"{p.value:g} ({_relation(p, by['krr'])})" for p in path if _relation(p, by["krr"])]
    print(f"       fleet risk budget, whole path: {len(path)} allocations; {len(new)} not weakly dominated by any "
          f"uniform-percentile point ({', '.join(f'{p.savings_pct:.2f}/{p.cpu_overrun_pct:.4f}' for p in new)}); "
          f"its points beat {len(beaten)} of {len(uniform)} uniform points, uniform points beat {len(behind)} of its "
          f"{len(path)}; risk prices weakly dominating krr: "
          f"{', '.join(krr) or 'none'}")


def _point_of(frontier: Frontier, strategy: str, q: float) -> SweepPoint:
    r = frontier.score(strategy, knob_settings(strategy, "cpu_percentile", q))
    return SweepPoint(strategy, "cpu_percentile", q, r.savings_pct, r.cpu_overrun_pct, r.mem_overrun_pct,
                      r.vms_changed, frontier.train_days)


def run_split(vms: list[TraceVm], catalogue: CsvPriceCatalogue, train_days: float) -> bool:
    """Print one split's rows and verdicts; True when balanced passes the bar against aws."""
    started = time.perf_counter()
    frontier = Frontier(vms, catalogue, train_days=train_days)
    bound = memory_hindsight_savings_pct(vms, catalogue, train_days=train_days)
    rows = _rows(frontier)
    for p in rows:
        print(f"{train_days:>5g}  {p.strategy:<26} {p.savings_pct:8.2f} {p.cpu_overrun_pct:9.4f} "
              f"{p.mem_overrun_pct:9.4f} {bound:8.2f} {p.savings_pct / bound if bound else 0.0:6.3f}")
    by = {p.strategy: p for p in rows}
    ours, aws = by["rightsizer:balanced"], by["aws"]
    strict = ours.savings_pct > aws.savings_pct + 1e-9 or ours.cpu_overrun_pct < aws.cpu_overrun_pct - 1e-12
    ok = dominates(ours, aws) and strict
    print(f"       balanced vs aws: savings {ours.savings_pct - aws.savings_pct:+.2f} pt, CPU overrun "
          f"{ours.cpu_overrun_pct - aws.cpu_overrun_pct:+.4f} pt, memory overrun "
          f"{ours.mem_overrun_pct - aws.mem_overrun_pct:+.4f} pt -> {'PASS' if ok else 'FAIL'}")
    _verdicts(frontier, by)
    _budget_vs_uniform(frontier, by)
    _hindsight(frontier, catalogue, by["vpa"])
    print(f"       ({time.perf_counter() - started:.1f} s)")
    return ok


def frontier_table(vms: list[TraceVm], catalogue: CsvPriceCatalogue, train_days: float) -> None:
    """Print every sweep point at one split with the anchors (at their defaults) it weakly dominates."""
    frontier = Frontier(vms, catalogue, train_days=train_days)
    anchors = {a: frontier.score(a, SETTINGS_TYPES[a].model_validate({})) for a in ANCHORS}
    print(f"\nfrontier at {train_days:g} training days ('=' ties the anchor's default, '>' weakly dominates it "
          "and beats it on a figure)")
    print(f"{'strategy':<18} {'knob':<22} {'value':<13} {'savings':>8} {'cpu_over':>9} {'mem_over':>9}  dominates")
    for p in frontier.sweep(SWEEP_STRATEGIES):
        marks = " ".join(f"{a}{r}" for a in ANCHORS if (r := _relation(p, anchors[a])))
        print(f"{p.strategy:<18} {p.knob:<22} {str(p.value):<13} {p.savings_pct:8.2f} {p.cpu_overrun_pct:9.4f} "
              f"{p.mem_overrun_pct:9.4f}  {marks}")
    floor20 = RightsizerSettings.model_validate(
        {**profile_settings("aggressive"), "vcpu_floor_memory_headroom_fraction": 0.20})
    krr = anchors["krr"]
    others = [("aggressive", frontier.score("rightsizer", knob_settings("rightsizer", "profile", "aggressive"))),
              ("aggressive with balanced's vCPU floor", frontier.score("rightsizer", floor20))]
    try:
        others.append(("hindsight oracle (vCPUs, krr's memory rule)",
                       hindsight_bound(frontier, catalogue.eligible()).oracle))
    except ValueError as exc:
        print(f"hindsight oracle skipped: {exc}")
    for label, other in others:
        _print_diff(frontier, krr, other, label)


def _print_diff(frontier: Frontier, krr: StrategyResult, other: StrategyResult, label: str) -> None:
    diffs = per_vm_diff(frontier, krr, other)
    cost = sum(d.b_monthly_cost - d.a_monthly_cost for d in diffs)
    over = sum(d.b_cpu_overrun_intervals - d.a_cpu_overrun_intervals for d in diffs)
    print(f"\nper-VM difference krr -> {label}: {len(diffs)} VMs, {cost:+.2f} {krr.currency}/month "
          f"({-100 * cost / krr.current_monthly_cost:+.3f} pt savings), {over:+d} CPU overrun intervals")
    for d in diffs:
        print(f"  VM {d.vm:<4} {d.a_type} ({d.a_vcpus} vCPU, {d.a_monthly_cost:.2f}, {d.a_cpu_overrun_intervals} "
              f"CPU/{d.a_mem_overrun_intervals} mem over, training above {100 * d.a_train_exceedance:.2f} %) -> "
              f"{d.b_type} ({d.b_vcpus} vCPU, {d.b_monthly_cost:.2f}, {d.b_cpu_overrun_intervals} CPU/"
              f"{d.b_mem_overrun_intervals} mem over, training above {100 * d.b_train_exceedance:.2f} %)")


def _days(text: str) -> list[float]:
    """Comma-separated positive day counts; argparse turns the ValueError into a one-line usage error."""
    days = [float(d) for d in text.split(",") if d.strip()]
    if any(not d > 0 for d in days):
        raise ValueError(text)
    return days


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trace", type=Path, default=None, help="Bitbrains trace folder (default: the dev trace)")
    ap.add_argument("--train-days", type=_days, default="7,10,14,21", help="comma-separated training splits")
    ap.add_argument("--frontier-days", type=_days, default="14",
                    help="comma-separated splits whose whole frontier table and per-VM differences are printed "
                         "('' = none)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when balanced fails against aws at a split")
    args = ap.parse_args(argv if argv is not None else [])
    trace = args.trace or default_trace()
    if not trace.is_dir():
        print(f"robustness bench: trace folder {str(trace)!r} not found; pass --trace DIR or set "
              "RIGHTSIZER_SHARED_DIR", file=sys.stderr)
        return 2
    vms = read_bitbrains_dir(trace)
    catalogue = load_catalogue()
    print(f"trace {trace} ({len(vms)} VMs); overruns are % of evaluated VM-intervals; bound = hindsight "
          "savings % with no memory overrun")
    print(f"{'split':>5}  {'strategy':<26} {'savings':>8} {'cpu_over':>9} {'mem_over':>9} {'bound':>8} {'ratio':>6}")
    results = [run_split(vms, catalogue, d) for d in args.train_days]
    print(f"balanced weakly dominates aws (and beats it on savings or CPU) at {sum(results)} of {len(results)} "
          "splits")
    for days in args.frontier_days:
        frontier_table(vms, catalogue, days)
    return 1 if args.strict and not all(results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
