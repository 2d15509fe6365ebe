"""Rows of the SQLite store as frames and back: samples to rows, the hourly rollup, typed frames in time order."""


from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from collector.errors import StoreError
from collector.model import UsagePoint, VmRecord, VmSample, VmState
from collector.store.base import (
    HOUR_COLUMNS,
    RAW_COLUMNS,
    SIGNAL_RAW_COLUMNS,
    Resolution,
)

RAW_DB_COLUMNS = RAW_COLUMNS  # same names in table and frame


HOUR_DB_COLUMNS = HOUR_COLUMNS


def to_epoch(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise StoreError(f"naive datetime {ts!r}: the store takes timezone-aware UTC times")
    return int(ts.timestamp())


def from_epoch(epoch: int | float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def opt(v: float | int | None) -> float | int | None:
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def record_from_sample(s: VmSample, taken_at: datetime) -> VmRecord:
    return VmRecord(
        uuid=s.ref.uuid, name=s.ref.name, uri=s.ref.uri, host=s.host, state=s.state, vcpus=s.vcpus,
        max_vcpus=s.max_vcpus, memory_bytes=s.memory_bytes, max_memory_bytes=s.max_memory_bytes,
        labels=dict(s.labels), first_seen=taken_at, last_seen=taken_at, source="libvirt",
    )


def point_row(p: UsagePoint) -> tuple[object, ...]:
    return (p.vm_uuid, to_epoch(p.ts), p.state.value, p.vcpus, p.memory_bytes, opt(p.cpu_vcpus),
            opt(p.memory_used_bytes), opt(p.disk_read_bps), opt(p.disk_write_bps), opt(p.net_rx_bps),
            opt(p.net_tx_bps), opt(p.disk_capacity_bytes), opt(p.interval_s), int(p.gap),
            opt(p.cpu_delay_vcpus), opt(p.swap_in_bps), opt(p.swap_out_bps), opt(p.major_faults_ps),
            opt(p.disk_read_iops), opt(p.disk_write_iops), opt(p.disk_read_time_s_per_s),
            opt(p.disk_write_time_s_per_s), opt(p.disk_allocation_bytes))


def points_frame(points: Iterable[UsagePoint]) -> pd.DataFrame:
    return pd.DataFrame.from_records([point_row(p) for p in points], columns=list(RAW_DB_COLUMNS))


def normalise_raw(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("vm", "ts", "state", "vcpus", "memory_bytes") if c not in frame.columns]
    if missing:
        raise StoreError(f"history frame lacks column(s) {missing}; see collector.store.base.RAW_COLUMNS")
    f = frame.copy()
    for col in RAW_DB_COLUMNS:
        if col not in f.columns:
            f[col] = 0 if col == "gap" else np.nan
    ts = f["ts"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        f["ts"] = (ts.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000_000).astype("int64")
    f["state"] = f["state"].map(lambda s: s.value if isinstance(s, VmState) else str(s))
    f["gap"] = f["gap"].fillna(0).astype(int)
    # insert in primary-key order: appends to the B-tree instead of splitting pages at random
    return f[list(RAW_DB_COLUMNS)].sort_values(["ts", "vm"], kind="stable")


def rollup(raw: pd.DataFrame) -> pd.DataFrame:
    """Hourly aggregates of raw rows (``ts`` epoch seconds) in the hour-frame columns."""
    f = raw.copy()
    for col in ("cpu_vcpus", "memory_used_bytes", "disk_read_bps", "disk_write_bps", "net_rx_bps",
                "net_tx_bps", "interval_s", "disk_capacity_bytes", "vcpus", "memory_bytes", *SIGNAL_RAW_COLUMNS):
        f[col] = pd.to_numeric(f[col], errors="coerce").astype("float64")
    f["hour"] = f["ts"].astype("int64") // 3600 * 3600
    interval = f["interval_s"].fillna(0.0).clip(upper=3600.0)
    f["running_s"] = np.where(f["state"] == VmState.RUNNING.value, interval, 0.0)
    for src, dst in (("disk_read_bps", "disk_read_bytes"), ("disk_write_bps", "disk_write_bytes"),
                     ("net_rx_bps", "net_rx_bytes"), ("net_tx_bps", "net_tx_bytes")):
        f[dst] = f[src] * interval
    g = f.groupby(["vm", "hour"], sort=False)
    out = g.agg(
        samples=("ts", "size"),
        running_s=("running_s", "sum"),
        vcpus=("vcpus", "max"),
        memory_bytes=("memory_bytes", "max"),
        cpu_mean_vcpus=("cpu_vcpus", "mean"),
        cpu_max_vcpus=("cpu_vcpus", "max"),
        memory_used_max_bytes=("memory_used_bytes", "max"),
        memory_used_mean_bytes=("memory_used_bytes", "mean"),
        disk_capacity_bytes=("disk_capacity_bytes", "max"),
    )
    sums = g[["disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"]].sum(min_count=1)
    out = out.join(sums)
    out["cpu_p95_vcpus"] = g["cpu_vcpus"].quantile(0.95)
    out = out.join(rollup_signals(f, interval))
    out = out.reset_index().rename(columns={"hour": "ts"})
    out["running_s"] = out["running_s"].clip(upper=3600.0)
    return out[list(HOUR_DB_COLUMNS)]


def rollup_signals(f: pd.DataFrame, interval: pd.Series) -> pd.DataFrame:
    """Hourly contention/pressure/disk aggregates: sums of counts, worst intervals and P99s."""
    f = f.assign(
        swap_in_bytes=f["swap_in_bps"] * interval, swap_out_bytes=f["swap_out_bps"] * interval,
        major_faults=f["major_faults_ps"] * interval, disk_read_reqs=f["disk_read_iops"] * interval,
        disk_write_reqs=f["disk_write_iops"] * interval, disk_read_time_s=f["disk_read_time_s_per_s"] * interval,
        disk_write_time_s=f["disk_write_time_s_per_s"] * interval,
        swap_bps=f["swap_in_bps"] + f["swap_out_bps"], disk_iops=f["disk_read_iops"] + f["disk_write_iops"],
        disk_bps=f["disk_read_bps"] + f["disk_write_bps"],
    )
    g = f.groupby(["vm", "hour"], sort=False)
    out = g.agg(
        cpu_delay_mean_vcpus=("cpu_delay_vcpus", "mean"),
        cpu_delay_max_vcpus=("cpu_delay_vcpus", "max"),
        major_faults_max_ps=("major_faults_ps", "max"),
        swap_max_bps=("swap_bps", "max"),
        disk_allocation_bytes=("disk_allocation_bytes", "max"),
    )
    sums = g[["swap_in_bytes", "swap_out_bytes", "major_faults", "disk_read_reqs", "disk_write_reqs",
              "disk_read_time_s", "disk_write_time_s"]].sum(min_count=1)
    out = out.join(sums)
    out["disk_iops_p99"] = g["disk_iops"].quantile(0.99)
    out["disk_bps_p99"] = g["disk_bps"].quantile(0.99)
    return out


def fetch_rows(frame: pd.DataFrame) -> Iterator[tuple[object, ...]]:
    """Rows for executemany; NaN binds as NULL in SQLite."""
    return zip(*(frame[c].tolist() for c in frame.columns), strict=True)


def read_columns(cols: Sequence[str], wanted: Collection[str], resolution: Resolution) -> tuple[str, ...]:
    """The table columns to read for the value columns ``wanted``: the keys first, then table order."""
    unknown = sorted(set(wanted) - set(cols))
    if unknown:
        raise StoreError(f"unknown {resolution} column(s) {unknown}; see collector.store.base")
    keys = ("vm", "ts", "state", "gap") if resolution == "raw" else ("vm", "ts")
    return tuple(c for c in cols if c in keys or c in set(wanted))


def by_vm_and_time(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.sort_values(["vm", "ts"], kind="stable")`` with a fresh index, by integer keys; consumes ``frame``.

    The table's key is (ts, vm), so rows arrive in time order; sorting the VM strings themselves would
    compare millions of Python strings. The VMs are ranked once and the rows ordered by (rank, ts): rows in
    time order need only a stable sort of the ranks. The columns are reordered one at a time, each old
    column dropped from ``frame`` as its reordered copy is made, so at most one extra column is alive.
    """
    if frame.empty:
        return frame.reset_index(drop=True)
    ranks, _names = pd.factorize(frame["vm"], sort=True)
    ts = pd.DatetimeIndex(frame["ts"]).asi8
    if len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all()):
        small = ranks.astype(np.int16 if len(_names) <= np.iinfo(np.int16).max else np.int32)
        order = np.argsort(small, kind="stable")  # a radix sort for 16-bit ranks
    else:
        order = np.lexsort((ts, ranks))
    del ranks, ts
    if bool((order[1:] > order[:-1]).all()):
        return frame.reset_index(drop=True)
    data: dict[str, object] = {}
    for name in list(frame.columns):
        data[name] = frame[name].array.take(order)
        del frame[name]
    return pd.DataFrame(data, copy=False)


def spliced(hours: pd.DataFrame, first: int, fresh: pd.DataFrame) -> pd.DataFrame:
    """``hours``' first ``first`` rows followed by ``fresh``, built one column at a time; consumes ``hours``."""
    data: dict[str, object] = {}
    for name in list(hours.columns):
        data[name] = pd.concat([hours[name].iloc[:first], fresh[name]], ignore_index=True)
        del hours[name]
    return pd.DataFrame(data, copy=False)


def empty_frame(cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})


def typed_frame(frame: pd.DataFrame, resolution: Resolution) -> pd.DataFrame:
    if frame.empty:
        frame = empty_frame(frame.columns)
        frame["vm"] = frame["vm"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="s", utc=True)
    skip = {"vm", "ts", "state"}
    for col in frame.columns:
        if col not in skip:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    if resolution == "raw":
        frame["gap"] = frame["gap"].fillna(0).astype(bool)
    return frame
