"""recommend's "pattern"/"schedule" JSON contract and the schedule dry run, through the CLI on a real SQLite store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.patterns_bench import raw_frame_from_hourly, synthetic_pattern_frame
from collector.model import VmRecord, VmState
from collector.store.sqlite import SqliteStore
from rightsizer import cli

END = datetime(2026, 11, 2, tzinfo=UTC)
LABELS = {
    "office-hours-00000": {"env": "dev", "schedule": "auto"},
    "office-hours-00001": {"env": "prod"},
    "nightly-batch-00000": {"env": "dev"},
    "steady-00000": {"env": "dev"},
    "idle-00000": {"env": "dev"},
}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hourly, _truth = synthetic_pattern_frame(2, 21, seed=5, end=END)
    hourly = hourly[hourly["vm"].isin(LABELS)]
    raw = raw_frame_from_hourly(hourly)
    vms = [VmRecord(uuid=name, name=name, uri="test:///default", host="h1", state=VmState.RUNNING, vcpus=4,
                    max_vcpus=4, memory_bytes=8 << 30, max_memory_bytes=8 << 30, labels=labels,
                    first_seen=END - timedelta(days=21), last_seen=END) for name, labels in LABELS.items()]
    path = tmp_path_factory.mktemp("sched") / "rs.db"
    store = SqliteStore(path)
    store.write_history(vms, raw)
    store.close()
    return path


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.delenv("RIGHTSIZER_CONFIG", raising=False)
    return cli.main(list(argv))


def test_recommend_json_carries_pattern_and_schedule(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], db: Path) -> None:
    assert _run(monkeypatch, "recommend", "--db", str(db), "--output", "json") == 0
    doc = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert {n: e["pattern"] for n, e in doc.items()} == {
        "office-hours-00000": "office-hours", "office-hours-00001": "office-hours",
        "nightly-batch-00000": "nightly-batch", "steady-00000": "steady", "idle-00000": "idle"}
    sched = doc["office-hours-00000"]["schedule"]
    assert {"on", "timezone", "monthly_savings", "missed_demand_hours"} <= set(sched)
    assert sched["on"] == "Mon-Fri 07:00-19:00" and sched["timezone"] == "UTC"
    assert sched["missed_demand_hours"] == 0
    # Hourly billing: 108 h off a week, 720/168 weeks a month, at the price per hour after any resize.
    price = doc["office-hours-00000"]["price_after_per_hour"]
    assert sched["monthly_savings"] == pytest.approx(108 * 720 / 168 * price, rel=1e-4)
    resize = doc["office-hours-00000"]["monthly_savings"]
    assert doc["office-hours-00000"]["combined_monthly_savings"] == pytest.approx(resize + sched["monthly_savings"],
                                                                                   abs=1e-3)
    assert doc["nightly-batch-00000"]["schedule"]["on"] == "Mon-Sun 00:00-05:00"
    assert doc["steady-00000"]["schedule"] is None and doc["idle-00000"]["schedule"] is None
    assert doc["office-hours-00001"]["schedule"] is None  # env=prod without an opt-in


def test_recommend_timezone_and_bad_zone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         db: Path) -> None:
    assert _run(monkeypatch, "recommend", "--db", str(db), "--output", "json", "--vm", "office-hours-00000",
                "--timezone", "America/Sao_Paulo") == 0
    (entry,) = json.loads(capsys.readouterr().out)
    # 08:00-18:00 UTC is 05:00-15:00 in Sao Paulo (UTC-3, no daylight saving time since 2019); plus 1 h margins.
    assert entry["schedule"]["on"] == "Mon-Fri 04:00-16:00"
    assert entry["schedule"]["timezone"] == "America/Sao_Paulo"
    assert _run(monkeypatch, "recommend", "--db", str(db), "--timezone", "Mars/Olympus") == 2
    err = capsys.readouterr().err.strip()
    assert "Mars/Olympus" in err and len(err.splitlines()) == 1


def test_schedule_dry_run_lists_the_week(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         db: Path) -> None:
    assert _run(monkeypatch, "schedule", "--db", str(db), "--from", "2026-11-02T00:00:00+00:00",
                "--output", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["vm"] for r in rows} == {"office-hours-00000"}  # only the labelled VM (schedule=auto)
    assert [r["action"] for r in rows[:2]] == ["start", "stop"]
    assert rows[0]["when"] == "2026-11-02T07:00+00:00" and rows[1]["when"] == "2026-11-02T19:00+00:00"
    assert len(rows) == 10 and all(r["source"] == "proposal" for r in rows)


@pytest.mark.parametrize(
    ("window", "needle"),
    [("Mon-Fri 25:00-19:00", "'25:00'"), ("Mon-Fri 07:00-19:00 Mars/Olympus", "unknown time zone"),
     ("Mon-Fri 07:00-19:00; Fri 18:00-22:00", "overlap")],
)
def test_schedule_bad_window_exits_2_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 db: Path, window: str, needle: str) -> None:
    assert _run(monkeypatch, "schedule", "--db", str(db), "--vm", "steady-00000", "--window", window) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
