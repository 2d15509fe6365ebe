"""Do the profiles hold on fleets they were not chosen on? The frontier verdicts on random halves of the trace.

    python -m bench.fleet_subsets [TRACE_DIR] [--subsets 40] [--size 20] [--splits 7,10,14,21] [--seed N]
        [--frontier [--holding VM] | --variants RISKS:FLOORS[:CAPS] | --joint WEIGHTS | --recent HALF_LIVES
         | --days WEIGHTS | --headroom FRACTIONS | --bounds]

The profiles' constants (the 3 % daily-peak risk, the 5 % memory floor, the CPU rules) were chosen on the whole
dev trace. A held-back fleet is other VMs, and the daily-peak margin is calibrated on whichever fleet is given,
so the honest check short of that fleet is: draw many random sub-fleets (``--size`` VMs each, without
replacement, a fixed seed) and ask on each, at each training split, what issue 25 asks of the whole trace:

* does ``balanced`` weakly dominate ``aws`` (P99.5 + 20 %: savings >=, CPU and memory overrun <=), and by how
  many points of savings;
* does any ``aws``/``krr``/``vpa`` sweep point beat any profile (at least as good on all three axes, strictly
  better on one), and which.

Printed per split: the whole trace's figures first (the reference measured in the same run), then the share of
sub-fleets where balanced weakly dominates aws, the savings gain's minimum / median / maximum, and the share of
sub-fleets where an anchor point beats a profile, with the points that do and how often. With ``--frontier`` also,
per anchor point, on how many sub-fleets a point of our whole sweep (every curve, as ``python -m
bench.frontier_table`` counts) beats it: the check that a curve's win on the whole trace is not one lucky set of
VMs; with ``--holding VM`` those counts apart for the sub-fleets with that VM and without it (where a point's edge
is one VM's, it shows). With ``--joint W,W,...`` instead, per split, how many (anchor point, sub-fleet) pairs our
sweep without the joint curves beats, and how many more it beats with ``rightsizer-joint`` at each memory weight:
how ``JOINT_MEMORY_WEIGHT`` was chosen (on the halves, not on the whole trace). With ``--recent H,H,...`` the same
for the joint budget with recent training intervals counted more, at each half-life in days, over our sweep without
``rightsizer-joint-recent``, beside a second joint curve without the decay (memory weight 10): what a curve adds
only by being more points, against which the decay's gain is read (how ``JOINT_RECENT_HALF_LIFE_DAYS`` was chosen).
With ``--days W,W,...`` the same for the joint budget with memory counted in days (``rightsizer-joint-days``) at
each weight, over our sweep without it, beside the same control (how ``JOINT_DAYS_MEMORY_WEIGHT`` was chosen). The
bases of ``--joint`` and ``--recent`` leave this curve out, so their figures are what they were before it joined
the sweep. With ``--headroom F,F,...`` the same for the joint budget with recent days counted more and memory
counted in days with that memory headroom (``rightsizer-joint-headroom``) at each headroom, over our sweep without
it, beside the same control (how ``JOINT_HEADROOM_FRACTION`` was chosen); the bases of the other three leave it out.
With ``--bounds``, per split, what saving 2 points more than ``aws`` at its overruns takes on each sub-fleet:
balanced's gain beside the hindsight bounds (balanced's guarantee; memory never below the maximum used; memory
free), their medians and on how many sub-fleets each reaches the target: is the target a property of the rule
or of the fleet? And, on the sub-fleets where the target needs memory below the maximum used, below a level
passed on how many days of a VM's window every allocation reaching it goes
(:func:`analytics.hindsight.memory_evidence_needed`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from analytics.backtest import StrategyResult
from analytics.catalogue import MachineType, load_catalogue
from analytics.frontier import (
    JOINT_DAYS_MEMORY_WEIGHT,
    JOINT_DAYS_STRATEGY,
    JOINT_HEADROOM_STRATEGY,
    JOINT_RECENT_HALF_LIFE_DAYS,
    JOINT_RECENT_STRATEGY,
    JOINT_STRATEGY,
    SWEEP_KNOBS,
    SWEEP_STRATEGIES,
    Frontier,
    _point,
    dominates,
    knob_settings,
)
from analytics.hindsight import memory_evidence_needed
from analytics.rightsizing.settings import PROFILES, RightsizerSettings
from analytics.traces import TraceVm, read_bitbrains_dir
from bench.frontier_table import ANCHORS, TARGET_GAIN_PCT, aws_bounds, beats

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Verdict:
    """One fleet at one split: does balanced weakly dominate aws, by how many points of savings, and which
    anchor points ("vpa 99") beat which profile."""

    dominates: bool
    gain: float
    beaten: tuple[tuple[str, str], ...]


def draw_halves(n_vms: int, size: int, subsets: int, seed: int) -> list[list[int]]:
    """``subsets`` random sub-fleets of ``size`` VM indices each (sorted, without replacement), from ``seed``."""
    rng = random.Random(seed)
    return [sorted(rng.sample(range(n_vms), size)) for _ in range(subsets)]


def verdicts(frontier: Frontier) -> Verdict:
    """Balanced against aws, and the anchor points that beat a profile, on one fleet at one split."""
    anchors = [_point(frontier.score(s, knob_settings(s, knob, v)), knob, v)
               for s in ANCHORS for knob, values in (SWEEP_KNOBS[s],) for v in values]
    profiles = {p: _point(frontier.score("rightsizer", knob_settings("rightsizer", "profile", p)), "profile", p)
                for p in PROFILES}
    aws = next(a for a in anchors if a.strategy == "aws" and a.value == 0.2)
    bal = profiles["balanced"]
    return Verdict(
        dominates=dominates(bal, aws),
        gain=bal.savings_pct - aws.savings_pct,
        beaten=tuple((f"{a.strategy} {a.value:g}", name) for name, p in profiles.items() for a in anchors
                     if beats(a, p)),
    )


def anchors_beaten(frontier: Frontier) -> dict[str, str]:
    """Each anchor sweep point ("vpa 50") and what our whole sweep does to it: "beaten", "tied" (no point
    beats it, one equals it on all three axes: on a small fleet the VMs where two rules differ may all be
    missing) or "open"."""
    points = frontier.sweep(SWEEP_STRATEGIES)
    ours = [p for p in points if p.strategy not in ANCHORS]
    out = {}
    for a in (p for p in points if p.strategy in ANCHORS):
        tied = any((o.savings_pct, o.cpu_overrun_pct, o.mem_overrun_pct)
                   == (a.savings_pct, a.cpu_overrun_pct, a.mem_overrun_pct) for o in ours)
        out[f"{a.strategy} {a.value:g}"] = "beaten" if any(beats(o, a) for o in ours) else "tied" if tied else "open"
    return out


def _gains(frontier: Frontier, without: Sequence[str],
           curves: Mapping[str, Callable[[float], StrategyResult]]) -> tuple[int, dict[str, int]]:
    """Anchor points our sweep without the curves ``without`` beats, and how many more each of ``curves`` (a
    joint budget at the joint curve's budget grid) adds on its own."""
    points = frontier.sweep([s for s in SWEEP_STRATEGIES if s not in without])
    anchors = [p for p in points if p.strategy in ANCHORS]
    ours = [p for p in points if p.strategy not in ANCHORS]
    base = {i for i, a in enumerate(anchors) if any(beats(o, a) for o in ours)}
    knob, values = SWEEP_KNOBS[JOINT_STRATEGY]
    added = {}
    for label, score in curves.items():
        curve = [_point(score(float(v)), knob, v) for v in values]
        added[label] = sum(1 for i, a in enumerate(anchors) if i not in base and any(beats(o, a) for o in curve))
    return len(base), added


def joint_gains(frontier: Frontier, weights: Sequence[float]) -> tuple[int, dict[str, int]]:
    """Anchor points our sweep without the joint curves beats, and how many more ``rightsizer-joint`` adds at
    each memory weight (labels "3", "10", ...)."""
    return _gains(frontier, (JOINT_STRATEGY, JOINT_RECENT_STRATEGY, JOINT_DAYS_STRATEGY, JOINT_HEADROOM_STRATEGY),
                  {f"{w:g}": partial(frontier.score_joint, memory_weight=w) for w in weights})


#: ``--recent``'s control: the joint budget once more without decay, at another memory weight; what a second
#: joint curve adds only by being more points.
RECENT_CONTROL = "no decay, memory weight 10"


def recent_gains(frontier: Frontier, half_lives: Sequence[float]) -> tuple[int, dict[str, int]]:
    """Anchor points our sweep without ``rightsizer-joint-recent`` beats, and how many more the joint budget
    with recency weights adds at each half-life (labels "5 d", ...) and without them at another memory
    weight (:data:`RECENT_CONTROL`)."""
    curves: dict[str, Callable[[float], StrategyResult]] = {
        f"{h:g} d": partial(frontier.score_joint, half_life_days=h) for h in half_lives}
    curves[RECENT_CONTROL] = partial(frontier.score_joint, memory_weight=10.0)
    return _gains(frontier, (JOINT_RECENT_STRATEGY, JOINT_DAYS_STRATEGY, JOINT_HEADROOM_STRATEGY), curves)


def day_gains(frontier: Frontier, weights: Sequence[float]) -> tuple[int, dict[str, int]]:
    """Anchor points our sweep without ``rightsizer-joint-days`` beats, and how many more the joint budget with
    memory counted in days adds at each weight (labels "1", ...) and :data:`RECENT_CONTROL` (no decay, memory
    counted in intervals at weight 10): what a curve adds only by being more points."""
    curves: dict[str, Callable[[float], StrategyResult]] = {
        f"{w:g}": partial(frontier.score_joint, memory_weight=w, memory_by_day=True) for w in weights}
    curves[RECENT_CONTROL] = partial(frontier.score_joint, memory_weight=10.0)
    return _gains(frontier, (JOINT_DAYS_STRATEGY, JOINT_HEADROOM_STRATEGY), curves)


def headroom_gains(frontier: Frontier, fractions: Sequence[float]) -> tuple[int, dict[str, int]]:
    """Anchor points our sweep without ``rightsizer-joint-headroom`` beats, and how many more that curve adds at
    each memory headroom (labels "10 %", ...; at 0 it is the recency weights and the count in days alone) and
    :data:`RECENT_CONTROL`."""
    curves: dict[str, Callable[[float], StrategyResult]] = {
        f"{100 * h:g} %": partial(frontier.score_joint, memory_weight=JOINT_DAYS_MEMORY_WEIGHT,
                                  half_life_days=JOINT_RECENT_HALF_LIFE_DAYS, memory_by_day=True,
                                  memory_headroom=h)
        for h in fractions}
    curves[RECENT_CONTROL] = partial(frontier.score_joint, memory_weight=10.0)
    return _gains(frontier, (JOINT_HEADROOM_STRATEGY,), curves)


@dataclass(frozen=True, slots=True)
class GainOption:
    """One ``--joint``-like option: what a variant of a joint curve adds on the sub-fleets at each of a list of
    values (its flag, how the values read, the gains function, and what the printed lines call the base and the
    variants)."""

    flag: str
    metavar: str
    what: str
    example: str
    strict: bool
    gains: Callable[[Frontier, Sequence[float]], tuple[int, dict[str, int]]]
    without: str
    adding: str
    help: str


def _gains_at(gains: Callable[[Frontier, Sequence[float]], tuple[int, dict[str, int]]], values: Sequence[float],
              frontier: Frontier) -> tuple[int, dict[str, int]]:
    return gains(frontier, values)


GAIN_OPTIONS: tuple[GainOption, ...] = (
    GainOption("--joint", "WEIGHTS", "weights", "'3,10,30'", False, joint_gains, "the joint curves",
               "by rightsizer-joint at memory weight",
               "instead of the verdicts, what rightsizer-joint adds to our sweep on the sub-fleets at each memory "
               "weight, e.g. '3,10,30,100,300' (how JOINT_MEMORY_WEIGHT was chosen)"),
    GainOption("--recent", "HALF_LIVES", "half-lives in days", "'2,5,8'", True, recent_gains,
               "rightsizer-joint-recent", "by the joint budget at half-life",
               "instead of the verdicts, what the joint budget with recent intervals counted more adds to our sweep "
               "without rightsizer-joint-recent at each half-life in days, e.g. '2,5,8', beside a second joint curve "
               "without decay (how JOINT_RECENT_HALF_LIFE_DAYS was chosen)"),
    GainOption("--days", "WEIGHTS", "weights", "'0.3,1,3'", True, day_gains, "rightsizer-joint-days",
               "by the joint budget in days at weight",
               "instead of the verdicts, what the joint budget with memory counted in days adds to our sweep without "
               "rightsizer-joint-days at each weight, e.g. '0.3,1,3,10', beside a second plain joint curve (how "
               "JOINT_DAYS_MEMORY_WEIGHT was chosen)"),
    GainOption("--headroom", "FRACTIONS", "memory headrooms (shares)", "'0,0.1,0.2'", False, headroom_gains,
               "rightsizer-joint-headroom", "by the joint budget in days with memory headroom",
               "instead of the verdicts, what the joint budget with recent days counted more and memory counted in "
               "days with a memory headroom adds to our sweep without rightsizer-joint-headroom at each headroom (a "
               "share), e.g. '0,0.05,0.1,0.2', beside a second plain joint curve (how JOINT_HEADROOM_FRACTION was "
               "chosen)"),
)


#: ``--bounds``' columns: (label, key of :func:`bench.frontier_table.aws_bounds`; None: balanced's own gain).
BOUND_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("balanced", None), ("oracle, balanced's guarantee", "hindsight_gain_keeping_aws_vcpus_pct"),
    ("oracle, memory never below the maximum used", "hindsight_gain_memory_at_least_used_pct"),
    ("oracle, memory free", "hindsight_gain_pct"))


