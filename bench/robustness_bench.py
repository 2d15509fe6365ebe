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
krr and vpa. ``--strict`` exits 1 when balanced fails against aws at any split.

The trace defaults to ``../shared/data/traces/bitbrains-rnd-2013-08/2013-8`` from the repository root
(``RIGHTSIZER_SHARED_DIR`` overrides ``../shared``); pass ``--trace`` for any other Bitbrains folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from analytics.backtest import memory_hindsight_savings_pct
from analytics.catalogue import CsvPriceCatalogue, load_catalogue
from analytics.frontier import BUDGET_STRATEGY, MEMORY_STRATEGY, Frontier, SweepPoint, dominates, knob_settings
from analytics.rightsizing.settings import PROFILES, SETTINGS_TYPES
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
    points = frontier.sweep(["rightsizer", BUDGET_STRATEGY, MEMORY_STRATEGY])
    for anchor in ("krr", "vpa"):
        winners = [f"{p.strategy} {p.knob}={p.value}" for p in points if dominates(p, by[anchor])]
        print(f"       our frontier points weakly dominating {anchor}: {', '.join(winners) or 'none'}")
    print(f"       ({time.perf_counter() - started:.1f} s)")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--trace", type=Path, default=None, help="Bitbrains trace folder (default: the dev trace)")
    ap.add_argument("--train-days", default="7,10,14,21", help="comma-separated training splits")
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
    results = [run_split(vms, catalogue, float(d)) for d in args.train_days.split(",")]
    print(f"balanced weakly dominates aws (and beats it on savings or CPU) at {sum(results)} of {len(results)} "
          "splits")
    return 1 if args.strict and not all(results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
