"""The running hour read from raw rows: kept between commits, recomputed after any commit by anyone."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pandas as pd

from collector.model import VmRecord, VmState
from collector.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
END = T0 + timedelta(hours=2)


def _vm(uuid: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=f"vm-{uuid}", uri="test:///x", host="h1", state=VmState.RUNNING, vcpus=2,
                    max_vcpus=2, memory_bytes=4 * 2**30, max_memory_bytes=4 * 2**30, labels={}, first_seen=T0,
                    last_seen=T0, source="import")


def _rows(vm: str, cpu: list[float], first_minute: int) -> pd.DataFrame:
    """One-minute samples in the hour after T0 + 1 h (the running hour: it holds the newest sample)."""
    start = T0 + timedelta(hours=1, minutes=first_minute)
    return pd.DataFrame({"vm": vm, "ts": [start + timedelta(minutes=i) for i in range(len(cpu))],
                         "state": "running", "vcpus": 2, "memory_bytes": 4 * 2**30, "cpu_vcpus": cpu,
                         "memory_used_bytes": 2e9, "disk_write_bps": 1000.0, "interval_s": 60.0})


def _cpu_max(frame: pd.DataFrame, vm: str) -> float:
    row = frame[(frame["vm"] == vm) & (frame["ts"] == pd.Timestamp(T0 + timedelta(hours=1)))]
    return float(row["cpu_max_vcpus"].iloc[0])


def test_running_hour_is_read_again_unchanged_and_follows_every_commit(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    other = SqliteStore(path)  # e.g. the collector of another process on the same file
    try:
        store.write_history([_vm("a"), _vm("b")], pd.concat([_rows("a", [0.5, 1.0], 0), _rows("b", [0.2], 0)]))
        first = store.frame(T0, END)
        again = store.frame(T0, END)
        pd.testing.assert_frame_equal(first, again)
        again["cpu_max_vcpus"] = 99.0  # a caller's copy: changing it changes no later read
        pd.testing.assert_frame_equal(store.frame(T0, END), first)
        assert _cpu_max(first, "a") == 1.0

        store.write_history([_vm("a")], _rows("a", [3.0], 5))  # a commit through this object
        assert _cpu_max(store.frame(T0, END), "a") == 3.0
        other.write_history([_vm("b")], _rows("b", [4.0], 6))  # a commit through another connection
        assert _cpu_max(store.frame(T0, END), "b") == 4.0
        with sqlite3.connect(path) as raw:  # another program: only the raw row changes, not the rollup
            raw.execute("UPDATE samples SET cpu_vcpus = 7.5 WHERE vm = 'a' AND cpu_vcpus = 3.0")
        fresh = store.frame(T0, END)
        assert _cpu_max(fresh, "a") == 7.5 and _cpu_max(fresh, "b") == 4.0
    finally:
        other.close()
        store.close()


def test_a_reader_thread_sees_the_collector_threads_commit(tmp_path):
    """As in ``serve``: one thread writes cycles, another (the dashboard's refresh) reads through the same store."""
    from concurrent.futures import ThreadPoolExecutor

    store = SqliteStore(tmp_path / "s.db")
    try:
        store.write_history([_vm("a")], _rows("a", [0.5, 1.0], 0))
        with ThreadPoolExecutor(max_workers=1) as reader:  # one long-lived reader thread, its own connection
            first = reader.submit(store.frame, T0, END).result()
            pd.testing.assert_frame_equal(reader.submit(store.frame, T0, END).result(), first)
            store.write_history([_vm("a")], _rows("a", [2.5], 5))  # the writer thread's commit
            assert _cpu_max(reader.submit(store.frame, T0, END).result(), "a") == 2.5
        assert _cpu_max(first, "a") == 1.0 and _cpu_max(store.frame(T0, END), "a") == 2.5
    finally:
        store.close()
