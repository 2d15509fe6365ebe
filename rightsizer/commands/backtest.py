"""``rightsizer backtest``: replay a VM trace, train each strategy on its start, score it on the rest."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.backtest import StrategyResult
    from rightsizer.context import Context

DESCRIPTION = """\
For every VM of the trace: the current machine type is the cheapest generally available catalogue type
with vCPUs >= the trace's cores and memory >= its provisioned memory; each strategy sees only the first
--train-days and its need is mapped to the cheapest eligible type covering it; the rest of the trace is
the evaluation window. Reported per strategy: monthly cost before/after (720 h per month, as the
provider prices), savings, and the share of evaluated VM-intervals where CPU demand (vCPU-equivalents)
or memory used exceeded the recommended type (cpu_overrun_pct, mem_overrun_pct).

Strategies: rightsizer (ours, at --profile, default balanced), aws (Compute Optimizer defaults), krr
(Robusta KRR simple), vpa (Kubernetes VPA recommender); 'all' runs them side by side.

--sweep gives each strategy's savings-risk curve across its own knob instead: a list of points
{strategy, knob, value, savings_pct, cpu_overrun_pct, mem_overrun_pct} (aws: CPU headroom; krr: CPU
percentile; vpa: target percentile; rightsizer: CPU percentile and its profiles; rightsizer-budget: the
fleet risk budget, a share of training intervals; rightsizer-risk: per-VM headroom calibrated on the
fleet's training windows, across its overrun target risk_pct; rightsizer-peaks: CPU percentile, memory
headroom fitted per VM from the spread of its daily peaks; rightsizer-peaks-headroom: that memory rule
with AWS's CPU rule across its headroom; rightsizer-peaks-risk: that rule at CPU P95 across its risk target
memory_peak_risk_pct; rightsizer-peaks-trade: memory by that rule allowed below the maximum used, CPU at
P90, across the same risk target; rightsizer-memory and rightsizer-memory-p99: memory at a percentile
of used memory, CPU at P90 and P99; rightsizer-joint: each VM's whole type, vCPUs and memory together, by
one fleet budget of training intervals over the type, memory overruns counted 30 times;
rightsizer-joint-recent: the same with each training interval weighted by its recency, a 2-day
half-life; rightsizer-joint-days: the same with memory risk counted in days, every interval of a day whose
memory peak a type does not hold counted as over; rightsizer-joint-headroom: both, with a day over when
its memory peak comes within 10 % of a type's memory). --strategy narrows it to one (rightsizer: every curve of ours).
"""


def add_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    from analytics.rightsizing.settings import PROFILES, STRATEGY_NAMES
    from rightsizer.commands.strategyflags import add_settings_flags

    p = sub.add_parser(
        "backtest", parents=[parent], help="compare right-sizing strategies on a VM trace",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="DIR", help="trace directory (e.g. .../bitbrains-rnd-2013-08/2013-8)")
    p.add_argument("--format", choices=("bitbrains",), default="bitbrains", help="trace format")
    p.add_argument("--strategy", default="all", choices=(*STRATEGY_NAMES, "all"),
                   help="strategy to run, or 'all' (default)")
    p.add_argument("--train-days", type=float, default=14.0, metavar="DAYS",
                   help="days each strategy may see (default 14); the rest is evaluated")
    p.add_argument("--catalogue", metavar="PATH",
                   help="machine-type catalogue (CSV/TOML or built-in name; default: config [costs] catalogue)")
    p.add_argument("--per-vm", action="store_true", help="table/csv: print one row per VM and strategy")
    p.add_argument("--schedules", action="store_true",
                   help="score on/off schedules instead of resizes: patterns and windows from the training days, "
                        "savings vs demand missed outside the window on the rest ([schedules] settings apply)")
    p.add_argument("--profile", choices=tuple(PROFILES), default=None,
                   help="our strategy's profile (default: config [rightsizing] profile, balanced)")
    p.add_argument("--sweep", action="store_true",
                   help="each strategy's savings-risk curve across its own knob (points, not totals)")
    p.add_argument("--html", metavar="FILE", help="with --sweep: also write the curves as an HTML chart")
    add_settings_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from tqdm import tqdm

    from analytics.backtest import comparison_rows, memory_hindsight_savings_pct, run_backtest
    from analytics.catalogue import load_catalogue
    from analytics.rightsizing import DEFAULT_STRATEGY, STRATEGIES
    from analytics.traces import read_bitbrains_dir
    from collector.errors import InputError
    from rightsizer.commands.strategyflags import profile_base, settings_from_args

    if not 0 < args.train_days <= 365:
        raise InputError(f"--train-days {args.train_days!r} must be > 0 and <= 365 days")
    catalogue = load_catalogue(args.catalogue) if args.catalogue else ctx.catalogue()
    strategies = list(STRATEGIES.values()) if args.strategy == "all" else [STRATEGIES[args.strategy]]
    vms = read_bitbrains_dir(
        args.path, progress=lambda files: tqdm(files, desc="read", unit="file", file=sys.stderr, disable=None),
    )
    if args.schedules:
        return _run_schedules(args, ctx, vms, catalogue)
    if args.sweep:
        return _sweep(args, ctx, vms, catalogue)
    # Setting flags tune the named strategy, or ours with --strategy all (anchors keep published values).
    tuned = args.strategy if args.strategy != "all" else DEFAULT_STRATEGY
    base = profile_base(args, ctx) if tuned == DEFAULT_STRATEGY else None
    settings = {tuned: settings_from_args(args, tuned, base, strict=args.strategy != "all")}
    results = run_backtest(
        vms, strategies, catalogue, train_days=args.train_days, currency=catalogue.currency, settings=settings,
        progress=lambda it: tqdm(it, desc="backtest", unit="vm", total=len(vms), file=sys.stderr, disable=None),
    )
    if args.output == "json":
        ctx.out.emit([r.as_dict() for r in results])
        return 0
    if args.per_vm:
        ctx.out.emit([{"strategy": r.strategy, **row} for r in results for row in _vm_rows(r)])
        return 0
    ctx.out.emit(comparison_rows(results))
    if args.output == "table":
        for line in verdicts(results):
            ctx.out.stream.write(line + "\n")
        bound = memory_hindsight_savings_pct(vms, catalogue, train_days=args.train_days)
        ctx.out.stream.write(
            f"hindsight bound: no strategy without memory overruns can save more than {bound:.2f} % here "
            "(cheapest type holding each VM's evaluation-window memory peak)\n")
    return 0


def _run_schedules(args: argparse.Namespace, ctx: Context, vms: Any, catalogue: Any) -> int:
    from dataclasses import asdict

    from analytics.schedule_backtest import score_schedules

    result = score_schedules(vms, catalogue, train_days=args.train_days, settings=ctx.settings.schedules,
                             idle=ctx.settings.idle)
    if args.output == "json":
        ctx.out.emit([result.as_dict()])
    elif args.per_vm:
        ctx.out.emit([asdict(r) for r in result.per_vm])
    else:
        summary = {k: v for k, v in result.as_dict().items() if k not in ("per_vm", "patterns")}
        ctx.out.emit([{**summary, **{f"pattern_{k}": v for k, v in result.patterns.items()}}])
    return 0


def _sweep(args: argparse.Namespace, ctx: Context, vms: list[Any], catalogue: Any) -> int:
    from analytics.frontier import POINT_COLUMNS, SWEEP_STRATEGIES, Frontier
    from analytics.rightsizing.settings import STRATEGY_NAMES
    from collector.errors import InputError

    # rightsizer: every curve of ours (the sweep's curves less the anchors, which are strategies of their own)
    ours = tuple(s for s in SWEEP_STRATEGIES if s == args.strategy or s not in STRATEGY_NAMES)
    names = SWEEP_STRATEGIES if args.strategy == "all" else (
        ours if args.strategy == "rightsizer" else (args.strategy,))
    frontier = Frontier(vms, catalogue, train_days=args.train_days, currency=catalogue.currency)
    if not _usable(frontier):
        raise InputError(f"{args.path}: no VM has {args.train_days:g} days of training data and an evaluation "
                         "window after it (need >= 30 h over >= 3 days, then more data); pass a longer trace "
                         "or a smaller --train-days")
    points = frontier.sweep(names, progress=lambda name: print(f"sweep: {name}", file=sys.stderr))
    if args.html:
        _write_html(args.html, points, args.train_days, args.profile or "balanced")
    rows = [p.as_dict() for p in points]
    if args.output == "json":
        ctx.out.emit(rows)
    else:
        ctx.out.emit([{k: r[k] for k in (*POINT_COLUMNS, "vms_changed")} for r in rows])
    return 0


def _write_html(path: str, points: list[Any], train_days: float, profile: str) -> None:
    """The sweep as one self-contained HTML page (plotly). Raises InputError for a path it cannot write."""
    from pathlib import Path

    import plotly.graph_objects as go

    from analytics.reports.frontier_chart import frontier_figure
    from collector.errors import InputError

    chosen = next((p for p in points if p.knob == "profile" and p.value == profile), None)
    fig = go.Figure(frontier_figure(points, chosen, unit="5-minute VM-intervals"))
    fig.update_layout(title=f"Savings vs risk, {train_days:g} training days (rightsizer backtest --sweep)")
    target = Path(path)
    try:
        target.write_text(fig.to_html(include_plotlyjs=True, full_html=True), encoding="utf-8")
    except OSError as exc:
        from collector.store.faults import write_failure

        raise write_failure(path, exc, InputError(f"--html {path!r}: cannot write it ({exc.strerror}); pass a file "
                                                  "in an existing, writable folder")) from exc


def _usable(frontier: Any) -> bool:
    """True when some VM gets a recommendation and has an evaluation window under the balanced profile."""
    from analytics.rightsizing.settings import RightsizerSettings

    return bool(frontier.score("rightsizer", RightsizerSettings.model_validate({})).vms_evaluated > 0)


def _vm_rows(result: StrategyResult) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(v) for v in result.per_vm]


def verdicts(results: list[StrategyResult]) -> list[str]:
    """One line per anchor comparing our default with it: savings and overrun differences."""
    from analytics.rightsizing import DEFAULT_STRATEGY

    ours = next((r for r in results if r.strategy == DEFAULT_STRATEGY), None)
    if ours is None:
        return []
    lines = [f"{ours.currency} per 720-hour month; overruns are shares of evaluated 5-minute VM-intervals"]
    for other in results:
        if other.strategy == ours.strategy:
            continue
        ds = ours.savings_pct - other.savings_pct
        dc = ours.cpu_overrun_pct - other.cpu_overrun_pct
        dm = ours.mem_overrun_pct - other.mem_overrun_pct
        dominates = ds > 0 and dc <= 0 and dm <= 0
        dominated = ds < 0 and dc >= 0 and dm >= 0
        verdict = ("better: more savings at no more overrun" if dominates else
                   "worse: less savings at no less overrun" if dominated else
                   "trade-off: " + ("more" if ds > 0 else "less") + " savings, "
                   + ("less" if dc < 0 else "more" if dc > 0 else "equal") + " CPU overrun, "
                   + ("less" if dm < 0 else "more" if dm > 0 else "equal") + " memory overrun")
        lines.append(f"{ours.strategy} vs {other.strategy}: savings {ds:+.2f} pt, CPU overrun {dc:+.3f} pt, "
                     f"memory overrun {dm:+.4f} pt -> {verdict}")
    return lines
