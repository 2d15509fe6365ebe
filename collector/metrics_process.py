"""/metrics served from a process of its own, so scrapes never wait for the collector's interpreter lock.

``serve`` renders the exposition once per cycle (``collector.exposition``); a collection cycle and its
render are a second or more of Python work that holds the interpreter lock, and every scrape thread in the
same process waited for it at each step (accept, read, write), which made the tail latency under load. The
parent binds the listening socket (so bind errors and port 0 behave as before) and hands it to a child
``python -m collector.metrics_process FD``; after each render it writes the text and gzip bytes to the
child's stdin as one frame (two lengths, then the bytes). The child runs ``MetricsServer`` over the latest
frame (one thread: its event loop also reads the pipe) and exits when its stdin closes, so it never
outlives the parent. A child that died is started again on the next render, on the same socket, with the
latest exposition. A web configuration file (``web_config_file``: TLS, basic auth) is read by the child,
which reads it again when it changes; the parent reads it once first so a bad file stops ``serve`` at start.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO

from collector.exposition import Exposition, ExpositionCache, filter_text
from collector.metrics_server import BACKLOG, MetricsServer
from collector.webconfig import WebConfigError, WebConfigWatch, load_web_config

log = logging.getLogger(__name__)
_FRAME = struct.Struct("!QQ")  # text length, gzip length
_PIPE_READ_BYTES = 1 << 20
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class MetricsProcess:
    """Serves ``cache`` on host:port from a child process; ``shutdown()`` then ``server_close()``."""

    def __init__(self, cache: ExpositionCache, host: str, port: int, web_config_file: str = "") -> None:
        if web_config_file:
            load_web_config(web_config_file)  # WebConfigError (an InputError) here, before anything starts
        self._web_config_file = web_config_file
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self.server_address: tuple[str, int] = self._sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._latest: tuple[bytes, bytes] | None = None
        self._closed = False
        self._child = self._spawn()
        cache.subscribe(self.publish)
        self.publish(cache.current())

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self._sock.fileno()
        # the child imports this very package, wherever the parent's working directory is
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")))))
        args = [sys.executable, "-m", "collector.metrics_process", str(fd)]
        if self._web_config_file:
            args.append(os.path.abspath(self._web_config_file))
        return subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=(fd,), env=env)

    def publish(self, exp: Exposition) -> None:
        """Hand a new exposition to the child (restarting it when it died)."""
        with self._lock:
            self._latest = (exp.text, exp.gzipped)
            if self._closed:
                return
            if self._child.poll() is not None:
                log.warning("metrics server process exited with %s; starting it again", self._child.returncode)
                _stop(self._child)
                self._child = self._spawn()
            try:
                _write_frame(self._child.stdin, *self._latest)  # type: ignore[arg-type]
            except OSError as exc:  # died between poll and write: the next render restarts it
                log.warning("metrics server process did not take the exposition: %s", exc)

    @property
    def pid(self) -> int:
        return self._child.pid

    def shutdown(self) -> None:
        """Close the child's stdin (it exits) and wait for it."""
        with self._lock:
            self._closed = True
            _stop(self._child)

    def server_close(self) -> None:
        self._sock.close()


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (the sign to exit) and reap it; kill it when it does not go."""
    if child.stdin is not None:
        try:
            child.stdin.close()
        except OSError:
            pass
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(5)


def _write_frame(out: BinaryIO, text: bytes, gzipped: bytes) -> None:
    out.write(_FRAME.pack(len(text), len(gzipped)))
    out.write(text)
    out.write(gzipped)
    out.flush()


class _Frames:
    """Frames read from the parent's pipe, in pieces as they arrive; ``feed`` returns the newest complete one."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> tuple[bytes, bytes] | None:
        self._buf += chunk
        newest = None
        while len(self._buf) >= _FRAME.size:
            text_len, gz_len = _FRAME.unpack_from(self._buf)
            end = _FRAME.size + text_len + gz_len
            if len(self._buf) < end:
                break
            newest = (bytes(self._buf[_FRAME.size:_FRAME.size + text_len]),
                      bytes(self._buf[_FRAME.size + text_len:end]))
            del self._buf[:end]
        return newest


class _Published:
    """The latest frame from the parent, as the ``ExpositionSource`` the server reads."""

    def __init__(self, text: bytes, gzipped: bytes) -> None:
        self._current = _exposition(text, gzipped)

    def set(self, text: bytes, gzipped: bytes) -> None:
        self._current = _exposition(text, gzipped)

    def current(self) -> Exposition:
        return self._current

    def filtered(self, names: Collection[str]) -> bytes:
        return filter_text(self._current.text, names)


def _exposition(text: bytes, gzipped: bytes) -> Exposition:
    return Exposition(families=(), text=text, gzipped=gzipped, rendered_at=time.time(), render_seconds=0.0)


def _first_frame(fd: int, frames: _Frames) -> tuple[bytes, bytes] | None:
    """Block until the parent's first frame (connections wait in the backlog meanwhile); None at end of pipe."""
    while (chunk := os.read(fd, _PIPE_READ_BYTES)):
        if (frame := frames.feed(chunk)) is not None:
            return frame
    return None


def child_main(fd: int, src_fd: int, web_config_file: str = "") -> int:
    """Serve the listening socket ``fd`` with frames read from ``src_fd`` until the parent closes it
    (with TLS and basic auth as ``web_config_file`` says, when given).

    One thread: the server's loop also reads the pipe, so a new exposition is taken between two
    writes and a response under way keeps the bytes it started with.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        web = WebConfigWatch(web_config_file) if web_config_file else None
    except WebConfigError as exc:  # the file went bad since the parent read it: never serve without it
        log.error("%s; /metrics is not served until it is fixed", exc)
        return 2
    frames = _Frames()
    first = _first_frame(src_fd, frames)
    if first is None:
        return 0
    published = _Published(*first)
    server = MetricsServer(published, sock=socket.socket(fileno=fd), web_config=web)
    os.set_blocking(src_fd, False)

    def on_pipe() -> None:
        try:
            chunk = os.read(src_fd, _PIPE_READ_BYTES)
        except BlockingIOError:
            return
        if not chunk:
            server.shutdown()  # the parent let go
        elif (frame := frames.feed(chunk)) is not None:
            published.set(*frame)

    server.watch(src_fd, on_pipe)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1]), sys.stdin.fileno(), sys.argv[2] if len(sys.argv) > 2 else ""))
