"""The systemd notify protocol against a real NOTIFY_SOCKET datagram listener.

``serve --role agent`` sends READY=1 only once its first collection cycle is in the store, then WATCHDOG=1 after
every cycle; a collector stuck in a cycle sends no more WATCHDOG=1 (systemd then restarts it), and pings resume
when the cycle finishes.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import free_port

from collector.sampler import Snapshot
from core.settings import load_settings
from rightsizer.commands.serve import _notifier
from rightsizer.service import Service

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock


def _receive(sock: socket.socket, timeout_s: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within ``timeout_s``, with its arrival time."""
    out: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        out.append((time.monotonic(), data.decode()))
    return out


def _samples(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    finally:
        conn.close()


def test_agent_is_ready_after_its_first_stored_cycle_then_pings_every_cycle(tmp_path):
    notify = tmp_path / "notify.sock"
    sock = _listener(notify)
    db = tmp_path / "agent.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")}
    # as systemd starts it: notify socket, watchdog, stdout/stderr connected to the journal
    env.update(PYTHONPATH=str(REPO), NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="30000000", JOURNAL_STREAM="8:1234")
    log = (tmp_path / "stdout.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", "--role", "agent", "--uri", "test:///default",
                             "--interval", "1", "--db", str(db), "--metrics-listen", f"127.0.0.1:{free_port()}"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.DEVNULL)
    try:
        sock.settimeout(60)
        before: list[str] = []
        while not (msg := sock.recv(4096).decode()).startswith("READY=1"):
            before.append(msg)
        # READY=1 comes once the first cycle is stored (its WATCHDOG=1 may come first)
        assert _samples(db) >= 1
        assert set(before) <= {"WATCHDOG=1"}, before
        later = _receive(sock, 4.5)
        pings = [t for t, msg in later if msg == "WATCHDOG=1"]
        assert len(pings) >= 3, later
        assert all(b - a < 2.5 for a, b in zip(pings, pings[1:], strict=False)), pings
        assert not any("READY=1" in msg for _, msg in later)  # once
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert any(msg == "STOPPING=1" for _, msg in _receive(sock, 1.0))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        sock.close()
    assert _samples(db) >= 4
    # journald gets the log on stdout: a priority prefix, no timestamp of our own
    lines = (tmp_path / "stdout.log").read_text().splitlines()
    assert "<6>INFO rightsizer.serve: stopped" in lines
    assert lines and all(line.startswith(("<6>INFO ", "<4>WARNING ", "<7>DEBUG ")) for line in lines), lines


class _StallingSampler:
    """Stores cycles until ``stall`` is set, then blocks inside a cycle until ``release`` is set."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.stall = threading.Event()
        self.release = threading.Event()
        self.cycles = 0

    def poll_once(self) -> list[SimpleNamespace]:
        if self.stall.is_set():
            self.release.wait(30)
        self.cycles += 1
        return [SimpleNamespace(ok=True)]

    def close(self) -> None:
        self.release.set()


def test_watchdog_pings_stop_while_the_collector_is_stuck_and_resume_after(tmp_path, monkeypatch):
    notify = tmp_path / "notify.sock"
    sock = _listener(notify)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify))
    settings = load_settings(None, env={}, overrides={
        "collector": {"interval_s": 1.0}, "exporter": {"listen": f"127.0.0.1:{free_port()}"},
        "store": {"path": str(tmp_path / "unused.db")}})
    sampler = _StallingSampler()
    notifier = _notifier(True, 1.0)
    service = Service(settings=settings, store=SimpleNamespace(path=tmp_path / "unused.db"), catalogue=None,
                      sampler=sampler, data_mode="live", role="agent",  # type: ignore[arg-type]
                      on_cycle=notifier.cycle_done)
    try:
        service.start()
        notifier.started()
        running = _receive(sock, 3.5)
        assert running[0][1] == "WATCHDOG=1" and running[1][1].startswith("READY=1"), running
        assert sum(msg == "WATCHDOG=1" for _, msg in running) >= 3
        sampler.stall.set()
        _receive(sock, 1.2)  # the cycle that was already running when the collector got stuck
        stuck = _receive(sock, 3.0)
        assert stuck == [], stuck  # no cycle ends, no ping: systemd's WatchdogSec runs out
        sampler.release.set()
        sampler.stall.clear()
        resumed = _receive(sock, 2.5)
        assert any(msg == "WATCHDOG=1" for _, msg in resumed), resumed
    finally:
        sampler.release.set()
        service.stop()
        sock.close()
