"""Does a learned quantile model earn its place over the one-margin daily-peak rule? Measured on a trace.

    python -m bench.quantile_model_bench [TRACE_DIR] [--splits 7,10,14,21] [--risks 3,10,20,35,50]

The daily-peak memory rule (:mod:`analytics.rightsizing.peak_spread`) sizes each VM at ``median + k x spread``
of its daily peaks with ONE fleet margin ``k``, the conformal quantile of held-out training days. The natural
alternative is a model learned across the fleet: a quantile regressor of the next days' peak (as a share of
the VM's maximum so far) from scale-free features of its past daily peaks -- relative spread, maximum over
median, last day and last three days over the maximum, relative trend per day, how long ago the maximum was,
the share of days near it, and how many days there are. Here that is scikit-learn's
``HistGradientBoostingRegressor(loss="quantile")``, trained on exactly the examples the one-margin rule
calibrates on (each VM's training window cut at 50 / 62.5 / 75 %, every later training day a target), so
neither sees the evaluation window; and the same model with a conformal correction (conformalised quantile
regression, Romano, Patterson and Candes, NeurIPS 2019: the model fitted on one half of the VMs, its errors
on the other half's held-out days give an additive correction at the target quantile, both ways).

Each method gives every VM a memory need at each target share of days above it (``--risks``); CPU is the same
for all (``rightsizer-peaks-trade``'s P90), each VM takes the cheapest type holding both, and the split is
scored like a backtest. Printed per split and target: savings % / CPU overrun % / memory overrun % for the
one-margin rule, the model, and the corrected model; then how many of each learned curve's points a point of
the one-margin curve beats (at least as good on all three axes, strictly better on one) and the reverse.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analytics.catalogue import MachineType, load_catalogue
from analytics.frontier import OUR_CURVES, PEAKS_TRADE_STRATEGY, Frontier, SweepPoint, _point
from analytics.rightsizing.peak_spread import CUT_FRACTIONS, MIN_DAYS, daily_maxima
from analytics.rightsizing.settings import RightsizerSettings
from analytics.traces import read_bitbrains_dir
from bench.fleet_subsets import REPO
from bench.frontier_table import beats

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

LOOKBACK_DAYS = 14.0
MEMORY_CEILING = 0.15  # the rule's ceiling over the maximum used, kept for every method


def features(peaks: np.ndarray) -> list[float]:
    """Scale-free features of a VM's daily memory peaks (ascending days, >= MIN_DAYS, positive median)."""
    n = len(peaks)
    q25, median, q75 = (float(x) for x in np.percentile(peaks, (25, 50, 75)))
    top = float(peaks.max())
    slope = float(np.polyfit(np.arange(n), peaks, 1)[0]) / median
    return [float(n), (q75 - q25) / median, top / median, float(peaks[-1]) / top, float(peaks[-3:].mean()) / top,
            slope, (n - 1 - int(np.argmax(peaks))) / n, float(np.mean(peaks >= 0.95 * top))]


def examples(windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, target, VM index) per held-out training day: the days after each cut of each VM's peaks,
    the target that day's peak over the maximum before the cut."""
    xs, ys, groups = [], [], []
    for g, peaks in enumerate(windows):
        for f in CUT_FRACTIONS:
            cut = int(round(len(peaks) * f))
            past = peaks[:cut]
            if cut >= len(peaks) or cut < MIN_DAYS or not np.median(past) > 0:
                continue
            fx = features(past)
            for value in peaks[cut:]:
                xs.append(fx)
                ys.append(float(value) / float(past.max()))
                groups.append(g)
    return np.array(xs), np.array(ys), np.array(groups)


def _model(risk_pct: float) -> HistGradientBoostingRegressor:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(loss="quantile", quantile=1.0 - risk_pct / 100.0, max_iter=100,
                                         min_samples_leaf=20, random_state=0)


def conformal_correction(x: np.ndarray, y: np.ndarray, groups: np.ndarray, risk_pct: float) -> float:
    """The additive correction at ``1 - risk``: models fitted on one half of the VMs, scored on the other."""
    scores = []
    for fold in (0, 1):
        train, test = groups % 2 != fold, groups % 2 == fold
        if not train.any() or not test.any():
            continue
        model = _model(risk_pct).fit(x[train], y[train])
        scores.append(y[test] - model.predict(x[test]))
    pooled = np.concatenate(scores) if scores else np.zeros(1)
    rank = min(max(math.ceil((len(pooled) + 1) * (1.0 - risk_pct / 100.0)), 1), len(pooled))
    return float(np.partition(pooled, rank - 1)[rank - 1])


