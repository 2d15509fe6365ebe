"""SQLite time-series store: WAL mode, versioned schema, raw samples plus hourly rollups.

Durability: WAL with ``synchronous=NORMAL`` keeps every committed cycle across a process crash
(SIGKILL); a crash mid-write rolls back that one transaction and leaves the file intact.
Concurrency: one connection per thread; WAL lets other processes and threads read while the
collector writes. Rollups: completed hours are rolled up as soon as a cycle lands in a later hour;
the current hour is refreshed at most every ``current_hour_refresh_s`` seconds (default 300); an
``hour`` frame re-aggregates the newest raw sample's hour from raw rows when read, so its utilisation
and running time are up to the minute (its signal columns may lag by that refresh interval).

Why one module above 500 lines: it is one class, the store, whose reads, writes and rollups share one
connection discipline (per-thread connections, one writer, fault mapping); its schema and identity
(``schema.py``) and its row and frame helpers (``sqlite_rows.py``) live apart.
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collector.errors import StoreError, StoreRefusedError
from collector.model import SampleBatch, UsagePoint, VmRecord, VmState, natural_key
from collector.store import sqlite_dismissals
from collector.store.base import (
    AuditEntry,
    Counters,
    Resolution,
)
from collector.store.columns import ColumnBuffers
from collector.store.faults import StoreIOError, io_fault_error, is_io_fault
from collector.store.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    check_identity,
    opening,
    split_sql,
)
from collector.store.sqlite_rows import (
    HOUR_DB_COLUMNS,
    RAW_DB_COLUMNS,
    by_vm_and_time,
    empty_frame,
    fetch_rows,
    from_epoch,
    normalise_raw,
    point_row,
    points_frame,
    read_columns,
    record_from_sample,
    rollup,
    spliced,
    to_epoch,
    typed_frame,
)
from core.dismissals import Dismissal

log = logging.getLogger(__name__)

_COUNTER_COLUMNS = (
    "vm", "ts", "cpu_time_ns", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes",
    "cpu_delay_ns", "swap_in_bytes", "swap_out_bytes", "major_faults", "disk_read_reqs", "disk_write_reqs",
    "disk_read_time_ns", "disk_write_time_ns",
)
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
        with opening(self.path):
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
                for statement in split_sql(MIGRATIONS[i]):
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
        now_epoch = to_epoch(batch.taken_at)
        with self._tx() as c:
            self._upsert_vms(c, [record_from_sample(s, batch.taken_at) for s in batch.samples])
            c.executemany(
                f"INSERT OR REPLACE INTO samples({','.join(RAW_DB_COLUMNS)}) VALUES "
                f"({','.join('?' * len(RAW_DB_COLUMNS))})",
                [point_row(p) for p in points],
            )
            c.executemany(
                f"INSERT OR REPLACE INTO counters({','.join(_COUNTER_COLUMNS)}) VALUES "
                f"({','.join('?' * len(_COUNTER_COLUMNS))})",
                [(k.vm_uuid, to_epoch(k.ts), k.cpu_time_ns, k.disk_read_bytes, k.disk_write_bytes,
                  k.net_rx_bytes, k.net_tx_bytes, k.cpu_delay_ns, k.swap_in_bytes, k.swap_out_bytes,
                  k.major_faults, k.disk_read_reqs, k.disk_write_reqs, k.disk_read_time_ns,
                  k.disk_write_time_ns) for k in counters],
            )
            for s in batch.samples:
                if s.snapshot_times:
                    c.executemany(
                        "INSERT OR IGNORE INTO backups VALUES (?,?,?)",
                        [(s.ref.uuid, to_epoch(t), "snapshot") for t in s.snapshot_times],
                    )
            self._rollup_pending(c, now_epoch)

    def write_history(self, vms: Sequence[VmRecord], points: Iterable[UsagePoint] | pd.DataFrame) -> int:
        """Bulk-load history (imports, demo) in one transaction and roll up every hour it touches.

        ``points`` may be UsagePoint values or a DataFrame with the raw frame columns (``ts`` as
        datetime64 UTC or epoch seconds). Returns the number of raw rows written.
        """
        frame = points if isinstance(points, pd.DataFrame) else points_frame(points)
        frame = normalise_raw(frame)
        with self._tx() as c:
            self._upsert_vms(c, list(vms))
            rows = fetch_rows(frame)
            c.executemany(
                f"INSERT OR REPLACE INTO samples({','.join(RAW_DB_COLUMNS)}) VALUES "
                f"({','.join('?' * len(RAW_DB_COLUMNS))})",
                rows,
            )
            if len(frame):
                hours = rollup(frame)
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
              r.max_memory_bytes, json.dumps(dict(r.labels), sort_keys=True), to_epoch(r.first_seen),
              to_epoch(r.last_seen), r.source) for r in records],
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
            f"SELECT {','.join(RAW_DB_COLUMNS)} FROM samples WHERE ts >= ? AND ts < ?", (start, end)
        )
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=list(RAW_DB_COLUMNS))
        if len(frame):
            self._write_hours(c, rollup(frame))

    def _write_hours(self, c: sqlite3.Connection, hours: pd.DataFrame) -> None:
        c.executemany(
            f"INSERT OR REPLACE INTO hourly({','.join(HOUR_DB_COLUMNS)}) VALUES "
            f"({','.join('?' * len(HOUR_DB_COLUMNS))})",
            fetch_rows(hours[list(HOUR_DB_COLUMNS)].sort_values(["ts", "vm"], kind="stable")),
        )

    def record_backups(self, vm_uuid: str, times: Sequence[datetime], kind: str = "snapshot") -> None:
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO backups VALUES (?,?,?)",
                          [(vm_uuid, to_epoch(t), kind) for t in times])

    def append_audit(self, entry: AuditEntry) -> int:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO audit(ts, actor, vm, vm_name, action, before, after, result, reason, plan_id, "
                "price_before, price_after, currency) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (to_epoch(entry.ts), entry.actor, entry.vm_uuid, entry.vm_name, entry.action,
                 json.dumps(dict(entry.before), sort_keys=True, default=str),
                 json.dumps(dict(entry.after), sort_keys=True, default=str), entry.result, entry.reason,
                 entry.plan_id, entry.price_before_per_hour, entry.price_after_per_hour, entry.currency),
            )
            return int(cur.lastrowid or 0)

    def dismiss(self, dismissal: Dismissal) -> None:
        with self._tx() as c:
            sqlite_dismissals.insert(c, dismissal)

    def restore(self, vm_uuid: str, *, actor: str, at: datetime, kind: str | None = None) -> list[Dismissal]:
        with self._tx() as c:
            return sqlite_dismissals.delete(c, vm_uuid, kind, actor, at)

    def dismissals(self) -> list[Dismissal]:
        return sqlite_dismissals.read_all(self._read(sqlite_dismissals.SELECT_ALL))

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def prune(self, now: datetime) -> int:
        raw_cut = to_epoch(now - self.raw_retention)
        hour_cut = to_epoch(now - self.rollup_retention)
        with self._tx() as c:
            n = c.execute("DELETE FROM samples WHERE ts < ?", (raw_cut,)).rowcount
            n += c.execute("DELETE FROM hourly WHERE ts < ?", (hour_cut,)).rowcount
        return int(n)

    # -- reads -------------------------------------------------------------------------------
    def counters(self) -> dict[str, Counters]:
        rows = self._read(f"SELECT {','.join(_COUNTER_COLUMNS)} FROM counters")
        return {r[0]: Counters(r[0], from_epoch(r[1]), *r[2:]) for r in rows}

    def vms(self) -> list[VmRecord]:
        rows = self._read(
            "SELECT v.*, (SELECT MAX(created_at) FROM backups b WHERE b.vm = v.uuid) FROM vms v"
        )
        rows.sort(key=lambda r: natural_key(r[1]))  # vm-2 before vm-10
        out = []
        for r in rows:
            out.append(VmRecord(
                uuid=r[0], name=r[1], uri=r[2], host=r[3], state=VmState(r[4]), vcpus=r[5], max_vcpus=r[6],
                memory_bytes=r[7], max_memory_bytes=r[8], labels=json.loads(r[9]), first_seen=from_epoch(r[10]),
                last_seen=from_epoch(r[11]), source=r[12],
                newest_backup=from_epoch(r[13]) if r[13] is not None else None,
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
        table, cols = ("samples", RAW_DB_COLUMNS) if resolution == "raw" else ("hourly", HOUR_DB_COLUMNS)
        read = cols if columns is None else read_columns(cols, columns, resolution)
        sql = f"SELECT {','.join(read)} FROM {table} WHERE ts >= ? AND ts < ?"
        params: list[object] = [to_epoch(start), to_epoch(end)]
        if vms is not None:
            vm_list = list(vms)
            if not vm_list:
                return typed_frame(empty_frame(read), resolution)
            if len(vm_list) < 900:
                sql += f" AND vm IN ({','.join('?' * len(vm_list))})"
                params.extend(vm_list)
            else:  # one parameter for any number of VMs: SQLite's variable limit may be 999
                sql += " AND vm IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(vm_list))
        frame = self._read_frame(sql, params, read, resolution, self._expected_rows(start, end, resolution, vms))
        if resolution == "hour":
            frame = self._with_current_hour(frame, to_epoch(start), to_epoch(end), read)
        if vms is not None and resolution == "hour":  # the re-aggregated running hour holds every VM
            frame = frame[frame["vm"].isin(set(vms))]
        return by_vm_and_time(frame)

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
            return typed_frame(empty_frame(read), resolution)
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
        hours = max(0, -(-(to_epoch(end) - to_epoch(start)) // 3600))
        return int(min(max(int(n_vms) * hours, _FETCH_ROWS), _MAX_EXPECTED_ROWS))

    def _with_current_hour(self, hours: pd.DataFrame, start_s: int, end_s: int,
                           read: Sequence[str] = HOUR_DB_COLUMNS) -> pd.DataFrame:
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
        fresh = typed_frame(fresh[list(hours.columns)], "hour")
        first = int(np.argmax(at_hour)) if at_hour.any() else len(at_hour)
        if at_hour[first:].all():  # the hour's rows are the last ones (rows come in time order): no mask copy
            return spliced(hours, first, fresh)
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
        return from_epoch(lo), from_epoch(hi)

    def backups(self) -> dict[str, datetime]:
        rows = self._read("SELECT vm, MAX(created_at) FROM backups GROUP BY vm")
        return {vm: from_epoch(ts) for vm, ts in rows}

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]:
        sql = "SELECT * FROM audit" + (" WHERE vm = ?" if vm_uuid else "") + " ORDER BY id"
        rows = self._read(sql, (vm_uuid,) if vm_uuid else ())
        return [
            AuditEntry(ts=from_epoch(r[1]), actor=r[2], vm_uuid=r[3], vm_name=r[4], action=r[5],
                       before=json.loads(r[6]),
                       after=json.loads(r[7]), result=r[8], reason=r[9], plan_id=r[10],
                       price_before_per_hour=r[11], price_after_per_hour=r[12], currency=r[13], id=r[0])
            for r in rows
        ]

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction; a rollback that fails too (the disk went away) leaves it to SQLite."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed; SQLite rolls the transaction back from its journal on the next open")


