"""Reading hourly data while an hour is running: the store re-aggregates that hour from its raw rows.

    python -m bench.running_hour_bench [--vms 1000] [--days 1] [--minutes 60] [--rounds 5]

A SQLite store gets ``--days`` of stored hourly rollups for ``--vms`` VMs and, in the newest (running) hour,
``--minutes`` one-minute raw samples per VM. Then, interleaved over ``--rounds`` rounds (medians printed):

* floor: ``frame(start, hour, resolution="hour")``: the stored hours only, up to the running hour;
* after a write: ``frame(start, hour + 1 h, resolution="hour")`` right after a commit (the first read after
  a collection cycle): the stored hours plus the running hour, aggregated from its raw rows;
* again: the same read once more with nothing written in between (the dashboard's other views, the API).

Figures: median and minimum seconds of each read, the running hour's extra seconds, ratio = median / floor.
No gate: the figures are for before/after comparisons on the same machine (say ``uptime`` beside them).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from collector.model import VmRecord, VmState
from collector.store.sqlite import SqliteStore

GIB = 1024**3
END = datetime(2026, 11, 2, 12, tzinfo=UTC)  # start of the running hour


def _vms(n: int) -> list[VmRecord]:
    return [VmRecord(uuid=f"00000000-0000-4000-8000-{i:012d}", name=f"vm-{i:05d}", uri="qemu:///system",
                     host=f"host-{i % 20}", state=VmState.RUNNING, vcpus=2, max_vcpus=2, memory_bytes=4 * GIB,
                     max_memory_bytes=4 * GIB, labels={}, first_seen=END - timedelta(days=30), last_seen=END)
            for i in range(n)]


def _rows(vms: list[VmRecord], ts_s: np.ndarray, interval_s: float, rng: np.random.Generator) -> pd.DataFrame:
    n_vm, n_t = len(vms), len(ts_s)
    cpu = rng.gamma(2.0, 0.2, n_vm * n_t)
    cpu[rng.random(n_vm * n_t) < 0.02] = np.nan  # a few gaps, as real collection has
    return pd.DataFrame({
        "vm": np.repeat([v.uuid for v in vms], n_t), "ts": np.tile(ts_s, n_vm).astype(np.int64),
        "state": VmState.RUNNING.value, "vcpus": 2, "memory_bytes": 4 * GIB, "cpu_vcpus": cpu,
        "memory_used_bytes": rng.integers(1 * GIB, 3 * GIB, n_vm * n_t),
        "disk_read_bps": rng.random(n_vm * n_t) * 1e6, "disk_write_bps": rng.random(n_vm * n_t) * 1e6,
        "net_rx_bps": rng.random(n_vm * n_t) * 1e5, "net_tx_bps": rng.random(n_vm * n_t) * 1e5,
        "disk_capacity_bytes": 50 * GIB, "interval_s": interval_s, "gap": 0,
    })


def build(path: Path, n_vms: int, days: int, minutes: int) -> SqliteStore:
    """A store with ``days`` of hourly rows and ``minutes`` one-minute samples in the running hour."""
    rng = np.random.default_rng(20261102)
    vms = _vms(n_vms)
    end_s = int(END.timestamp())
    store = SqliteStore(path)
    hours = np.arange(end_s - days * 86400, end_s, 3600) + 3599  # one row near each hour's end
    store.write_history(vms, _rows(vms, hours, 3600.0, rng))
    minute_ts = end_s + 60 * np.arange(1, minutes + 1) - 1
    store.write_history(vms, _rows(vms, minute_ts, 60.0, rng))
    return store


def measure(store: SqliteStore, days: int, rounds: int) -> dict[str, float]:
    """Medians over interleaved rounds: stored hours only; with the running hour right after a commit (as the
    first read after each collection cycle); the same read again (nothing written in between)."""
    start = END - timedelta(days=days)
    floor, after_write, again = [], [], []
    for i in range(rounds):
        t = time.perf_counter()
        stored = store.frame(start, END, resolution="hour")
        floor.append(time.perf_counter() - t)
        store.set_meta("bench_round", str(i))  # a commit, as a collection cycle makes
        t = time.perf_counter()
        first = store.frame(start, END + timedelta(hours=1), resolution="hour")
        after_write.append(time.perf_counter() - t)
        t = time.perf_counter()
        second = store.frame(start, END + timedelta(hours=1), resolution="hour")
        again.append(time.perf_counter() - t)
        pd.testing.assert_frame_equal(first, second)
    assert len(first) > len(stored), "the running hour was not read"
    out = {}
    for name, values in (("floor", floor), ("after_write", after_write), ("again", again)):
        out[f"{name}_s"] = statistics.median(values)
        out[f"{name}_min_s"] = min(values)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = build(Path(tmp) / "bench.db", args.vms, args.days, args.minutes)
        print(f"store: {args.vms} VMs, {args.days} d of hours, {args.minutes} one-minute samples in the running "
              f"hour (built in {time.perf_counter() - t:.1f} s)")
        try:
            m = measure(store, args.days, args.rounds)
        finally:
            store.close()
    print(f"{'read':44s} {'median':>8s} {'min':>8s} {'median - floor':>15s} {'ratio':>6s}")
    for name, label in (("floor", "floor: stored hours only"),
                        ("after_write", "with the running hour, first after a write"),
                        ("again", "with the running hour, read again")):
        med, low = m[f"{name}_s"], m[f"{name}_min_s"]
        print(f"{label:44s} {med:7.3f}s {low:7.3f}s {med - m['floor_s']:+14.3f}s {med / m['floor_s']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
