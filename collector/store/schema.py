"""The SQLite store's schema: its migrations and version, how a file is known as a rightsizer store, and the lock
held while a store is created or migrated."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.errors import StoreError, StoreRefusedError
from collector.store.faults import io_fault_error, is_io_fault

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE vms(
        uuid TEXT PRIMARY KEY, name TEXT NOT NULL, uri TEXT NOT NULL, host TEXT NOT NULL,
        state TEXT NOT NULL, vcpus INTEGER NOT NULL, max_vcpus INTEGER NOT NULL,
        memory_bytes INTEGER NOT NULL, max_memory_bytes INTEGER NOT NULL, labels TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, source TEXT NOT NULL);
    CREATE TABLE samples(
        vm TEXT NOT NULL, ts INTEGER NOT NULL, state TEXT NOT NULL, vcpus INTEGER NOT NULL,
        memory_bytes INTEGER NOT NULL, cpu_vcpus REAL, memory_used_bytes INTEGER,
        disk_read_bps REAL, disk_write_bps REAL, net_rx_bps REAL, net_tx_bps REAL,
        disk_capacity_bytes INTEGER, interval_s REAL, gap INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(ts, vm)) WITHOUT ROWID;
    CREATE INDEX samples_vm ON samples(vm, ts);
    CREATE TABLE hourly(
        vm TEXT NOT NULL, ts INTEGER NOT NULL, samples INTEGER NOT NULL, running_s REAL NOT NULL,
        vcpus INTEGER, memory_bytes INTEGER, cpu_mean_vcpus REAL, cpu_p95_vcpus REAL, cpu_max_vcpus REAL,
        memory_used_max_bytes REAL, memory_used_mean_bytes REAL, disk_read_bytes REAL,
        disk_write_bytes REAL, net_rx_bytes REAL, net_tx_bytes REAL, disk_capacity_bytes REAL,
        PRIMARY KEY(ts, vm)) WITHOUT ROWID;
    CREATE INDEX hourly_vm ON hourly(vm, ts);
    CREATE TABLE counters(
        vm TEXT PRIMARY KEY, ts INTEGER NOT NULL, cpu_time_ns INTEGER, disk_read_bytes INTEGER,
        disk_write_bytes INTEGER, net_rx_bytes INTEGER, net_tx_bytes INTEGER);
    CREATE TABLE backups(
        vm TEXT NOT NULL, created_at INTEGER NOT NULL, kind TEXT NOT NULL,
        PRIMARY KEY(vm, created_at, kind)) WITHOUT ROWID;
    CREATE TABLE audit(
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, actor TEXT NOT NULL,
        vm TEXT NOT NULL, vm_name TEXT NOT NULL, action TEXT NOT NULL, before TEXT NOT NULL,
        after TEXT NOT NULL, result TEXT NOT NULL, reason TEXT NOT NULL, plan_id TEXT NOT NULL,
        price_before REAL, price_after REAL, currency TEXT NOT NULL);
    CREATE INDEX audit_vm ON audit(vm, ts);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    """,
    # 2: contention, memory-pressure and disk-performance signals (collector.store.base.SIGNAL_*_COLUMNS)
    """
    ALTER TABLE samples ADD COLUMN cpu_delay_vcpus REAL;
    ALTER TABLE samples ADD COLUMN swap_in_bps REAL;
    ALTER TABLE samples ADD COLUMN swap_out_bps REAL;
    ALTER TABLE samples ADD COLUMN major_faults_ps REAL;
    ALTER TABLE samples ADD COLUMN disk_read_iops REAL;
    ALTER TABLE samples ADD COLUMN disk_write_iops REAL;
    ALTER TABLE samples ADD COLUMN disk_read_time_s_per_s REAL;
    ALTER TABLE samples ADD COLUMN disk_write_time_s_per_s REAL;
    ALTER TABLE samples ADD COLUMN disk_allocation_bytes INTEGER;
    ALTER TABLE hourly ADD COLUMN cpu_delay_mean_vcpus REAL;
    ALTER TABLE hourly ADD COLUMN cpu_delay_max_vcpus REAL;
    ALTER TABLE hourly ADD COLUMN swap_in_bytes REAL;
    ALTER TABLE hourly ADD COLUMN swap_out_bytes REAL;
    ALTER TABLE hourly ADD COLUMN major_faults REAL;
    ALTER TABLE hourly ADD COLUMN major_faults_max_ps REAL;
    ALTER TABLE hourly ADD COLUMN swap_max_bps REAL;
    ALTER TABLE hourly ADD COLUMN disk_read_reqs REAL;
    ALTER TABLE hourly ADD COLUMN disk_write_reqs REAL;
    ALTER TABLE hourly ADD COLUMN disk_read_time_s REAL;
    ALTER TABLE hourly ADD COLUMN disk_write_time_s REAL;
    ALTER TABLE hourly ADD COLUMN disk_iops_p99 REAL;
    ALTER TABLE hourly ADD COLUMN disk_bps_p99 REAL;
    ALTER TABLE hourly ADD COLUMN disk_allocation_bytes REAL;
    ALTER TABLE counters ADD COLUMN cpu_delay_ns INTEGER;
    ALTER TABLE counters ADD COLUMN swap_in_bytes INTEGER;
    ALTER TABLE counters ADD COLUMN swap_out_bytes INTEGER;
    ALTER TABLE counters ADD COLUMN major_faults INTEGER;
    ALTER TABLE counters ADD COLUMN disk_read_reqs INTEGER;
    ALTER TABLE counters ADD COLUMN disk_write_reqs INTEGER;
    ALTER TABLE counters ADD COLUMN disk_read_time_ns INTEGER;
    ALTER TABLE counters ADD COLUMN disk_write_time_ns INTEGER;
    """,
    # 3: dismissed and postponed findings (core.dismissals.Dismissal); until NULL = until restored
    """
    CREATE TABLE dismissals(
        vm TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL, at INTEGER NOT NULL,
        until INTEGER, vm_name TEXT NOT NULL, PRIMARY KEY(vm, kind)) WITHOUT ROWID;
    """,
)


