"""The systemd notify protocol (sd_notify(3)) without libsystemd: one datagram per state change.

``NOTIFY_SOCKET`` names a datagram socket (a path, or ``@name`` for the abstract namespace); outside systemd it
is unset and every call is a no-op. ``ServiceNotifier`` is what ``serve`` uses: ``READY=1`` once the service
has started and its first collection cycle is stored (a role without collection: once started), ``WATCHDOG=1``
after every finished collection cycle, so a collector stuck in a cycle stops the pings and systemd restarts
the service after ``WatchdogSec``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; False when unset or the send failed."""
    env = os.environ if environ is None else environ
    target = env.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd at NOTIFY_SOCKET %r: %s", target, exc.strerror or exc)
        return False
    return True


def watchdog_seconds(environ: dict[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd asked for (``WATCHDOG_USEC``), or None when there is none for this process."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


class ServiceNotifier:
    """READY once started and (with a collector) the first cycle stored; WATCHDOG after every cycle."""

    def __init__(self, *, collects: bool) -> None:
        self._collects = collects
        self._started = False
        self._stored = False
        self._ready_sent = False
        self._lock = threading.Lock()
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))

    def started(self) -> None:
        """The service is listening and its jobs are scheduled."""
        with self._lock:
            self._started = True
            self._maybe_ready()

    def cycle_done(self, stored: bool) -> None:
        """A collection cycle finished (``stored``: at least one host's samples were written)."""
        if not self.enabled:
            return
        with self._lock:
            notify("WATCHDOG=1")
            if stored and not self._stored:
                self._stored = True
                self._maybe_ready()
            elif not stored and not self._stored:
                notify("STATUS=waiting for the first stored collection cycle (no host answered yet)")

    def stopping(self) -> None:
        if self.enabled:
            notify("STOPPING=1")

    def _maybe_ready(self) -> None:
        if self._ready_sent or not self.enabled or not self._started or (self._collects and not self._stored):
            return
        self._ready_sent = True
        notify("READY=1\nSTATUS=" + ("first collection cycle stored" if self._collects else "started"))
