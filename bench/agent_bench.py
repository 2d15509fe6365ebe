"""The agent role's footprint: RSS and CPU per collection cycle at 100 and 1,000 test-driver domains.

Starts ``rightsizer serve --role agent`` as a user would (own process, loopback /metrics), lets it run
``--cycles`` cycles after a warm-up, and reads its CPU time and RSS from /proc. A scrape of /metrics after each
cycle is included (Prometheus scrapes the agent), so the figure is what a hypervisor pays per interval.

    python -m bench.agent_bench [--domains 100 1000] [--cycles 10] [--interval 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from collector.hypervisor.testfleet import make_fleet, write_fleet
from tests.integration.engines import free_port

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cycles(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith("rightsizer_collector_cycles_total "):
            return int(float(line.split()[1]))
    return 0


def _wait_cycles(url: str, target: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            n = _cycles(url)
            if n >= target:
                return n
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"agent did not reach {target} cycles")


def measure(domains: int, cycles: int, interval_s: float, work: Path) -> dict[str, float]:
    uri = write_fleet(work / f"fleet-{domains}.xml", make_fleet(domains))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    argv = [sys.executable, "-m", "rightsizer", "serve", "--role", "agent", "--uri", uri,
            "--interval", str(interval_s), "--metrics-listen", f"127.0.0.1:{port}", "--db", str(work / "agent.db")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120 + cycles * interval_s * 3
        start_n = _wait_cycles(url, 2, deadline)  # warm-up: first cycle reads every domain's XML
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        end_n = start_n
        while end_n < start_n + cycles and time.monotonic() < deadline:
            time.sleep(interval_s)  # one scrape per interval, as Prometheus would
            end_n = _cycles(url)
        cpu1, t1 = _cpu_s(proc.pid), time.monotonic()
        rss = _rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    n = end_n - start_n
    return {"domains": domains, "cycles": n, "cpu_s_per_cycle": round((cpu1 - cpu0) / n, 4),
            "wall_s": round(t1 - t0, 2), "rss_mib": round(rss, 1),
            "cpu_pct_of_one_core_at_60s_interval": round((cpu1 - cpu0) / n / 60 * 100, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between cycles while measuring")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rs-agent-") as tmp:
        for n in args.domains:
            work = Path(tmp) / str(n)
            work.mkdir()
            rows.append(measure(n, args.cycles, args.interval, work))
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
