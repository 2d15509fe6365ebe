"""Long-running commands as processes: one writer per store, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from engines import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    # nothing answers on local_uri, so serve never samples the session's guests on qemu:///system
    return dict(os.environ, PYTHONPATH=str(REPO), RIGHTSIZER_COLLECTOR__LOCAL_URI="qemu+tcp://127.0.0.1:1/system")


def _start(tmp_path: Path, name: str, *args: str, ready: str) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rightsizer", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 60
    while ready not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"{name} did not get ready: {log_path.read_text()}")
        time.sleep(0.2)
    return proc, log_path


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True, env=_env(),
                          cwd=tmp_path, timeout=120)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_second_serve_or_collect_on_one_store_is_refused(
    tmp_path: Path, testdriver_fleet: Callable[..., str]
) -> None:
    uri = testdriver_fleet(3)
    db = tmp_path / "rs.db"
    first, _ = _start(tmp_path, "serve1", "serve", "--uri", uri, "--db", str(db), "--interval", "1",
                      "--no-dashboard", "--metrics-listen", f"127.0.0.1:{free_port()}", ready="metrics: http")
    try:
        for args in (["serve", "--uri", uri, "--no-dashboard", "--metrics-listen", f"127.0.0.1:{free_port()}"],
                     ["collect", "--uri", uri, "--interval", "1"], ["collect", "--once", "--uri", uri]):
            second = _run(tmp_path, *args, "--db", str(db))
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 1, second.stderr
            assert len(lines) == 1 and "already written by pid" in lines[0] and "serve" in lines[0], lines
        assert first.poll() is None  # the first writer carries on
    finally:
        assert _stop(first) == 0
    # once the first writer is gone the store is free again
    assert _run(tmp_path, "collect", "--once", "--uri", uri, "--db", str(db)).returncode == 0


def test_continuous_collect_stops_cleanly_on_sigterm(
    tmp_path: Path, testdriver_fleet: Callable[..., str]
) -> None:
    uri = testdriver_fleet(2)
    db = tmp_path / "rs.db"
    proc, log = _start(tmp_path, "collect", "collect", "--uri", uri, "--db", str(db), "--interval", "1", "-v",
                       ready="cycle:")
    assert _stop(proc) == 0, log.read_text()
    assert "stopped" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_apply_appends_its_audit_rows_beside_a_running_collector(
    tmp_path: Path, testdriver_fleet: Callable[..., str]
) -> None:
    """``apply --yes`` does not take the one-writer lock (it would be refused whenever ``serve`` runs): its
    audit rows are appends under SQLite's own write lock, waiting for a collector's transaction to end."""
    import json
    import sqlite3

    from collector.store.sqlite import SqliteStore

    uri = testdriver_fleet(3)
    db = tmp_path / "rs.db"
    serve, _ = _start(tmp_path, "serve", "serve", "--uri", uri, "--db", str(db), "--interval", "1",
                      "--no-dashboard", "--metrics-listen", f"127.0.0.1:{free_port()}", ready="metrics: http")
    plan = tmp_path / "plan.json"
    # test:///default's own running domain "test" (each process gets a fresh copy of that driver)
    plan.write_text(json.dumps([{"uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f", "name": "test",
                                 "uri": "test:///default", "action": "stop", "finding": "idle",
                                 "currency": "EUR", "price_before_per_hour": 0.02}]))
    blocker = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
        apply = subprocess.Popen([sys.executable, "-m", "rightsizer", "apply", str(plan), "--db", str(db), "--yes",
                                  "--allow-stop", "--output", "json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
        time.sleep(3)
        assert apply.poll() is None  # waiting for the write lock, not failing
        blocker.execute("COMMIT")
        out, err = apply.communicate(timeout=60)
        assert apply.returncode == 0, err
        assert [r["result"] for r in json.loads(out)] == ["applied"]
        assert serve.poll() is None  # the collector carries on; the store is still its to write
        (audit_ts,) = blocker.execute("SELECT ts FROM audit").fetchone()
        # on a loaded machine the cycles that waited for the lock may be skipped; the next ones must land
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and serve.poll() is None:
            (after,) = blocker.execute("SELECT COUNT(DISTINCT ts) FROM samples WHERE ts > ?", (audit_ts,)).fetchone()
            if after >= 2:
                break
            time.sleep(0.5)
    finally:
        blocker.close()
        assert _stop(serve) == 0
    store = SqliteStore(db)
    try:
        (entry,) = store.audit()
        cycles = store.frame(entry.ts - timedelta(minutes=5), entry.ts + timedelta(minutes=5), resolution="raw")
    finally:
        store.close()
    assert (entry.action, entry.result, entry.price_before_per_hour) == ("stop", "applied", 0.02)
    assert cycles["ts"].nunique() >= 3  # serve's cycles before, during and after the apply all landed
