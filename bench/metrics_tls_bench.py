"""What TLS and basic auth cost a /metrics scrape: one keep-alive client, sequential scrapes, same server loop.

    python -m bench.metrics_tls_bench [--scrapes 300] [--kb 3000]

Serves a ``--kb`` KB exposition (gzip as Prometheus asks) from ``MetricsServer`` in this process, plain and
then behind a web configuration file (TLS 1.3 with a P-256 certificate made by openssl, one bcrypt user at
cost 10), and reports the median and p99 latency of each; plus the cost of a new TLS connection (handshake +
first scrape). The first authenticated scrape pays one bcrypt check; the verdict is cached after it.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

import bcrypt

from collector.exposition import Exposition
from collector.metrics_server import MetricsServer
from collector.webconfig import WebConfigWatch
from tests.helpers.tlscerts import make_certs


class _Source:
    def __init__(self, kb: int) -> None:
        lines = [f'bench_vm_value{{vm="vm-{i:06d}",host="h{i % 97}"}} {i}.5\n' for i in range(kb * 1024 // 40)]
        text = "".join(lines).encode()
        self._exp = Exposition(families=(), text=text, gzipped=gzip.compress(text, 6), rendered_at=0.0,
                               render_seconds=0.0)

    def current(self) -> Exposition:
        return self._exp

    def filtered(self, names: Collection[str]) -> bytes:
        return self._exp.text


def _run(source: _Source, web: WebConfigWatch | None, ctx: ssl.SSLContext | None, headers: dict[str, str],
         scrapes: int) -> tuple[list[float], list[float]]:
    server = MetricsServer(source, "127.0.0.1", 0, web_config=web)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    headers = {"Accept-Encoding": "gzip", **headers}

    def connect() -> http.client.HTTPConnection:
        if ctx is None:
            return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)

    try:
        conn = connect()
        times = []
        for _ in range(scrapes):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            resp.read()
            times.append(time.perf_counter() - t0)
        conn.close()
        fresh = []
        for _ in range(min(50, scrapes)):
            t0 = time.perf_counter()
            conn = connect()
            conn.request("GET", "/metrics", headers=headers)
            conn.getresponse().read()
            conn.close()
            fresh.append(time.perf_counter() - t0)
        return times[1:], fresh
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _line(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"  {name:<34} n={len(times):4d}  p50 {statistics.median(times) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--kb", type=int, default=3000)
    args = parser.parse_args()
    source = _Source(args.kb)
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp) / "certs")
        web = Path(tmp) / "web.yml"
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=10)).decode()
        web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                       f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        client = ssl.create_default_context(cafile=str(certs.ca))
        auth = {"Authorization": "Basic " + base64.b64encode(b"prometheus:pw").decode()}
        plain, plain_fresh = _run(source, None, None, {}, args.scrapes)
        tls, tls_fresh = _run(source, WebConfigWatch(web), client, auth, args.scrapes)
    print(f"/metrics, {len(source.current().gzipped)} gzip bytes per scrape ({args.kb} KB uncompressed)")
    print(_line("plain, keep-alive", plain))
    print(_line("TLS 1.3 + basic auth, keep-alive", tls))
    print(_line("plain, new connection", plain_fresh))
    print(_line("TLS + basic auth, new connection", tls_fresh))


if __name__ == "__main__":
    main()
