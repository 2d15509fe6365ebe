"""SIGKILL a writer mid-transaction: the file stays intact and only whole cycles are kept."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.integration

ROWS_PER_CYCLE = 2000

WRITER = textwrap.dedent(f"""
    import sys, itertools
    from datetime import datetime, timedelta, UTC
    import pandas as pd
    from collector.model import VmRecord, VmState
    from collector.store.sqlite import SqliteStore
    store = SqliteStore(sys.argv[1])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    vm = VmRecord("u1", "vm", "test:///x", "h", VmState.RUNNING, 1, 1, 1, 1, {{}}, t0, t0)
    for cycle in itertools.count():
        start = t0 + timedelta(seconds=cycle * {ROWS_PER_CYCLE})
        frame = pd.DataFrame({{"vm": "u1", "ts": [start + timedelta(seconds=i) for i in range({ROWS_PER_CYCLE})],
                              "state": "running", "vcpus": 1, "memory_bytes": 1, "cpu_vcpus": 0.5,
                              "interval_s": 1.0}})
        store.write_history([vm], frame)
        print(cycle, flush=True)
""")


@pytest.mark.parametrize("kill_after_cycles", [3, 7])
def test_sigkill_mid_write_keeps_whole_cycles_and_an_intact_file(tmp_path, kill_after_cycles):
    db = tmp_path / "crash.db"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    done = 0
    deadline = time.monotonic() + 120
    while done < kill_after_cycles and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        done = int(line) + 1
    time.sleep(0.05)  # land inside the next transaction
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    assert done >= kill_after_cycles, "writer did not get going"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    finally:
        conn.close()
    assert rows % ROWS_PER_CYCLE == 0  # never a half cycle
    assert rows >= done * ROWS_PER_CYCLE  # nothing committed was lost
