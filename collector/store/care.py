"""Store care: consistent online backups and health checks of the SQLite store.

``backup`` uses SQLite's online backup API in one step: the copy is made inside one read transaction, so it is
the store as of one commit even while ``serve`` writes (WAL: the writer is not blocked). The copy is written
beside its destination and renamed into place, so a crash never leaves half a backup under the final name.
``check`` opens the file read-only (nothing is migrated or written) and reports integrity, schema version,
size, rows and the span of history against the retention settings.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from collector.errors import InputError, StoreError, StoreRefusedError

#: Tables whose rows ``check`` counts.
TABLES = ("vms", "samples", "hourly", "counters", "backups", "audit", "meta")


@dataclass(frozen=True)
class BackupResult:
    source: Path
    dest: Path
    bytes: int
    seconds: float
    schema_version: int


@dataclass(frozen=True)
class StoreReport:
    """What ``check`` found; ``problems`` is empty for a healthy store."""

    path: Path
    bytes: int
    wal_bytes: int
    schema_version: int
    integrity: str
    rows: dict[str, int] = field(default_factory=dict)
    raw_span: tuple[datetime, datetime] | None = None
    hourly_span: tuple[datetime, datetime] | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)


def backup(source: Path | str, dest: Path | str, *, overwrite: bool = False) -> BackupResult:
    """Copy the store ``source`` to ``dest`` consistently (online backup API); returns what was written.

    InputError when ``source`` is not a rightsizer store or ``dest`` exists (without ``overwrite``) or is a
    directory; StoreError when the copy cannot be written.
    """
    from collector.store.schema import check_identity

    src, dst = Path(source), Path(dest)
    if not src.is_file():
        raise InputError(f"store {str(src)!r} does not exist; pass --db or --config with the store's path")
    check_identity(src)
    if dst.is_dir():
        raise InputError(f"backup path {str(dst)!r} is a directory; pass a file path such as {str(dst / src.name)!r}")
    if dst.exists() and not overwrite:
        raise InputError(f"backup path {str(dst)!r} exists; pass a new file name or --overwrite")
    if dst.resolve() == src.resolve():
        raise InputError(f"backup path {str(dst)!r} is the store itself; pass another file")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    started = time.perf_counter()
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        source_conn = sqlite3.connect(src, timeout=30.0)
        try:
            target = sqlite3.connect(tmp)
            try:
                source_conn.backup(target)  # pages=-1: all pages in one step, one read transaction
                target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                version = int(target.execute("PRAGMA user_version").fetchone()[0])
            finally:
                target.close()
        finally:
            source_conn.close()
        os.replace(tmp, dst)
    except (sqlite3.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"backup of {str(src)!r} to {str(dst)!r} failed: {exc}; check space and permissions") \
            from exc
    return BackupResult(src, dst, dst.stat().st_size, time.perf_counter() - started, version)


def check(path: Path | str, *, raw_retention_days: int | None = None,
          rollup_retention_days: int | None = None, now: datetime | None = None) -> StoreReport:
    """Check the store read-only: identity, ``PRAGMA integrity_check``, schema version, rows, span vs retention."""
    from collector.store.schema import SCHEMA_VERSION, check_identity

    p = Path(path)
    if not p.is_file():
        raise InputError(f"store {str(p)!r} does not exist; pass --db or --config with the store's path")
    wal = p.with_name(p.name + "-wal")
    try:
        check_identity(p)
    except StoreRefusedError as exc:
        if not _unreadable_sqlite(p):  # another program's file, empty, a directory: bad input
            raise
        return StoreReport(p, p.stat().st_size, wal.stat().st_size if wal.exists() else 0, -1, "unreadable",
                           problems=(f"{exc}; restore the store from a backup",))
    problems: list[str] = []
    try:
        conn = _ro(p)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check(20)"))
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            rows = {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES if t in tables}
            raw = _span(conn, "samples", 0) if "samples" in tables else None
            hourly = _span(conn, "hourly", 3600) if "hourly" in tables else None
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return StoreReport(p, p.stat().st_size, wal.stat().st_size if wal.exists() else 0, -1, str(exc),
                           problems=(f"cannot read the store: {exc}; restore it from a backup",))
    if integrity != "ok":
        problems.append(f"integrity check failed: {integrity}; restore the store from a backup")
    if version > SCHEMA_VERSION:
        problems.append(f"schema version {version} is newer than this rightsizer's {SCHEMA_VERSION}; upgrade")
    missing = [t for t in TABLES if t not in rows]
    if missing and version > 0:
        problems.append(f"tables missing: {', '.join(missing)}")
    now = now or datetime.now(UTC)
    for label, span, days in (("raw samples", raw, raw_retention_days), ("hourly rollups", hourly,
                                                                         rollup_retention_days)):
        if span is not None and days is not None and (now - span[0]).total_seconds() > (days + 2) * 86400:
            problems.append(f"{label} reach back to {span[0]:%Y-%m-%d}, beyond the {days}-day retention: a "
                            "collector prunes them hourly; is one running on this store?")
    return StoreReport(p, p.stat().st_size, wal.stat().st_size if wal.exists() else 0, version, integrity, rows,
                       raw, hourly, tuple(problems))


def _unreadable_sqlite(path: Path) -> bool:
    """True for a file that starts like an SQLite database but whose schema cannot be read (damaged)."""
    from collector.store.schema import SQLITE_MAGIC

    with path.open("rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            return False
    try:
        conn = _ro(path)
        try:
            conn.execute("SELECT name FROM sqlite_master").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return True
    return False


def _span(conn: sqlite3.Connection, table: str, width_s: int) -> tuple[datetime, datetime] | None:
    lo = conn.execute(f"SELECT MIN(ts) FROM {table}").fetchone()[0]
    hi = conn.execute(f"SELECT MAX(ts) FROM {table}").fetchone()[0]
    if lo is None:
        return None
    return datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi + width_s, UTC)


def pre_migration_backup(path: Path, version: int, target: int) -> Path:
    """Back up the store before migrating it from ``version`` to ``target``; returns the backup's path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = path.with_name(f"{path.name}.schema{version}-{stamp}.bak")
    backup(path, dest, overwrite=True)
    return dest
