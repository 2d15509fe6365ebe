"""The SQLite store's dismissals table (schema version 3) and the audit rows that record each change."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from collector.store.sqlite_rows import from_epoch, to_epoch
from core.dismissals import Dismissal

_COLUMNS = "vm, kind, reason, actor, at, until, vm_name"


def read_all(rows: list[Any]) -> list[Dismissal]:
    """Dismissals of ``SELECT {_COLUMNS} FROM dismissals`` rows."""
    return [Dismissal(vm_uuid=r[0], kind=r[1], reason=r[2], actor=r[3], at=from_epoch(r[4]),
                      until=None if r[5] is None else from_epoch(r[5]), vm_name=r[6]) for r in rows]


SELECT_ALL = f"SELECT {_COLUMNS} FROM dismissals ORDER BY at, vm, kind"


def _audit(c: sqlite3.Connection, d: Dismissal, action: str, actor: str, at: datetime) -> None:
    """One audit row for a dismissal change (result ``recorded``: nothing on the host was touched)."""
    after = {"kind": d.kind, "until": None if d.until is None else d.until.isoformat()}
    c.execute("INSERT INTO audit(ts, actor, vm, vm_name, action, before, after, result, reason, plan_id, "
              "price_before, price_after, currency) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
              (to_epoch(at), actor, d.vm_uuid, d.vm_name, action, "{}",
               json.dumps(after, sort_keys=True) if action != "restore" else "{}", "recorded", d.reason, "",
               None, None, ""))


def insert(c: sqlite3.Connection, d: Dismissal) -> None:
    c.execute(f"INSERT OR REPLACE INTO dismissals({_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
              (d.vm_uuid, d.kind, d.reason, d.actor, to_epoch(d.at), None if d.until is None else to_epoch(d.until),
               d.vm_name))
    _audit(c, d, d.action, d.actor, d.at)


def delete(c: sqlite3.Connection, vm_uuid: str, kind: str | None, actor: str, at: datetime) -> list[Dismissal]:
    sql = f"SELECT {_COLUMNS} FROM dismissals WHERE vm = ?" + (" AND kind = ?" if kind else "")
    params: tuple[str, ...] = (vm_uuid, kind) if kind else (vm_uuid,)
    gone = read_all(c.execute(sql, params).fetchall())
    c.execute("DELETE FROM dismissals WHERE vm = ?" + (" AND kind = ?" if kind else ""), params)
    for d in gone:
        _audit(c, d, "restore", actor, at)
    return gone