def target_gains(frontier: Frontier, types: Sequence[MachineType]) -> list[float]:
    """Balanced's savings gain over ``aws`` and the three hindsight bounds at aws's overruns (points; the oracle
    choosing among ``types``), in the order of :data:`BOUND_COLUMNS`."""
    bounds = aws_bounds(frontier, types, per_vm=False)
    gain = (frontier.score("rightsizer", knob_settings("rightsizer", "profile", "balanced")).savings_pct
            - frontier.score("aws", knob_settings("aws", "cpu_headroom_fraction", 0.2)).savings_pct)
    return [gain if key is None else float(bounds[key]) for _, key in BOUND_COLUMNS]


def evidence_days(frontier: Frontier, types: Sequence[MachineType], gains: Sequence[float]) -> int | None:
    """Where the target needs memory below the maximum used on this sub-fleet (``gains`` from
    :func:`target_gains`): the days of a VM's window, at least, on which its memory passed the level some VM of every
    allocation reaching it is sized below; None where it does not need that or even memory free falls short."""
    keys = [key for _, key in BOUND_COLUMNS]
    used, free = (gains[keys.index(k)] for k in ("hindsight_gain_memory_at_least_used_pct", "hindsight_gain_pct"))
    if not used < TARGET_GAIN_PCT <= free:
        return None
    return memory_evidence_needed(frontier, types, strategy="aws", target_pct=TARGET_GAIN_PCT).days_passed


