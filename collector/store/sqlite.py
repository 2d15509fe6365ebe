"""SQLite time-series store: WAL mode, versioned schema, raw samples plus hourly rollups.

Durability: WAL with ``synchronous=NORMAL`` keeps every committed cycle across a process crash
(SIGKILL); a crash mid-write rolls back that one transaction and leaves the file intact.
Concurrency: one connection per thread; WAL lets other processes and threads read while the
collector writes. Rollups: completed hours are rolled up as soon as a cycle lands in a later hour;
the current hour is refreshed at most every ``current_hour_refresh_s`` seconds (default 300); an
``hour`` frame re-aggregates the newest raw sample's hour from raw rows when read, so its utilisation
and running time are up to the minute (its signal columns may lag by that refresh interval).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collector.errors import StoreError, StoreRefusedError
from collector.model import SampleBatch, UsagePoint, VmRecord, VmSample, VmState, natural_key
from collector.store.base import (
    HOUR_COLUMNS,
    RAW_COLUMNS,
    SIGNAL_RAW_COLUMNS,
    AuditEntry,
    Counters,
    Resolution,
)
from collector.store.columns import ColumnBuffers
from collector.store.faults import StoreIOError, io_fault_error, is_io_fault

log = logging.getLogger(__name__)

_MIGRATIONS: tuple[str, ...] = (
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
)
SCHEMA_VERSION = len(_MIGRATIONS)
_COUNTER_COLUMNS = (
    "vm", "ts", "cpu_time_ns", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes",
    "cpu_delay_ns", "swap_in_bytes", "swap_out_bytes", "major_faults", "disk_read_reqs", "disk_write_reqs",
    "disk_read_time_ns", "disk_write_time_ns",
)
#: ``PRAGMA application_id`` of a rightsizer store ("RSZR"): other programs' SQLite files are refused untouched.
APPLICATION_ID = 0x52535A52
#: Tables of schema version 1; a file without the id but with all of these is a store of an earlier release.
_OUR_TABLES = frozenset({"meta", "vms", "samples", "hourly", "counters", "backups", "audit"})
_SQLITE_MAGIC = b"SQLite format 3\x00"
_RAW_DB_COLUMNS = RAW_COLUMNS  # same names in table and frame
_HOUR_DB_COLUMNS = HOUR_COLUMNS
#: The running hour's mergeable aggregates, as the writer's rollup computes them (see ``_rollup``).
_CURRENT_HOUR_COLUMNS = (
    "vm", "samples", "running_s", "vcpus", "memory_bytes", "cpu_mean_vcpus", "cpu_max_vcpus",
    "memory_used_max_bytes", "memory_used_mean_bytes", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes",
    "net_tx_bytes", "disk_capacity_bytes",
)
#: Rows fetched from SQLite per chunk when reading a frame.
_FETCH_ROWS = 65_536
#: At most this many rows are allocated for before an hourly read (more grow the columns as they come).
_MAX_EXPECTED_ROWS = 1 << 27
_TEXT_COLUMNS = frozenset({"vm", "state"})
_INTERVAL_SQL = "MIN(COALESCE(interval_s, 0), 3600)"
_CURRENT_HOUR_SQL = (
    f"SELECT vm, COUNT(*), MIN(SUM(CASE WHEN state = '{VmState.RUNNING.value}' THEN {_INTERVAL_SQL} ELSE 0 END), "
    "3600), MAX(vcpus), MAX(memory_bytes), AVG(cpu_vcpus), MAX(cpu_vcpus), MAX(memory_used_bytes), "
    "AVG(memory_used_bytes), "
    + ", ".join(f"SUM({c} * {_INTERVAL_SQL})" for c in ("disk_read_bps", "disk_write_bps", "net_rx_bps",
                                                         "net_tx_bps"))
    + ", MAX(disk_capacity_bytes) FROM samples WHERE ts >= ? AND ts < ? GROUP BY vm"
)


def _epoch(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise StoreError(f"naive datetime {ts!r}: the store takes timezone-aware UTC times")
    return int(ts.timestamp())


def _dt(epoch: int | float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _opt(v: float | int | None) -> float | int | None:
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


class SqliteStore:
    """TimeSeriesStore on one SQLite file (see module doc for durability and concurrency)."""

    def __init__(
        self,
        path: Path | str,
        *,
        raw_retention_days: int = 35,
        rollup_retention_days: int = 400,
        current_hour_refresh_s: float = 300.0,
    ) -> None:
        self.path = Path(path)
        self.raw_retention = timedelta(days=raw_retention_days)
        self.rollup_retention = timedelta(days=rollup_retention_days)
        self.current_hour_refresh_s = current_hour_refresh_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._last_current_rollup = 0.0
        self._closed = False
        self._commits = itertools.count()  # next() per commit made through this object (any thread)
        self._commit_gen = 0
        self._fault = ""  # the last write's I/O fault (see collector.store.faults), "" after a good commit
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create directory for database {str(self.path)!r}: {exc}") from exc
        with _opening(self.path):
            if self.path.exists():
                check_identity(self.path)
            self._migrate()

    @property
    def fault(self) -> str:
        """The last write's disk-full or I/O fault as one line; "" once a write committed again."""
        return self._fault

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"Database {str(self.path)!r} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA cache_size=-65536")  # KiB: 64 MiB page cache per connection
            except sqlite3.Error as exc:
                if is_io_fault(exc):
                    raise io_fault_error(self.path, exc, "opening") from exc
                raise StoreError(f"Cannot open database {str(self.path)!r}: {exc}") from exc
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
            self._commit_gen = next(self._commits) + 1
            self._fault = ""
        except sqlite3.Error as exc:
            _rollback(conn)
            error = self._translate(exc, "writing")
            if isinstance(error, StoreIOError):
                self._fault = str(error)
            raise error from exc
        except BaseException:
            _rollback(conn)
            raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Run one query and fetch all rows; SQLite errors become StoreError (damage: StoreRefusedError)."""
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading") from exc

    def _translate(self, exc: sqlite3.Error, doing: str) -> StoreError:
        if is_io_fault(exc):
            return io_fault_error(self.path, exc, doing)
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
            return StoreRefusedError(f"Database {str(self.path)!r} is damaged ({text}); restore it from a backup "
                                     "or pass another --db")
        return StoreError(f"Database {str(self.path)!r}: {text}")

    def _migrate(self) -> None:
        conn = self._conn()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if is_io_fault(exc):
                raise io_fault_error(self.path, exc, "opening") from exc
            raise StoreError(f"{str(self.path)!r} is not a rightsizer database: {exc}") from exc
        if version > SCHEMA_VERSION:  # after check_identity: a newer rightsizer's store
            raise StoreError(
                f"Database {str(self.path)!r} has schema version {version}, newer than this rightsizer "
                f"({SCHEMA_VERSION}); upgrade rightsizer"
            )
        if 0 < version < SCHEMA_VERSION:  # a store with history: keep a copy before changing its schema
            from collector.store.care import pre_migration_backup

            saved = pre_migration_backup(self.path, version, SCHEMA_VERSION)
            log.warning("store %s has schema version %d; backed up to %s before migrating to %d", self.path,
                        version, saved, SCHEMA_VERSION)
        for i in range(version, SCHEMA_VERSION):
            with self._tx() as c:
                if c.execute("PRAGMA user_version").fetchone()[0] > i:
                    continue  # another process migrated it meanwhile (see ``_opening``)
                for statement in _split_sql(_MIGRATIONS[i]):
                    c.execute(statement)
                c.execute(f"PRAGMA user_version={i + 1}")
            if version:  # a new store is created, not migrated: one line for it below
                log.info("store %s migrated to schema version %d", self.path, i + 1)
        if version == 0:
            log.info("store %s created (schema version %d)", self.path, SCHEMA_VERSION)
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            with self._tx() as c:
                c.execute(f"PRAGMA application_id={APPLICATION_ID}")

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close every thread's connection; later calls raise StoreError."""
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()

    # -- writes ------------------------------------------------------------------------------
    def write(self, batch: SampleBatch, points: Sequence[UsagePoint], counters: Sequence[Counters]) -> None:
        """Store one cycle in one transaction; roll up hours that this cycle completed."""
        now_epoch = _epoch(batch.taken_at)
        with self._tx() as c:
            self._upsert_vms(c, [_record_from_sample(s, batch.taken_at) for s in batch.samples])
            c.executemany(
                f"INSERT OR REPLACE INTO samples({','.join(_RAW_DB_COLUMNS)}) VALUES "
                f"({','.join('?' * len(_RAW_DB_COLUMNS))})",
                [_point_row(p) for p in points],
            )
            c.executemany(
                f"INSERT OR REPLACE INTO counters({','.join(_COUNTER_COLUMNS)}) VALUES "
                f"({','.join('?' * len(_COUNTER_COLUMNS))})",
                [(k.vm_uuid, _epoch(k.ts), k.cpu_time_ns, k.disk_read_bytes, k.disk_write_bytes,
                  k.net_rx_bytes, k.net_tx_bytes, k.cpu_delay_ns, k.swap_in_bytes, k.swap_out_bytes,
                  k.major_faults, k.disk_read_reqs, k.disk_write_reqs, k.disk_read_time_ns,
                  k.disk_write_time_ns) for k in counters],
            )
            for s in batch.samples:
                if s.snapshot_times:
                    c.executemany(
                        "INSERT OR IGNORE INTO backups VALUES (?,?,?)",
                        [(s.ref.uuid, _epoch(t), "snapshot") for t in s.snapshot_times],
                    )
            self._rollup_pending(c, now_epoch)

    def write_history(self, vms: Sequence[VmRecord], points: Iterable[UsagePoint] | pd.DataFrame) -> int:
        """Bulk-load history (imports, demo) in one transaction and roll up every hour it touches.

        ``points`` may be UsagePoint values or a DataFrame with the raw frame columns (``ts`` as
        datetime64 UTC or epoch seconds). Returns the number of raw rows written.
        """
        frame = points if isinstance(points, pd.DataFrame) else _points_frame(points)
        frame = _normalise_raw(frame)
        with self._tx() as c:
            self._upsert_vms(c, list(vms))
            rows = _rows(frame)
            c.executemany(
                f"INSERT OR REPLACE INTO samples({','.join(_RAW_DB_COLUMNS)}) VALUES "
                f"({','.join('?' * len(_RAW_DB_COLUMNS))})",
                rows,
            )
            if len(frame):
                hours = _rollup(frame)
                self._write_hours(c, hours)
        return len(frame)

    def _upsert_vms(self, c: sqlite3.Connection, records: Sequence[VmRecord]) -> None:
        c.executemany(
            """INSERT INTO vms VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(uuid) DO UPDATE SET name=excluded.name, uri=excluded.uri, host=excluded.host,
                 state=excluded.state, vcpus=excluded.vcpus, max_vcpus=excluded.max_vcpus,
                 memory_bytes=excluded.memory_bytes, max_memory_bytes=excluded.max_memory_bytes,
                 labels=excluded.labels, source=excluded.source,
                 first_seen=MIN(vms.first_seen, excluded.first_seen),
                 last_seen=MAX(vms.last_seen, excluded.last_seen)""",
            [(r.uuid, r.name, r.uri, r.host, r.state.value, r.vcpus, r.max_vcpus, r.memory_bytes,
              r.max_memory_bytes, json.dumps(dict(r.labels), sort_keys=True), _epoch(r.first_seen),
              _epoch(r.last_seen), r.source) for r in records],
        )

    def _rollup_pending(self, c: sqlite3.Connection, now_epoch: int) -> None:
        current_hour = now_epoch - now_epoch % 3600
        row = c.execute("SELECT value FROM meta WHERE key='rollup_watermark'").fetchone()
        watermark = int(row[0]) if row else None
        if watermark is None:
            first = c.execute("SELECT MIN(ts) FROM samples").fetchone()[0]
            watermark = (int(first) - int(first) % 3600) if first is not None else current_hour
        if watermark < current_hour:
            self._rollup_range(c, watermark, current_hour)
            c.execute("INSERT OR REPLACE INTO meta VALUES ('rollup_watermark', ?)", (str(current_hour),))
        mono = time.monotonic()
        if mono - self._last_current_rollup >= self.current_hour_refresh_s:
            self._rollup_range(c, current_hour, current_hour + 3600)
            self._last_current_rollup = mono

    def refresh_rollups(self) -> None:
        """Roll up the current hour now (readers that need it up to the minute call this)."""
        with self._tx() as c:
            now = int(time.time())
            self._last_current_rollup = 0.0
            self._rollup_pending(c, now)

    def _rollup_range(self, c: sqlite3.Connection, start: int, end: int) -> None:
        cur = c.execute(
            f"SELECT {','.join(_RAW_DB_COLUMNS)} FROM samples WHERE ts >= ? AND ts < ?", (start, end)
        )
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=list(_RAW_DB_COLUMNS))
        if len(frame):
            self._write_hours(c, _rollup(frame))

    def _write_hours(self, c: sqlite3.Connection, hours: pd.DataFrame) -> None:
        c.executemany(
            f"INSERT OR REPLACE INTO hourly({','.join(_HOUR_DB_COLUMNS)}) VALUES "
            f"({','.join('?' * len(_HOUR_DB_COLUMNS))})",
            _rows(hours[list(_HOUR_DB_COLUMNS)].sort_values(["ts", "vm"], kind="stable")),
        )

    def record_backups(self, vm_uuid: str, times: Sequence[datetime], kind: str = "snapshot") -> None:
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO backups VALUES (?,?,?)",
                          [(vm_uuid, _epoch(t), kind) for t in times])

    def append_audit(self, entry: AuditEntry) -> int:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO audit(ts, actor, vm, vm_name, action, before, after, result, reason, plan_id, "
                "price_before, price_after, currency) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_epoch(entry.ts), entry.actor, entry.vm_uuid, entry.vm_name, entry.action,
                 json.dumps(dict(entry.before), sort_keys=True, default=str),
                 json.dumps(dict(entry.after), sort_keys=True, default=str), entry.result, entry.reason,
                 entry.plan_id, entry.price_before_per_hour, entry.price_after_per_hour, entry.currency),
            )
            return int(cur.lastrowid or 0)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def prune(self, now: datetime) -> int:
        raw_cut = _epoch(now - self.raw_retention)
        hour_cut = _epoch(now - self.rollup_retention)
        with self._tx() as c:
            n = c.execute("DELETE FROM samples WHERE ts < ?", (raw_cut,)).rowcount
            n += c.execute("DELETE FROM hourly WHERE ts < ?", (hour_cut,)).rowcount
        return int(n)

    # -- reads -------------------------------------------------------------------------------
    def counters(self) -> dict[str, Counters]:
        rows = self._read(f"SELECT {','.join(_COUNTER_COLUMNS)} FROM counters")
        return {r[0]: Counters(r[0], _dt(r[1]), *r[2:]) for r in rows}

    def vms(self) -> list[VmRecord]:
        rows = self._read(
            "SELECT v.*, (SELECT MAX(created_at) FROM backups b WHERE b.vm = v.uuid) FROM vms v"
        )
        rows.sort(key=lambda r: natural_key(r[1]))  # vm-2 before vm-10
        out = []
        for r in rows:
            out.append(VmRecord(
                uuid=r[0], name=r[1], uri=r[2], host=r[3], state=VmState(r[4]), vcpus=r[5], max_vcpus=r[6],
                memory_bytes=r[7], max_memory_bytes=r[8], labels=json.loads(r[9]), first_seen=_dt(r[10]),
                last_seen=_dt(r[11]), source=r[12], newest_backup=_dt(r[13]) if r[13] is not None else None,
            ))
        return out

    def frame(
        self,
        start: datetime,
        end: datetime,
        *,
        resolution: Resolution = "hour",
        vms: Collection[str] | None = None,
        columns: Collection[str] | None = None,
    ) -> pd.DataFrame:
        """Rows with ``start <= ts < end`` (see collector.store.base for the columns).

        ``columns``: the value columns the caller reads; only those are read from the file and returned (with
        ``vm``, ``ts`` and, for raw rows, ``state`` and ``gap``): a month of a large fleet has no room for columns
        nobody reads. Raises StoreError (an unknown column or resolution, a damaged file).
        """
        if resolution not in ("raw", "hour"):
            raise StoreError(f"resolution {resolution!r} is not 'raw' or 'hour'")
        table, cols = ("samples", _RAW_DB_COLUMNS) if resolution == "raw" else ("hourly", _HOUR_DB_COLUMNS)
        read = cols if columns is None else _read_columns(cols, columns, resolution)
        sql = f"SELECT {','.join(read)} FROM {table} WHERE ts >= ? AND ts < ?"
        params: list[object] = [_epoch(start), _epoch(end)]
        if vms is not None:
            vm_list = list(vms)
            if not vm_list:
                return _typed(_empty(read), resolution)
            if len(vm_list) < 900:
                sql += f" AND vm IN ({','.join('?' * len(vm_list))})"
                params.extend(vm_list)
            else:  # one parameter for any number of VMs: SQLite's variable limit may be 999
                sql += " AND vm IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(vm_list))
        frame = self._read_frame(sql, params, read, resolution, self._expected_rows(start, end, resolution, vms))
        if resolution == "hour":
            frame = self._with_current_hour(frame, _epoch(start), _epoch(end), read)
        if vms is not None and resolution == "hour":  # the re-aggregated running hour holds every VM
            frame = frame[frame["vm"].isin(set(vms))]
        return _by_vm_and_time(frame)

    def _read_frame(self, sql: str, params: Sequence[object], read: Sequence[str],
                    resolution: Resolution, capacity_rows: int = _FETCH_ROWS) -> pd.DataFrame:
        """Run ``sql`` and decode its rows (columns ``read``) chunk by chunk into a frame.

        Chunks keep the Python rows of at most ``_FETCH_ROWS`` alive at once (a month of a large fleet as
        tuples would take tens of GiB); each chunk is decoded in place into one array per column, allocated
        for ``capacity_rows`` (the expected rows; grown when more come), so no chunk copies are joined at the
        end. VM strings are shared (one object per VM, not per row); the frame keeps one block per column.
        """
        buffers = ColumnBuffers(read, _TEXT_COLUMNS, capacity_rows)
        try:
            cursor = self._conn().execute(sql, params)
            while rows := cursor.fetchmany(_FETCH_ROWS):
                buffers.append(rows)
                del rows
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading") from exc
        if not buffers.rows:
            return _typed(_empty(read), resolution)
        data: dict[str, object] = {}
        for name, column in buffers.columns().items():
            data[name] = pd.to_datetime(column, unit="s", utc=True) if name == "ts" else column
        return pd.DataFrame(data, copy=False)

    def _expected_rows(self, start: datetime, end: datetime, resolution: Resolution,
                       vms: Collection[str] | None) -> int:
        """Rows an hourly read of ``[start, end)`` returns when every VM has every hour (at most
        ``_MAX_EXPECTED_ROWS``): the size its columns are allocated at. Raw reads start at one chunk."""
        if resolution != "hour":
            return _FETCH_ROWS
        if vms is None:
            [(n_vms,)] = self._read("SELECT COUNT(*) FROM vms")
        else:
            n_vms = len(set(vms))
        hours = max(0, -(-(_epoch(end) - _epoch(start)) // 3600))
        return int(min(max(int(n_vms) * hours, _FETCH_ROWS), _MAX_EXPECTED_ROWS))

    def _with_current_hour(self, hours: pd.DataFrame, start_s: int, end_s: int,
                           read: Sequence[str] = _HOUR_DB_COLUMNS) -> pd.DataFrame:
        """``hours`` with the newest raw sample's hour re-aggregated from its raw samples now (read only).

        The writer refreshes the running hour's rollup at most every ``current_hour_refresh_s``; readers
        get its utilisation, running time and traffic up to date (the signal columns keep the writer's
        last refresh). One SQL aggregate plus the CPU column of at most one hour of raw rows (kept until the
        next commit: ``_running_hour_rows``). Columns not in ``read`` stay NaN, as in the stored hours.
        """
        [(newest,)] = self._read("SELECT MAX(ts) FROM samples")
        if newest is None:
            return hours
        hour = int(newest) - int(newest) % 3600
        if not start_s <= hour < end_s:
            return hours
        fresh = self._running_hour_rows(hour)
        if fresh.empty:
            return hours
        fresh = fresh.drop(columns=[c for c in fresh.columns if c not in read])
        at_hour = (hours["ts"] == pd.Timestamp(hour, unit="s", tz="UTC")).to_numpy(dtype=bool)
        kept_cols = [c for c in hours.columns if c not in fresh.columns]
        fresh = fresh.merge(hours.loc[at_hour, ["vm", *kept_cols]], on="vm", how="left")
        fresh = _typed(fresh[list(hours.columns)], "hour")
        first = int(np.argmax(at_hour)) if at_hour.any() else len(at_hour)
        if at_hour[first:].all():  # the hour's rows are the last ones (rows come in time order): no mask copy
            return _spliced(hours, first, fresh)
        kept = hours[~at_hour]
        return pd.concat([kept, fresh], ignore_index=True) if len(kept) else fresh

    def _running_hour_rows(self, hour: int) -> pd.DataFrame:
        """The hour starting at ``hour`` aggregated from its raw rows (a fresh copy per call).

        Kept per thread until the next commit by any connection (``PRAGMA data_version`` of this thread's
        connection, plus the commits made through this object): the dashboard's views and API requests between
        two collection cycles then read the same answer without aggregating the hour again.
        """
        conn = self._conn()
        try:
            [(version,)] = conn.execute("PRAGMA data_version").fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading") from exc
        key = (int(version), self._commit_gen, hour)
        cached: tuple[tuple[int, ...], pd.DataFrame] | None = getattr(self._local, "running_hour", None)
        if cached is not None and cached[0] == key:
            return cached[1].copy()
        bounds = (hour, hour + 3600)  # a row covers its whole hour, as the stored rollups do
        fresh = pd.DataFrame.from_records(self._read(_CURRENT_HOUR_SQL, bounds), columns=list(_CURRENT_HOUR_COLUMNS))
        if not fresh.empty:
            cpu = pd.DataFrame.from_records(self._read(
                "SELECT vm, cpu_vcpus FROM samples WHERE ts >= ? AND ts < ? AND cpu_vcpus IS NOT NULL", bounds),
                columns=["vm", "cpu_vcpus"]).astype({"vm": object, "cpu_vcpus": "float64"})
            p95 = cpu.groupby("vm")["cpu_vcpus"].quantile(0.95).rename("cpu_p95_vcpus")
            fresh = fresh.merge(p95, left_on="vm", right_index=True, how="left")
            fresh["ts"] = hour
        self._local.running_hour = (key, fresh)
        return fresh.copy()

    def time_range(self) -> tuple[datetime, datetime] | None:
        # One aggregate per SELECT: SQLite answers a lone MIN or MAX from the (ts, vm) key's ends, MIN and MAX
        # together by scanning every row (seconds at thousands of VMs x a month).
        [(lo, hi)] = self._read("SELECT (SELECT MIN(ts) FROM samples), (SELECT MAX(ts) FROM samples)")
        if lo is None:
            [(lo, hi)] = self._read("SELECT (SELECT MIN(ts) FROM hourly), (SELECT MAX(ts) + 3600 FROM hourly)")
        if lo is None:
            return None
        return _dt(lo), _dt(hi)

    def backups(self) -> dict[str, datetime]:
        rows = self._read("SELECT vm, MAX(created_at) FROM backups GROUP BY vm")
        return {vm: _dt(ts) for vm, ts in rows}

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]:
        sql = "SELECT * FROM audit" + (" WHERE vm = ?" if vm_uuid else "") + " ORDER BY id"
        rows = self._read(sql, (vm_uuid,) if vm_uuid else ())
        return [
            AuditEntry(ts=_dt(r[1]), actor=r[2], vm_uuid=r[3], vm_name=r[4], action=r[5], before=json.loads(r[6]),
                       after=json.loads(r[7]), result=r[8], reason=r[9], plan_id=r[10],
                       price_before_per_hour=r[11], price_after_per_hour=r[12], currency=r[13], id=r[0])
            for r in rows
        ]

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])


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
    if not head.startswith(_SQLITE_MAGIC):
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
    if tables and not _OUR_TABLES <= tables:
        foreign = ", ".join(sorted(tables - _OUR_TABLES)[:5])
        raise StoreRefusedError(f"{shown!r} is another program's SQLite database (tables {foreign}); rightsizer "
                                "leaves it untouched -- pass another --db")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction; a rollback that fails too (the disk went away) leaves it to SQLite."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed; SQLite rolls the transaction back from its journal on the next open")


