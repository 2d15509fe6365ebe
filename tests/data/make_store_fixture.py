"""Make tests/data/store-schema2.db and its expected answers with the code of the checkout it runs from.

The fixture is a store as a released rightsizer writes it (schema version 2), so tests can check that newer
code opens it with nothing lost. It was made from commit aa16234 (the last commit with schema version 2 as the
newest) with:

    git archive aa16234 | tar -x -C /tmp/rs-aa16234
    PYTHONPATH=/tmp/rs-aa16234 .venv/bin/python tests/data/make_store_fixture.py tests/data

It holds 8 demo VMs with 16 days of SYNTHETIC history (1 point per hour) ending 2026-11-30, three backups per VM
that has one, and one audit entry. ``store-schema2.expected.json`` keeps the row count of every table and the
``recommend --output json`` answer that code gave on it.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

END = datetime(2026, 11, 30, tzinfo=UTC)
TABLES = ("vms", "samples", "hourly", "counters", "backups", "audit", "meta")


def row_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
    finally:
        conn.close()


def recommend_json(db: Path) -> list[dict[str, object]]:
    from rightsizer.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["recommend", "--db", str(db), "--output", "json"])
    if code != 0:
        raise SystemExit(f"recommend exited {code}")
    result: list[dict[str, object]] = json.loads(out.getvalue())
    return result


def main(out_dir: Path) -> None:
    from collector.store.base import AuditEntry
    from collector.store.sqlite import SCHEMA_VERSION, SqliteStore
    from rightsizer.demo import demo_fleet
    from rightsizer.demo_history import seed_synthetic_history

    if SCHEMA_VERSION != 2:
        raise SystemExit(f"this checkout writes schema version {SCHEMA_VERSION}, not 2; run it from commit aa16234")
    db = out_dir / "store-schema2.db"
    db.unlink(missing_ok=True)
    store = SqliteStore(db)
    fleet = demo_fleet()[:8]
    seed_synthetic_history(store, fleet, days=16, now=END, points_per_hour=1)
    store.append_audit(AuditEntry(ts=END, actor="fixture", vm_uuid=fleet[0].uuid, vm_name=fleet[0].name,
                                  action="resize", before={"vcpus": 4}, after={"vcpus": 2}, result="applied",
                                  reason="fixture", plan_id="p-1", price_before_per_hour=0.2,
                                  price_after_per_hour=0.1, currency="EUR"))
    store.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    conn.execute("VACUUM")
    conn.close()
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # recommend may write (rollups, meta): the fixture stays as made
        copy = Path(tmp) / db.name
        shutil.copy(db, copy)
        expected = {"schema_version": 2, "rows": row_counts(db), "recommend": recommend_json(copy)}
    (out_dir / "store-schema2.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n",
                                                         encoding="utf-8")
    print(f"{db}: {db.stat().st_size} bytes, rows {expected['rows']}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
