"""Seed the dashboard bench's store fast enough for 20,000-50,000 VMs x 30 days.

``rightsizer.demo_history.seed_synthetic_history`` builds one ``UsagePoint`` per sample and writes the whole
history in one transaction, which is fine for a demo but needs tens of GiB and hours at 50,000 VMs. This
writes the same rows (same generator, same seeds, same values: tests/unit/bench/test_dashboard_seed.py
compares both) as numpy columns, one day of the whole fleet per transaction, in the table's key order. The
first day goes through ``SqliteStore.write_history`` (inventory, rollup); later days insert their raw rows and
their hourly rows directly: with one sample per hour, an hour's rollup is that sample (as ``_rollup`` gives it).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from collector.model import VmState
from collector.store.sqlite import SqliteStore
from rightsizer.demo import DEFAULT_URI, DemoVm, demo_vm_records, utc_hour
from rightsizer.demo_history import usage_rates

#: Hours of the whole fleet written per transaction.
CHUNK_H = 24


def seed_history_fast(
    store: SqliteStore,
    fleet: Sequence[DemoVm],
    *,
    days: float,
    now: datetime,
    seed: int,
    uri: str = DEFAULT_URI,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write ``days`` of hourly SYNTHETIC usage for ``fleet`` ending at ``now``; returns the raw rows written.

    The rows equal ``seed_synthetic_history(..., points_per_hour=1)``'s. Raises StoreError from the store.
    """
    interval_s = 3600.0
    now = utc_hour(now)
    end = datetime.fromtimestamp(math.floor(now.timestamp() / interval_s) * interval_s, tz=UTC)
    records = demo_vm_records(fleet, now=end, days=days, uri=uri)
    count = int(days * 86400 / interval_s)
    epoch_s = end.timestamp() - (np.arange(count, 0, -1) - 1) * interval_s
    series = _fleet_series(fleet, epoch_s, end.timestamp(), interval_s, seed)
    written = 0
    for first in range(0, count, CHUNK_H):
        cols = slice(first, min(first + CHUNK_H, count))
        frame = _chunk_frame(fleet, series, epoch_s[cols], cols, interval_s)
        if first == 0:
            written += store.write_history(records, frame)
        else:
            written += _insert_day(store.path, frame)
        if progress is not None:
            progress(f"{min(first + CHUNK_H, count)}/{count} h, {written:,} rows")
    _record_backups(store.path, [(r.uuid, r.newest_backup) for r in records if r.newest_backup is not None])
    store.set_meta("data_mode", "demo")
    store.set_meta("demo_seed", str(seed))
    store.set_meta("demo_history", f"synthetic, {days:g} days, 1 points per hour, until {end.isoformat()}")
    return written


_RAW_INSERTED = ("vm", "ts", "state", "vcpus", "memory_bytes", "cpu_vcpus", "memory_used_bytes", "disk_read_bps",
                 "disk_write_bps", "net_rx_bps", "net_tx_bps", "disk_capacity_bytes", "interval_s", "gap")
_HOUR_INSERTED = ("vm", "ts", "samples", "running_s", "vcpus", "memory_bytes", "cpu_mean_vcpus", "cpu_p95_vcpus",
                  "cpu_max_vcpus", "memory_used_max_bytes", "memory_used_mean_bytes", "disk_read_bytes",
                  "disk_write_bytes", "net_rx_bytes", "net_tx_bytes", "disk_capacity_bytes", "disk_bps_p99")


def _hour_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """The rollup of hours holding one sample each (the other signal columns stay NULL, as their inputs)."""
    interval = raw["interval_s"].fillna(0.0).clip(upper=3600.0)
    return pd.DataFrame({
        "vm": raw["vm"], "ts": raw["ts"] // 3600 * 3600, "samples": 1,
        "running_s": np.where(raw["state"] == VmState.RUNNING.value, interval, 0.0).clip(max=3600.0),
        "vcpus": raw["vcpus"], "memory_bytes": raw["memory_bytes"], "cpu_mean_vcpus": raw["cpu_vcpus"],
        "cpu_p95_vcpus": raw["cpu_vcpus"], "cpu_max_vcpus": raw["cpu_vcpus"],
        "memory_used_max_bytes": raw["memory_used_bytes"], "memory_used_mean_bytes": raw["memory_used_bytes"],
        "disk_read_bytes": raw["disk_read_bps"] * interval, "disk_write_bytes": raw["disk_write_bps"] * interval,
        "net_rx_bytes": raw["net_rx_bps"] * interval, "net_tx_bytes": raw["net_tx_bps"] * interval,
        "disk_capacity_bytes": raw["disk_capacity_bytes"],
        "disk_bps_p99": raw["disk_read_bps"] + raw["disk_write_bps"],
    })


