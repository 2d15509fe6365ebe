"""Pattern model speed: the fleet-wide fit over 5,000 VMs x 30 days of hourly rollups.

    python -m bench.patterns_bench [--vms 5000] [--days 30] [--strict]

A seeded synthetic fleet mixes the six patterns (office-hours, nightly-batch, steady, spiky, idle, and VMs
with too little history). In one process it times:

* floor: a bare ``groupby(["vm", weekday, hour]).mean()`` of the hourly frame -- the weekly profile every
  pattern method has to compute at least;
* fit: :func:`analytics.patterns.fit_patterns` (profiles, edge rules, k-means, naming).

Figures: seconds (medians of 3 interleaved rounds), the ratio fit / floor, peak RSS, and how many VMs got
the pattern they were generated with. Target: fit <= 10 s. ``--strict`` exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from analytics.patterns import PATTERNS, fit_patterns, week_bins

TARGET_SECONDS = 10.0
REPEATS = 3


def synthetic_pattern_frame(
    n_per_pattern: int, days: int, *, seed: int = 20240601, end: datetime | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """An hourly frame (store columns vm, ts, cpu_mean_vcpus, cpu_max_vcpus, running_s) and each VM's true pattern.

    VM ids are ``<pattern>-<i>``; "unknown" VMs have only two days of history. Office-hours VMs work Mon-Fri
    08:00-18:00 UTC, nightly-batch VMs 01:00-04:00 every night.
    """
    rng = np.random.default_rng(seed)
    end = end or datetime(2026, 11, 2, tzinfo=UTC)
    n_hours = days * 24
    end_h = int(end.timestamp()) // 3600
    hour_index = np.arange(end_h - n_hours, end_h, dtype=np.int64)
    hod = hour_index % 24
    weekday = (hour_index // 24 + 3) % 7
    office = (weekday < 5) & (hod >= 8) & (hod < 18)
    night = (hod >= 1) & (hod < 4)
    frames = []
    truth: dict[str, str] = {}
    for pattern in PATTERNS:
        for i in range(n_per_pattern):
            vm = f"{pattern}-{i:05d}"
            truth[vm] = pattern
            level = rng.uniform(0.5, 3.0)
            noise = rng.normal(0.0, 1.0, n_hours)
            if pattern == "office-hours":
                cpu = np.where(office, level * (0.8 + 0.1 * noise), 0.005 + 0.002 * np.abs(noise))
            elif pattern == "nightly-batch":
                cpu = np.where(night, level * (0.9 + 0.05 * noise), 0.01 + 0.005 * np.abs(noise))
            elif pattern == "steady":
                cpu = level * (1.0 + 0.08 * noise)
            elif pattern == "spiky":
                bursts = rng.random(n_hours) < 0.04
                cpu = np.where(bursts, level * rng.uniform(2.0, 4.0, n_hours), 0.15 * level * (1 + 0.3 * np.abs(noise)))
            elif pattern == "idle":
                cpu = 0.004 + 0.002 * np.abs(noise)
            else:
                cpu = level * (0.5 + 0.4 * rng.random(n_hours))
            hours = hour_index if pattern != "unknown" else hour_index[-48:]
            cpu = np.clip(cpu, 0.0, None)[-len(hours):]
            frames.append(pd.DataFrame({
                "vm": vm, "ts": pd.to_datetime(hours * 3600, unit="s", utc=True), "cpu_mean_vcpus": cpu,
                "cpu_max_vcpus": cpu * 1.3 + 0.001, "running_s": 3600.0,
            }))
    return pd.concat(frames, ignore_index=True), truth


def raw_frame_from_hourly(hourly: pd.DataFrame, *, vcpus: int = 4, memory_bytes: int = 8 << 30) -> pd.DataFrame:
    """The store's raw frame (one running sample per hour, at half past) whose rollups give ``hourly``'s means."""
    from collector.store.base import RAW_COLUMNS

    raw = pd.DataFrame({c: np.full(len(hourly), np.nan) for c in RAW_COLUMNS})
    raw["vm"] = hourly["vm"].to_numpy()
    raw["ts"] = (hourly["ts"] + pd.Timedelta(minutes=30)).to_numpy()
    raw["state"] = "running"
    raw["vcpus"] = float(vcpus)
    raw["memory_bytes"] = float(memory_bytes)
    raw["cpu_vcpus"] = hourly["cpu_mean_vcpus"].to_numpy()
    raw["memory_used_bytes"] = float(memory_bytes) * 0.75
    raw["interval_s"] = 3600.0
    raw["gap"] = False
    return raw


def _floor(frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    _epoch, bins = week_bins(frame["ts"])
    frame.assign(bin=bins).groupby(["vm", "bin"], sort=False)["cpu_mean_vcpus"].mean()
    return time.perf_counter() - start


def _fit(frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    fit_patterns(frame)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=5000, help="VMs in the fleet (default 5000)")
    parser.add_argument("--days", type=int, default=30, help="days of hourly history (default 30)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    frame, truth = synthetic_pattern_frame(max(1, args.vms // len(PATTERNS)), args.days)
    vms = frame["vm"].nunique()
    print(f"fleet: {vms} VMs x {args.days} days = {len(frame):,} hourly rows", flush=True)
    floors, fits = [], []
    for _ in range(REPEATS):
        floors.append(_floor(frame))
        fits.append(_fit(frame))
    floor_s, fit_s = statistics.median(floors), statistics.median(fits)
    result = fit_patterns(frame)
    right = sum(1 for vm, p in truth.items() if result.pattern_of(vm) == p)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"floor (weekly profile groupby): {floor_s:.2f} s")
    print(f"fit_patterns:                   {fit_s:.2f} s  (target <= {TARGET_SECONDS:g} s; ratio to floor "
          f"{fit_s / floor_s:.1f}x)")
    print(f"peak RSS: {rss / 1024**2:.0f} MiB; patterns as generated: {right}/{len(truth)}; "
          f"counts {result.counts()}")
    if args.strict and fit_s > TARGET_SECONDS:
        print(f"FAIL: fit took {fit_s:.2f} s > {TARGET_SECONDS:g} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
