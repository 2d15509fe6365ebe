from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.catalogue import GIB, CsvPriceCatalogue, MachineType, StoragePrices
from analytics.cost_summary import summarise_costs
from analytics.costs import COST_COLUMNS, fleet_costs
from analytics.fleet import resolve_machine_type
from analytics.realised import realised_savings
from collector.errors import InputError
from collector.model import VmRecord, VmState
from collector.store.base import HOUR_COLUMNS, AuditEntry
from core.settings import CostSettings

T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


def _type(name: str, vcpus: int, memory_gib: float, price: float, category: str = "standard") -> MachineType:
    return MachineType(name=name, vcpus=vcpus, memory_bytes=int(memory_gib * GIB), price_per_hour=price,
                       currency="EUR", category=category, source="test", as_of="2026-05-01")


CATALOGUE = CsvPriceCatalogue([
    _type("small", 1, 2, 0.10),
    _type("big", 2, 4, 0.30),
    _type("gpu", 1, 2, 0.01, category="gpu"),  # cheaper but never inferred
])
STORAGE = StoragePrices(per_gb_hour=0.0001, per_disk_hour={"perf0": 0.002, "perf1": 0.01}, currency="EUR",
                        default_class="perf0")


def _settings(rule: str = "storage-only", **kw: object) -> CostSettings:
    return CostSettings(stopped_vm_billing=rule, storage_class="perf0", **kw)


def _vm(uuid: str, vcpus: int = 1, memory_gib: float = 2, host: str = "h1", **labels: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=f"vm-{uuid}", uri="test:///default", host=host, state=VmState.RUNNING,
                    vcpus=vcpus, max_vcpus=vcpus, memory_bytes=int(memory_gib * GIB),
                    max_memory_bytes=int(memory_gib * GIB), labels=labels, first_seen=T0, last_seen=T0)


def _hours(vm: str, running_s: list[float], *, start: datetime = T0, vcpus: float = np.nan,
           memory_gib: float = np.nan, disk: list[float] | float = np.nan) -> pd.DataFrame:
    n = len(running_s)
    disks = disk if isinstance(disk, list) else [disk] * n
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in HOUR_COLUMNS})
    frame["vm"] = vm
    frame["ts"] = pd.date_range(start, periods=n, freq="h", tz="UTC")
    frame["running_s"] = running_s
    frame["samples"] = 60.0
    frame["vcpus"] = vcpus
    frame["memory_bytes"] = memory_gib * GIB
    frame["disk_capacity_bytes"] = disks
    return frame


def _fleet() -> tuple[pd.DataFrame, list[VmRecord]]:
    # a: labelled "big" (0.30/h), 100 GB disk (0.0001*100 + 0.002 = 0.012/h), runs 2 h then stopped 1 h
    # b: unlabelled 1 vCPU / 2 GiB -> "small" (0.10/h), 50 GB disk reported from hour 2 (0.007/h),
    #    runs half of hour 1 and all of hour 2
    vms = [_vm("a", 2, 4, host="h1", machine_type="big", team="pay"), _vm("b", 1, 2, host="h2")]
    frame = pd.concat([
        _hours("a", [3600, 3600, 0], vcpus=2, memory_gib=4, disk=100e9),
        _hours("b", [1800, 3600], vcpus=1, memory_gib=2, disk=[np.nan, 50e9]),
    ], ignore_index=True)
    return frame, vms


@pytest.mark.parametrize(
    ("rule", "cost_a", "cost_b"),
    [
        # a: compute 0.30*2 = 0.60, storage 0.012*3 = 0.036; b: compute 0.10*1.5, storage 0.007*2
        ("storage-only", 0.636, 0.164),
        # nothing while stopped: a storage 0.012*2, b storage 0.007*1.5
        ("none", 0.624, 0.1605),
        # stopped time billed in full: a compute 0.30*3 + 0.036, b compute 0.10*2 + 0.014
        ("full", 0.936, 0.214),
    ],
)
def test_fleet_costs_to_the_cent_per_stopped_vm_rule(rule: str, cost_a: float, cost_b: float) -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings(rule))
    assert list(costs.columns) == list(COST_COLUMNS)
    per_vm = costs.groupby("vm", observed=True)["cost"].sum()
    assert per_vm["a"] == pytest.approx(cost_a, abs=1e-9)
    assert per_vm["b"] == pytest.approx(cost_b, abs=1e-9)
    summary = summarise_costs(costs, vms, group_by="host", now=T0 + timedelta(hours=3))
    assert round(summary.total, 2) == round(cost_a + cost_b, 2)
    assert summary.total == pytest.approx(cost_a + cost_b, abs=1e-9)


