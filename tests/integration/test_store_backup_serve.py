"""``rightsizer store backup`` while ``serve`` writes: the copy passes ``store check`` and ``recommend`` reads it
with the same answers as the live store gives for the same point in time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import free_port

from collector.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_backup_while_serve_writes_is_checked_and_recommended_alike(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")}
    env["PYTHONPATH"] = str(REPO)
    db = tmp_path / "demo.db"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", "--demo", "--no-dashboard", "--db",
                                 str(db), "--interval", "1", "--metrics-listen", f"127.0.0.1:{free_port()}"],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "metrics: http" not in log_path.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            backups = []
            for i in range(2):
                time.sleep(1.5)  # a few live cycles land between the copies
                dest = tmp_path / f"backup-{i}.db"
                done = _cli(env, tmp_path, "store", "backup", str(dest), "--db", str(db), "--output", "json")
                assert done.returncode == 0, done.stderr
                assert json.loads(done.stdout)[0]["backup"] == str(dest)
                backups.append(dest)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
    for dest in backups:
        check = _cli(env, tmp_path, "store", "check", "--db", str(dest), "--output", "json")
        assert check.returncode == 0, check.stdout + check.stderr
        report = json.loads(check.stdout)
        assert report["ok"] and report["integrity"] == "ok" and report["schema_version"] == SCHEMA_VERSION
        assert report["samples_rows"] > 0
    newest = json.loads(_cli(env, tmp_path, "store", "check", "--db", str(backups[0]), "--output",
                             "json").stdout)["raw_until"]
    # the same point in time: the start of the newest data's hour. That hour is still being written when the copy
    # is taken (its rollup grows with every later sample in the live store), so only the hours before it are the
    # same data in both; the default profile's memory margin reads each day's peak, the last day's included.
    newest = datetime.fromisoformat(newest).replace(minute=0, second=0, microsecond=0).isoformat()
    answers = []
    for store in (backups[0], db):
        done = _cli(env, tmp_path, "recommend", "--db", str(store), "--now", newest, "--output", "json")
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    assert len(answers[0]) == 24
    assert answers[0] == answers[1]
