"""Does a listener keep serving while many clients hold connections open? (issue 24: H1, M8)

    python -m bench.slow_clients [--url http://127.0.0.1:8050/healthz] [--sockets 16,300] [--mode idle|trickle]

For each count N: open N connections to the URL's host and port that never send a request (``idle``) or send
a request head one byte per second (``trickle``), then time one ``GET`` of the URL on a new connection
(timeout 30 s). Without ``--url`` it serves a one-route Flask app with ``dashboard.web.start_server`` (the
dashboard port's server) in this process. Prints N, mode, the GET's status and seconds.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit


def _hold(host: str, port: int, count: int, mode: str, stop: threading.Event) -> list[socket.socket]:
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(count)]
    if mode == "trickle":
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096

        def _drip() -> None:
            for i in range(len(head)):
                if stop.wait(1.0):
                    return
                for s in socks:
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        pass

        threading.Thread(target=_drip, daemon=True).start()
    return socks


def measure(url: str, count: int, mode: str) -> tuple[str, float]:
    """Seconds one GET of ``url`` takes while ``count`` other connections are held in ``mode``."""
    parts = urlsplit(url)
    stop = threading.Event()
    socks = _hold(parts.hostname or "127.0.0.1", parts.port or 80, count, mode, stop)
    time.sleep(1.5)  # let the server take them in (and the trickle start)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            status = str(resp.status)
    except OSError as exc:
        status = f"error: {exc}"
    took = time.perf_counter() - started
    stop.set()
    for s in socks:
        s.close()
    return status, took


def _local_server() -> tuple[str, object]:
    from flask import Flask

    from dashboard.web import start_server

    app = Flask("slow-clients")
    app.add_url_rule("/healthz", "healthz", lambda: "ok")
    server = start_server(app, "127.0.0.1", 0, name="bench")
    return f"http://127.0.0.1:{server.port}/healthz", server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="URL to GET (default: a local dashboard.web server's /healthz)")
    parser.add_argument("--sockets", default="16,300", help="comma-separated connection counts")
    parser.add_argument("--mode", choices=("idle", "trickle"), default="idle")
    args = parser.parse_args(argv)
    server = None
    url = args.url
    if url is None:
        url, server = _local_server()
    try:
        for count in (int(n) for n in args.sockets.split(",")):
            status, took = measure(url, count, args.mode)
            print(f"{count:5d} {args.mode:8s} sockets: GET {url} -> {status} in {took:.3f} s", flush=True)
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
