from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from collector.errors import StoreError
from collector.model import VmRecord, VmState
from collector.store.base import HOUR_COLUMNS, RAW_COLUMNS, AuditEntry
from collector.store.schema import SCHEMA_VERSION
from collector.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


def _vm(uuid: str, **kw) -> VmRecord:
    base = dict(uuid=uuid, name=f"vm-{uuid}", uri="test:///x", host="h1", state=VmState.RUNNING, vcpus=2,
                max_vcpus=4, memory_bytes=4 * 2**30, max_memory_bytes=8 * 2**30, labels={"team": "a"},
                first_seen=T0, last_seen=T0, source="import")
    base.update(kw)
    return VmRecord(**base)


def _history(vm: str, cpu: list[float], *, step_s: int = 300, start: datetime = T0, state: str = "running"):
    n = len(cpu)
    return pd.DataFrame({
        "vm": vm, "ts": [start + timedelta(seconds=step_s * (i + 1)) for i in range(n)], "state": state,
        "vcpus": 2, "memory_bytes": 4 * 2**30, "cpu_vcpus": cpu, "memory_used_bytes": np.linspace(1e9, 2e9, n),
        "disk_write_bps": 1000.0, "interval_s": float(step_s),
    })


def test_schema_is_versioned_and_wal(tmp_path):
    s = SqliteStore(tmp_path / "a.db")
    assert s.schema_version() == SCHEMA_VERSION
    mode = sqlite3.connect(tmp_path / "a.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    s.close()
    assert SqliteStore(tmp_path / "a.db").schema_version() == SCHEMA_VERSION  # reopen: no re-migration


def test_newer_schema_is_refused(tmp_path):
    c = sqlite3.connect(tmp_path / "b.db")
    c.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(StoreError, match="newer than this rightsizer"):
        SqliteStore(tmp_path / "b.db")


def test_not_a_database_is_refused(tmp_path):
    (tmp_path / "c.db").write_text("hello, I am not SQLite" * 100)
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "c.db")


def test_hourly_rollup_by_hand(store):
    # 12 five-minute samples in hour 0: cpu 0..1.1 -> mean 0.55, max 1.1, p95 (linear) 1.045
    cpu = [i / 10 for i in range(12)]
    hist = _history("u1", cpu)
    hist.loc[11, "ts"] = T0 + timedelta(minutes=59)  # keep every sample inside hour 0
    store.write_history([_vm("u1")], hist)
    hours = store.frame(T0, T0 + timedelta(hours=2), resolution="hour")
    assert list(hours.columns) == list(HOUR_COLUMNS)
    assert len(hours) == 1
    h = hours.iloc[0]
    assert h["samples"] == 12
    assert h["cpu_mean_vcpus"] == pytest.approx(0.55)
    assert h["cpu_max_vcpus"] == pytest.approx(1.1)
    assert h["cpu_p95_vcpus"] == pytest.approx(1.045)
    assert h["running_s"] == pytest.approx(3600.0)
    assert h["disk_write_bytes"] == pytest.approx(1000.0 * 300 * 12)
    assert h["memory_used_max_bytes"] == pytest.approx(2e9)
    assert np.isnan(h["net_rx_bytes"])  # never reported -> unknown, not zero


def test_raw_frame_columns_types_and_filter(store):
    store.write_history([_vm("u1"), _vm("u2")], pd.concat([_history("u1", [0.5] * 4), _history("u2", [1.0] * 4)]))
    raw = store.frame(T0, T0 + timedelta(hours=1), resolution="raw")
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert len(raw) == 8
    assert str(raw["ts"].dtype).startswith("datetime64") and str(raw["ts"].dt.tz) == "UTC"
    only = store.frame(T0, T0 + timedelta(hours=1), resolution="raw", vms=["u2"])
    assert set(only["vm"]) == {"u2"} and (only["cpu_vcpus"] == 1.0).all()
    assert store.frame(T0, T0 + timedelta(hours=1), resolution="raw", vms=[]).empty
    with pytest.raises(StoreError):
        store.frame(T0, T0, resolution="minute")  # type: ignore[arg-type]


def test_stopped_time_is_not_running_time(store):
    hist = _history("u1", [0.0] * 6, step_s=600, state="shutoff")
    store.write_history([_vm("u1", state=VmState.SHUTOFF)], hist)
    h = store.frame(T0, T0 + timedelta(hours=2), resolution="hour")
    assert h["running_s"].sum() == 0


def test_vms_upsert_keeps_first_seen_and_updates_spec(store):
    store.write_history([_vm("u1")], _history("u1", [0.1]))
    later = T0 + timedelta(days=1)
    store.write_history([_vm("u1", vcpus=8, first_seen=later, last_seen=later, labels={"team": "b"})],
                        _history("u1", [0.1], start=later))
    (vm,) = store.vms()
    assert vm.vcpus == 8 and vm.labels == {"team": "b"}
    assert vm.first_seen == T0 and vm.last_seen == later


