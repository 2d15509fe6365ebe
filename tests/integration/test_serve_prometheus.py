"""`rightsizer serve` as a user runs it, scraped by a real Prometheus; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from engines import free_port

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def _wait_http(url: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError as exc:
            last = exc
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s: {last}")


def test_real_prometheus_scrapes_serve(tmp_path, libvirtd, guests, prometheus):
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rightsizer", "serve", "--uri", libvirtd, "--db", str(tmp_path / "rs.db"),
         "--interval", "2", "--metrics-listen", f"127.0.0.1:{port}", "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )
    try:
        text = _wait_http(f"http://127.0.0.1:{port}/metrics", 60)
        assert "rightsizer_up" in text
        prom = prometheus([f"127.0.0.1:{port}"])
        up = prom.wait_for(f'rightsizer_up{{uri="{libvirtd}"}}', timeout_s=60)
        assert up[0]["value"][1] == "1"
        busy = guests["busy"].name
        vcpus = prom.wait_for(f'rightsizer_vm_vcpus{{vm="{busy}"}}', timeout_s=60)
        assert vcpus[0]["value"][1] == "1"
        def cpu_rate(vm: str) -> float:
            result = prom.query(f'rate(rightsizer_vm_cpu_seconds_total{{vm="{vm}"}}[15s])')
            return float(result[0]["value"][1]) if result else 0.0

        busy_cpu = 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the window must first hold several distinct cycles
            busy_cpu = cpu_rate(busy)
            if busy_cpu > 0.5:
                break
            time.sleep(1)
        # TCG guests share 2 host cores with the test run: the busy loop gets 0.5-1.0 of a core
        assert 0.3 < busy_cpu < 1.3
        assert cpu_rate(guests["idle"].name) < 0.1
        info = prom.wait_for(f'rightsizer_vm_info{{vm="{busy}"}}', timeout_s=30)
        assert info[0]["metric"]["label_team"] == "payments"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert code == 0, output[-3000:]
    assert "metrics: http://127.0.0.1" in output and "stopped" in output
