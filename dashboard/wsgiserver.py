"""The dashboard port's HTTP/1.1 server: one event loop reads requests, a pool of threads runs the WSGI app.

A thread-per-connection server (cheroot, wsgiref) lends a worker to every connection from its first byte,
so 16 clients that connect and never send (or send their headers a byte at a time) held all 16 workers and
stalled the dashboard, /healthz and the API. Here a connection costs a worker only once its whole request has
arrived, and what one client can hold is bounded:

* **Header time**: the request line and headers must be complete within ``head_timeout_s`` of the request's
  first byte (of the connection for a new one); a keep-alive connection may then wait ``idle_timeout_s`` for
  its next request. Trickling bytes does not extend either deadline.
* **Header size**: ``max_head_bytes``; past it the answer is 431 and the connection is closed.
* **Body size**: ``max_body_bytes`` (``[dashboard] max_body_bytes``); a larger ``Content-Length`` is answered
  413 at once, without reading the body (and ``Expect: 100-continue`` clients never send it). Bodies must
  arrive within ``body_timeout_s``. Chunked request bodies are refused (411): browsers and the API's clients
  send a length.
* **Connections**: at most ``max_connections``; a new connection past the limit closes the oldest one that is
  waiting for a request (idle or silent), so a crowd of idle sockets never locks out a new client.
* **Responses** are built by a worker into bytes and written by the loop with non-blocking sends; a client that
  stops reading is closed after ``idle_timeout_s`` without progress and never holds a worker.
* **TLS** (``ssl_context``): accepted sockets are wrapped with ``do_handshake_on_connect=False`` and the
  handshake runs in steps in the loop under the header deadline; a client that does not speak TLS is closed.

The app runs on ``threads`` workers; complete requests wait in order when all are busy.
"""

from __future__ import annotations

import io
import logging
import selectors
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from collector.sockio import try_recv

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_REASONS = {100: "Continue", 400: "Bad Request", 408: "Request Timeout", 411: "Length Required",
            413: "Content Too Large", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}
_RECV_BYTES = 65536


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold on the listener (see the module doc)."""

    head_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    max_head_bytes: int = 65536
    max_body_bytes: int = 10 * 1024 * 1024
    max_connections: int = 4096


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    length: int
    keep_alive: bool
    body: bytes = b""


class HttpError(Exception):
    """A request refused before it reaches the app: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def parse_head(head: bytes, max_body_bytes: int) -> _Request:
    """Parse a request line and headers (without the blank line). Raises HttpError for what is refused."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "undecodable request head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HttpError(400, "malformed header line")  # folded lines and spaces before the colon too
        headers.append((name.lower(), value.strip(" \t")))
    values = {name: [v for n, v in headers if n == name] for name, _ in headers}
    if "transfer-encoding" in values:
        raise HttpError(411, "chunked request bodies are not accepted; send a Content-Length")
    lengths = set(values.get("content-length", []))
    length = 0
    if lengths:
        (raw,) = lengths if len(lengths) == 1 else (None,)
        if raw is None or not raw.isdigit() or len(raw) > 18:
            raise HttpError(400, "invalid Content-Length")
        length = int(raw)
        if length > max_body_bytes:
            raise HttpError(413, f"request body of {length} bytes is over the limit of {max_body_bytes}")
    connection = ",".join(values.get("connection", [])).lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return _Request(method, target, version, headers, length, keep_alive)


def environ_for(req: _Request, server: tuple[str, int], peer: tuple[str, int], scheme: str = "http",
                ) -> dict[str, Any]:
    """The WSGI environ of one request (PEP 3333: strings are latin-1 decoded bytes)."""
    url = urlsplit(req.target)
    path = url.path if url.path else "/"
    env: dict[str, Any] = {
        "REQUEST_METHOD": req.method, "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": url.query,
        "SERVER_NAME": server[0], "SERVER_PORT": str(server[1]), "SERVER_PROTOCOL": req.version,
        "REMOTE_ADDR": peer[0], "REMOTE_PORT": str(peer[1]), "CONTENT_LENGTH": str(req.length) if req.length else "",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scheme, "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, value in req.headers:
        if "_" in name:
            continue  # X_Foo would pose as X-Foo in the environ: dropped, as nginx and gunicorn do
        if name == "content-type":
            env["CONTENT_TYPE"] = value
        elif name != "content-length":
            key = "HTTP_" + name.upper().replace("-", "_")
            env[key] = f"{env[key]}, {value}" if key in env else value
    return env


def response_head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    return ("HTTP/1.1 " + status + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


def error_response(status: int, detail: str) -> bytes:
    body = f"{status} {_REASONS[status]}: {detail}\n".encode("latin-1", "replace")
    return response_head(f"{status} {_REASONS[status]}", [
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
        ("Connection", "close")]) + body


def run_app(app: WsgiApp, env: dict[str, Any], keep_alive: bool) -> tuple[list[bytes], bool]:
    """Call the app for one request; returns the response's head and body parts and whether the connection may
    stay open. The app's body parts are kept as they are (a cached bundle is not copied per response)."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    try:
        result = app(env, start_response)
        try:
            chunks = [*written, *(bytes(c) for c in result)]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:  # noqa: BLE001 - one failing request must not stop the server
        log.exception("dashboard request %s %s failed", env["REQUEST_METHOD"], env["PATH_INFO"])
        return [error_response(500, "the server failed; see its log")], False
    if not started:
        return [error_response(500, "the application gave no response")], False
    status, app_headers = started
    size = sum(len(c) for c in chunks)
    headers = [(k, v) for k, v in app_headers if k.lower() not in ("connection", "content-length",
                                                                   "transfer-encoding")]
    no_body = env["REQUEST_METHOD"] == "HEAD" or status[:3] in ("204", "304") or status.startswith("1")
    declared = next((v for k, v in app_headers if k.lower() == "content-length"), None)
    length = declared if env["REQUEST_METHOD"] == "HEAD" and declared is not None else str(size)
    if not status.startswith(("204", "1")):
        headers.append(("Content-Length", length))
    headers.append(("Connection", "keep-alive" if keep_alive else "close"))
    return [response_head(status, headers), *([] if no_body else [c for c in chunks if c])], keep_alive


