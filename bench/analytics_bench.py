"""Analytics speed: costs + recommendations for a 5,000-VM fleet with 14 days of 5-minute samples.

    python -m bench.analytics_bench [--vms 5000] [--days 14] [--strategies all|NAME] [--strict]

A synthetic fleet (seeded: daily cycles, noise, spikes, some growing VMs, mixed sizes, a third carrying a
``machine_type`` label) is generated as 5-minute samples and rolled up per VM-hour the way the store
keeps it (max, mean, p95 of CPU; max and mean of memory). Then, in one process:

* floor: a bare ``groupby("vm").quantile(0.95)`` on the hourly frame and on the 5-minute frame;
  (floors, costs and our strategy: medians of 3 interleaved rounds; the anchors run once)
* costs: ``analytics.costs.fleet_costs`` on the hourly frame (when that module is present);
* recommendations: ``analytics.recommend.recommend_frame`` for each strategy on the hourly frame.

Figures: seconds per step, peak RSS, and ratio = (costs + recommendations with our default) / the floor
on the 5-minute frame (the fleet's data; the analytics read its hourly rollups, as the store keeps them).
The ratio against the floor on the hourly frame is printed too, for information. Targets: costs +
recommendations <= 15 s, peak RSS <= 4 GB, ratio <= 2.
``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from analytics.catalogue import GIB, load_catalogue
from analytics.rightsizing.settings import STRATEGY_NAMES
from collector.model import VmRecord, VmState

STEP_S = 300
SAMPLES_PER_HOUR = 3600 // STEP_S
TARGET_SECONDS = 15.0
TARGET_RSS_BYTES = 4 * 1024**3
TARGET_RATIO = 2.0
REPEATS = 3  # gated figures: medians of interleaved rounds
SIZES = ((1, 2), (1, 4), (2, 4), (2, 8), (4, 8), (4, 16), (8, 32), (16, 64))


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def synth_fleet(n_vms: int, days: int, seed: int = 20240601) -> tuple[list[VmRecord], pd.DataFrame, pd.DataFrame]:
    """(inventory, hourly frame, 5-minute frame with vm/ts/cpu_vcpus/memory_used_bytes) for a fake fleet."""
    rng = np.random.default_rng(seed)
    end = datetime(2026, 11, 2, tzinfo=UTC)
    t0 = int(end.timestamp()) - days * 86400
    n_hours = days * 24
    n = n_hours * SAMPLES_PER_HOUR
    sizes = np.array(SIZES)[rng.integers(0, len(SIZES), n_vms)]
    vms: list[VmRecord] = []
    uuids = [str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i)) for i in range(n_vms)]
    for i, (vcpus, mem_gib) in enumerate(sizes):
        labels = {"team": f"team-{i % 7}"}
        if i % 3 == 0:
            labels["machine_type"] = ("g1.1", "c1.2", "g1.2", "g1.3", "m1.2")[i % 5]
        vms.append(VmRecord(
            uuid=uuids[i], name=f"vm-{i:05d}", uri="qemu:///system", host=f"host-{i % 40}", state=VmState.RUNNING,
            vcpus=int(vcpus), max_vcpus=int(vcpus), memory_bytes=int(mem_gib) * GIB,
            max_memory_bytes=int(mem_gib) * GIB, labels=labels, first_seen=datetime.fromtimestamp(t0, tz=UTC),
            last_seen=end,
        ))
    t = np.arange(n, dtype=np.float64) * STEP_S
    daily = 0.5 * (1 + np.sin(2 * np.pi * t / 86400.0)).astype(np.float32)
    hourly_parts = []
    raw_cpu = np.empty((n_vms, n), dtype=np.float32)
    raw_mem = np.empty((n_vms, n), dtype=np.float32)
    chunk = 250
    for a in range(0, n_vms, chunk):
        b = min(a + chunk, n_vms)
        k = b - a
        vcpus = sizes[a:b, 0].astype(np.float32)[:, None]
        level = (rng.lognormal(-2.5, 0.8, k).astype(np.float32)[:, None] * vcpus).clip(0.001, None)
        growth = np.where(rng.random(k) < 0.1, rng.uniform(0.01, 0.05, k), 0.0).astype(np.float32)[:, None]
        cpu = level * (0.6 + 0.8 * daily[None, :]) * (1 + growth * (t / 86400.0)[None, :].astype(np.float32))
        cpu *= rng.lognormal(0.0, 0.25, (k, n)).astype(np.float32)
        spikes = rng.random((k, n)) < 0.002
        cpu = np.where(spikes, cpu * 2.5, cpu)
        cpu = np.minimum(cpu, vcpus)
        mem_level = rng.uniform(0.1, 0.7, k).astype(np.float32)[:, None] * sizes[a:b, 1][:, None] * GIB
        mem = mem_level * (1 + 0.05 * rng.standard_normal((k, n)).astype(np.float32))
        raw_cpu[a:b], raw_mem[a:b] = cpu, mem
        by_hour = cpu.reshape(k, n_hours, SAMPLES_PER_HOUR)
        mem_by_hour = mem.reshape(k, n_hours, SAMPLES_PER_HOUR)
        hourly_parts.append(pd.DataFrame({
            "vm": np.repeat(np.array(uuids[a:b], dtype=object), n_hours),
            "ts": np.tile(t0 + 3600 * np.arange(n_hours), k),
            "samples": SAMPLES_PER_HOUR,
            "running_s": 3600.0,
            "vcpus": np.repeat(sizes[a:b, 0], n_hours).astype(np.float64),
            "memory_bytes": np.repeat(sizes[a:b, 1] * GIB, n_hours).astype(np.float64),
            "cpu_mean_vcpus": by_hour.mean(axis=2).ravel().astype(np.float64),
            "cpu_p95_vcpus": np.percentile(by_hour, 95, axis=2).ravel().astype(np.float64),
            "cpu_max_vcpus": by_hour.max(axis=2).ravel().astype(np.float64),
            "memory_used_max_bytes": mem_by_hour.max(axis=2).ravel().astype(np.float64),
            "memory_used_mean_bytes": mem_by_hour.mean(axis=2).ravel().astype(np.float64),
            "disk_read_bytes": 1e6, "disk_write_bytes": 1e6, "net_rx_bytes": 1e6, "net_tx_bytes": 1e6,
            "disk_capacity_bytes": 50e9,
        }))
    hour = pd.concat(hourly_parts, ignore_index=True)
    hour["ts"] = pd.to_datetime(hour["ts"], unit="s", utc=True)
    raw = pd.DataFrame({
        "vm": pd.Categorical.from_codes(np.repeat(np.arange(n_vms, dtype=np.int32), n), categories=uuids),
        "cpu_vcpus": raw_cpu.ravel(),
        "memory_used_bytes": raw_mem.ravel(),
    })
    return vms, hour, raw


def _counts(findings: list[Any]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.finding.value] = counts.get(f.finding.value, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--strategies", default="all", help="'all' or one strategy name")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])

    from analytics.recommend import recommend_frame

    try:
        from analytics.catalogue import load_storage_prices
        from analytics.costs import fleet_costs
        from core.settings import CostSettings
    except ImportError:  # the costs module is optional for this bench
        fleet_costs = None  # type: ignore[assignment]

    catalogue = load_catalogue()
    gen_s, (vms, hour, raw) = _timed(lambda: synth_fleet(args.vms, args.days))
    now = hour["ts"].max().to_pydatetime() + pd.Timedelta(hours=1).to_pytimedelta()
    print(f"fleet: {args.vms} VMs x {args.days} days: {len(raw):,} 5-minute rows, {len(hour):,} hourly rows "
          f"(generated in {gen_s:.1f} s)")

    storage = load_storage_prices() if fleet_costs is not None else None
    rounds: list[dict[str, float]] = []
    findings: list[Any] = []
    cost_rows = 0
    for _ in range(REPEATS):  # interleaved, so the floor and the pipeline share the machine's load
        r: dict[str, float] = {}
        r["floor_raw"], _ = _timed(lambda: raw.groupby("vm", observed=True)["cpu_vcpus"].quantile(0.95))
        r["floor_hour"], _ = _timed(lambda: hour.groupby("vm", sort=False)["cpu_p95_vcpus"].quantile(0.95))
        r["costs"] = 0.0
        if fleet_costs is not None:
            r["costs"], cost_frame = _timed(
                lambda: fleet_costs(hour, vms, catalogue, storage, CostSettings(), now=now))
            cost_rows = len(cost_frame)
        r["ours"], findings = _timed(lambda: recommend_frame(hour, vms, catalogue, strategy="rightsizer", now=now))
        rounds.append(r)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratio = statistics.median((r["costs"] + r["ours"]) / r["floor_raw"] for r in rounds)
    ratio_hour = statistics.median((r["costs"] + r["ours"]) / r["floor_hour"] for r in rounds)
    print(f"floor: groupby-quantile 5-minute frame {med['floor_raw']:.2f} s, hourly frame {med['floor_hour']:.2f} s")
    if fleet_costs is not None:
        print(f"costs: fleet_costs {med['costs']:.2f} s ({cost_rows:,} priced VM-hours)")
    else:
        print("costs: analytics.costs.fleet_costs not present, skipped")
    print(f"recommend rightsizer: {med['ours']:.2f} s ({_counts(findings)})")
    names = list(STRATEGY_NAMES) if args.strategies == "all" else [args.strategies]
    for name in names:
        if name == "rightsizer":
            continue
        seconds, found = _timed(partial(recommend_frame, hour, vms, catalogue, strategy=name, now=now))
        print(f"recommend {name}: {seconds:.2f} s ({_counts(found)})")

    total = med["costs"] + med["ours"]
    rss = _rss_bytes()
    print(f"costs + recommendations (ours): {total:.2f} s (target <= {TARGET_SECONDS:g} s)")
    print(f"peak RSS: {rss / 1024**3:.2f} GiB (target <= {TARGET_RSS_BYTES / 1024**3:g} GiB)")
    print(f"ratio vs floor on the 5-minute frame: {ratio:.2f} (target <= {TARGET_RATIO:g}); "
          f"vs floor on the hourly frame: {ratio_hour:.2f} (information: a per-VM decision loop over 1.7 M rows)")
    missed = total > TARGET_SECONDS or rss > TARGET_RSS_BYTES or ratio > TARGET_RATIO
    if missed:
        print("TARGET MISSED")
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
