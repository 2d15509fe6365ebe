"""/metrics under load, and sampling a large multi-URI fleet, against floors measured in the same run.

    python -m bench.exporter_bench [--vms 1000] [--clients 50] [--seconds 30] [--interval 5]
                                   [--uris 10] [--domains-per-uri 1000] [--skip-load] [--skip-fleet] [--strict]

1. Load: ``rightsizer serve --no-dashboard`` on a 1,000-domain test-driver fleet (a real subprocess), hit by
   ``--clients`` concurrent scrapers (``Accept-Encoding: gzip``, like Prometheus) for ``--seconds``.
   Reports errors, latency p50/p99/max, the floor (one client fetching a static file of the same size from
   a stdlib HTTP server in this run), the cycles the collector ran against the cycles due, APScheduler
   "skipped"/"missed" warnings and the longest hole between stored samples. Targets: 0 errors,
   p99 <= 100 ms, no skipped cycle.
2. Fleet: ``Sampler.sample()`` over ``--uris`` test-driver URIs of ``--domains-per-uri`` domains each
   (10,000 by default). Target: <= 2 s per cycle (median); floor: the same fleet in one URI, one thread.

``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
P99_TARGET_S = 0.100
FLEET_TARGET_S = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LoadResult:
    latencies: list[float]
    errors: int
    bytes_read: int
    error_kinds: dict[str, int]


def hammer(port: int, path: str, clients: int, seconds: float) -> LoadResult:
    """``clients`` threads fetch ``path`` back to back (new connection each, 10 s time-out)."""
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    total = [0, 0]  # errors, bytes
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        mine: list[float] = []
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
                mine.append(time.perf_counter() - start)
                with lock:
                    total[1] += len(body)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    total[0] += 1
                    kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return LoadResult(latencies, total[0], total[1], kinds)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_for_metrics(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
            conn.close()
            # samples, not just the HELP lines of the empty exposition served before the first cycle: the
            # load phase must not overlap the start-up cycle and the first cost refresh
            if b"\nrightsizer_vm_info{" in body and b"\nrightsizer_vm_hourly_cost{" in body:
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"serve did not answer /metrics on port {port} within {timeout_s:.0f} s")


def cycles_total(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith("rightsizer_collector_cycles_total "):
            return float(line.split()[1])
    raise RuntimeError("no rightsizer_collector_cycles_total in /metrics")


def longest_hole_s(db: Path, since: float) -> float:
    """Longest interval between consecutive stored cycles after ``since`` (epoch s)."""
    con = sqlite3.connect(db)
    try:
        stamps = [r[0] for r in con.execute("SELECT DISTINCT ts FROM samples WHERE ts >= ? ORDER BY ts",
                                            (int(since),))]
    finally:
        con.close()
    return max((b - a for a, b in zip(stamps, stamps[1:], strict=False)), default=float("nan"))


_FLOOR_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = open(sys.argv[2], "rb").read()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def fetch_gzip(port: int) -> bytes:
    """One gzip scrape, as the load clients get it (the bytes the floor then serves)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        return conn.getresponse().read()
    finally:
        conn.close()