@contextmanager
def _opening(path: Path) -> Iterator[None]:
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


def _split_sql(script: str) -> list[str]:
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


def _record_from_sample(s: VmSample, taken_at: datetime) -> VmRecord:
    return VmRecord(
        uuid=s.ref.uuid, name=s.ref.name, uri=s.ref.uri, host=s.host, state=s.state, vcpus=s.vcpus,
        max_vcpus=s.max_vcpus, memory_bytes=s.memory_bytes, max_memory_bytes=s.max_memory_bytes,
        labels=dict(s.labels), first_seen=taken_at, last_seen=taken_at, source="libvirt",
    )


def _point_row(p: UsagePoint) -> tuple[object, ...]:
    return (p.vm_uuid, _epoch(p.ts), p.state.value, p.vcpus, p.memory_bytes, _opt(p.cpu_vcpus),
            _opt(p.memory_used_bytes), _opt(p.disk_read_bps), _opt(p.disk_write_bps), _opt(p.net_rx_bps),
            _opt(p.net_tx_bps), _opt(p.disk_capacity_bytes), _opt(p.interval_s), int(p.gap),
            _opt(p.cpu_delay_vcpus), _opt(p.swap_in_bps), _opt(p.swap_out_bps), _opt(p.major_faults_ps),
            _opt(p.disk_read_iops), _opt(p.disk_write_iops), _opt(p.disk_read_time_s_per_s),
            _opt(p.disk_write_time_s_per_s), _opt(p.disk_allocation_bytes))


