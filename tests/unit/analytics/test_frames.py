"""The fleet-scale frame helpers give what the plain pandas/numpy calls they replace give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.catalogue import GIB, load_catalogue, load_storage_prices
from analytics.costs import fleet_costs
from analytics.frames import (
    appearance_codes,
    code_dtype,
    epoch_ns,
    group_percentile,
    nan_to_num_lean,
    rows_since,
    sorted_by_vm_and_time,
    sorted_codes,
    vm_time_order,
)
from analytics.idle import find_idle
from analytics.recommend import recommend_frame
from collector.model import VmRecord, VmState
from core.settings import CostSettings, IdleSettings

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _shuffled_categorical(rng: np.random.Generator) -> pd.Series:
    names = [f"vm-{i:02d}" for i in rng.permutation(12)]
    values = rng.choice(names[:9], size=200)  # three categories stay unused
    return pd.Series(pd.Categorical(values, categories=names))


@pytest.mark.parametrize("seed", range(5))
def test_codes_match_factorize_for_categoricals_and_strings(seed: int) -> None:
    series = _shuffled_categorical(np.random.default_rng(seed))
    for values in (series, series.astype(str)):
        codes, names = sorted_codes(values)
        ref_codes, ref_names = pd.factorize(values.astype(str), sort=True)
        assert names == list(ref_names) and (codes == ref_codes).all()
        codes, names = appearance_codes(values)
        ref_codes, ref_names = pd.factorize(values.astype(str), sort=False)
        assert names == list(ref_names) and (codes == ref_codes).all()
    ordered = series.sort_values(kind="stable")
    codes, names = appearance_codes(ordered)
    ref_codes, ref_names = pd.factorize(ordered.astype(str), sort=False)
    assert names == list(ref_names) and (codes == ref_codes).all()


@pytest.mark.parametrize("n_names", [1, 126, 127, 300, 32766, 32767, 40000])
def test_compact_codes_are_the_categoricals_own_width(n_names: int) -> None:
    rng = np.random.default_rng(n_names)
    names = [f"vm-{i:05d}" for i in rng.permutation(n_names)]
    series = pd.Series(pd.Categorical(rng.choice(names, size=3 * n_names), categories=names))
    for values in (series, series.astype(str)):
        wide, wide_names = sorted_codes(values)
        small, small_names = sorted_codes(values, compact=True)
        built = pd.Categorical.from_codes(small, categories=small_names)
        assert small_names == wide_names and (small == wide).all()
        assert small.dtype == code_dtype(len(small_names)) == built.codes.dtype
        assert np.shares_memory(built.codes, small)  # taken as they are: no copy


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_nan_to_num_lean_equals_nan_to_num(dtype: type) -> None:
    if np.dtype(dtype).kind == "f":
        values = np.array([1.5, -0.0, 0.0, 3e38, -7.25, np.nan, np.inf, -np.inf, np.nan], dtype=dtype)
    else:
        values = np.array([1, -7, 0, 2**40], dtype=dtype)
    got = nan_to_num_lean(values)
    want = np.nan_to_num(values)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert not np.shares_memory(got, values)
    clean = np.array([1.0, 2.0], dtype=dtype)
    assert nan_to_num_lean(clean).tobytes() == np.nan_to_num(clean).tobytes()


def test_group_percentile_equals_per_group_percentile() -> None:
    rng = np.random.default_rng(3)
    counts = np.array([0, 5, 5, 1, 17, 0, 5, 2])
    codes = np.repeat(np.arange(len(counts)), counts)
    values = rng.lognormal(0, 1, len(codes))
    got = group_percentile(codes, values, len(counts), 95.0)
    for i, c in enumerate(counts):
        if c == 0:
            assert np.isnan(got[i])
        else:
            assert got[i] == np.percentile(values[codes == i], 95)


def test_order_is_a_slice_when_sorted_and_a_stable_sort_otherwise() -> None:
    codes = np.array([0, 0, 1, 1, 2])
    ts = np.array([1, 2, 1, 5, 0])
    assert vm_time_order(codes, ts) == slice(None)
    shuffled = np.array([2, 0, 1, 4, 3])
    order = vm_time_order(codes[shuffled], ts[shuffled])
    assert isinstance(order, np.ndarray)
    assert (codes[shuffled][order] == codes).all() and (ts[shuffled][order] == ts).all()


def test_sorted_by_vm_and_time_and_rows_since_match_pandas() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "vm": rng.choice(["b", "a", "c"], 60),
        "ts": pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 48, 60), unit="h"),
        "x": np.arange(60.0),
    })
    expected = frame.sort_values(["vm", "ts"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(sorted_by_vm_and_time(frame), expected)
    start = pd.Timestamp(T0 + timedelta(hours=20))
    pd.testing.assert_frame_equal(rows_since(frame, start), frame[frame["ts"] >= start])
    assert rows_since(frame, pd.Timestamp(T0)) is frame
    naive = frame.assign(ts=frame["ts"].dt.tz_localize(None))
    assert (epoch_ns(naive["ts"]) == epoch_ns(frame["ts"])).all()
    assert (epoch_ns(frame["ts"].astype(str)) == epoch_ns(frame["ts"])).all()


def _fleet(n_vms: int, days: int, seed: int) -> tuple[list[VmRecord], pd.DataFrame]:
    """A small fleet as the SQLite store returns it: float64 columns, VM UUIDs as strings, (vm, ts) order."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    sizes = np.array([(1, 2), (2, 4), (4, 8), (4, 16), (8, 32)])[rng.integers(0, 5, n_vms)]
    names = [f"{i:08x}-0000-4000-8000-000000000000" for i in rng.permutation(n_vms)]
    vms = [VmRecord(uuid=u, name=f"vm-{i}", uri="test:///default", host=f"hv-{i % 3}", state=VmState.RUNNING,
                    vcpus=int(sizes[i, 0]), max_vcpus=int(sizes[i, 0]), memory_bytes=int(sizes[i, 1]) * GIB,
                    max_memory_bytes=int(sizes[i, 1]) * GIB, labels={}, first_seen=T0, last_seen=T0)
           for i, u in enumerate(names)]
    level = rng.uniform(0.01, 0.5, n_vms)[:, None] * sizes[:, :1]
    daily = 1 + 0.8 * np.sin(np.arange(hours) * 2 * np.pi / 24)[None, :]
    mean = (level * daily * rng.lognormal(0, 0.3, (n_vms, hours))).astype(np.float32).astype(np.float64)
    mem = (rng.uniform(0.1, 0.8, n_vms)[:, None] * sizes[:, 1:] * GIB
           * rng.uniform(0.95, 1.05, (n_vms, hours))).astype(np.float32).astype(np.float64)
    rows = n_vms * hours
    frame = pd.DataFrame({
        "vm": np.repeat(np.array(names, dtype=object), hours),
        "ts": pd.to_datetime(T0) + pd.to_timedelta(np.tile(np.arange(hours), n_vms), unit="h"),
        "samples": np.full(rows, 12.0), "running_s": np.full(rows, 3600.0),
        "vcpus": np.repeat(sizes[:, 0], hours).astype(float),
        "memory_bytes": np.repeat(sizes[:, 1] * GIB, hours).astype(float),
        "cpu_mean_vcpus": mean.ravel(), "cpu_p95_vcpus": (mean * 1.3).ravel(), "cpu_max_vcpus": (mean * 1.6).ravel(),
        "memory_used_max_bytes": mem.ravel(), "memory_used_mean_bytes": (mem * 0.9).ravel(),
        "disk_read_bytes": np.full(rows, 1e3), "disk_write_bytes": np.full(rows, 1e3),
        "net_rx_bytes": np.full(rows, 1e3), "net_tx_bytes": np.full(rows, 1e3),
        "disk_capacity_bytes": np.full(rows, 20e9),
    })
    return vms, sorted_by_vm_and_time(frame)


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame in float32 with a categorical VM column (categories in another order)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == np.float64:
            out[col] = out[col].astype(np.float32)
    names = sorted(set(out["vm"]), reverse=True)
    out["vm"] = pd.Categorical(out["vm"], categories=names)
    return out


def test_compact_frame_gives_the_same_costs_findings_and_idle() -> None:
    vms, frame = _fleet(40, 15, seed=11)
    compact = _compact(frame)
    catalogue, storage = load_catalogue(), load_storage_prices()
    now = T0 + timedelta(days=15)
    wide = fleet_costs(frame, vms, catalogue, storage, CostSettings(), now=now)
    narrow = fleet_costs(compact, vms, catalogue, storage, CostSettings(), now=now)
    pd.testing.assert_frame_equal(wide, narrow, check_exact=False, rtol=1e-6)
    idle = IdleSettings(cpu_vcpus_below=0.2, share_of_time=0.5)
    assert find_idle(frame, idle, include_all=True) == find_idle(compact, idle, include_all=True)
    a = recommend_frame(frame, vms, catalogue, now=now, lookback_days=14.0, idle_settings=idle)
    b = recommend_frame(compact, vms, catalogue, now=now, lookback_days=14.0, idle_settings=idle)
    assert [(f.uuid, f.finding, f.target_type, f.risk, f.pattern) for f in a] == \
        [(f.uuid, f.finding, f.target_type, f.risk, f.pattern) for f in b]
    assert {f.finding.value for f in a} > {"optimized"}  # the fleet exercises more than one verdict
