"""The fleet-wide helpers give what the per-VM (or per-row) code they replace gives, bit for bit.

Awkward inputs throughout: NaN hours, single-hour VMs, VMs with no CPU data, ties in price, excluded
VMs, shut-off VMs, VMs whose rows arrive in another VM order, duplicate timestamps.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

import analytics.recommend as recommend_module
from analytics.catalogue import CsvPriceCatalogue, MachineType, StoragePrices
from analytics.costs import fleet_costs
from analytics.findings.lifecycle import StoppedVm
from analytics.frames import numeric_column, vm_time_order
from analytics.recommend import Lifecycle, recommend_frame
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import UsageHistory
from analytics.rightsizing.batch import FleetColumns, fleet_needs
from analytics.rightsizing.decide import decide
from analytics.rightsizing.settings import (
    PERCENTILE_RULE,
    AwsSettings,
    KrrSettings,
    Policy,
    RightsizerSettings,
    profile_settings,
)
from collector.model import VmRecord, VmState
from core.settings import CostSettings, IdleSettings

GIB = 1024**3
T0 = 1_700_006_400  # UTC midnight
HOURS = 12 * 24
END_S = float(T0 + HOURS * 3600)
NOW = datetime.fromtimestamp(END_S, tz=UTC)

# two types share a price (ties), one is ineligible (gpu), levels overlap in vCPUs and memory
CATALOGUE = CsvPriceCatalogue([
    MachineType("s.1", 1, GIB, 0.01, "EUR"),
    MachineType("s.2", 2, 2 * GIB, 0.02, "EUR"),
    MachineType("t.2", 2, 2 * GIB, 0.02, "EUR"),
    MachineType("c.2", 2, 4 * GIB, 0.02, "EUR"),
    MachineType("g.2", 2, 8 * GIB, 0.03, "EUR", category="gpu"),
    MachineType("m.2", 2, 8 * GIB, 0.06, "EUR"),
    MachineType("m.4", 4, 8 * GIB, 0.06, "EUR"),
    MachineType("l.4", 4, 16 * GIB, 0.12, "EUR"),
    MachineType("x.16", 16, 64 * GIB, 0.50, "EUR"),
])


# -- ordering and columns ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["sorted", "blocks", "split-vm", "time-back", "duplicate-ts", "one", "empty"])
def test_vm_time_order_equals_a_stable_lexsort(case: str) -> None:
    codes = np.repeat(np.array([3, 0, 2, 1]), [5, 4, 1, 6])
    ts = np.concatenate([np.arange(5), np.arange(4), [7], np.arange(6)]) * 3600
    if case == "sorted":
        order = np.lexsort((ts, codes))
        codes, ts = codes[order], ts[order]
    elif case == "split-vm":
        codes = np.concatenate([codes, [3, 3]])
        ts = np.concatenate([ts, [10 * 3600, 11 * 3600]])
    elif case == "time-back":
        ts = ts.copy()
        ts[2], ts[3] = ts[3], ts[2]
    elif case == "duplicate-ts":
        ts = ts.copy()
        ts[1] = ts[0]
    elif case == "one":
        codes, ts = codes[:1], ts[:1]
    elif case == "empty":
        codes, ts = codes[:0], ts[:0]
    got = vm_time_order(codes, ts)
    expected = np.lexsort((ts, codes))
    picked = np.arange(len(codes))[got]
    assert picked.tolist() == expected.tolist()


def test_numeric_column_picks_then_converts_like_convert_then_pick() -> None:
    values = np.array([1.5, np.nan, 3.25, -0.0, 7e9], dtype=np.float32)
    frame = pd.DataFrame({"f32": values, "i64": np.arange(5), "obj": ["1", "x", None, "2.5", "3"]})
    rows = np.array([4, 0, 2])
    for name in ("f32", "i64", "obj", "absent"):
        whole = numeric_column(frame, name)
        for picked in (rows, slice(1, 4), slice(None)):
            got = numeric_column(frame, name, picked)
            assert got.dtype == np.float64
            assert got.tobytes() == whole[picked].tobytes(), (name, picked)


# -- catalogue --------------------------------------------------------------------------------------------
def test_catalogue_fitting_table_equals_the_scan() -> None:
    rng = np.random.default_rng(7)
    levels_v = [0.0, 1.0, 2.0, 4.0, 16.0, 17.0]
    levels_m = [0.0, float(GIB), 2.0 * GIB, 8.0 * GIB, 64.0 * GIB, 65.0 * GIB]
    requests = [(v + d, m + e) for v in levels_v for m in levels_m for d in (-1e-9, -2e-9, 0.0, 1e-9)
                for e in (-1.0, 0.0, 1.0, 2.0)]
    requests += [(float(v), float(m)) for v, m in zip(rng.uniform(0, 20, 300), rng.uniform(0, 70 * GIB, 300),
                                                      strict=True)]
    requests += [(math.nan, GIB), (1.0, math.nan), (math.inf, GIB), (-math.inf, -math.inf), (2, 4 * GIB)]
    for v, m in requests:
        for n in (0, 1, 3, 20):
            assert CATALOGUE.fitting(v, m, n) == CATALOGUE.fitting_scan(v, m, n), (v, m, n)
        assert CATALOGUE.cheapest_fitting(v, m) == (CATALOGUE.fitting_scan(v, m, 1) or [None])[0]


# -- the data half of decide ------------------------------------------------------------------------------
def _awkward_histories() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(ts, cpu p95, cpu max, memory max, running_s) per VM, each an edge case of its own."""
    rng = np.random.default_rng(11)
    ts = T0 + 3600.0 * np.arange(HOURS)

    def usage(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cpu = rng.lognormal(-1.5, 0.7, n)
        return cpu, cpu * rng.uniform(1.0, 2.0, n), rng.uniform(0.2, 1.5, n) * GIB, np.full(n, 3600.0)

    out = []
    cpu, peak, mem, run = usage(HOURS)
    out.append((ts, cpu, peak, mem, run))  # plain
    cpu, peak, mem, run = usage(HOURS)
    holes = rng.random(HOURS) < 0.2
    cpu[holes] = np.nan
    peak[rng.random(HOURS) < 0.1] = np.nan
    mem[rng.random(HOURS) < 0.3] = np.nan
    run[rng.random(HOURS) < 0.2] = np.nan
    run[rng.random(HOURS) < 0.1] = rng.uniform(-100, 5000)
    out.append((ts, cpu, peak, mem, run))  # NaN hours everywhere, odd running seconds
    cpu, peak, mem, run = usage(1)
    out.append((ts[-1:], cpu, peak, mem, run))  # a single hour
    cpu, peak, mem, run = usage(HOURS)
    out.append((ts, np.full(HOURS, np.nan), peak, mem, run))  # no CPU data at all
    cpu, peak, mem, run = usage(HOURS)
    out.append((ts, cpu, peak, np.full(HOURS, np.nan), run))  # memory unknown
    cpu, peak, mem, run = usage(HOURS)
    out.append((ts - 30 * 86400, cpu, peak, mem, run))  # all before the lookback
    cpu, peak, mem, run = usage(HOURS)
    cpu[:] = 0.25
    peak[:] = 0.25
    out.append((ts, cpu, peak, mem, run))  # constant: every percentile ties
    for length in (97, 200, 256, 131):  # groups of the same and of different lengths
        cpu, peak, mem, run = usage(length)
        run = rng.uniform(0, 3600, length)
        out.append((ts[-length:], cpu, peak, mem, run))
    return out


SETTINGS = [
    # the profiles as the fleet pass leaves them (daily-peak memory margin set), and the percentile rule
    ("rightsizer", RightsizerSettings(memory_peak_margin=2.0)),
    ("rightsizer", RightsizerSettings.model_validate({**profile_settings("conservative"), "lookback_days": 7.0,
                                                      "memory_peak_margin": 0.5})),
    ("rightsizer", RightsizerSettings.model_validate({**profile_settings("aggressive"), "memory_peak_margin": 4.0})),
    ("rightsizer", RightsizerSettings.model_validate(PERCENTILE_RULE)),
    ("aws", AwsSettings(min_coverage_hours=0.5, min_span_days=0.01)),
    ("krr", KrrSettings(memory_percentile=90.0, lookback_days=30.0)),
    # fleet-calibrated headroom, as the fleet pass leaves it (margins and base levels set)
    ("rightsizer", RightsizerSettings(cpu_risk_pct=2.0, memory_risk_pct=0.5, cpu_margin=0.3, memory_margin=-0.2,
                                      cpu_base_percentile=99.9, memory_base_percentile=99.0)),
    ("rightsizer", RightsizerSettings(memory_risk_pct=0.5, memory_margin=0.4, memory_base_percentile=100.0)),
    # memory headroom from the spread of daily peaks, as the fleet pass leaves it (margin set)
    ("rightsizer", RightsizerSettings(memory_peak_risk_pct=3.0, memory_peak_margin=1.5)),
    ("rightsizer", RightsizerSettings.model_validate({**profile_settings("aggressive"), "memory_peak_risk_pct": 3.0,
                                                      "memory_peak_margin": 0.2, "lookback_days": 7.0})),
]


@pytest.mark.parametrize(("name", "settings"), SETTINGS)
def test_fleet_needs_give_decide_the_per_vm_result(name: str, settings: object) -> None:
    strategy = get_strategy(name)
    histories = _awkward_histories()
    codes = np.concatenate([np.full(len(h[0]), i) for i, h in enumerate(histories)])
    columns = [np.concatenate([h[k] for h in histories]).astype(np.float64) for k in range(5)]
    cols = FleetColumns(len(histories), codes, *columns)
    prepared = fleet_needs(cols, strategy, settings, end_s=END_S)  # type: ignore[arg-type]
    assert prepared is not None and len(prepared) == len(histories)
    spec = VmRecord(uuid="u", name="n", uri="", host="", state=VmState.RUNNING, vcpus=4, max_vcpus=4,
                    memory_bytes=8 * GIB, max_memory_bytes=8 * GIB, labels={}, first_seen=NOW, last_seen=NOW)
    for (ts, cpu, peak, mem, run), ready in zip(histories, prepared, strict=True):
        history = UsageHistory(timestamps_s=ts, cpu_vcpus=cpu, vcpus=4, memory_used_bytes=mem,
                               memory_bytes=8 * GIB, interval_s=3600.0, cpu_peak_vcpus=peak, end_s=END_S,
                               covered_s=run)
        per_vm = decide(strategy, history, spec, settings, catalogue=CATALOGUE)  # type: ignore[arg-type]
        batch = decide(strategy, history, spec, settings, catalogue=CATALOGUE,  # type: ignore[arg-type]
                       prepared=ready)
        assert repr(batch) == repr(per_vm)


def test_fleet_needs_leave_unsupported_strategies_to_the_per_vm_path() -> None:
    cols = FleetColumns(0, np.empty(0, dtype=np.int64), *[np.empty(0)] * 5)
    assert fleet_needs(cols, get_strategy("vpa"), get_strategy("vpa").default_settings(), end_s=END_S) is None
    daily = RightsizerSettings(daily_peak_percentile=90.0)
    assert fleet_needs(cols, get_strategy("rightsizer"), daily, end_s=END_S) is None
    uncalibrated = RightsizerSettings(cpu_risk_pct=1.0)  # no fleet pass yet: each VM calibrates on itself
    assert fleet_needs(cols, get_strategy("rightsizer"), uncalibrated, end_s=END_S) is None
    assert fleet_needs(cols, get_strategy("rightsizer"), RightsizerSettings(memory_peak_risk_pct=3.0),
                       end_s=END_S) is None
    assert fleet_needs(cols, get_strategy("rightsizer"), RightsizerSettings(), end_s=END_S) is None  # the same


# -- whole fleets: with and without the vectorised steps ----------------------------------------------------
def _vm(name: str, vcpus: int, mem_gib: int, state: VmState = VmState.RUNNING, **labels: str) -> VmRecord:
    first = datetime.fromtimestamp(T0, tz=UTC)
    return VmRecord(uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), name=name, uri="test:///default", host="h1",
                    state=state, vcpus=vcpus, max_vcpus=vcpus, memory_bytes=mem_gib * GIB,
                    max_memory_bytes=mem_gib * GIB, labels=labels, first_seen=first, last_seen=NOW)