def run_bounds(vms: Sequence[TraceVm], draws: Sequence[Sequence[int]], splits: Sequence[float]) -> None:
    """Per split: each column's median gain over aws on the sub-fleets and on how many it reaches the target;
    then, on the sub-fleets where it needs memory below the maximum used, how many days passed the level it bets
    against."""
    catalogue = load_catalogue()
    for days in splits:
        fronts = [Frontier([vms[i] for i in draw], catalogue, train_days=days, currency=catalogue.currency)
                  for draw in draws]
        rows = [target_gains(f, catalogue.eligible()) for f in fronts]
        print(f"== {days:g} training days: gain over aws at its overruns, median / sub-fleets at >= "
              f"{TARGET_GAIN_PCT:+g} pt: " + "; ".join(
                  f"{label} {statistics.median(r[k] for r in rows):+.2f} / "
                  f"{sum(1 for r in rows if r[k] >= TARGET_GAIN_PCT)}/{len(rows)}"
                  for k, (label, _) in enumerate(BOUND_COLUMNS)))
        needed = [d for f, r in zip(fronts, rows, strict=True)
                  if (d := evidence_days(f, catalogue.eligible(), r)) is not None]
        counts = Counter(needed)
        print(f"   {len(needed)} sub-fleets reach {TARGET_GAIN_PCT:+g} pt only with memory below the maximum used; "
              "every allocation reaching it sizes a VM below a level its memory passed on at least "
              + (", ".join(f"{d} day{'s' if d != 1 else ''} on {counts[d]}" for d in sorted(counts)) or "-"))
        sys.stdout.flush()