_WAIT_HEAD, _WAIT_BODY, _IN_APP, _WRITING, _LINGER = range(5)
#: after a refusal, what is still read and dropped (an unread body would reset the connection, and with it
#: the answer, before the client read it)
_LINGER_S, _LINGER_BYTES = 2.0, 1024 * 1024


@dataclass(eq=False, slots=True)
class _Conn:
    sock: socket.socket
    peer: tuple[str, int]
    deadline: float
    state: int = _WAIT_HEAD
    inbuf: bytearray = field(default_factory=bytearray)
    request: _Request | None = None
    out: list[memoryview] = field(default_factory=list)  # what is left to write of the response
    close_after: bool = False
    fresh: bool = True  # no request yet on this connection (its head deadline runs from the accept)
    dropped: int = 0  # bytes read and dropped while lingering
    handshaking: bool = False  # TLS: the handshake is not done yet


class WsgiServer:
    """Serve a WSGI app on ``sock`` (listening) until ``shutdown``; see the module doc for the limits."""

    def __init__(self, app: WsgiApp, sock: socket.socket, *, threads: int = 16, limits: Limits | None = None,
                 name: str = "dashboard", ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self._ssl = ssl_context
        self._scheme = "http" if ssl_context is None else "https"
        self.limits = limits or Limits()
        self._sock = sock
        self._sock.setblocking(False)
        address = sock.getsockname()
        self.server_address: tuple[str, int] = (str(address[0]), int(address[1]))
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._conns: OrderedDict[int, _Conn] = OrderedDict()  # oldest first (moved to the end on each request)
        self._done: list[tuple[_Conn, list[bytes], bool]] = []
        self._done_lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{name}-worker")
        self._name = name

    # -- control ---------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._selector.register(self._sock, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        tick = min(0.5, self.limits.head_timeout_s / 4)
        next_sweep = time.monotonic() + tick
        try:
            while not self._stopping.is_set():
                for key, events in self._selector.select(tick):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._on_event(key.data, events)
                self._collect_done()
                now = time.monotonic()
                if now >= next_sweep:
                    self._expire(now)
                    next_sweep = now + tick
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        self._stopping.set()
        self._wake()

    def close(self) -> None:
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sock.close()

    # -- the loop --------------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: make room, try again on the next event
                log.warning("%s: accept failed: %s", self._name, exc)
                self._evict_idle()
                return
            if len(self._conns) >= self.limits.max_connections and not self._evict_idle():
                sock.close()  # every connection is busy with a request: refuse the newcomer
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Conn(sock, (str(peer[0]), int(peer[1])), time.monotonic() + self.limits.head_timeout_s,
                         handshaking=self._ssl is not None)
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_idle(self) -> bool:
        """Close a lingering connection, else the oldest one waiting for a request (silent, idle or halfway
        through its head; never the newest first: a client that just connected has often not sent yet); False
        when every connection has a request in hand."""
        for wanted in (_LINGER, _WAIT_HEAD):
            for conn in self._conns.values():  # oldest first
                if conn.state == wanted:
                    self._close(conn)
                    return True
        return False

    def _on_event(self, conn: _Conn, events: int) -> None:
        if conn.sock.fileno() not in self._conns:
            return
        try:
            if conn.handshaking:
                self._handshake(conn)
            elif events & selectors.EVENT_WRITE:
                self._flush(conn)
            elif events & selectors.EVENT_READ:
                self._receive(conn)
        except Exception:  # noqa: BLE001 - one broken exchange must not stop the server
            log.exception("%s: connection failed; closing it", self._name)
            self._close(conn)

    def _handshake(self, conn: _Conn) -> None:
        """One step of the TLS handshake; once done, read what came with its last bytes."""
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except OSError as exc:  # ssl.SSLError included: plain HTTP on this port, a reset
            log.debug("%s: TLS handshake failed: %s", self._name, exc)
            self._close(conn)
            return
        conn.handshaking = False
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        self._receive(conn)

    def _receive(self, conn: _Conn) -> None:
        chunk = try_recv(conn.sock, _RECV_BYTES)
        if chunk is None:
            return
        if not chunk:
            self._close(conn)  # the client went away before a whole request: nothing to answer
            return
        if conn.state == _LINGER:
            conn.dropped += len(chunk)
            if conn.dropped > _LINGER_BYTES:
                self._close(conn)
            return
        if conn.state == _WAIT_HEAD and not conn.inbuf and not conn.fresh:
            conn.deadline = time.monotonic() + self.limits.head_timeout_s  # a kept-alive connection's next request
        conn.inbuf += chunk
        self._advance(conn)

    def _advance(self, conn: _Conn) -> None:
        """Move ``conn`` on with what it has received: parse the head, take the body, hand it to a worker."""
        if conn.state == _WAIT_HEAD:
            end = conn.inbuf.find(b"\r\n\r\n", 0, self.limits.max_head_bytes + 4)
            if end < 0:
                if len(conn.inbuf) > self.limits.max_head_bytes:
                    self._refuse(conn, 431, f"request head over {self.limits.max_head_bytes} bytes")
                return
            head = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 4]
            try:
                conn.request = parse_head(head, self.limits.max_body_bytes)
            except HttpError as exc:
                self._refuse(conn, exc.status, str(exc))
                return
            conn.fresh = False
            conn.state = _WAIT_BODY
            conn.deadline = time.monotonic() + self.limits.body_timeout_s
            if conn.request.length > len(conn.inbuf) and any(
                    n == "expect" and v.lower() == "100-continue" for n, v in conn.request.headers):
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")  # a few bytes into an empty send buffer
        if conn.state == _WAIT_BODY:
            req = conn.request
            assert req is not None
            if len(conn.inbuf) < req.length:
                return
            req.body = bytes(conn.inbuf[:req.length])
            del conn.inbuf[:req.length]
            conn.state = _IN_APP
            self._selector.unregister(conn.sock)  # nothing is read while the app runs
            self._conns.move_to_end(conn.sock.fileno())
            env = environ_for(req, self.server_address, conn.peer, self._scheme)
            self._pool.submit(self._work, conn, env, req.keep_alive)

    def _work(self, conn: _Conn, env: dict[str, Any], keep_alive: bool) -> None:
        out, keep = run_app(self.app, env, keep_alive)
        with self._done_lock:
            self._done.append((conn, out, keep))
        self._wake()

    def _collect_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for conn, out, keep in done:
            if conn.sock.fileno() not in self._conns:
                continue
            conn.state = _WRITING
            conn.out = [memoryview(part) for part in out]
            conn.close_after = not keep
            conn.deadline = time.monotonic() + self.limits.idle_timeout_s
            self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
            self._flush(conn)

    def _refuse(self, conn: _Conn, status: int, detail: str) -> None:
        conn.inbuf.clear()
        conn.state = _WRITING
        conn.out = [memoryview(error_response(status, detail))]
        conn.close_after = True
        conn.deadline = time.monotonic() + self.limits.idle_timeout_s
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            if isinstance(conn.sock, ssl.SSLSocket):  # no sendmsg through TLS: one part at a time
                sent = conn.sock.send(conn.out[0])
            else:
                sent = conn.sock.sendmsg(conn.out[:16])  # head and body parts in one call, as the kernel takes them
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        except OSError:
            self._close(conn)
            return
        if sent:
            conn.deadline = time.monotonic() + self.limits.idle_timeout_s
        while conn.out and sent >= len(conn.out[0]):
            sent -= len(conn.out.pop(0))
        if conn.out:
            conn.out[0] = conn.out[0][sent:]
            return
        if conn.close_after:
            self._linger(conn)
            return
        conn.state = _WAIT_HEAD
        conn.request = None
        conn.deadline = time.monotonic() + self.limits.idle_timeout_s
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.inbuf:  # a pipelined request arrived with the previous one
            conn.deadline = time.monotonic() + self.limits.head_timeout_s
            self._advance(conn)

    def _linger(self, conn: _Conn) -> None:
        """Close our side, then read and drop what the client still sends for a moment before closing."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = _LINGER
        conn.inbuf.clear()
        conn.deadline = time.monotonic() + _LINGER_S
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.state != _IN_APP and c.deadline <= now]:
            if conn.state == _WAIT_HEAD and conn.inbuf or conn.state == _WAIT_BODY:
                try:  # a request that did not arrive in time: say so, best effort, then close
                    conn.sock.send(error_response(408, "the request did not arrive in time"))
                except OSError:
                    pass
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self._conns.pop(fd, None) is None:
            return
        if conn.state != _IN_APP:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()
