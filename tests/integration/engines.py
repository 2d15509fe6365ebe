"""Real PromQL engines on loopback for tests and benches: VictoriaMetrics, vmagent, Prometheus (+ promtool).

Debian packages ``victoria-metrics`` and ``prometheus`` (scripts/install-system.sh). Every server binds a free
port on 127.0.0.1 and a temporary directory; ``stop()`` ends the process it started.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run scripts/install-system.sh test")
    return found


@dataclass
class Engine:
    """A running server: its base URL, process and log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def get(self, path: str, timeout_s: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
            body: bytes = resp.read()
            return body

    def wait_ready(self, path: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.get(path, timeout_s=2)
                return
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready (exit {self.process.poll()}):\n"
                                   + self.log_tail())
            time.sleep(0.1)

    def query(self, expr: str) -> list[dict[str, object]]:
        import urllib.parse

        body = json.loads(self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        if body.get("status") != "success":
            raise RuntimeError(f"{self.name} query {expr!r}: {body}")
        result: list[dict[str, object]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout_s: float = 30.0, *, count: int = 1) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if len(result) >= count:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {expr!r} has {len(result)} series after {timeout_s}s, want "
                                   f"{count}:\n{self.log_tail()}")
            time.sleep(0.25)


def _start(name: str, argv: list[str], work: Path, url: str) -> Engine:
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return Engine(name, url, process, log_path)


def start_victoria_metrics(work: Path, *, retention: str = "100y") -> Engine:
    """Single-node VictoriaMetrics; fresh samples are queryable at once (latency offset 0)."""
    port = free_port()
    engine = _start("victoria-metrics", [
        binary("victoria-metrics"), f"-storageDataPath={work / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
        f"-retentionPeriod={retention}", "-search.latencyOffset=0s", "-search.disableCache",
        "-loggerLevel=WARN",
    ], work, f"http://127.0.0.1:{port}")
    engine.wait_ready("/health")
    return engine


def import_prometheus_text(engine: Engine, lines: Iterable[str], *, batch: int = 200_000) -> int:
    """POST exposition lines (ms timestamps) to /api/v1/import/prometheus, then flush; returns lines sent."""
    sent = 0
    buf: list[str] = []

    def flush() -> None:
        req = urllib.request.Request(engine.url + "/api/v1/import/prometheus", data=("\n".join(buf) + "\n").encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()

    for line in lines:
        buf.append(line)
        if len(buf) >= batch:
            flush()
            sent += len(buf)
            buf = []
    if buf:
        flush()
        sent += len(buf)
    engine.get("/internal/force_flush")
    return sent


def scrape_config(targets: Mapping[str, Mapping[str, str]], interval: str) -> str:
    """A scrape config (Prometheus and vmagent read the same) with per-target labels, e.g. ``{"host": "hv1"}``.

    A target label named like an exported one wins (the exported one becomes ``exported_<name>``): that is how
    a test gives two test-driver fleets on one machine two distinct ``host`` values.
    """
    out = f"global:\n  scrape_interval: {interval}\n"
    if not targets:  # a query-only server (e.g. over backfilled blocks)
        return out
    out += "scrape_configs:\n  - job_name: rightsizer\n    static_configs:\n"
    for target, labels in targets.items():
        out += f"      - targets: [{json.dumps(target)}]\n        labels: {json.dumps(dict(labels))}\n"
    return out


def start_vmagent(work: Path, targets: Mapping[str, Mapping[str, str]], remote_write_url: str, *,
                  interval: str = "1s") -> Engine:
    """vmagent scraping ``targets`` and remote-writing into ``remote_write_url`` (e.g. VictoriaMetrics)."""
    config = work / "vmagent.yml"
    work.mkdir(parents=True, exist_ok=True)
    config.write_text(scrape_config(targets, interval))
    port = free_port()
    engine = _start("vmagent", [
        binary("vmagent"), f"-promscrape.config={config}", f"-remoteWrite.url={remote_write_url}",
        f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.tmpDataPath={work / 'vmagent-data'}",
        "-remoteWrite.flushInterval=200ms", "-loggerLevel=WARN",
    ], work, f"http://127.0.0.1:{port}")
    engine.wait_ready("/health")
    return engine


def promtool_backfill(lines: Iterable[str], data: Path, work: Path) -> int:
    """Backfill a Prometheus TSDB directory: OpenMetrics sample lines (second timestamps, e.g.
    ``collector.store.promexport.history_lines(..., openmetrics=True)``) are written to a file ending in ``# EOF``
    and turned into blocks in ``data`` by ``promtool tsdb create-blocks-from openmetrics``; returns lines written.
    Start Prometheus on ``data`` afterwards (``start_prometheus(..., data=data)``)."""
    work.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    path = work / "backfill.om"
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
            written += 1
        out.write("# EOF\n")
    # promtool re-reads the whole file once per block: its default 2h blocks make a month of history 360 passes
    # (minutes); the (hidden) --max-block-duration makes it a few passes with blocks up to 486h
    proc = subprocess.run([binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                           "--max-block-duration=1000h", str(path), str(data)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool create-blocks-from openmetrics {path} failed ({proc.returncode}):\n"
                           + (proc.stdout + proc.stderr)[-2000:])
    path.unlink()
    return written


def start_prometheus(work: Path, targets: Mapping[str, Mapping[str, str]], *, interval: str = "1s",
                     rules: Path | None = None, data: Path | None = None) -> Engine:
    """Prometheus scraping ``targets``; ``data`` reuses a TSDB directory (e.g. after promtool backfill)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "prometheus.yml"
    text = scrape_config(targets, interval)
    if rules is not None:
        text += f"rule_files:\n  - {rules}\n"
    config.write_text(text)
    port = free_port()
    engine = _start("prometheus", [
        binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data or work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
    ], work, f"http://127.0.0.1:{port}")
    engine.wait_ready("/-/ready")
    return engine
