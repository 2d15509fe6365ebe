"""/metrics served from a process of its own, so scrapes never wait for the collector's interpreter lock.

``serve`` renders the exposition once per cycle (``collector.exposition``); a collection cycle and its
render are a second or more of Python work that holds the interpreter lock, and every scrape thread in the
same process waited for it at each step (accept, read, write), which made the tail latency under load. The
parent binds the listening socket (so bind errors and port 0 behave as before) and hands it to a child
``python -m collector.metrics_process FD``; after each render it writes the text and gzip bytes to the
child's stdin as one frame (two lengths, then the bytes). The child runs ``MetricsServer`` over the latest
frame and exits when its stdin closes, so it never outlives the parent. A child that died is started
again on the next render, on the same socket, with the latest exposition.
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

from collector.exposition import (
    BACKLOG,
    Exposition,
    ExpositionCache,
    MetricsServer,
    filter_text,
)

log = logging.getLogger(__name__)
_FRAME = struct.Struct("!QQ")  # text length, gzip length
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class MetricsProcess:
    """Serves ``cache`` on host:port from a child process; ``shutdown()`` then ``server_close()``."""

    def __init__(self, cache: ExpositionCache, host: str, port: int) -> None:
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
        return subprocess.Popen([sys.executable, "-m", "collector.metrics_process", str(fd)],
                                stdin=subprocess.PIPE, pass_fds=(fd,), env=env)

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


def _read_exactly(src: BinaryIO, size: int) -> bytes | None:
    data = src.read(size)  # a buffered reader returns short only at end of file
    return data if len(data) == size else None


class _Published:
    """The latest frame from the parent, as the ``ExpositionSource`` the server reads."""

    def __init__(self) -> None:
        self._current: Exposition | None = None
        self.ready = threading.Event()

    def set(self, text: bytes, gzipped: bytes) -> None:
        self._current = Exposition(families=(), text=text, gzipped=gzipped, rendered_at=time.time(),
                                   render_seconds=0.0)
        self.ready.set()

    def current(self) -> Exposition:
        self.ready.wait()
        assert self._current is not None
        return self._current

    def filtered(self, names: Collection[str]) -> bytes:
        return filter_text(self.current().text, names)


def child_main(fd: int, src: BinaryIO) -> int:
    """Serve the listening socket ``fd`` with frames read from ``src`` until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    published = _Published()
    sock = socket.socket(fileno=fd)
    server = MetricsServer(published, sock=sock)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    while True:
        head = _read_exactly(src, _FRAME.size)
        if head is None:
            return 0
        text_len, gz_len = _FRAME.unpack(head)
        text, gzipped = _read_exactly(src, text_len), _read_exactly(src, gz_len)
        if text is None or gzipped is None:
            return 0
        published.set(text, gzipped)


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1]), sys.stdin.buffer))
