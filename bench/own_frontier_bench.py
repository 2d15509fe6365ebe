"""The own-fleet "Savings vs risk" section's compute time: the demo fleet and a large synthetic fleet.

    python -m bench.own_frontier_bench [--vms 5000] [--days 14] [--rounds 3] [--skip-demo] [--skip-large]

What the dashboard's Recommendations page and the HTML report compute for that section
(:func:`analytics.own_frontier.own_fleet_frontier` over the lookback: train on its first half, score on the
second), timed per curve of :data:`analytics.own_frontier.OWN_CURVES` after the split of the hourly rollups:

* the demo fleet (``rightsizer.demo``: 24 VMs, 30 days of synthetic history at 4 points per hour, read back
  from a SqliteStore as hourly rollups), 14-day lookback;
* a synthetic fleet of ``--vms`` VMs x ``--days`` days of hourly rollups (``bench.analytics_bench.synth_fleet``:
  daily cycles, noise, spikes, growth), the lookback its whole span.

Figures: seconds to split, seconds per curve and per point, total (medians of ``--rounds``); then the whole
section with today's curves against the curve set before the two risk-target curves joined it
(:data:`PREVIOUS_CURVES`), the two interleaved round by round so that both share the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from analytics.catalogue import load_catalogue
from analytics.frontier import PEAKS_RISK_STRATEGY
from analytics.own_frontier import OWN_CURVES, own_fleet_frontier, own_fleet_splits
from collector.model import VmRecord

#: The own-fleet curves before the risk-target curves joined them: the calibrated headroom at three risk targets
#: under our strategy's name (scored exactly as ``rightsizer-risk`` is), no ``rightsizer-peaks-risk``.
PREVIOUS_CURVES: tuple[tuple[str, str, tuple[float | str, ...]], ...] = tuple(
    ("rightsizer", "risk_pct", (1.0, 3.0, 10.0)) if strategy == "rightsizer-risk" else (strategy, knob, values)
    for strategy, knob, values in OWN_CURVES if strategy != PEAKS_RISK_STRATEGY)


def _compare(frame: pd.DataFrame, vms: Sequence[VmRecord], *, now: datetime, lookback_days: float,
             rounds: int) -> dict[str, float]:
    """The whole section (split + every point) with :data:`PREVIOUS_CURVES` and with today's, interleaved."""
    catalogue = load_catalogue()
    times: dict[str, list[float]] = {"previous curves": [], "today's curves": []}
    for _ in range(rounds):
        for name, curves in (("previous curves", PREVIOUS_CURVES), ("today's curves", OWN_CURVES)):
            start = time.perf_counter()
            own_fleet_frontier(frame, vms, catalogue, now=now, lookback_days=lookback_days, curves=curves)
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def _time_section(frame: pd.DataFrame, vms: Sequence[VmRecord], *, now: datetime, lookback_days: float,
                  rounds: int) -> dict[str, float]:
    catalogue = load_catalogue()
    runs: list[dict[str, float]] = []
    for _ in range(rounds):
        row: dict[str, float] = {}
        start = time.perf_counter()
        frontier = own_fleet_splits(frame, vms, catalogue, now=now, lookback_days=lookback_days)
        row["split"] = time.perf_counter() - start
        for strategy, knob, values in OWN_CURVES:
            start = time.perf_counter()
            for value in values:
                frontier.point(strategy, knob, value)
            row[f"{strategy} {knob} x{len(values)}"] = time.perf_counter() - start
        row["total"] = sum(row.values())
        runs.append(row)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _print(title: str, figures: dict[str, float]) -> None:
    print(title)
    for name, seconds in figures.items():
        per = ""
        if " x" in name:
            n = int(name.rsplit(" x", 1)[1])
            per = f" ({seconds / n:.3f} s per point)"
        print(f"  {name:<48} {seconds:8.3f} s{per}")


def demo_fleet_inputs() -> tuple[pd.DataFrame, list[VmRecord], datetime, float]:
    """The demo fleet (24 VMs, 30 days seeded) read back as hourly rollups of a 14-day lookback."""
    from collector.store.sqlite import SqliteStore
    from rightsizer.demo import demo_fleet, utc_hour
    from rightsizer.demo_history import seed_synthetic_history

    now = utc_hour(datetime(2026, 12, 1, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "demo.db")
        try:
            seed_synthetic_history(store, demo_fleet(), days=30, now=now)
            frame = store.frame(now - timedelta(days=14), now + timedelta(hours=1), resolution="hour")
            vms = list(store.vms())
        finally:
            store.close()
    return frame, vms, now, 14.0


def large_fleet_inputs(n_vms: int, days: int) -> tuple[pd.DataFrame, list[VmRecord], datetime, float]:
    """``n_vms`` synthetic VMs x ``days`` days of hourly rollups; the lookback is all of it."""
    from bench.analytics_bench import synth_fleet

    vms, hour, _raw = synth_fleet(n_vms, days)
    del _raw
    return hour, vms, hour["ts"].max().to_pydatetime() + timedelta(hours=1), float(days)


def _report(title: str, inputs: tuple[pd.DataFrame, list[VmRecord], datetime, float], rounds: int) -> None:
    frame, vms, now, days = inputs
    _print(f"{title} (median of {rounds}):", _time_section(frame, vms, now=now, lookback_days=days, rounds=rounds))
    _print(f"{title}, whole section, interleaved (median of {rounds}):",
           _compare(frame, vms, now=now, lookback_days=days, rounds=rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.own_frontier_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not args.skip_demo:
        _report("demo fleet, 14-day lookback", demo_fleet_inputs(), args.rounds)
    if not args.skip_large:
        _report(f"synthetic fleet, {args.vms} VMs x {args.days} days", large_fleet_inputs(args.vms, args.days),
                args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
