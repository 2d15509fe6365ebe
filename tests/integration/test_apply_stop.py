"""``apply --allow-stop`` on the libvirt test driver: idle VMs are stopped (never deleted) only when asked."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from analytics.realised import realised_savings
from collector.store.sqlite import SqliteStore
from rightsizer import cli

# test:///default always holds one running domain named "test" with this UUID (libvirt's built-in fixture)
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def test_stop_step_needs_allow_stop_and_is_audited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import libvirt

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"uuid": TEST_UUID, "name": "test", "uri": "test:///default", "action": "stop",
                                 "finding": "idle", "currency": "EUR", "price_before_per_hour": 0.0165}]))
    db = tmp_path / "rs.db"
    monkeypatch.setattr(cli, "COMMANDS", ("apply",))
    assert cli.main(["apply", str(plan), "--db", str(db), "--yes", "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["action"], row["result"]) == ("stop", "skipped") and "--allow-stop" in row["reason"]
    conn = libvirt.open("test:///default")  # the test driver keeps one state per process
    assert conn.lookupByUUIDString(TEST_UUID).isActive() == 1
    assert cli.main(["apply", str(plan), "--db", str(db), "--yes", "--allow-stop", "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["result"] == "applied"
    dom = conn.lookupByUUIDString(TEST_UUID)
    assert dom.isActive() == 0  # stopped, and still defined: never deleted
    store = SqliteStore(db)
    try:
        (entry,) = store.audit()
    finally:
        store.close()
    assert (entry.action, entry.result, entry.vm_name) == ("stop", "applied", "test")
    # priced like a resize row: the compute price it saves per hour (after: 0, only the disks are billed)
    assert (entry.price_before_per_hour, entry.price_after_per_hour, entry.currency) == (0.0165, 0.0, "EUR")
    (saved,) = realised_savings([entry], entry.ts + timedelta(hours=2))
    assert saved.saving == pytest.approx(2 * 0.0165)
    dom.create()  # leave the shared test driver as we found it