def run_gains(vms: Sequence[TraceVm], draws: Sequence[Sequence[int]], splits: Sequence[float],
              gains: Callable[[Frontier], tuple[int, dict[str, int]]], without: str, adding: str) -> None:
    """Per split: (anchor point, sub-fleet) pairs beaten ``without`` a curve, and added by each variant."""
    catalogue = load_catalogue()
    totals: Counter[str] = Counter()
    for days in splits:
        t0 = time.perf_counter()
        results = [gains(Frontier([vms[i] for i in draw], catalogue, train_days=days, currency=catalogue.currency))
                   for draw in draws]
        pairs = len(draws) * sum(len(SWEEP_KNOBS[a][1]) for a in ANCHORS)
        split_added: Counter[str] = Counter()
        for _, added in results:
            split_added.update(added)
        totals.update(split_added)
        print(f"== {days:g} training days ({time.perf_counter() - t0:.1f} s): without {without} "
              f"{sum(b for b, _ in results)}/{pairs} (anchor point, sub-fleet) pairs beaten; added {adding} "
              + ", ".join(f"{label}: +{split_added[label]}" for label in results[0][1]))
        sys.stdout.flush()
    print("all splits, added: " + ", ".join(f"{label}: +{n}" for label, n in totals.items()))


#: balanced's memory headroom cap (``memory_headroom_fraction``), where ``--variants`` names none
DEFAULT_CAP = RightsizerSettings.model_fields["memory_headroom_fraction"].default