def floor_static(served: bytes, clients: int, seconds: float, work: Path) -> LoadResult:
    """Same load against the least a server can do: the bytes our server sent, fixed, from a stdlib server."""
    body = work / "floor.bin"
    body.write_bytes(served)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _FLOOR_SERVER, str(port), str(body)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        return hammer(port, "/metrics", clients, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def bench_load(vms: int, clients: int, seconds: float, interval: float, work: Path) -> bool:
    from collector.hypervisor.testfleet import make_fleet, write_fleet

    uri = write_fleet(work / f"load-{vms}.xml", make_fleet(vms))
    db = work / "load.db"
    port = free_port()
    log_path = work / "serve.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "rightsizer", "serve", "--db", str(db), "--uri", uri,
           "--interval", str(interval), "--metrics-listen", f"127.0.0.1:{port}", "--no-dashboard"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        body = wait_for_metrics(port, proc, log_path)
        time.sleep(interval)  # let a second cycle land so rates and costs exist
        one = hammer(port, "/metrics", 1, 5)
        c0, t0 = cycles_total(port), time.time()
        loaded = hammer(port, "/metrics", clients, seconds)
        c1, t1 = cycles_total(port), time.time()
        served = fetch_gzip(port)
        hole = longest_hole_s(db, t0)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log_path.read_text(errors="replace")
    skipped = text.count("maximum number of running instances reached")
    missed = text.count("was missed by")
    overran = text.count("collection cycle overran")
    due = int((t1 - t0) // interval)
    load_during = os.getloadavg()[0]
    floor = floor_static(served, clients, min(seconds, 10), work)
    print(f"load: serve on a {vms}-domain test-driver fleet, interval {interval:g} s; exposition {len(body)} bytes "
          f"uncompressed, {loaded.bytes_read // max(1, len(loaded.latencies))} bytes per gzip response "
          f"(floor serves the last one, {len(served)} bytes); 1-min load average {load_during:.2f} after the "
          f"run, {os.getloadavg()[0]:.2f} after the floor")
    print(f"  1 client, 5 s                    n={len(one.latencies):5d}  p50 {pct(one.latencies, .5) * 1e3:8.1f} ms"
          f"  p99 {pct(one.latencies, .99) * 1e3:8.1f} ms  errors {one.errors}")
    print(f"  {clients} clients, {seconds:g} s               n={len(loaded.latencies):5d}  "
          f"p50 {pct(loaded.latencies, .5) * 1e3:8.1f} ms  p99 {pct(loaded.latencies, .99) * 1e3:8.1f} ms  "
          f"max {max(loaded.latencies, default=float('nan')) * 1e3:8.1f} ms  "
          f"errors {loaded.errors} {loaded.error_kinds}")
    print(f"  floor: fixed bytes, {clients} clients n={len(floor.latencies):5d}  "
          f"p50 {pct(floor.latencies, .5) * 1e3:8.1f} ms  p99 {pct(floor.latencies, .99) * 1e3:8.1f} ms  "
          f"errors {floor.errors}")
    ratio = pct(loaded.latencies, .99) / pct(floor.latencies, .99)
    print(f"  p99 ratio vs floor               {ratio:8.2f}")
    print(f"  collector: {c1 - c0:.0f} cycles in {t1 - t0:.1f} s ({due} due); APScheduler skipped {skipped}, "
          f"missed {missed}; cycles late {overran}; longest hole between stored cycles {hole:.1f} s")
    ok = (loaded.errors == 0 and pct(loaded.latencies, .99) <= P99_TARGET_S and skipped == 0
          and c1 - c0 >= due - 1 and hole <= 2 * interval)
    print(f"  targets: 0 errors, p99 <= {P99_TARGET_S * 1e3:.0f} ms, no skipped cycle -> {'ok' if ok else 'MISSED'}")
    return ok


def bench_fleet(uris: int, per_uri: int, cycles: int, work: Path) -> bool:
    from collector.hypervisor.libvirt import LibvirtSource, silence_libvirt_stderr
    from collector.hypervisor.testfleet import make_fleet, write_fleet
    from collector.sampler import Sampler
    from collector.store.sqlite import SqliteStore

    silence_libvirt_stderr()
    fleets = [write_fleet(work / f"fleet-{i}.xml", make_fleet(per_uri, prefix=f"h{i}", seed=i)) for i in range(uris)]
    one = write_fleet(work / "fleet-one.xml", make_fleet(uris * per_uri, prefix="one"))
    multi = Sampler([LibvirtSource(u) for u in fleets], SqliteStore(work / "multi.db"), interval_s=60)
    single = Sampler([LibvirtSource(one)], SqliteStore(work / "single.db"), interval_s=60)
    try:
        multi.sample()
        single.sample()
        times_multi = [timed(multi.sample) for _ in range(cycles)]
        times_single = [timed(single.sample) for _ in range(max(3, cycles // 2))]
    finally:
        multi.close()
        single.close()
    med, floor = statistics.median(times_multi), statistics.median(times_single)
    ok = med <= FLEET_TARGET_S
    print(f"fleet: {uris} test-driver URIs x {per_uri} domains")
    print(f"  floor: one URI of {uris * per_uri} domains  median {floor:8.3f} s")
    print(f"  Sampler.sample() over {uris} URIs   median {med:8.3f} s  max {max(times_multi):8.3f} s  "
          f"(n={cycles}, target <= {FLEET_TARGET_S:g} s) {'ok' if ok else 'MISSED'}")
    print(f"  ratio vs floor                   {med / floor:8.2f}")
    return ok


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exporter_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--uris", type=int, default=10)
    parser.add_argument("--domains-per-uri", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args([] if argv is None else argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="rightsizer-exporter-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_load:
            ok &= bench_load(args.vms, args.clients, args.seconds, args.interval, work)
        if not args.skip_fleet:
            ok &= bench_fleet(args.uris, args.domains_per_uri, args.cycles, work)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
