"""Does a listener keep serving while many clients hold connections open? (issue 24: H1, M8)

    python -m bench.slow_clients [--url http://127.0.0.1:8050/healthz] [--sockets 16,300] [--mode idle|trickle]
    python -m bench.slow_clients --throughput [--clients 8] [--requests 200]

For each count N: open N connections to the URL's host and port that never send a request (``idle``) or send
a request head one byte per second (``trickle``), then time one ``GET`` of the URL on a new connection
(timeout 30 s). Without ``--url`` it serves a one-route Flask app with ``dashboard.web.start_server`` (the
dashboard port's server) in this process. Prints N, mode, the GET's status and seconds.

``--throughput``: the cost of the event loop in front of the workers. The same one-route Flask app (a 350 KB body
and a 2 KB JSON body) served by ``dashboard.web.start_server`` and by cheroot (the server it replaced, 16
threads, from the test extra) in the same run: ``--clients`` keep-alive clients each make ``--requests`` GETs
of each body; prints requests per second per server and body.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
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


def _throughput_app() -> object:
    from flask import Flask, Response

    big, small = b"x" * 350_000, b'{"v": "' + b"y" * 2000 + b'"}'
    app = Flask("throughput")
    app.add_url_rule("/big", "big", lambda: Response(big, mimetype="application/javascript"))
    app.add_url_rule("/small", "small", lambda: Response(small, mimetype="application/json"))
    return app


def _cheroot(app: object) -> tuple[int, Callable[[], None]]:
    from cheroot import wsgi

    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=16)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return int(server.bind_addr[1]), server.stop


def _ours(app: object) -> tuple[int, Callable[[], None]]:
    from dashboard.web import start_server

    server = start_server(app, "127.0.0.1", 0, name="bench")  # type: ignore[arg-type]
    return server.port, server.stop


def _rate(port: int, path: str, clients: int, requests: int) -> float:
    import http.client

    def _client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        conn.close()

    threads = [threading.Thread(target=_client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * requests / (time.perf_counter() - started)


def throughput(clients: int, requests: int) -> None:
    """Print requests/s of both servers for both bodies, alternating servers so load changes hit both."""
    app = _throughput_app()
    for name, start in (("rightsizer", _ours), ("cheroot", _cheroot)) * 2:
        port, stop = start(app)
        try:
            rates = {path: _rate(port, path, clients, requests) for path in ("/big", "/small")}
        finally:
            stop()
        print(f"{name:10s} {clients} clients x {requests}: 350 KB {rates['/big']:7.1f}/s, "
              f"2 KB {rates['/small']:7.1f}/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="URL to GET (default: a local dashboard.web server's /healthz)")
    parser.add_argument("--sockets", default="16,300", help="comma-separated connection counts")
    parser.add_argument("--mode", choices=("idle", "trickle"), default="idle")
    parser.add_argument("--throughput", action="store_true", help="requests/s against cheroot instead")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    if args.throughput:
        throughput(args.clients, args.requests)
        return 0
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