def _fleet() -> tuple[list[VmRecord], pd.DataFrame]:
    """Hourly frame of awkward VMs, their blocks in reverse name order, float32 like the bench's."""
    shapes = [(4, 16), (2, 8), (4, 16), (2, 2), (1, 1), (16, 64), (2, 4), (4, 8), (2, 8), (2, 8), (4, 16)]
    vms = [_vm(f"vm-{i:02d}", v, m) for i, (v, m) in enumerate(shapes)]
    vms[2] = _vm("vm-02", 4, 16, rightsizer_exclude="true")
    vms[5] = _vm("vm-05", 16, 64, state=VmState.SHUTOFF)
    vms[6] = _vm("vm-06", 2, 4, machine_type="t.2")
    vms.append(_vm("vm-no-rows", 2, 8))
    parts = []
    for vm, (ts, cpu, peak, mem, run) in zip(reversed(vms[:11]), _awkward_histories(), strict=True):
        parts.append(pd.DataFrame({
            "vm": vm.uuid, "ts": pd.to_datetime(ts.astype(np.int64), unit="s", utc=True),
            "samples": 12.0, "running_s": run, "vcpus": float(vm.vcpus), "memory_bytes": float(vm.memory_bytes),
            "cpu_mean_vcpus": cpu * 0.8, "cpu_p95_vcpus": cpu, "cpu_max_vcpus": peak,
            "memory_used_max_bytes": mem, "memory_used_mean_bytes": mem * 0.9, "disk_read_bytes": 1e6,
            "disk_write_bytes": 1e6, "net_rx_bytes": 1e6, "net_tx_bytes": 1e6, "disk_capacity_bytes": 50e9,
        }))
    frame = pd.concat(parts, ignore_index=True)
    for col in frame.columns.drop(["vm", "ts"]):
        frame[col] = frame[col].astype(np.float32)
    frame["vm"] = frame["vm"].astype("category")
    return vms, frame


