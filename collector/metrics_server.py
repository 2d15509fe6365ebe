"""The /metrics HTTP server: one thread, one epoll event loop, non-blocking sockets.

Every connection is a small state machine in one loop: accepted, its request read (with a deadline),
answered from bytes prepared once per exposition, written with non-blocking partial sends as the kernel
takes them, then kept for the next request (HTTP/1.1 keep-alive) or closed. No client can hold up another:
a client that reads slowly, stops reading, connects and never speaks, or sends half a request costs one
entry in the loop and is closed when its deadline passes (``idle_timeout_s`` without a request, or without
the kernel taking any byte of its response). A connection writes the bytes it started with to the end; a
new exposition is used from the next response on.

The loop can watch other descriptors too (``watch``): the server process (``collector.metrics_process``)
reads new expositions from its stdin in the same loop.

Why one module above 500 lines: the loop, its per-connection state machine and the TLS handshake and
basic-auth steps it drives are one job whose states must change together (a connection's deadline, its
handshake, its credential check and its write progress are one record); the web configuration file is
read in ``collector/webconfig.py``.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collector.sockio import try_recv
from collector.webconfig import WebConfig, WebConfigWatch

log = logging.getLogger(__name__)

#: listen(2) backlog of the metrics socket (Linux caps it at net.core.somaxconn, 4096 on current kernels).
BACKLOG = 512
#: connections held at once; past it a new one closes the oldest idle one (no request pending), and only when
#: every connection is mid-exchange does the loop stop accepting (new ones wait in the backlog).
MAX_CONNECTIONS = 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_MAX_HEAD_BYTES = 16384
_RECV_BYTES = 65536
_FILTER_CACHE = 16  # filtered (?name[]=) bodies kept per exposition
#: password checks (bcrypt, a fraction of a second each) waiting for the checking thread; past it: 503
MAX_PENDING_CHECKS = 64


class Exposition(Protocol):
    """One rendered exposition as the server needs it (``collector.exposition.Exposition`` is one)."""

    @property
    def text(self) -> bytes: ...

    @property
    def gzipped(self) -> bytes: ...


class ExpositionSource(Protocol):
    """What ``MetricsServer`` serves: the latest exposition and a name filter over it
    (``collector.exposition.ExpositionCache`` is one)."""

    def current(self) -> Exposition: ...

    def filtered(self, names: Collection[str]) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    keep_alive: bool
    accepts_gzip: bool
    authorization: str | None = None


def parse_request_head(head: bytes) -> _Request | None:
    """Parse an HTTP/1.x request line and headers (without the blank line); None when malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if parts[2] == "HTTP/1.1" else "keep-alive" in connection
    if "content-length" in headers or "transfer-encoding" in headers:
        keep_alive = False  # we never read request bodies: do not try to find the next request after one
    return _Request(parts[0], parts[1], keep_alive, "gzip" in headers.get("accept-encoding", "").lower(),
                    headers.get("authorization"))


def response_bytes(status: int, body: bytes, content_type: str, zipped: bool, keep_alive: bool,
                   length: int | None = None, extra: tuple[str, ...] = ()) -> bytes:
    """Head and body of one HTTP/1.1 response (``length`` overrides Content-Length, for HEAD; ``extra``
    header lines)."""
    head = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body) if length is None else length}",
            "Connection: keep-alive" if keep_alive else "Connection: close", *extra]
    if zipped:
        head.append("Content-Encoding: gzip")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Responses:
    """The answers to requests, built from the source's latest exposition (full scrapes once per variant).

    The exposition and its prepared answers are swapped as one tuple: never one exposition with another's
    answers, whichever thread calls.
    """

    def __init__(self, source: ExpositionSource) -> None:
        self.source = source
        self._state: tuple[Exposition | None, dict[tuple[bool, bool], bytes], dict[tuple[str, ...], bytes]] = (
            None, {}, {})

    def answer(self, req: _Request) -> bytes:
        if req.method not in ("GET", "HEAD"):
            return response_bytes(405, b"only GET\n", "text/plain", False, req.keep_alive)
        url = urlsplit(req.target)
        if url.path not in ("/metrics", "/"):
            return response_bytes(404, b"not found; scrape /metrics\n", "text/plain", False, req.keep_alive)
        exp, prepared, filtered = self._follow(self.source.current())
        names = parse_qs(url.query).get("name[]", [])
        if names:
            body = self._filter(filtered, names)
            if req.method == "HEAD":
                return response_bytes(200, b"", CONTENT_TYPE_LATEST, False, req.keep_alive, length=len(body))
            return response_bytes(200, body, CONTENT_TYPE_LATEST, False, req.keep_alive)
        if req.method == "HEAD":
            length = len(exp.gzipped if req.accepts_gzip else exp.text)
            return response_bytes(200, b"", CONTENT_TYPE_LATEST, req.accepts_gzip, req.keep_alive, length=length)
        out = prepared.get((req.accepts_gzip, req.keep_alive))
        if out is None:
            out = response_bytes(200, exp.gzipped if req.accepts_gzip else exp.text, CONTENT_TYPE_LATEST,
                                 req.accepts_gzip, req.keep_alive)
            prepared[(req.accepts_gzip, req.keep_alive)] = out
        return out

    def _follow(self, exp: Exposition) -> tuple[Exposition, dict[tuple[bool, bool], bytes],
                                                dict[tuple[str, ...], bytes]]:
        state = self._state
        if state[0] is not exp:
            state = (exp, {}, {})
            self._state = state
        return exp, state[1], state[2]

    def _filter(self, cache: dict[tuple[str, ...], bytes], names: list[str]) -> bytes:
        key = tuple(sorted(set(names)))
        body = cache.get(key)
        if body is None:
            body = self.source.filtered(key)
            if len(cache) >= _FILTER_CACHE:
                cache.clear()
            cache[key] = body
        return body