def test_fleet_costs_records_machine_type_and_how_it_was_chosen() -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    a = costs[costs["vm"] == "a"]
    b = costs[costs["vm"] == "b"]
    assert set(a["machine_type"]) == {"big"} and set(a["type_source"]) == {"label"}
    assert set(b["machine_type"]) == {"small"} and set(b["type_source"]) == {"inferred"}
    assert b["disk_capacity_bytes"].tolist() == [50e9, 50e9]  # back-filled from the later hour
    assert b["stopped_hours"].tolist() == [0.5, 0.0]


def test_storage_can_be_excluded_and_unknown_class_is_refused() -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings(include_storage=False))
    assert costs["cost"].sum() == pytest.approx(0.60 + 0.15)
    with pytest.raises(InputError, match="'perf9'.*perf0, perf1"):
        fleet_costs(frame, vms, CATALOGUE, STORAGE, CostSettings(storage_class="perf9"))


def test_hour_containing_now_counts_only_elapsed_part() -> None:
    vms = [_vm("c")]
    frame = _hours("c", [3600, 1800], vcpus=1, memory_gib=2, disk=np.nan)
    now = T0 + timedelta(hours=1, minutes=30)
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings("full"), now=now)
    # running 1.5 h of 1.5 h elapsed: nothing stopped, so "full" bills 1.5 h at 0.10
    assert costs["present_hours"].tolist() == [1.0, 0.5]
    assert costs["cost"].sum() == pytest.approx(0.15)


def test_resize_within_window_is_priced_per_hour() -> None:
    vms = [_vm("d", 1, 2)]
    frame = pd.concat([_hours("d", [3600], vcpus=2, memory_gib=4),
                       _hours("d", [3600], start=T0 + timedelta(hours=1), vcpus=1, memory_gib=2)])
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    assert costs["machine_type"].tolist() == ["big", "small"]
    assert costs["cost"].sum() == pytest.approx(0.40)


def test_vm_that_fits_no_type_is_unpriced_but_keeps_storage() -> None:
    vms = [_vm("e", 64, 512)]
    frame = _hours("e", [3600, 3600], vcpus=64, memory_gib=512, disk=10e9)
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    assert costs["machine_type"].isna().all()
    assert set(costs["type_source"]) == {"unknown"}
    assert costs["cost"].sum() == pytest.approx(2 * (10 * 0.0001 + 0.002))
    summary = summarise_costs(costs, vms, group_by="host", now=T0 + timedelta(hours=2))
    assert summary.unpriced_vms == ("e",)
    assert summary.per_vm[0].price_per_hour is None


def test_unsorted_input_gives_same_costs() -> None:
    frame, vms = _fleet()
    shuffled = frame.sample(frac=1.0, random_state=7)
    a = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    b = fleet_costs(shuffled, vms, CATALOGUE, STORAGE, _settings())
    pd.testing.assert_frame_equal(a, b)


def test_group_by_label_host_and_machine_type() -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    now = T0 + timedelta(hours=3)
    by_team = summarise_costs(costs, vms, group_by="team", now=now)
    assert [(g.key, g.vms, round(g.cost, 4)) for g in by_team.groups] == [("pay", 1, 0.636), ("(none)", 1, 0.164)]
    assert by_team.groups[0].share == pytest.approx(0.636 / 0.8)
    by_host = summarise_costs(costs, vms, group_by="host", now=now)
    assert {g.key: round(g.cost, 4) for g in by_host.groups} == {"h1": 0.636, "h2": 0.164}
    by_type = summarise_costs(costs, vms, group_by="machine_type", now=now)
    assert {g.key: round(g.cost, 4) for g in by_type.groups} == {"big": 0.636, "small": 0.164}
    first = by_team.per_vm[0]
    assert (first.name, first.machine_type, first.type_source, first.price_per_hour) == ("vm-a", "big", "label", 0.30)
    assert first.running_hours == 2.0 and first.billed_hours == 3.0


def test_window_bounds_limit_totals() -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    summary = summarise_costs(costs, vms, group_by="host", now=T0 + timedelta(hours=3),
                              start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3))
    # a: hours 2-3 = 0.30 + 0.012 + 0.012 ; b: hour 2 = 0.10 + 0.007
    assert summary.total == pytest.approx(0.324 + 0.107)


