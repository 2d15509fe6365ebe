"""dashboard/wsgiserver.py: what one client can hold on the dashboard port is bounded (issue 24 H1, M7), on real
sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from dashboard.web import WebServer, start_server
from dashboard.wsgiserver import Limits, environ_for, parse_head

CALLS: list[str] = []
BUNDLE = b"b" * (8 * 1024 * 1024)  # one cached body, as flask-compress keeps the static bundles


def _flask() -> Flask:
    app = Flask("wsgi-test")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/echo")
    def echo() -> bytes:
        CALLS.append("echo")
        return request.get_data()

    @app.get("/big")
    def big() -> bytes:
        return b"x" * (32 * 1024 * 1024)

    @app.get("/bundle")
    def bundle() -> bytes:
        return BUNDLE

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/slow")
    def slow() -> str:
        time.sleep(1.0)
        return "slow"

    return app


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[WebServer] = []

    def _start(limits: Limits | None = None, threads: int = 16) -> WebServer:
        server = start_server(_flask(), "127.0.0.1", 0, name="wsgi-test", threads=threads, limits=limits)
        servers.append(server)
        return server

    CALLS.clear()
    yield _start
    for server in servers:
        server.stop()


def _exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def _get(port: int, path: str = "/healthz", *, timeout: float = 5.0) -> tuple[bytes, float]:
    started = time.perf_counter()
    answer = _exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(), timeout=timeout)
    return answer, time.perf_counter() - started


def test_300_silent_and_16_trickling_sockets_leave_healthz_prompt(serve: Any) -> None:
    server = serve()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
    try:
        for s in slow:
            s.send(b"GET /healthz HTTP/1.1\r\nX-A: ")
        time.sleep(0.5)
        for s in slow:
            s.send(b"b")
        answer, took = _get(server.port)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok")
        assert took < 2.0
    finally:
        for s in idle + slow:
            s.close()


def test_a_head_trickled_past_its_deadline_is_closed_although_bytes_keep_coming(serve: Any) -> None:
    server = serve(Limits(head_timeout_s=1.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.perf_counter()
        closed_after = None
        s.send(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(40):
            time.sleep(0.1)
            try:
                s.send(b"X-A: b\r\n")
            except OSError:
                closed_after = time.perf_counter() - started
                break
        answer = _read_all(s) if closed_after is None else b""
        closed_after = closed_after or time.perf_counter() - started
    assert closed_after < 2.5
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")


def test_a_silent_connection_is_closed_after_the_head_timeout(serve: Any) -> None:
    server = serve(Limits(head_timeout_s=1.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.perf_counter()
        assert s.recv(100) == b""
        assert 0.9 < time.perf_counter() - started < 2.5


def test_a_head_over_the_limit_in_one_write_is_refused_431(serve: Any) -> None:
    server = serve(Limits(max_head_bytes=16384))
    answer = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_body_over_the_limit_is_refused_413_before_it_is_sent(serve: Any) -> None:
    server = serve(Limits(max_body_bytes=1024 * 1024))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 419430400\r\n\r\n")
        started = time.perf_counter()
        answer = s.recv(65536)
        assert time.perf_counter() - started < 1.0
    assert answer.startswith(b"HTTP/1.1 413 ") and b"over the limit of 1048576" in answer
    assert CALLS == []


def test_a_body_over_the_limit_sent_eagerly_still_gets_its_413(serve: Any) -> None:
    server = serve(Limits(max_body_bytes=65536))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        try:
            s.sendall(b"{" * 300000)
        except OSError:
            pass
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert CALLS == []


def test_expect_100_continue_within_the_limit_gets_continue_then_the_answer(serve: Any) -> None:
    server = serve(Limits(max_body_bytes=65536))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                  b"Connection: close\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"hello")


def test_keep_alive_and_pipelined_requests_are_answered_in_order(serve: Any) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                  b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo")
        answer = _read_all(s)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"one") < answer.index(b"two")


@pytest.mark.parametrize(("head", "status"), [
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", b"400"),
    (b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/2.0\r\n\r\n", b"505"),
    (b"GET /healthz\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/1.1\r\n folded\r\n\r\n", b"400"),
])
def test_malformed_requests_are_refused_and_closed(serve: Any, head: bytes, status: bytes) -> None:
    server = serve()
    assert _exchange(server.port, head).startswith(b"HTTP/1.1 " + status)
    assert CALLS == []


def test_a_client_that_does_not_read_its_answer_holds_no_worker(serve: Any) -> None:
    server = serve(threads=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.0)
        answer, took = _get(server.port)
    assert answer.startswith(b"HTTP/1.1 200 OK") and took < 2.0


@pytest.mark.parametrize("half_sent", [False, True])
def test_past_the_connection_limit_the_oldest_idle_connection_makes_room(serve: Any, half_sent: bool) -> None:
    server = serve(Limits(max_connections=50))
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(80)]
    try:
        if half_sent:
            for s in idle:
                s.send(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        time.sleep(0.3)
        answer, took = _get(server.port)
        assert answer.startswith(b"HTTP/1.1 200 OK") and took < 2.0
        idle[0].settimeout(2)
        try:
            assert idle[0].recv(10) == b""  # the oldest waiting connection made room
        except ConnectionResetError:
            pass  # closed with unread request bytes: a reset, closed all the same
    finally:
        for s in idle:
            s.close()


def test_a_failing_request_is_a_500_and_the_server_goes_on(serve: Any) -> None:
    server = serve()
    assert _get(server.port, "/boom")[0].startswith(b"HTTP/1.1 500 ")
    assert _get(server.port)[0].startswith(b"HTTP/1.1 200 OK")


def test_requests_run_in_parallel_on_the_workers(serve: Any) -> None:
    server = serve(threads=4)
    results: list[float] = []
    threads = [threading.Thread(target=lambda: results.append(_get(server.port, "/slow")[1])) for _ in range(4)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and time.perf_counter() - started < 1.9


def test_environ_drops_underscored_headers_and_joins_repeats() -> None:
    req = parse_head(b"GET /a%20b?x=1 HTTP/1.1\r\nX_Real_User: admin\r\nAccept: a\r\nAccept: b\r\n"
                     b"Content-Type: text/plain", 100)
    env = environ_for(req, ("127.0.0.1", 8050), ("127.0.0.1", 5000))
    assert env["PATH_INFO"] == "/a b" and env["QUERY_STRING"] == "x=1"
    assert "HTTP_X_REAL_USER" not in env and env["HTTP_ACCEPT"] == "a, b" and env["CONTENT_TYPE"] == "text/plain"


def test_head_has_the_length_and_no_body_and_http10_closes(serve: Any) -> None:
    server = serve()
    answer = _exchange(server.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 2" in head and body == b""
    answer = _exchange(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")  # no keep-alive asked: closed after
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer and answer.endswith(b"ok")


def _rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def test_clients_that_do_not_read_a_cached_body_share_it_instead_of_a_copy_each(serve: Any) -> None:
    server = serve()
    before = _rss_bytes()
    stuck = []
    try:
        for _ in range(60):  # 60 x 8 MiB = 480 MiB if every answer were a copy
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /bundle HTTP/1.1\r\nHost: x\r\n\r\n")
            stuck.append(s)
        time.sleep(1.0)
        assert _get(server.port)[0].startswith(b"HTTP/1.1 200 OK")
        assert _rss_bytes() - before < 120 * 1024 * 1024
    finally:
        for s in stuck:
            s.close()