@pytest.mark.parametrize("strategy", ["rightsizer", "aws", "krr", "vpa"])
def test_recommend_frame_is_the_same_with_the_fleet_wide_window(strategy: str, monkeypatch) -> None:
    vms, frame = _fleet()
    policies = [Policy(vm="vm-03", cpu_headroom_fraction=0.5), Policy(vm="vm-07", exclude=True)]
    off = StoppedVm(vms[5].uuid, datetime.fromtimestamp(END_S - 86400, tz=UTC), 1.0, "storage-only", 0.01, 0.01)
    lifecycle = Lifecycle(shut_off={vms[5].uuid: off})

    def run() -> str:
        found = recommend_frame(frame, vms, CATALOGUE, strategy=strategy, now=NOW, lookback_days=10.0,
                                policies=policies, idle_settings=IdleSettings(), lifecycle=lifecycle)
        return json.dumps([f.plan_entry() for f in found], sort_keys=True)

    vectorised = run()
    monkeypatch.setattr(recommend_module, "fleet_needs", lambda *a, **k: None)
    assert vectorised == run()


@pytest.mark.parametrize(("settings", "words"), [
    (RightsizerSettings(lookback_days=10.0, cpu_risk_pct=2.0, memory_risk_pct=0.5), "fleet margin"),
    (RightsizerSettings(lookback_days=10.0, memory_peak_risk_pct=3.0), "daily peaks: median"),
])
def test_recommend_frame_calibrates_once_and_is_the_same_with_the_fleet_wide_window(
        settings: RightsizerSettings, words: str, monkeypatch) -> None:
    vms, frame = _fleet()

    def run() -> str:
        found = recommend_frame(frame, vms, CATALOGUE, now=NOW, settings=settings, idle_settings=IdleSettings())
        return json.dumps([[f.plan_entry(), dict(f.recommendation.reasons)] for f in found], sort_keys=True)

    vectorised = run()
    assert words in vectorised  # the calibrated rule sized these VMs
    monkeypatch.setattr(recommend_module, "fleet_needs", lambda *a, **k: None)
    assert vectorised == run()


