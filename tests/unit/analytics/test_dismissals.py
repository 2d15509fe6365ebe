"""Dismissing and postponing findings: the store's table and audit rows, the analysis marking findings,
the headline leaving them out, plans skipping them, and the CLI (``dismiss``, ``dismiss --list``, ``restore``)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.analysis import AnalysisOptions, FleetAnalysis, analyse_fleet
from analytics.catalogue import load_catalogue
from analytics.findings.dismissal import finding_kind
from analytics.findings.headline import headline_saving, would_save
from collector.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, split_sql
from collector.store.sqlite import SqliteStore
from core.dismissals import Dismissal
from core.settings import Settings
from rightsizer import cli
from tests.helpers.lifecycle_fleet import DAYS, FLEET, NOW, lifecycle_points

CATALOGUE = load_catalogue()
WALL = datetime.now(UTC).replace(microsecond=0)  # the store keeps whole seconds


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.db"
    store = SqliteStore(path)
    hours = range(DAYS * 24)
    points = lifecycle_points(FLEET["busy-1"], hours, 0.5, used_gib=2)
    points += lifecycle_points(FLEET["sleepy-1"], hours, 0.005, used_gib=1, io_bps=10.0)
    points += lifecycle_points(FLEET["snug-1"], hours, 2.2, used_gib=5.0)
    store.write_history([FLEET[n] for n in ("busy-1", "sleepy-1", "snug-1")], points)
    store.close()
    return path


def _analyse(db: Path) -> FleetAnalysis:
    store = SqliteStore(db)
    try:
        return analyse_fleet(store, CATALOGUE, AnalysisOptions.from_settings(Settings(), CATALOGUE, now=NOW))
    finally:
        store.close()


def _dismissal(name: str, kind: str, until: datetime | None = None, reason: str = "owner says no") -> Dismissal:
    return Dismissal(vm_uuid=FLEET[name].uuid, kind=kind, reason=reason, actor="alice", at=WALL, until=until,
                     vm_name=name)


def _store_dismiss(db: Path, *ds: Dismissal) -> None:
    store = SqliteStore(db)
    try:
        for d in ds:
            store.dismiss(d)
    finally:
        store.close()


# -- store ------------------------------------------------------------------------------------------------
def test_store_keeps_one_dismissal_per_vm_and_kind_and_audits_every_change(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    until = (WALL + timedelta(days=30)).replace(microsecond=0)
    store.dismiss(_dismissal("busy-1", "resize", reason="first"))
    store.dismiss(_dismissal("busy-1", "resize", until=until, reason="second"))  # replaces: same VM and kind
    store.dismiss(_dismissal("busy-1", "schedule"))
    assert sorted((d.kind, d.reason, d.until) for d in store.dismissals()) == [
        ("resize", "second", until), ("schedule", "owner says no", None)]
    gone = store.restore(FLEET["busy-1"].uuid, actor="bob", at=WALL, kind="resize")
    assert [d.kind for d in gone] == ["resize"]
    assert [d.kind for d in store.dismissals()] == ["schedule"]
    assert store.restore(FLEET["sleepy-1"].uuid, actor="bob", at=WALL) == []
    audit = [(e.action, e.actor, e.reason, e.result) for e in store.audit(FLEET["busy-1"].uuid)]
    assert audit == [("dismiss", "alice", "first", "recorded"), ("postpone", "alice", "second", "recorded"),
                     ("dismiss", "alice", "owner says no", "recorded"), ("restore", "bob", "second", "recorded")]
    assert store.audit()[1].after == {"kind": "resize", "until": until.isoformat()}
    store.close()


def test_a_schema_2_store_gains_the_dismissals_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        for statement in split_sql(script):
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 3
    assert store.dismissals() == []
    store.dismiss(_dismissal("busy-1", "resize"))
    assert len(store.dismissals()) == 1
    store.close()


def test_the_promql_source_keeps_dismissals_in_its_local_file(tmp_path: Path) -> None:
    from collector.store.promql import PromqlStore
    from collector.store.promql_schema import SCHEMAS

    local = SqliteStore(tmp_path / "local.db")
    source = PromqlStore(client=None, schema=SCHEMAS["rightsizer"], local=local)  # type: ignore[arg-type]
    source.dismiss(_dismissal("busy-1", "stop"))  # the engine is read-only: nothing is sent to it
    assert [d.kind for d in local.dismissals()] == ["stop"] == [d.kind for d in source.dismissals()]
    assert [d.kind for d in source.restore(FLEET["busy-1"].uuid, actor="bob", at=WALL)] == ["stop"]
    assert [e.action for e in local.audit()] == ["dismiss", "restore"]
    local.close()


# -- analysis and headline --------------------------------------------------------------------------------
def test_a_dismissed_finding_is_marked_left_out_of_the_headline_and_counted_apart(db: Path) -> None:
    before = _analyse(db)
    busy = before.by_uuid()[FLEET["busy-1"].uuid]
    assert finding_kind(busy) == "resize" and busy.dismissed is None and busy.monthly_savings > 0
    _store_dismiss(db, _dismissal("busy-1", "resize", until=WALL + timedelta(days=7)))
    after = _analyse(db)
    f = after.by_uuid()[FLEET["busy-1"].uuid]
    assert f.dismissed is not None and f.dismissed.reason == "owner says no"
    assert f.monthly_savings == busy.monthly_savings  # the finding itself is unchanged, only marked
    assert headline_saving(f) == 0.0 and would_save(f) == pytest.approx(headline_saving(busy))
    h0, h1 = before.headline, after.headline
    assert h1.gross_monthly_savings == pytest.approx(h0.gross_monthly_savings - headline_saving(busy))
    assert h1.net_monthly_savings == pytest.approx(h0.net_monthly_savings - headline_saving(busy))
    assert (h0.dismissed, h1.dismissed) == (0, 1)
    assert h1.dismissed_monthly_savings == pytest.approx(headline_saving(busy))
    assert h1.actions == h0.actions - 1 and h1.vms == h0.vms
    doc = h1.as_json()
    assert doc["dismissed"] == 1 and doc["dismissed_monthly_savings"] == round(headline_saving(busy), 2)
    assert any(line.startswith("dismissed: 1 finding,") for line in h1.lines())
    entry = f.plan_entry()["dismissed"]
    assert entry["reason"] == "owner says no" and entry["by"] == "alice" and entry["kind"] == "resize"
    assert entry["until"] == (WALL + timedelta(days=7)).isoformat()
    assert busy.plan_entry()["dismissed"] is None
    assert f.resize_step() is None and busy.resize_step() is not None and not f.is_actionable


def test_a_dismissal_lapses_when_the_finding_is_of_another_kind_or_expired(db: Path) -> None:
    _store_dismiss(db, _dismissal("sleepy-1", "resize"),  # sleepy-1 is advised a stop, not a resize
                   _dismissal("busy-1", "resize", until=WALL - timedelta(minutes=1)))  # expired
    found = _analyse(db).by_uuid()
    assert finding_kind(found[FLEET["sleepy-1"].uuid]) == "stop"
    assert all(f.dismissed is None for f in found.values())
    assert _analyse(db).headline.dismissed == 0


# -- CLI --------------------------------------------------------------------------------------------------
def _cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("dismiss", "recommend", "apply"))
    return cli.main(list(argv))


def test_cli_dismiss_list_restore_and_plans_skip(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], db: Path,
                                                 tmp_path: Path) -> None:
    assert _cli(monkeypatch, "dismiss", "busy-1", "--reason", "  quarter-end load  ", "--for", "30d",
                "--actor", "carol", "--db", str(db)) == 0
    out = capsys.readouterr().out
    assert out.startswith("postponed busy-1 (resize) until ") and out.endswith(": quarter-end load\n")
    assert _cli(monkeypatch, "dismiss", "sleepy-1", "--reason", "kept warm for DR", "--db", str(db)) == 0
    assert capsys.readouterr().out.startswith("dismissed sleepy-1 (stop) until restored")
    assert _cli(monkeypatch, "dismiss", "--list", "--output", "json", "--db", str(db)) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert listed["busy-1"]["action"] == "postpone" and listed["busy-1"]["by"] == "carol"
    assert listed["busy-1"]["active"] is True and listed["sleepy-1"]["until"] is None
    assert _cli(monkeypatch, "recommend", "--db", str(db), "--output", "json", "--now", NOW.isoformat()) == 0
    entries: dict[str, Any] = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert _cli(monkeypatch, "recommend", "--db", str(db), "--now", NOW.isoformat()) == 0
    shown = capsys.readouterr()
    line = next(ln for ln in shown.out.splitlines() if ln.startswith("busy-1"))
    assert "over-provisioned (postponed)" in line and "0.00 EUR/mo" in line  # left out of the headline
    assert "dismissed: 2 findings," in shown.out + shown.err, shown
    assert entries["busy-1"]["dismissed"]["reason"] == "quarter-end load"
    assert entries["sleepy-1"]["dismissed"]["until"] is None and entries["snug-1"]["dismissed"] is None
    plan = tmp_path / "plan.json"
    assert _cli(monkeypatch, "apply", "--db", str(db), "--from-findings", "--save-plan", str(plan),
                "--output", "json") in (0, 1)
    saved = json.loads(plan.read_text())
    assert saved["steps"] == [] and saved["stops"] == []  # both dismissed: nothing planned
    capsys.readouterr()
    assert _cli(monkeypatch, "restore", "busy-1", "--db", str(db)) == 0
    assert capsys.readouterr().out == "restored busy-1 (resize)\n"
    assert _cli(monkeypatch, "apply", "--db", str(db), "--from-findings", "--save-plan", str(plan),
                "--output", "json") in (0, 1)
    assert [s["name"] for s in json.loads(plan.read_text())["steps"]] == ["busy-1"]


@pytest.mark.parametrize("args, needle", [
    (["nosuch-vm", "--reason", "x"], "VM 'nosuch-vm' is unknown"),
    (["busy-1", "--reason", "   "], "the reason is empty"),
    (["busy-1"], "needs --reason TEXT"),
    (["busy-1", "--reason", "x", "--until", "2020-01-01"], "--until '2020-01-01' is in the past"),
    (["busy-1", "--reason", "x", "--until", "next tuesday"], "--until 'next tuesday' is not an ISO 8601"),
    (["busy-1", "--reason", "x", "--for", "forever"], "'forever'"),
    (["snug-1", "--reason", "x"], "has no finding to dismiss now; pass --kind"),
])
def test_cli_bad_input_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                              db: Path, args: list[str], needle: str) -> None:
    assert _cli(monkeypatch, "dismiss", *args, "--db", str(db)) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    store = SqliteStore(db)
    assert store.dismissals() == []
    store.close()


def test_cli_restore_without_a_dismissal_is_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert _cli(monkeypatch, "restore", "busy-1", "--db", str(db)) == 2
    assert "has no dismissal" in capsys.readouterr().err
