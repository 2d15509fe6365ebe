"""The /metrics event loop on real sockets: clients that read slowly, stall or never speak hold up no one.

The exposition is ~7 MB, more than the kernel buffers a response to a client that reads slowly (its 4 KB
receive buffer and the server's send buffer, autotuned up to net.ipv4.tcp_wmem's 4 MB), so a server that
writes a whole response before it serves anyone else would be stuck on such a client.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from collector.exposition import ExpositionCache
from collector.metrics_process import MetricsProcess
from collector.metrics_server import MetricsServer

SERIES = 24_000
NOTE = "n" * 256  # long label values: MBs of text from few samples, rendered quickly


class _Fleet:
    """A collector of ``SERIES`` gauge samples whose value the test changes between renders."""

    def __init__(self) -> None:
        self.value = 1.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fam = GaugeMetricFamily("bench_vm_value", "A value per VM.", labels=["vm", "host", "note"])
        for i in range(SERIES):
            fam.add_metric([f"vm-{i:06d}", f"host-{i % 97}", NOTE], self.value + i)
        yield fam


@pytest.fixture
def big_cache() -> tuple[ExpositionCache, _Fleet]:
    fleet = _Fleet()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(fleet)  # type: ignore[arg-type]
    cache = ExpositionCache(registry)
    assert len(cache.refresh().text) > 6_000_000
    return cache, fleet


@pytest.fixture
def child(big_cache):
    cache, fleet = big_cache
    server = MetricsProcess(cache, "127.0.0.1", 0)
    try:
        yield server.server_address[1], cache, fleet
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def in_process(big_cache):
    cache, _ = big_cache
    server = MetricsServer(cache, idle_timeout_s=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cache
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _scrape(port: int, gzip_ok: bool = False) -> bytes:
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


def _slow_reader(port: int, connection: bytes = b"keep-alive") -> socket.socket:
    """Asks for the whole uncompressed exposition with a 4 KB receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: " + connection + b"\r\n\r\n")
    return sock


def _read_all(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_stalled_and_silent_clients_do_not_hold_up_a_scrape(child):
    port, cache, _ = child
    slow = [_slow_reader(port) for _ in range(8)]  # twice the old server's four writing workers
    stalled = [_slow_reader(port) for _ in range(4)]  # ask, then never read
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]  # connect, never ask
    half = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for sock in half:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost")  # half a request head, then nothing
    stop = threading.Event()
    got = [b""] * len(slow)

    def read_a_byte_a_second() -> None:
        while not stop.wait(1.0):
            for i, sock in enumerate(slow):
                got[i] += sock.recv(1)

    reader = threading.Thread(target=read_a_byte_a_second, daemon=True)
    reader.start()
    try:
        time.sleep(1.5)  # the slow readers' buffers are full, the server's loop has the rest pending
        started = time.monotonic()
        assert _scrape(port) == cache.current().text
        assert gzip.decompress(_scrape(port, gzip_ok=True)) == cache.current().text
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        reader.join(5)
        for sock in slow + stalled + silent + half:
            sock.close()
    assert all(g.startswith(b"H") for g in got)  # the slow readers were being answered all along


def test_a_response_under_way_keeps_the_bytes_it_started_with(child):
    port, cache, fleet = child
    before = cache.current().text
    sock = _slow_reader(port, b"close")
    try:
        time.sleep(0.5)  # the response has started: the first bytes are in the client's buffer
        fleet.value = 2.0
        cache.refresh()
        deadline = time.monotonic() + 5
        while _scrape(port) != cache.current().text:  # the child has the new exposition
            assert time.monotonic() < deadline
            time.sleep(0.05)
        head, _, body = _read_all(sock, 10).partition(b"\r\n\r\n")
    finally:
        sock.close()
    assert cache.current().text != before
    assert b"Content-Length: %d" % len(before) in head and body == before


def test_idle_and_half_sent_connections_are_closed_after_the_time_out(in_process):
    port, _ = in_process
    silent = socket.create_connection(("127.0.0.1", port))
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"GET /metrics HTTP/1.1\r\n")
    try:
        assert _read_all(silent, 5) == b""  # closed by the server (1 s time-out), not by the 5 s wait
        assert _read_all(half, 5) == b""
    finally:
        silent.close()
        half.close()


def test_pipelined_requests_head_and_a_half_closed_client_are_answered(in_process):
    port, cache = in_process
    text = cache.current().text
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /metrics?name[]=bench_vm_value HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)  # everything asked: the server answers all three, then closes
        received = _read_all(sock, 10)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: %d" % len(text) in head
    head, _, rest = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and rest.startswith(text)
    assert rest[len(text):].startswith(b"HTTP/1.1 404 Not Found")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("PUT", "/metrics", body=b"x")
        resp = conn.getresponse()
        assert resp.status == 405 and resp.getheader("Connection") == "close"
        resp.read()
    finally:
        conn.close()


@pytest.fixture
def small_server():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fleet())  # type: ignore[arg-type]
    cache = ExpositionCache(registry)
    cache.refresh()
    server = MetricsServer(cache, idle_timeout_s=30.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("half_sent", [False, True])
def test_past_1024_held_connections_a_scrape_is_still_answered_at_once(small_server, half_sent):
    """Issue 24 M8: 1,030 idle sockets made the next scrape wait ~10 s for idle ones to time out."""
    held = [socket.create_connection(("127.0.0.1", small_server)) for _ in range(1030)]
    try:
        if half_sent:
            for s in held:
                s.send(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        time.sleep(0.5)
        started = time.perf_counter()
        assert len(_scrape(small_server, gzip_ok=True)) > 0
        assert time.perf_counter() - started < 2.0
        held[0].settimeout(2)
        try:
            assert held[0].recv(10) == b""  # the oldest waiting connection made room
        except ConnectionResetError:
            pass  # closed with unread request bytes: a reset, closed all the same
    finally:
        for s in held:
            s.close()


def test_a_head_over_16_kb_in_one_write_is_refused_431(small_server):
    """Issue 24 L10: the limit applied only when the head arrived in several reads."""
    with socket.create_connection(("127.0.0.1", small_server), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431 ")


def test_exposition_and_metrics_server_do_not_import_each_other():
    """Issue 20: the rendering module and the server module depend one way only (server -> nothing of it)."""
    import ast
    from pathlib import Path

    def imports(module: str) -> set[str]:
        path = Path(__file__).resolve().parents[3] / "collector" / f"{module}.py"
        tree = ast.parse(path.read_text())
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert "collector.metrics_server" not in imports("exposition")
    assert "collector.exposition" not in imports("metrics_server")
