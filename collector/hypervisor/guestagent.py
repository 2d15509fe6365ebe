"""Guest filesystem use through the QEMU guest agent, asked rarely and never inside a collection cycle.

``virDomainGetGuestInfo(VIR_DOMAIN_GUEST_INFO_FILESYSTEM)`` goes through the agent inside the guest, so it can
be slow or never answer. libvirt refuses it on a read-only connection ("read only access prevents
virDomainGetGuestInfo"), so the probe opens its own read-write connection. What happens without an agent:

* no ``org.qemu.guest_agent.0`` channel in the domain: libvirt raises at once ("QEMU guest agent is not
  configured", VIR_ERR_ARGUMENT_UNSUPPORTED);
* a channel but no agent running: libvirt raises after its agent timeout (VIR_ERR_AGENT_UNRESPONSIVE);
* a driver without the call (the test driver): VIR_ERR_NO_SUPPORT.

Each is logged at debug level and the VM's use stays unknown (no reading, no error counted). Calls run in a
thread of the probe's own; each call gets ``timeout_s`` before the probe gives up on it and moves on, and a VM
is asked at most once per ``every_s``. The sampler only ever calls ``request`` (a queue put) and ``take``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import libvirt

from collector.guestfs import parse_guest_info
from collector.model import GuestFsUsage

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GuestAgentProbe:
    """Ask each running VM's guest agent for filesystem use at most every ``every_s``, off the cycle."""

    def __init__(self, uri: str, *, every_s: float = 3600.0, timeout_s: float = 10.0,
                 open_readwrite: Callable[[str], Any] | None = None,
                 clock: Callable[[], datetime] = _utcnow, monotonic: Callable[[], float] = time.monotonic) -> None:
        if every_s <= 0 or timeout_s <= 0:
            raise ValueError(f"every_s and timeout_s must be > 0 seconds, got {every_s!r} and {timeout_s!r}")
        self._uri = uri
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._open = open_readwrite or libvirt.open
        self._clock = clock
        self._monotonic = monotonic
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._asked_at: dict[str, float] = {}
        self._results: dict[str, GuestFsUsage] = {}
        self._unknown: set[str] = set()
        self._pending = 0  # queued or being asked
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    @property
    def unknown(self) -> frozenset[str]:
        """UUIDs whose agent did not answer (no agent, unsupported, or too slow) at their last ask."""
        with self._lock:
            return frozenset(self._unknown)

    def request(self, uuids: Iterable[str]) -> None:
        """Queue the VMs that are due; returns at once (the asking happens in the probe's thread)."""
        now = self._monotonic()
        with self._lock:
            due = [u for u in uuids if now - self._asked_at.get(u, -self._every_s) >= self._every_s]
            for uuid in due:
                self._asked_at[uuid] = now
            self._pending += len(due)
            if due:
                self._idle.clear()
        if not due:
            return
        for uuid in due:
            self._queue.put(uuid)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"guest-agent {self._uri}", daemon=True)
            self._thread.start()

    def take(self) -> dict[str, GuestFsUsage]:
        """The readings that arrived since the last call (by UUID)."""
        with self._lock:
            out, self._results = self._results, {}
        return out

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until every queued VM was asked (for tests and shutdown); True when idle."""
        return self._idle.wait(timeout_s)

    def close(self) -> None:
        """Stop the thread after the VM it is asking; close the connection."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(self._timeout_s + 1.0)
            self._thread = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError as exc:
                log.debug("closing the guest-agent connection to %s: %s", self._uri, exc)

    def _run(self) -> None:
        while True:
            uuid = self._queue.get()
            if uuid is None:
                return
            self._ask(uuid)
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    def _ask(self, uuid: str) -> None:
        box: list[GuestFsUsage | None] = []
        call = threading.Thread(target=lambda: box.append(self._call(uuid)), name="guest-agent call", daemon=True)
        call.start()
        call.join(self._timeout_s)
        reading = box[0] if box else None
        if call.is_alive():
            log.debug("guest agent of %s did not answer within %.0f s; filesystem use unknown", uuid,
                      self._timeout_s)
        with self._lock:
            if reading is None:
                self._unknown.add(uuid)
            else:
                self._unknown.discard(uuid)
                self._results[uuid] = reading

    def _call(self, uuid: str) -> GuestFsUsage | None:
        try:
            if self._conn is None:
                self._conn = self._open(self._uri)
            dom = self._conn.lookupByUUIDString(uuid)
            info = dom.guestInfo(libvirt.VIR_DOMAIN_GUEST_INFO_FILESYSTEM, 0)
        except libvirt.libvirtError as exc:
            # no agent channel, no agent running, or a driver without the call: the use is simply unknown
            log.debug("guest agent of %s on %s: %s (code %s); filesystem use unknown", uuid, self._uri, exc,
                      exc.get_error_code())
            return None
        return parse_guest_info(info, self._clock())