def _insert_day(path: Path, raw: pd.DataFrame) -> int:
    """Insert a day's raw rows and their hourly rollups in one transaction; returns the raw rows."""
    raw = raw.sort_values(["ts", "vm"], kind="stable")  # key order: the B-tree appends
    raw = raw.assign(state=raw["state"].astype(str), gap=raw["gap"].astype(int))
    hours = _hour_rows(raw)
    with closing(sqlite3.connect(path, timeout=30.0)) as conn, conn:
        for table, cols, frame in (("samples", _RAW_INSERTED, raw), ("hourly", _HOUR_INSERTED, hours)):
            conn.executemany(  # NaN binds as NULL
                f"INSERT OR REPLACE INTO {table}({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                zip(*(frame[c].tolist() for c in cols), strict=True))
    return len(raw)


def _record_backups(path: Path, newest: Sequence[tuple[str, datetime]]) -> None:
    """The three daily snapshots seed_synthetic_history records per VM, in one transaction (a store call per VM
    commits once per VM: minutes at 50,000 VMs)."""
    rows = [(uuid, int((when - timedelta(hours=24 * k)).timestamp()), "snapshot") for uuid, when in newest
            for k in range(3)]
    with closing(sqlite3.connect(path, timeout=30.0)) as conn, conn:
        conn.executemany("INSERT OR IGNORE INTO backups VALUES (?,?,?)", rows)


def _fleet_series(fleet: Sequence[DemoVm], epoch_s: np.ndarray, end_s: float, interval_s: float,
                  seed: int) -> dict[str, np.ndarray]:
    """Per-VM usage as (VMs x hours) arrays, drawn exactly as demo_history._points does."""
    count = epoch_s.size
    hour = (epoch_s % 86400) / 3600.0
    weekday = ((epoch_s // 86400 + 3) % 7).astype(int)
    progress = np.linspace(0.0, 1.0, count)
    shape = (len(fleet), count)
    out: dict[str, np.ndarray] = {k: np.empty(shape) for k in ("cpu", "mem", "disk", "net")}
    out["running"] = np.empty(shape, dtype=bool)
    for index, vm in enumerate(fleet):
        rng = np.random.default_rng([seed, index])
        cpu, mem, disk, net, running = usage_rates(vm, rng, hour, weekday, progress, end_s - epoch_s, interval_s)
        out["cpu"][index], out["disk"][index], out["net"][index], out["running"][index] = cpu, disk, net, running
        out["mem"][index] = np.nan if mem is None else mem.astype(np.int64)
    return out


def _chunk_frame(fleet: Sequence[DemoVm], series: dict[str, np.ndarray], epoch_s: np.ndarray, cols: slice,
                 interval_s: float) -> pd.DataFrame:
    """Raw rows of the hours ``cols`` for every VM, in (ts, VM order) order, as demo_history._vm_points."""
    n_vms, n_h = len(fleet), epoch_s.size
    running = series["running"][:, cols]
    before = series["running"][:, cols.start - 1] if cols.start > 0 else np.zeros(n_vms, dtype=bool)
    previous = np.concatenate([before[:, None], running[:, :-1]], axis=1)
    gap = running & ~previous  # the first sample after a start has no rate yet
    full = running & ~gap

    def flat(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.T).ravel()

    def rate(name: str, factor: float) -> np.ndarray:
        return flat(np.where(full, series[name][:, cols] * factor, np.nan))

    specs = (np.array([vm.vcpus for vm in fleet], dtype=float), np.array([vm.memory_bytes for vm in fleet], float),
             np.array([vm.disk_capacity_bytes for vm in fleet], dtype=float))
    return pd.DataFrame({
        "vm": np.tile(np.array([vm.uuid for vm in fleet], dtype=object), n_h),
        "ts": np.repeat(epoch_s.astype(np.int64), n_vms),
        "state": np.where(flat(running), VmState.RUNNING.value, VmState.SHUTOFF.value).astype(object),
        "vcpus": np.tile(specs[0], n_h),
        "memory_bytes": np.tile(specs[1], n_h),
        "cpu_vcpus": rate("cpu", 1.0),
        "memory_used_bytes": flat(np.where(running, series["mem"][:, cols], np.nan)),
        "disk_read_bps": rate("disk", 0.6),
        "disk_write_bps": rate("disk", 0.4),
        "net_rx_bps": rate("net", 0.55),
        "net_tx_bps": rate("net", 0.45),
        "disk_capacity_bytes": np.tile(specs[2], n_h),
        "interval_s": np.full(n_vms * n_h, interval_s),
        "gap": flat(gap),
    })
