"""serve starts and serves every time, also beside busy loops: no import deadlock between its threads.

Before the heavy imports were made in one thread ahead of every other thread, 5 of 12 starts on a 20-VM
test-driver fleet beside three busy loops died with importlib's ``_DeadlockError``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import serve

STARTS = 12


@pytest.fixture
def busy_loops() -> Iterator[None]:
    spin = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(3)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_serve_starts_and_serves_every_time_beside_busy_loops(tmp_path: Path, testdriver_fleet, busy_loops) -> None:
    uri = testdriver_fleet(20)
    for i in range(STARTS):
        cwd = tmp_path / f"start-{i}"
        cwd.mkdir()
        # serve() fails the test when the process exits or never answers /readyz
        for served in serve(cwd, "--uri", uri, "--db", str(cwd / "s.db"), "--interval", "5", actions=False):
            import requests

            assert requests.get(f"{served.base}/api/v1/vms", timeout=60).status_code == 200
            assert requests.get(served.metrics, timeout=60).status_code == 200
        log = (cwd / "serve.log").read_text()
        assert "DeadlockError" not in log and "Traceback" not in log, log[-2000:]
