"""Store care: online backups, read-only checks, a backup before a schema migration, and a store written by the
previous release (schema version 2, tests/data/store-schema2.db) opened by this one with nothing lost."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collector.errors import InputError, StoreRefusedError
from collector.model import VmRecord, VmState
from collector.store import care
from collector.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, split_sql
from collector.store.sqlite import SqliteStore
from rightsizer.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"
T0 = datetime(2026, 11, 2, tzinfo=UTC)


def _vm(uuid: str) -> VmRecord:
    return VmRecord(uuid=uuid, name=f"vm-{uuid}", uri="test:///x", host="h1", state=VmState.RUNNING, vcpus=2,
                    max_vcpus=2, memory_bytes=4 * 2**30, max_memory_bytes=4 * 2**30, labels={}, first_seen=T0,
                    last_seen=T0, source="import")


def _rows(vm: str, start: datetime, n: int) -> pd.DataFrame:
    return pd.DataFrame({"vm": vm, "ts": [start + timedelta(minutes=5 * (i + 1)) for i in range(n)],
                         "state": "running", "vcpus": 2, "memory_bytes": 4 * 2**30, "cpu_vcpus": np.full(n, 0.5),
                         "interval_s": 300.0})


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_backup_while_another_thread_writes_is_a_consistent_store(tmp_path):
    db = tmp_path / "live.db"
    store = SqliteStore(db)
    store.write_history([_vm("a")], _rows("a", T0, 12))
    stop = threading.Event()

    def writer() -> None:
        k = 1
        while not stop.is_set():
            store.write_history([_vm("a")], _rows("a", T0 + timedelta(hours=k), 12))  # one hour per commit
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    results = []
    try:
        for i in range(200):  # until copies of three different states were taken
            results.append(care.backup(db, tmp_path / f"b{i}.db"))
            if len({care.check(r.dest).rows["samples"] for r in results}) >= 3:
                break
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
        store.close()
    for result in results:
        report = care.check(result.dest)
        assert report.ok and report.integrity == "ok", report.problems
        assert report.schema_version == SCHEMA_VERSION and result.schema_version == SCHEMA_VERSION
        assert report.rows["samples"] % 12 == 0  # whole commits only
        assert not Path(str(result.dest) + "-wal").exists()  # a self-contained file
    assert len({care.check(r.dest).rows["samples"] for r in results}) >= 3  # taken while the store grew


def test_backup_refuses_bad_paths_with_one_line(tmp_path):
    db = tmp_path / "s.db"
    SqliteStore(db).close()
    (tmp_path / "exists.db").write_bytes(b"x")
    with pytest.raises(InputError, match="exists; pass a new file name or --overwrite"):
        care.backup(db, tmp_path / "exists.db")
    with pytest.raises(InputError, match="is a directory"):
        care.backup(db, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        care.backup(tmp_path / "missing.db", tmp_path / "b.db")
    (tmp_path / "other.db").write_text("not sqlite")
    with pytest.raises(StoreRefusedError):
        care.backup(tmp_path / "other.db", tmp_path / "b.db")


def test_check_reports_damage_and_history_beyond_retention(tmp_path):
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    store.write_history([_vm("a")], _rows("a", T0, 12))
    store.close()
    late = care.check(db, raw_retention_days=3, rollup_retention_days=400, now=T0 + timedelta(days=10))
    assert not late.ok and "beyond the 3-day retention" in late.problems[0]
    assert care.check(db, raw_retention_days=35, now=T0 + timedelta(days=10)).ok
    damaged = tmp_path / "d.db"
    shutil.copy(db, damaged)
    with damaged.open("r+b") as fh:  # keep the header, scribble over the pages
        fh.seek(4096)
        fh.write(b"\xff" * 8192)
    report = care.check(damaged)
    assert not report.ok


def test_a_schema_upgrade_backs_the_store_up_first_and_says_so(tmp_path, caplog):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for statement in split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('data_mode', 'live')")
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.INFO, logger="collector.store.sqlite"):
        store = SqliteStore(db)
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    (backup,) = tmp_path.glob("old.db.schema1-*.bak")
    conn = sqlite3.connect(backup)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT value FROM meta").fetchall() == [("live",)]
    conn.close()
    assert any(f"backed up to {backup}" in r.getMessage() and f"before migrating to {SCHEMA_VERSION}" in r.getMessage()
               for r in caplog.records)
    # a store at the current schema is not backed up again
    SqliteStore(db).close()
    assert len(list(tmp_path.glob("old.db.schema*.bak"))) == 1


def _recommend(db: Path) -> list[dict[str, object]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["recommend", "--db", str(db), "--output", "json"]) == 0
    result: list[dict[str, object]] = json.loads(out.getvalue())
    return result


def test_a_store_written_by_the_previous_release_opens_with_nothing_lost(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("RIGHTSIZER_")]:
        monkeypatch.delenv(key)
    expected = json.loads((DATA / "store-schema2.expected.json").read_text(encoding="utf-8"))
    db = tmp_path / "store.db"
    shutil.copy(DATA / "store-schema2.db", db)
    store = SqliteStore(db)
    assert expected["schema_version"] == 2 and store.schema_version() == SCHEMA_VERSION  # migrated on open
    store.close()
    for table, n in expected["rows"].items():
        assert _count(db, table) == n, table
    # recommend reads every VM with the inventory and prices the previous release wrote (the VM, its host, URI,
    # current type and its source); what the analysis proposes follows today's rules (the profiles changed since),
    # so it is not compared. "dismissed" (schema 3) is null on every finding of that store.
    stored = ("uuid", "name", "uri", "host", "current", "excluded", "strategy")
    now = _recommend(db)
    before = expected["recommend"]
    assert [{k: row[k] for k in stored} for row in now] == [{k: row[k] for k in stored} for row in before]
    assert all(row["dismissed"] is None for row in now)
    report = care.check(db)
    assert report.ok and report.rows == expected["rows"]


def test_store_cli_exit_codes(tmp_path, capsys):
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    store.write_history([_vm("a")], _rows("a", T0, 12))
    store.close()
    assert main(["store", "check", "--db", str(db)]) == 0
    damaged = tmp_path / "d.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)
    assert main(["store", "check", "--db", str(damaged)]) == 1
    assert "problem: " in capsys.readouterr().out
    (tmp_path / "t.txt").write_text("hello")
    assert main(["store", "check", "--db", str(tmp_path / "t.txt")]) == 2
    assert main(["store", "backup", "--db", str(db)]) == 2
    assert "store backup needs a destination PATH" in capsys.readouterr().err
    assert main(["store", "backup", str(tmp_path / "copy.db"), "--db", str(db)]) == 0
    assert _count(tmp_path / "copy.db", "samples") == 12
