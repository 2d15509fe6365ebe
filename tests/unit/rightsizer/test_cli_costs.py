from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from collector.store.base import AuditEntry
from collector.store.sqlite import SqliteStore
from rightsizer import cli
from tests.helpers.history import T0, raw_history, vm_record

EVIL = "=cmd|' /C calc'!A0"
WINDOW = ["--since", "2026-05-01", "--until", "2026-05-01T10:00Z"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "rs.db"
    store = SqliteStore(path)
    vms = [vm_record("u1", EVIL, 1, 4, "h1", machine_type="g1.1", team="pay"),
           vm_record("u2", "web-1", 2, 4, "h2", team="web")]
    store.write_history(vms, pd.concat([raw_history("u1", 1, 4, 64e9), raw_history("u2", 2, 4, 20e9)]))
    store.append_audit(AuditEntry(
        ts=T0 + timedelta(hours=5), actor="test", vm_uuid="u2", vm_name="web-1", action="resize", before={},
        after={}, result="applied", reason="", price_before_per_hour=0.1, price_after_per_hour=0.04, currency="EUR",
    ))
    store.close()
    return path


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMANDS", ("costs", "report"))
    monkeypatch.delenv("RIGHTSIZER_CONFIG", raising=False)
    return cli.main(list(argv))


# Hand-computed with the STACKIT eu01 prices in data/ (storage_premium_perf0, storage-only rule):
#   u1: label g1.1 at 0.03791133333/h x 10 h = 0.3791133333; disk 64 GB x 0.0000907638 + 0.00245833333
#       = 0.00826721653/h x 10 h = 0.0826721653 -> 0.4617854986
#   u2: 2 vCPU / 4 GiB -> cheapest fitting c2i.2 at 0.04328965278/h x 10 h = 0.4328965278;
#       disk 20 GB x 0.0000907638 + 0.00245833333 = 0.00427360933/h x 10 h = 0.0427360933 -> 0.4756326211
U1_COST = 0.4617854986
U2_COST = 0.4756326211


def test_costs_json_to_the_cent(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                db: Path) -> None:
    assert _run(monkeypatch, "costs", "--db", str(db), *WINDOW, "--group-by", "team", "--output", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    vms = {v["uuid"]: v for v in doc["vms"]}
    assert vms["u1"]["cost"] == pytest.approx(U1_COST, abs=1e-9)
    assert (vms["u1"]["machine_type"], vms["u1"]["chosen_by"]) == ("g1.1", "label")
    assert vms["u2"]["cost"] == pytest.approx(U2_COST, abs=1e-9)
    assert (vms["u2"]["machine_type"], vms["u2"]["chosen_by"]) == ("c2i.2", "inferred")
    assert round(doc["total"], 2) == 0.94
    assert {g["team"]: round(g["cost"], 4) for g in doc["groups"]} == {"pay": 0.4618, "web": 0.4756}
    assert doc["month_to_date"] == pytest.approx(U1_COST + U2_COST)
    # run-rate over the 10 h of data, 734 h left in May after May 1st 10:00
    assert doc["forecast_month_end"] == pytest.approx((U1_COST + U2_COST) * (1 + 734 / 10))
    # resize applied at 05:00, 0.06/h cheaper, 5 h until --until
    assert doc["realised_savings_total"] == pytest.approx(0.30)
    assert doc["stopped_vm_billing"] == "storage-only"


def _header(lines: list[str]) -> list[str]:
    """Column names of a table whose header may wrap onto the next lines (continuations start with spaces)."""
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", lines[0])]
    rows = [lines[0]] + [line for line in lines[1:3] if line.startswith(" ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return ["".join(r[a:b].strip() for r in rows) for a, b in bounds]


def test_costs_table_shows_type_source_and_summary(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert _run(monkeypatch, "costs", "--db", str(db), *WINDOW) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert _header(lines) == ["vm", "host", "type", "chosen by", "price/h", "hours", "compute", "storage", "cost"]
    row = next(line for line in lines if line.startswith("web-1"))
    assert row.split() == ["web-1", "h2", "c2i.2", "inferred", "0.04329", "10.0", "0.43", "0.04", "0.48"]
    assert max(len(line) for line in lines) <= 120
    assert "money in EUR, 2 decimals" in out
    assert "By host:" in out and "forecast_month_end" in out and "realised_savings_total  0.30" in out


def test_costs_csv_neutralises_formula_names(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert _run(monkeypatch, "costs", "--db", str(db), *WINDOW, "--output", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    names = {r["uuid"]: r["vm"] for r in rows}
    assert names["u1"] == "'" + EVIL
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())


def test_stopped_vm_billing_flag_overrides_settings(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert _run(monkeypatch, "costs", "--db", str(db), *WINDOW, "--stopped-vm-billing", "none",
                "--output", "json") == 0
    assert json.loads(capsys.readouterr().out)["stopped_vm_billing"] == "none"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--until", "2026-13-01"], "--until '2026-13-01'"),
        (["--since", "2026-05-02", "--until", "2026-05-01"], "is not before --until"),
        (["--group-by", "tam"], "--group-by 'tam'"),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         db: Path, args: list[str], needle: str) -> None:
    assert _run(monkeypatch, "costs", "--db", str(db), *args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert needle in captured.err and captured.err.startswith("rightsizer costs: ")


def test_missing_database_is_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    assert _run(monkeypatch, "costs", "--db", str(tmp_path / "nope.db")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_says_stopped_vm_rule_is_not_published(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(monkeypatch, "costs", "--help")
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "does not publish whether a stopped VM is billed" in text
    assert "run-rate of the last 7 days" in text


def test_report_command_writes_files(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     db: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert _run(monkeypatch, "report", "--db", str(db), "--out", str(out), "--until", "2026-05-01T10:00Z",
                "--since", "2026-05-01", "--format", "csv", "--format", "json", "--output", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(Path(f["file"]).name for f in doc["files"]) == ["findings.csv", "report.json"]
    assert (out / "findings.csv").is_file() and not (out / "report.html").exists()


def test_report_out_that_is_a_file_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           db: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run(monkeypatch, "report", "--db", str(db), "--out", str(blocker)) == 2
    assert "is a file" in capsys.readouterr().err


def test_history_that_ended_long_ago_is_reported_as_of_its_end(monkeypatch, db, capsys):
    # no --since/--until: imported traces from the past must not give an empty "last 7 days" window
    assert _run(monkeypatch, "costs", "--db", str(db), "--output", "json") == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert "reporting as of then" in captured.err
    assert doc["window_end"].startswith("2026-05-01T09:55")
    vm = {r["vm"]: r for r in doc["vms"]}["web-1"]
    assert vm["running_hours"] == pytest.approx(10.0, abs=0.1)


def test_report_on_history_that_ended_long_ago_covers_that_history(monkeypatch, db, tmp_path, capsys):
    out = tmp_path / "report"
    assert _run(monkeypatch, "report", "--db", str(db), "--out", str(out), "--format", "json") == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["window_end"].startswith("2026-05-01T09:55")
    assert doc["costs"]["total"] == pytest.approx(U1_COST + U2_COST, abs=1e-6)


def test_data_as_of_keeps_now_for_fresh_data_and_anchors_old_data():
    from analytics.fleet import data_as_of

    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert data_as_of(None, now) == now
    assert data_as_of(now - timedelta(hours=3), now) == now
    old = datetime(2013, 8, 30, 21, 58, tzinfo=UTC)
    assert data_as_of(old, now) == old