def balanced_variants(frontier: Frontier, risks: Sequence[float], floors: Sequence[float],
                      caps: Sequence[float] = (DEFAULT_CAP,)) -> dict[tuple[float, float, float], tuple[bool, float]]:
    """Balanced at each (``memory_peak_risk_pct``, ``memory_peak_min_headroom_fraction``,
    ``memory_headroom_fraction``): does it weakly dominate aws, and its savings gain over aws (points)."""
    aws = frontier.score("aws", knob_settings("aws", "cpu_headroom_fraction", 0.2))
    out = {}
    for risk in risks:
        for floor in floors:
            for cap in caps:
                b = frontier.score("rightsizer", RightsizerSettings.model_validate(
                    {"memory_peak_risk_pct": risk, "memory_peak_min_headroom_fraction": floor,
                     "memory_headroom_fraction": cap}))
                out[risk, floor, cap] = (dominates(b, aws), b.savings_pct - aws.savings_pct)
    return out


def run_variants(vms: Sequence[TraceVm], draws: Sequence[Sequence[int]], splits: Sequence[float],
                 risks: Sequence[float], floors: Sequence[float], caps: Sequence[float] = (DEFAULT_CAP,)) -> None:
    """Per split, per variant of balanced's memory rule: the whole trace's verdict and gain against aws, the
    halves where it weakly dominates aws, and its median gain there."""
    catalogue = load_catalogue()
    for days in splits:
        whole = balanced_variants(Frontier(vms, catalogue, train_days=days, currency=catalogue.currency),
                                  risks, floors, caps)
        halves = [balanced_variants(Frontier([vms[i] for i in draw], catalogue, train_days=days,
                                             currency=catalogue.currency), risks, floors, caps) for draw in draws]
        print(f"== {days:g} training days: balanced's memory rule (risk %, floor, cap) against aws -- whole trace "
              "(dominates, gain) | sub-fleets where it dominates, median gain")
        for key, (ok, gain) in whole.items():
            wins = sum(1 for h in halves if h[key][0])
            median = statistics.median(h[key][1] for h in halves)
            print(f"  risk {key[0]:g} %, floor {key[1]:+.0%}, cap {key[2]:+.1%}: {'yes' if ok else 'no '} "
                  f"{gain:+.2f} pt | {wins}/{len(draws)}, median {median:+.2f} pt")
        sys.stdout.flush()