SCHEMA_VERSION = len(MIGRATIONS)


#: ``PRAGMA application_id`` of a rightsizer store ("RSZR"): other programs' SQLite files are refused untouched.
APPLICATION_ID = 0x52535A52


#: Tables of schema version 1; a file without the id but with all of these is a store of an earlier release.
OUR_TABLES = frozenset({"meta", "vms", "samples", "hourly", "counters", "backups", "audit"})


SQLITE_MAGIC = b"SQLite format 3\x00"


# -- helpers -----------------------------------------------------------------------------------
def check_identity(path: Path) -> None:
    """Refuse, without changing it, a file that is not a rightsizer store.

    Accepted: a store with our ``application_id``; a store of an earlier release (no id, our tables), which
    the next open stamps with the id; an SQLite file without tables. Raises StoreRefusedError otherwise
    (a directory, an empty file, another format, another program's database).
    """
    shown = str(path)
    if path.is_dir():
        raise StoreRefusedError(f"--db {shown!r} is a directory; pass a database file path")
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise StoreError(f"Cannot read database {shown!r}: {exc.strerror}") from exc
    if not head:
        raise StoreRefusedError(f"{shown!r} is an empty file, not a rightsizer store; remove it or pass another "
                                "--db")
    if not head.startswith(SQLITE_MAGIC):
        raise StoreRefusedError(f"{shown!r} is not an SQLite database, so not a rightsizer store; pass another "
                                "--db")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if is_io_fault(exc):  # a full disk or a failing device: the file may be fine, never "bad input"
            raise io_fault_error(path, exc, "reading") from exc
        raise StoreRefusedError(f"{shown!r} is not a readable SQLite database ({exc}); pass another --db") \
            from exc
    if app_id == APPLICATION_ID:
        return
    if app_id != 0:
        raise StoreRefusedError(f"{shown!r} belongs to another program (SQLite application_id {app_id:#x}); "
                                "rightsizer leaves it untouched -- pass another --db")
    tables.discard("sqlite_sequence")
    if tables and not OUR_TABLES <= tables:
        foreign = ", ".join(sorted(tables - OUR_TABLES)[:5])
        raise StoreRefusedError(f"{shown!r} is another program's SQLite database (tables {foreign}); rightsizer "
                                "leaves it untouched -- pass another --db")


@contextmanager
def opening(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the store's folder while a new store is created or migrated.

    Two commands opening a brand-new store at once would otherwise both see an empty file and both create
    the schema ("table meta already exists"). The lock is on the folder, not the database file: closing any
    descriptor of the database would drop SQLite's own POSIX locks in this process.
    """
    try:
        fd = os.open(path.resolve().parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # one lock per real folder
    except OSError:
        yield  # a folder we cannot open for locking: SQLite's busy timeout still serialises the writes
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


def split_sql(script: str) -> list[str]:
    """Split a migration into statements; ``END;`` closes a trigger body."""
    out: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out