def _points_frame(points: Iterable[UsagePoint]) -> pd.DataFrame:
    return pd.DataFrame.from_records([_point_row(p) for p in points], columns=list(_RAW_DB_COLUMNS))


def _normalise_raw(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("vm", "ts", "state", "vcpus", "memory_bytes") if c not in frame.columns]
    if missing:
        raise StoreError(f"history frame lacks column(s) {missing}; see collector.store.base.RAW_COLUMNS")
    f = frame.copy()
    for col in _RAW_DB_COLUMNS:
        if col not in f.columns:
            f[col] = 0 if col == "gap" else np.nan
    ts = f["ts"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        f["ts"] = (ts.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000_000).astype("int64")
    f["state"] = f["state"].map(lambda s: s.value if isinstance(s, VmState) else str(s))
    f["gap"] = f["gap"].fillna(0).astype(int)
    # insert in primary-key order: appends to the B-tree instead of splitting pages at random
    return f[list(_RAW_DB_COLUMNS)].sort_values(["ts", "vm"], kind="stable")


def _rollup(raw: pd.DataFrame) -> pd.DataFrame:
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
    out = out.join(_rollup_signals(f, interval))
    out = out.reset_index().rename(columns={"hour": "ts"})
    out["running_s"] = out["running_s"].clip(upper=3600.0)
    return out[list(_HOUR_DB_COLUMNS)]


def _rollup_signals(f: pd.DataFrame, interval: pd.Series) -> pd.DataFrame:
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


def _rows(frame: pd.DataFrame) -> Iterator[tuple[object, ...]]:
    """Rows for executemany; NaN binds as NULL in SQLite."""
    return zip(*(frame[c].tolist() for c in frame.columns), strict=True)


def _read_columns(cols: Sequence[str], wanted: Collection[str], resolution: Resolution) -> tuple[str, ...]:
    """The table columns to read for the value columns ``wanted``: the keys first, then table order."""
    unknown = sorted(set(wanted) - set(cols))
    if unknown:
        raise StoreError(f"unknown {resolution} column(s) {unknown}; see collector.store.base")
    keys = ("vm", "ts", "state", "gap") if resolution == "raw" else ("vm", "ts")
    return tuple(c for c in cols if c in keys or c in set(wanted))


def _by_vm_and_time(frame: pd.DataFrame) -> pd.DataFrame:
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


def _spliced(hours: pd.DataFrame, first: int, fresh: pd.DataFrame) -> pd.DataFrame:
    """``hours``' first ``first`` rows followed by ``fresh``, built one column at a time; consumes ``hours``."""
    data: dict[str, object] = {}
    for name in list(hours.columns):
        data[name] = pd.concat([hours[name].iloc[:first], fresh[name]], ignore_index=True)
        del hours[name]
    return pd.DataFrame(data, copy=False)


def _empty(cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})


def _typed(frame: pd.DataFrame, resolution: Resolution) -> pd.DataFrame:
    if frame.empty:
        frame = _empty(frame.columns)
        frame["vm"] = frame["vm"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="s", utc=True)
    skip = {"vm", "ts", "state"}
    for col in frame.columns:
        if col not in skip:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    if resolution == "raw":
        frame["gap"] = frame["gap"].fillna(0).astype(bool)
    return frame