def test_retention_prunes_raw_before_rollups(tmp_path):
    s = SqliteStore(tmp_path / "r.db", raw_retention_days=1, rollup_retention_days=3)
    s.write_history([_vm("u1")], _history("u1", [0.2] * (5 * 24), step_s=3600))
    removed = s.prune(T0 + timedelta(days=5, hours=1))
    raw = s.frame(T0, T0 + timedelta(days=10), resolution="raw")
    hours = s.frame(T0, T0 + timedelta(days=10), resolution="hour")
    assert removed > 0
    assert raw["ts"].min() >= T0 + timedelta(days=4, hours=1)
    assert hours["ts"].min() >= T0 + timedelta(days=2, hours=1)
    assert len(hours) > len(raw)


def test_audit_is_append_only(store):
    entry = AuditEntry(ts=T0, actor="ops", vm_uuid="u1", vm_name="web", action="resize",
                       before={"vcpus": 4}, after={"vcpus": 2}, result="applied", reason="over-provisioned",
                       price_before_per_hour=0.2, price_after_per_hour=0.1, currency="EUR")
    first = store.append_audit(entry)
    second = store.append_audit(entry)
    assert second == first + 1
    got = store.audit("u1")
    assert [e.id for e in got] == [first, second] and got[0].after == {"vcpus": 2}
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET result='x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")


def test_backups_and_meta(store):
    store.record_backups("u1", [T0, T0 + timedelta(hours=5)])
    store.record_backups("u1", [T0 + timedelta(hours=5)])  # idempotent
    assert store.backups() == {"u1": T0 + timedelta(hours=5)}
    assert store.get_meta("data_mode") is None
    store.set_meta("data_mode", "demo")
    assert store.get_meta("data_mode") == "demo"


def test_naive_datetime_is_refused(store):
    with pytest.raises(StoreError, match="naive"):
        store.frame(datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_readers_see_committed_data_while_writer_holds_a_transaction(tmp_path):
    writer = SqliteStore(tmp_path / "w.db")
    writer.write_history([_vm("u1")], _history("u1", [0.3] * 3))
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO meta VALUES ('pending', 'x')")
    reader = SqliteStore(tmp_path / "w.db")  # another connection, as another process would have
    assert len(reader.frame(T0, T0 + timedelta(hours=1), resolution="raw")) == 3
    assert reader.get_meta("pending") is None
    conn.execute("ROLLBACK")


def test_closed_store_raises_store_error(tmp_path):
    s = SqliteStore(tmp_path / "c.db")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.vms()


def test_hour_frame_after_a_first_cycle_without_cpu_rates(store, clock):
    """The first cycle has no CPU rate yet (rates need two samples): reading hours must not fail on it."""
    from collector.hypervisor.fake import FakeHypervisor, Topology
    from collector.sampler import Sampler

    Sampler([FakeHypervisor(Topology().add_vm("a"), clock=clock)], store, clock=clock).poll_once()
    hours = store.frame(clock() - timedelta(hours=2), clock() + timedelta(hours=1), resolution="hour")
    assert len(hours) == 1 and pd.isna(hours["cpu_p95_vcpus"].iloc[0])


@pytest.mark.parametrize("resolution", ["raw", "hour"])
def test_frame_reads_only_the_columns_asked_for(store, resolution):
    # two VMs over three hours, the newest hour still running (the hour frame re-aggregates it from raw rows)
    store.write_history([_vm("a"), _vm("b")], pd.concat([
        _history("a", [0.1 * i for i in range(36)]), _history("b", [0.2] * 30 + [None] * 6)]))
    start, end = T0, T0 + timedelta(hours=4)
    full = store.frame(start, end, resolution=resolution)
    wanted = ["cpu_mean_vcpus", "memory_bytes"] if resolution == "hour" else ["cpu_vcpus", "memory_bytes"]
    part = store.frame(start, end, resolution=resolution, columns=wanted)
    keys = ["vm", "ts", "state", "gap"] if resolution == "raw" else ["vm", "ts"]
    assert list(part.columns) == [c for c in full.columns if c in keys + wanted]
    pd.testing.assert_frame_equal(part, full[keys + wanted][list(part.columns)])
    others = [c for c in full.columns if c not in keys + wanted]
    assert full[others].notna().any().any()  # the full read has values there; the column-limited one leaves them out
    with pytest.raises(StoreError, match="unknown"):
        store.frame(start, end, resolution=resolution, columns=["no_such_column"])


@pytest.mark.parametrize("resolution", ["raw", "hour"])
def test_frame_of_many_vms_selects_in_sql_the_same_rows(store, resolution):
    # a list of 900 VMs or more goes to SQLite as one JSON parameter: the same rows as a short list
    store.write_history([_vm("a"), _vm("b"), _vm("c")], pd.concat([
        _history("a", [0.1] * 30), _history("b", [0.2] * 30), _history("c", [0.3] * 30)]))
    start, end = T0, T0 + timedelta(hours=4)
    few = store.frame(start, end, resolution=resolution, vms=["a", "c"])
    many = store.frame(start, end, resolution=resolution, vms=["a", "c", *(f"absent-{i}" for i in range(1000))])
    assert set(few["vm"]) == {"a", "c"} and len(few) > 0
    pd.testing.assert_frame_equal(many, few)