def run(vms: Sequence[TraceVm], *, subsets: int, size: int, splits: Sequence[float], seed: int,
        frontier: bool = False, holding: str | None = None) -> int:
    """The verdicts on the whole trace and on ``subsets`` random sub-fleets of ``size`` VMs, per split; with
    ``frontier`` and ``holding`` (a VM's name) the per-anchor counts also apart for the sub-fleets with that VM
    and those without it."""
    held = next((i for i, vm in enumerate(vms) if vm.name == holding), None)
    catalogue = load_catalogue()
    draws = draw_halves(len(vms), size, subsets, seed)
    print(f"{len(vms)} VMs; {subsets} sub-fleets of {size} (seed {seed})")
    for days in splits:
        t0 = time.perf_counter()
        whole = verdicts(Frontier(vms, catalogue, train_days=days, currency=catalogue.currency))
        results = [verdicts(Frontier([vms[i] for i in draw], catalogue, train_days=days,
                                     currency=catalogue.currency)) for draw in draws]
        gains = [r.gain for r in results]
        dominated = sum(1 for r in results if r.dominates)
        beaten = [r for r in results if r.beaten]
        by = Counter(pair for r in results for pair in r.beaten)
        print(f"== {days:g} training days ({time.perf_counter() - t0:.1f} s)")
        print(f"  whole trace: balanced weakly dominates aws {whole.dominates}, gain {whole.gain:+.2f} pt; "
              f"profiles beaten by an anchor point: {len(whole.beaten)}")
        print(f"  sub-fleets: balanced weakly dominates aws in {dominated}/{subsets} "
              f"({100.0 * dominated / subsets:.0f} %); gain min {min(gains):+.2f} / median "
              f"{statistics.median(gains):+.2f} / max {max(gains):+.2f} pt")
        print(f"  sub-fleets where an anchor point beats a profile: {len(beaten)}/{subsets}"
              + ("" if not by else "; " + ", ".join(f"{a} beats {p} in {n}" for (a, p), n in by.most_common(6))))
        if frontier:
            whole_beaten = anchors_beaten(Frontier(vms, catalogue, train_days=days, currency=catalogue.currency))
            counts: Counter[tuple[str, str]] = Counter()
            with_vm: Counter[tuple[str, bool]] = Counter()
            for draw in draws:
                sub = anchors_beaten(Frontier([vms[i] for i in draw], catalogue, train_days=days,
                                              currency=catalogue.currency))
                counts.update(sub.items())
                with_vm.update((name, held in draw) for name, verdict in sub.items() if verdict == "beaten")
            print("  per anchor point, sub-fleets where a point of ours beats it / ties it / neither "
                  "(* = not beaten on the whole trace):")
            print("    " + "; ".join(f"{name}{'' if whole_beaten[name] == 'beaten' else '*'} "
                                     f"{counts[name, 'beaten']}/{counts[name, 'tied']}/{counts[name, 'open']}"
                                     for name in whole_beaten))
            if held is not None:
                n_with = sum(1 for draw in draws if held in draw)
                print(f"  per anchor point, sub-fleets where a point of ours beats it, of the {n_with} with VM "
                      f"{holding} / of the {len(draws) - n_with} without:")
                print("    " + "; ".join(f"{name} {with_vm[name, True]}/{with_vm[name, False]}"
                                         for name in whole_beaten))
        sys.stdout.flush()
    return 0