def test_month_to_date_and_forecast_from_7_day_run_rate() -> None:
    # one 1 vCPU VM (0.10/h, no disk) running since May 1st; now = May 11th 00:00
    vms = [_vm("f")]
    start = datetime(2026, 4, 28, tzinfo=UTC)
    now = datetime(2026, 5, 11, tzinfo=UTC)
    frame = _hours("f", [3600.0] * int((now - start) / timedelta(hours=1)), start=start, vcpus=1, memory_gib=2)
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings(), now=now)
    summary = summarise_costs(costs, vms, group_by="host", now=now)
    assert summary.month.month_start == datetime(2026, 5, 1, tzinfo=UTC)
    assert summary.month.month_to_date == pytest.approx(24.00)  # 240 h x 0.10
    assert summary.month.run_rate_per_hour == pytest.approx(0.10)
    assert summary.month.run_rate_hours == pytest.approx(168.0)
    assert summary.month.remaining_hours == pytest.approx(504.0)  # 21 days left in May
    assert summary.month.forecast_month_end == pytest.approx(74.40)
    assert "last 7 days" in summary.month.forecast_basis


def test_forecast_uses_all_data_when_less_than_7_days() -> None:
    # 48 h of data: first day stopped (storage only is zero, no disk), second day running
    vms = [_vm("g")]
    now = datetime(2026, 5, 30, tzinfo=UTC)
    frame = _hours("g", [0.0] * 24 + [3600.0] * 24, start=now - timedelta(hours=48), vcpus=1, memory_gib=2)
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings(), now=now)
    summary = summarise_costs(costs, vms, group_by="host", now=now)
    assert summary.month.run_rate_hours == pytest.approx(48.0)
    assert summary.month.run_rate_per_hour == pytest.approx(2.4 / 48)
    assert summary.month.forecast_month_end == pytest.approx(2.4 + 0.05 * 48)  # 48 h left in May
    assert "48.0 h (all data)" in summary.month.forecast_basis


def test_empty_frame_gives_zero_summary() -> None:
    costs = fleet_costs(pd.DataFrame({c: [] for c in HOUR_COLUMNS}), [], CATALOGUE, STORAGE, _settings())
    assert list(costs.columns) == list(COST_COLUMNS) and costs.empty
    summary = summarise_costs(costs, [], group_by="team", now=T0)
    month = summary.month
    assert (summary.total, month.month_to_date, month.forecast_month_end, summary.per_vm) == (0, 0, 0, ())


def _audit(ts: datetime, vm: str, result: str, before: float | None, after: float | None) -> AuditEntry:
    return AuditEntry(ts=ts, actor="cli", vm_uuid=vm, vm_name=f"vm-{vm}", action="resize", before={}, after={},
                      result=result, reason="", price_before_per_hour=before, price_after_per_hour=after,
                      currency="EUR")


def test_realised_savings_since_apply_until_revert_or_now() -> None:
    now = T0 + timedelta(hours=10)
    entries = [
        _audit(T0, "a", "applied", 0.30, 0.10),  # in force 10 h: 2.00
        _audit(T0, "b", "applied", 0.30, 0.20),  # reverted after 4 h: 0.40
        _audit(T0 + timedelta(hours=4), "b", "reverted", None, None),
        _audit(T0, "c", "failed", 0.30, 0.10),  # never applied
        _audit(T0, "d", "applied", None, None),  # no prices recorded
    ]
    savings = {s.vm_uuid: s for s in realised_savings(entries, now)}
    assert set(savings) == {"a", "b"}
    assert savings["a"].saving == pytest.approx(2.00) and savings["a"].ended_at is None
    assert savings["b"].saving == pytest.approx(0.40) and savings["b"].hours == pytest.approx(4.0)
    assert savings["b"].ended_at == T0 + timedelta(hours=4)


def test_a_stop_saves_the_hours_the_vm_stayed_off() -> None:
    stop = replace(_audit(T0, "a", "applied", 0.30, 0.0), action="stop")
    # seen running again in the 4th hour after the stop, for the whole hour
    hours = pd.DataFrame({"vm": ["a"] * 6, "ts": [T0 + timedelta(hours=h) for h in range(6)],
                          "running_s": [0.0, 0.0, 0.0, 3600.0, 0.0, 0.0]})
    (saved,) = realised_savings([stop], T0 + timedelta(hours=6), hour_frame=hours)
    assert saved.hours == pytest.approx(5.0) and saved.saving == pytest.approx(1.50)