def test_fleet_costs_equal_a_row_by_row_price() -> None:
    vms, frame = _fleet()
    frame = frame.copy()
    vcpus = frame["vcpus"].to_numpy().copy()
    vcpus[::7] = np.nan  # unknown shape: the inventory's
    vcpus[100:110] = 2.0  # a resize for a few hours
    frame["vcpus"] = vcpus
    storage = StoragePrices(per_gb_hour=0.0001, per_disk_hour={"perf1": 0.01}, currency="EUR")
    settings = CostSettings(storage_class="perf1", stopped_vm_billing="full")
    now = NOW.replace(minute=0) - pd.Timedelta(minutes=30).to_pytimedelta()
    costs = fleet_costs(frame, vms, CATALOGUE, storage, settings, now=now)
    by_uuid = {vm.uuid: vm for vm in vms}
    expected = frame.assign(vm=frame["vm"].astype(str)).sort_values(["vm", "ts"], kind="stable")
    assert costs["vm"].astype(str).tolist() == expected["vm"].tolist()
    assert (costs["ts"].to_numpy() == expected["ts"].to_numpy()).all()
    for row, got_type, got_price, got_cost in zip(expected.itertuples(), costs["machine_type"],
                                                  costs["price_per_hour"], costs["compute_cost"], strict=True):
        vm = by_uuid[row.vm]
        label = CATALOGUE.get(vm.labels.get("machine_type", ""))
        v = vm.vcpus if math.isnan(row.vcpus) else float(row.vcpus)
        want = label or CATALOGUE.cheapest_fitting(v, float(row.memory_bytes))
        assert got_type == (want.name if want else None)
        assert got_price == want.price_per_hour
        running = min(max((0.0 if math.isnan(row.running_s) else float(row.running_s)) / 3600.0, 0.0), 1.0)
        present = max(min(max((now.timestamp() - row.ts.timestamp()) / 3600.0, 0.0), 1.0), running)
        assert got_cost == pytest.approx(want.price_per_hour * present, rel=1e-12)


@pytest.mark.parametrize("case", ["in-code-order", "unused-category", "other-order", "missing", "empty"])
def test_appearance_codes_of_a_categorical_equal_factorizing_its_strings(case: str) -> None:
    from analytics.frames import appearance_codes

    categories = ["b", "a", "c"]
    rows = {"in-code-order": ["b", "b", "a", "c", "c"], "unused-category": ["b", "a", "a"],
            "other-order": ["c", "c", "b", "a", "b"], "missing": ["b", None, "a", "c"], "empty": []}[case]
    column = pd.Series(pd.Categorical(rows, categories=categories))
    codes, names = appearance_codes(column)
    expected_codes, expected_names = pd.factorize(pd.Series(rows, dtype=object), sort=False)
    assert codes.dtype == np.int64
    assert codes.tolist() == expected_codes.tolist()
    assert names == [str(u) for u in expected_names]