def _numbers(parser: argparse.ArgumentParser, flag: str, text: str, what: str, example: str, *,
             least: float, strict: bool) -> list[float]:
    """``text`` as comma-separated numbers, each above ``least`` (``strict``) or at least it; else the
    parser's one-line error (exit 2)."""
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        parser.error(f"{flag} {text!r}: expected comma-separated {what}, e.g. {example}")
    if not all(v > least if strict else v >= least for v in values):  # NaN fails both
        parser.error(f"{flag} {text!r}: {what} must be {'>' if strict else '>='} {least:g}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_subsets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))
    parser.add_argument("trace", nargs="?", default=str(shared / "data/traces/bitbrains-rnd-2013-08/2013-8"),
                        help="Bitbrains trace directory (default: the dev trace under ../shared)")
    parser.add_argument("--subsets", type=int, default=40, help="random sub-fleets per split (40)")
    parser.add_argument("--size", type=int, default=20, help="VMs per sub-fleet (20: half the dev trace)")
    parser.add_argument("--splits", default="7,10,14,21", help="training days, comma-separated")
    parser.add_argument("--seed", type=int, default=20261207, help="seed of the draws")
    parser.add_argument("--variants", metavar="RISKS:FLOORS[:CAPS]",
                        help=("instead of the verdicts, balanced with other memory rules against aws, e.g. "
                              "'2,3,5:0,0.05,0.08' (memory_peak_risk_pct values : memory_peak_min_headroom_fraction "
                              "values), or '3:0:0.1,0.11,0.12,0.15' (and memory_headroom_fraction values, the cap; "
                              "default 0.15); the check that the defaults (3 %%, 5 %%, 15 %%) were not picked for "
                              "one VM set"))
    for option in GAIN_OPTIONS:
        parser.add_argument(option.flag, metavar=option.metavar, help=option.help)
    parser.add_argument("--bounds", action="store_true",
                        help="instead of the verdicts, balanced's gain over aws and the hindsight bounds at aws's "
                             "overruns on each sub-fleet: on how many two points more is within reach at all")
    parser.add_argument("--frontier", action="store_true",
                        help="also count, per anchor point, the sub-fleets where a point of our sweep beats it "
                             "(the whole sweep per sub-fleet: about a minute per split at 40 sub-fleets)")
    parser.add_argument("--holding", metavar="VM",
                        help="with --frontier, those counts also apart for the sub-fleets that hold this VM (its "
                             "name: the trace file's stem) and those that do not: is a point's edge one VM's?")
    args = parser.parse_args(argv)
    if not Path(args.trace).is_dir():  # a message and 2, not an exception: python -m bench goes on to the next
        print(f"fleet subsets bench: trace folder {args.trace!r} not found; pass the Bitbrains folder as the first "
              "argument or set RIGHTSIZER_SHARED_DIR", file=sys.stderr)
        return 2
    vms = read_bitbrains_dir(args.trace)
    if not 0 < args.size <= len(vms) or args.subsets < 1:
        parser.error(f"--size must be 1..{len(vms)} and --subsets >= 1, got {args.size!r} and {args.subsets!r}")
    splits = [float(x) for x in args.splits.split(",")]
    for option in GAIN_OPTIONS:
        text = getattr(args, option.flag.lstrip("-"))
        if text:
            values = _numbers(parser, option.flag, text, option.what, option.example, least=0.0, strict=option.strict)
            run_gains(vms, draw_halves(len(vms), args.size, args.subsets, args.seed), splits,
                      partial(_gains_at, option.gains, values), option.without, option.adding)
            return 0
    if args.bounds:
        run_bounds(vms, draw_halves(len(vms), args.size, args.subsets, args.seed), splits)
        return 0
    if args.variants:
        parts = args.variants.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError(args.variants)
            risks, floors, *rest = [[float(x) for x in part.split(",")] for part in parts]
            caps = rest[0] if rest else [DEFAULT_CAP]
            if any(c < 0 for c in caps):
                raise ValueError(args.variants)
        except ValueError:
            parser.error(f"--variants {args.variants!r}: expected RISKS:FLOORS or RISKS:FLOORS:CAPS (caps >= 0), "
                         "e.g. '2,3,5:0,0.05' or '3:0:0.1,0.12'")
        run_variants(vms, draw_halves(len(vms), args.size, args.subsets, args.seed), splits, risks, floors, caps)
        return 0
    if args.holding is not None and (not args.frontier or args.holding not in {vm.name for vm in vms}):
        parser.error(f"--holding {args.holding!r}: needs --frontier and the name of a VM of the trace")
    return run(vms, subsets=args.subsets, size=args.size, splits=splits, seed=args.seed, frontier=args.frontier,
               holding=args.holding)


if __name__ == "__main__":
    sys.exit(main())