def test_second_resize_closes_the_first() -> None:
    entries = [_audit(T0, "a", "applied", 0.30, 0.20), _audit(T0 + timedelta(hours=5), "a", "applied", 0.20, 0.10)]
    savings = realised_savings(entries, T0 + timedelta(hours=7))
    assert [round(s.saving, 4) for s in savings] == [0.50, 0.20]


def test_resolve_machine_type_label_inferred_unknown() -> None:
    assert resolve_machine_type(_vm("x", 2, 4, machine_type="big"), CATALOGUE)[1] == "label"
    mt, how = resolve_machine_type(_vm("x", 1, 2, machine_type="no-such-type"), CATALOGUE)
    assert (mt.name if mt else None, how) == ("small", "inferred")
    assert resolve_machine_type(_vm("x", 1, 3), CATALOGUE)[0] == CATALOGUE.get("big")
    assert resolve_machine_type(_vm("x", 8, 64), CATALOGUE) == (None, "unknown")


def test_naive_times_are_taken_as_utc() -> None:
    frame, vms = _fleet()
    costs = fleet_costs(frame, vms, CATALOGUE, STORAGE, _settings())
    aware = summarise_costs(costs, vms, now=T0 + timedelta(hours=3), start=T0 + timedelta(hours=1))
    naive = summarise_costs(costs, vms, now=datetime(2026, 5, 4, 3), start=datetime(2026, 5, 4, 1))
    assert naive.total == aware.total == pytest.approx(0.324 + 0.107)
    assert naive.month.month_to_date == aware.month.month_to_date


@pytest.mark.parametrize("width", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["none", "storage-only", "full"])
def test_odd_hours_and_capacities_are_billed_as_nan_to_num_and_clip_give_them(width: type, rule: str) -> None:
    # running seconds and capacities out of range or missing, some rows in the hour containing now (and after it)
    running = [3600, np.nan, np.inf, -np.inf, -5, 7200, 1800, 0.0, -0.0, 900, 3600, 10]
    caps = [100e9, np.nan, np.inf, -np.inf, 0.0, -1.0, 50e9, 20e9, 1e9, np.nan, 5e9, 3e9]
    frame = _hours("a", running, vcpus=2, memory_gib=4, disk=caps)
    frame["running_s"] = frame["running_s"].astype(width)
    frame["disk_capacity_bytes"] = frame["disk_capacity_bytes"].astype(width)
    frame = frame.iloc[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]].reset_index(drop=True)  # the last two stay out
    now = T0 + timedelta(hours=8, minutes=20)  # hour 8 is a third elapsed, hour 9 not begun
    out = fleet_costs(frame, [_vm("a", 2, 4)], CATALOGUE, STORAGE, _settings(rule), now=now)

    run_h = np.clip(np.nan_to_num(frame["running_s"].to_numpy(dtype=float)) / 3600.0, 0.0, 1.0)
    ts_ns = frame["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    present = np.maximum(np.clip((pd.Timestamp(now).value - ts_ns) / 3.6e12, 0.0, 1.0), run_h)
    later = ts_ns >= pd.Timestamp(now).value  # hour 9 has not begun: nothing of it is billed yet
    assert later.sum() == 1
    run_h[later] = 0.0
    present[later] = 0.0
    stopped = present - run_h
    cap = pd.Series(frame["disk_capacity_bytes"].to_numpy(dtype=float)).ffill().bfill().to_numpy()
    price = np.nan_to_num(cap) / 1e9 * STORAGE.per_gb_hour + STORAGE.per_disk_hour["perf0"]
    price[~(np.isfinite(cap) & (cap > 0))] = 0.0
    storage_h = run_h + stopped if rule != "none" else run_h
    compute_h = run_h + stopped if rule == "full" else run_h
    compute = 0.30 * compute_h  # "big" fits 2 vCPUs / 4 GiB
    expected = {"running_hours": run_h, "present_hours": present, "stopped_hours": stopped,
                "storage_price_per_hour": price, "storage_cost": price * storage_h, "compute_cost": compute,
                "cost": np.nan_to_num(compute) + price * storage_h}
    for name, values in expected.items():
        assert out[name].to_numpy().tobytes() == values.tobytes(), name
    assert out["ts"].dtype == "datetime64[ns, UTC]" and (out["ts"] == frame["ts"]).all()
    assert not np.shares_memory(out["ts"].array.asi8, frame["ts"].array.asi8)