class _Conn:
    """One client connection: what it sent and not yet answered, what is left to write, its deadline."""

    __slots__ = ("sock", "fd", "inbuf", "out", "close_after", "eof", "deadline", "events", "handshaking",
                 "checking")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.out: memoryview | None = None  # the rest of the response being written
        self.close_after = False  # close once ``out`` is written (Connection: close, errors)
        self.eof = False  # the client shut its side: answer what it sent, then close
        self.deadline = deadline
        self.events = _READ
        self.handshaking = isinstance(sock, ssl.SSLSocket)  # TLS: the handshake first, in steps like the rest
        self.checking = False  # its password is being checked on the checking thread (out of the epoll set)


@dataclass(frozen=True, slots=True)
class _Watch:
    on_readable: Callable[[], None]


_READ, _WRITE = select.EPOLLIN, select.EPOLLOUT
_BROKEN = select.EPOLLERR | select.EPOLLHUP
_LISTENER, _WAKE = object(), object()


class MetricsServer:
    """Serves an ``ExpositionSource`` over HTTP/1.1 from one event loop in one thread (``serve_forever``).

    ``idle_timeout_s`` bounds the wait for a request (a new connection or a kept-alive one) and a write
    that makes no progress. ``workers`` and ``waiting`` are accepted for compatibility and unused: there is
    no thread pool. The listen backlog is ``BACKLOG``.

    ``web_config`` (a ``WebConfigWatch``) turns on TLS and basic authentication as its file says; the file
    is checked for changes about twice a second and a new connection uses the newest configuration.
    """

    def __init__(self, cache: ExpositionSource, host: str = "127.0.0.1", port: int = 0, *,
                 sock: socket.socket | None = None, idle_timeout_s: float = 10.0,
                 workers: int | None = None, waiting: int | None = None,
                 web_config: WebConfigWatch | None = None) -> None:
        del workers, waiting
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.cache = cache
        self._sock = sock if sock is not None else socket.create_server((host, port), family=family,
                                                                         backlog=BACKLOG)
        self._sock.setblocking(False)
        self.server_address: tuple[str, int] = self._sock.getsockname()[:2]
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._loop = _Loop(self._sock, _Responses(cache), idle_timeout_s, self._stopping, MAX_CONNECTIONS,
                           web_config)

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` in the loop whenever the descriptor ``fd`` is readable."""
        self._loop.watch(fd, on_readable)

    def serve_forever(self) -> None:
        """Run the loop in this thread until ``shutdown``; then close every client connection."""
        self._started = True
        try:
            self._loop.run()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop (from any thread); connections are closed, including those mid-response."""
        self._stopping.set()
        self._loop.wake()

    def server_close(self) -> None:
        """Close the listening socket (after the loop stopped, when it ran)."""
        if self._started:
            self._stopped.wait(5)
        self._loop.close()
        self._sock.close()


class _Loop:
    """The event loop (epoll): accepts, reads requests, writes responses, and never blocks on a client."""

    def __init__(self, listener: socket.socket, responses: _Responses, idle_timeout_s: float,
                 stopping: threading.Event, max_connections: int, web: WebConfigWatch | None = None) -> None:
        self._listener = listener
        self._web = web
        self._responses = responses
        self._idle_timeout_s = idle_timeout_s
        self._stopping = stopping
        self._max_connections = max(1, max_connections)
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._targets: dict[int, object] = {self._wake_r.fileno(): _WAKE}
        self._epoll.register(self._wake_r.fileno(), _READ)
        self._conns: dict[int, _Conn] = {}
        self._accepting = False
        self._checker: ThreadPoolExecutor | None = None  # one thread for bcrypt checks, started on first need
        self._checks_done: list[tuple[_Conn, _Request, bool]] = []
        self._checks_lock = threading.Lock()
        self._pending_checks = 0

    def watch(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._targets[fd] = _Watch(on_readable)
        self._epoll.register(fd, _READ)

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        if self._checker is not None:
            self._checker.shutdown(wait=False, cancel_futures=True)
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()

    def run(self) -> None:
        self._set_accepting(True)
        sweep_every_s = min(0.5, self._idle_timeout_s / 4)
        next_sweep = time.monotonic()
        try:
            while not self._stopping.is_set():
                for fd, mask in self._epoll.poll(sweep_every_s):
                    self._dispatch(self._targets.get(fd), mask)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + sweep_every_s
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)

    def _dispatch(self, target: object, mask: int) -> None:
        if target is _LISTENER:
            self._accept()
        elif isinstance(target, _Conn):
            self._serve(target, mask)
        elif isinstance(target, _Watch):
            target.on_readable()
        elif target is _WAKE:
            try:
                self._wake_r.recv(64)
            except BlockingIOError:
                pass
            self._finish_checks()

    def _serve(self, conn: _Conn, mask: int) -> None:
        if conn.fd not in self._conns or conn.checking:
            return  # closed earlier in this round
        try:
            if conn.handshaking:
                if not self._handshake(conn):
                    return
                mask |= _READ  # the request may have come with the handshake's last bytes
            if mask & (_WRITE | _BROKEN):
                self._flush(conn)
            if mask & (_READ | _BROKEN) and conn.fd in self._conns:
                self._receive(conn)
        except Exception:  # noqa: BLE001 - one broken exchange must not stop the server
            log.exception("/metrics connection failed; closing it")
            self._close(conn)

    def _set_accepting(self, on: bool) -> None:
        fd = self._listener.fileno()
        if on and not self._accepting:
            self._targets[fd] = _LISTENER
            self._epoll.register(fd, _READ)
        elif not on and self._accepting:
            self._epoll.unregister(fd)
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, without starving the ones already open
            if len(self._conns) >= self._max_connections and not self._evict_idle():
                self._set_accepting(False)  # every connection is mid-exchange: new ones wait in the backlog
                return
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, a connection reset before accept: try again later
                log.warning("/metrics accept failed: %s", exc)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._web is not None and (ctx := self._web.config.ssl_context) is not None:
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Conn(sock, time.monotonic() + self._idle_timeout_s)
            self._conns[conn.fd] = conn
            self._targets[conn.fd] = conn
            self._epoll.register(conn.fd, _READ)
            self._serve(conn, _READ)  # the request has often arrived with the connection

    def _handshake(self, conn: _Conn) -> bool:
        """One step of the TLS handshake; True once it is done. A client that does not speak TLS (plain HTTP
        on this port), or whose certificate is refused, is closed."""
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._listen(conn, _READ)
            return False
        except ssl.SSLWantWriteError:
            self._listen(conn, _WRITE)
            return False
        except OSError as exc:  # ssl.SSLError included: plain HTTP, a refused certificate, a reset
            log.debug("/metrics TLS handshake failed: %s", exc)
            self._close(conn)
            return False
        conn.handshaking = False
        conn.deadline = time.monotonic() + self._idle_timeout_s
        return True

    def _evict_idle(self) -> bool:
        """Close the oldest connection waiting for a request (silent, idle or halfway through its head); False
        when every connection is being answered.

        Such connections would be closed at their deadline anyway; closing one now keeps a new scrape from
        waiting for that deadline behind a crowd of them. The oldest goes, never the newest: a scrape that has
        just connected has often not sent its request yet.
        """
        for conn in self._conns.values():  # in accept order
            if conn.out is None and not conn.checking:
                self._close(conn)
                return True
        return False

    def _receive(self, conn: _Conn) -> None:
        chunk = try_recv(conn.sock, _RECV_BYTES)
        if chunk is None:
            return
        if not chunk:  # the client closed (or half-closed) its side: answer what it asked, then close
            conn.eof = True
        else:
            conn.inbuf += chunk
        if conn.out is None:
            self._flush(conn)

    def _next_response(self, conn: _Conn) -> bool:
        """Take the next complete request off ``conn.inbuf`` and set its answer as ``conn.out``."""
        head, sep, rest = conn.inbuf.partition(b"\r\n\r\n")
        if not sep:
            if len(conn.inbuf) <= _MAX_HEAD_BYTES:
                return False
            out, close_after = response_bytes(431, b"request head too large\n", "text/plain", False, False), True
        elif len(head) > _MAX_HEAD_BYTES:  # however many reads it arrived in
            out, close_after = response_bytes(431, b"request head too large\n", "text/plain", False, False), True
        else:
            conn.inbuf = rest
            req = parse_request_head(head)
            if req is None:
                out, close_after = response_bytes(400, b"malformed request\n", "text/plain", False, False), True
            elif self._web is not None and (verdict := (web := self._web.config).quick_verdict(
                    req.authorization)) is not True:
                if verdict is None:
                    return self._check_later(conn, web, req)
                out, close_after = _unauthorized(req.keep_alive), not req.keep_alive
            else:
                out, close_after = self._responses.answer(req), not req.keep_alive
        conn.out = memoryview(out)
        conn.close_after = close_after
        return True

    def _check_later(self, conn: _Conn, web: WebConfig, req: _Request) -> bool:
        """Check the request's password on the checking thread (the loop goes on meanwhile; the connection
        leaves the epoll set until the answer). True when it was answered at once instead (503, too many)."""
        if self._pending_checks >= MAX_PENDING_CHECKS:
            conn.out = memoryview(response_bytes(503, b"too many password checks at once; retry\n",
                                                 "text/plain", False, False, extra=("Retry-After: 1",)))
            conn.close_after = True
            return True
        if self._checker is None:
            self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-auth")
        self._pending_checks += 1
        conn.checking = True
        self._epoll.unregister(conn.fd)

        def done(future: Future[bool]) -> None:
            ok = not future.cancelled() and future.exception() is None and future.result()
            with self._checks_lock:
                self._checks_done.append((conn, req, ok))
            self.wake()

        self._checker.submit(web.authorized, req.authorization).add_done_callback(done)
        return False

    def _finish_checks(self) -> None:
        """Answer the requests whose password check finished, and go on with their connections."""
        with self._checks_lock:
            done, self._checks_done = self._checks_done, []
        for conn, req, ok in done:
            self._pending_checks -= 1
            if self._conns.get(conn.fd) is not conn:
                continue  # closed meanwhile (deadline, shutdown)
            conn.checking = False
            self._epoll.register(conn.fd, _READ)
            conn.events = _READ
            out = self._responses.answer(req) if ok else _unauthorized(req.keep_alive)
            conn.out, conn.close_after = memoryview(out), not req.keep_alive
            try:
                self._flush(conn)
            except Exception:  # noqa: BLE001 - one broken exchange must not stop the server
                log.exception("/metrics connection failed; closing it")
                self._close(conn)

    def _flush(self, conn: _Conn) -> None:
        """Write what the kernel takes now; answer the requests received, one after the other."""
        while True:
            if conn.out is None and not self._next_response(conn):
                if conn.checking:
                    return  # answered when its password check is done
                if conn.eof:
                    self._close(conn)  # the client's end of stream, nothing more to answer
                else:
                    self._listen(conn, _READ)
                return
            assert conn.out is not None
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                sent = 0
            except OSError:
                self._close(conn)
                return
            if sent:
                conn.deadline = time.monotonic() + self._idle_timeout_s
            if sent < len(conn.out):
                conn.out = conn.out[sent:]
                self._listen(conn, _WRITE)  # the rest when the client has read some
                return
            conn.out = None
            if conn.close_after:
                self._close(conn)
                return

    def _listen(self, conn: _Conn, events: int) -> None:
        if conn.events != events:
            self._epoll.modify(conn.fd, events)
            conn.events = events

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline: silent, half a request, or a stalled reader; and read the
        web configuration file again when it changed."""
        if self._web is not None:
            self._web.refresh()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.fd, None) is None:
            return
        del self._targets[conn.fd]
        try:
            self._epoll.unregister(conn.fd)
        except OSError:
            pass
        conn.sock.close()
        conn.out = None
        if not self._accepting and not self._stopping.is_set():
            self._set_accepting(True)


def _unauthorized(keep_alive: bool) -> bytes:
    return response_bytes(401, b"Unauthorized\n", "text/plain; charset=utf-8", False, keep_alive,
                          extra=('WWW-Authenticate: Basic realm="rightsizer /metrics"',))


def serve_exposition(source: ExpositionSource, host: str, port: int, web_config: WebConfigWatch | None = None,
                     ) -> tuple[MetricsServer, threading.Thread]:
    """Serve ``source`` on host:port (port 0 picks a free one); call ``shutdown()`` then ``server_close()``."""
    server = MetricsServer(source, host, port, web_config=web_config)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