def score_split(frontier: Frontier, risks: Sequence[float]) -> dict[str, list[SweepPoint]]:
    """The three curves on one split: one-margin rule, quantile model, corrected model."""
    catalogue = frontier.catalogue
    windows = [sp.history.window(LOOKBACK_DAYS) for _, sp in frontier.splits]
    peaks = [daily_maxima(w.timestamps_s, w.memory_used_bytes) for w in windows]
    x, y, groups = examples(peaks)
    out: dict[str, list[SweepPoint]] = {"one margin": [], "quantile model": [], "model + conformal": []}
    for risk in risks:
        settings = RightsizerSettings.model_validate({**OUR_CURVES[PEAKS_TRADE_STRATEGY], "memory_peak_risk_pct": risk})
        recs = frontier.recommendations("rightsizer", settings)
        model = _model(risk).fit(x, y)
        correction = conformal_correction(x, y, groups, risk)
        chosen: dict[str, dict[int, MachineType]] = {k: {} for k in out}
        for i, (rec, w, p) in enumerate(zip(recs, windows, peaks, strict=True)):
            if not rec.is_determined or rec.target_vcpus is None or rec.target_memory_bytes is None:
                continue
            needs = {"one margin": float(rec.target_memory_bytes)}
            if len(p) >= MIN_DAYS and np.median(p) > 0:
                ratio = float(model.predict(np.array([features(p)]))[0])
                top, used = float(p.max()), float(np.nanmax(w.memory_used_bytes))
                for name, r in (("quantile model", ratio), ("model + conformal", ratio + correction)):
                    needs[name] = min(max(r * top, 0.0), used * (1.0 + MEMORY_CEILING))
            for name in out:
                t = catalogue.cheapest_fitting(float(rec.target_vcpus), needs.get(name, needs["one margin"]))
                if t is not None:
                    chosen[name][i] = t
        for name in out:
            out[name].append(_point(frontier.score_types(name, recs, chosen[name]), "memory_peak_risk_pct", risk))
    return out


def _beaten(a: Sequence[SweepPoint], b: Sequence[SweepPoint]) -> int:
    """How many points of ``b`` a point of ``a`` beats."""
    return sum(1 for q in b if any(beats(p, q) for p in a))


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quantile_model_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("RIGHTSIZER_SHARED_DIR", REPO.parent / "shared"))
    parser.add_argument("trace", nargs="?", default=str(shared / "data/traces/bitbrains-rnd-2013-08/2013-8"),
                        help="Bitbrains trace directory (default: the dev trace under ../shared)")
    parser.add_argument("--splits", default="7,10,14,21", help="training days, comma-separated")
    parser.add_argument("--risks", default="3,10,20,35,50", help="target shares of days above the need, %%")
    args = parser.parse_args(argv)
    if not Path(args.trace).is_dir():
        parser.error(f"trace directory {args.trace!r} not found; pass the Bitbrains folder as the first argument")
    risks = [float(r) for r in args.risks.split(",")]
    if not all(0 < r < 100 for r in risks):
        parser.error(f"--risks must be percentages between 0 and 100, got {args.risks!r}")
    catalogue = load_catalogue()
    vms = read_bitbrains_dir(args.trace)
    for days in (float(d) for d in args.splits.split(",")):
        t0 = time.perf_counter()
        curves = score_split(Frontier(vms, catalogue, train_days=days, currency=catalogue.currency), risks)
        out(f"== {days:g} training days ({time.perf_counter() - t0:.1f} s): savings % / CPU overrun % / "
            "memory overrun % per target share of days above the need")
        for i, risk in enumerate(risks):
            out(f"  {risk:4g} %: " + "  ".join(
                f"{name} {c[i].savings_pct:.3f}/{c[i].cpu_overrun_pct:.4f}/{c[i].mem_overrun_pct:.4f}"
                for name, c in curves.items()))
        base = curves["one margin"]
        for name in ("quantile model", "model + conformal"):
            out(f"  {name}: {_beaten(base, curves[name])}/{len(risks)} of its points beaten by a one-margin point, "
                f"{_beaten(curves[name], base)}/{len(risks)} one-margin points beaten by one of its points")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
