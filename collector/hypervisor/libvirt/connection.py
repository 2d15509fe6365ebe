"""The sampler's read-only connection to one URI: lazy open, reconnect backoff, and what the driver supports."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import libvirt

from collector.errors import ConnectionFailedError, HypervisorError, OperationUnsupportedError
from collector.hypervisor.libvirt.errors import (
    FLAG_REJECTED,
    close_quietly,
    map_libvirt_errors,
    translate_libvirt_error,
)
from collector.hypervisor.libvirt.stats import STATS_GROUPS

log = logging.getLogger(__name__)

_MAX_RECONNECT_DELAY_S = 60.0

#: One bulk stats record: the virDomain and its stats dict (empty when the driver has no bulk call).
DomainRecord = tuple[Any, Mapping[str, Any]]


class WaitingToReconnect(ConnectionFailedError):
    """Not connected, and the backoff delay before the next attempt has not passed yet."""


class ReadOnlyLink:
    """A read-only connection that opens lazily and, after a failure, waits 1, 2, 4 ... 60 s before retrying.

    It also remembers what the connected driver lacks (``unsupported`` per-domain calls, NOWAIT, the bulk
    stats call); reconnecting forgets it, as the daemon may have been upgraded.
    """

    def __init__(self, uri: str, open_readonly: Callable[[str], Any], monotonic: Callable[[], float]) -> None:
        self.uri = uri
        self.host = ""
        self.host_cpus: int | None = None
        self.driver = ""
        #: The test driver's info() cpuTime is wall-clock ns since the epoch, not CPU time.
        self.synthetic_cpu = False
        #: Per-domain calls ("metadata", "snapshots", "blockStats", ...) the driver refused as unsupported.
        self.unsupported: set[str] = set()
        self._open = open_readonly
        self._monotonic = monotonic
        self._conn: Any = None
        self._nowait = True
        self._bulk_supported = True
        self._failures = 0
        self._next_attempt_at = 0.0

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def connect(self) -> Any:
        """Return the open connection, opening it if due; raises ConnectionFailedError."""
        if self._conn is not None:
            return self._conn
        now = self._monotonic()
        if now < self._next_attempt_at:
            raise WaitingToReconnect(
                f"{self.uri}: not connected; next attempt in {self._next_attempt_at - now:.1f}s "
                f"after {self._failures} failed attempt(s)"
            )
        try:
            with map_libvirt_errors(f"openReadOnly({self.uri!r})"):
                conn = self._open(self.uri)
                driver = conn.getType()
                host = conn.getHostname()
                host_cpus = int(conn.getInfo()[2])  # [model, memory MiB, cpus, mhz, nodes, sockets, ...]
        except HypervisorError as exc:
            self._failures += 1
            delay = min(_MAX_RECONNECT_DELAY_S, 2.0 ** (self._failures - 1))
            self._next_attempt_at = now + delay
            raise ConnectionFailedError(f"{exc}; next attempt in {delay:.0f}s") from exc
        self._conn, self.driver, self.host, self.host_cpus = conn, driver, host, host_cpus
        self.synthetic_cpu = driver.lower() == "test"
        self._failures = 0
        self._next_attempt_at = 0.0
        self._nowait = True
        self._bulk_supported = True
        self.unsupported.clear()
        log.info("connected to %s (driver %s, host %s)", self.uri, driver, host)
        return conn

    def drop(self) -> None:
        """Forget a broken connection; the next ``connect`` opens a new one (subject to the backoff)."""
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def close(self) -> None:
        """Close the connection and reset the backoff: the next ``connect`` tries at once."""
        self.drop()
        self._next_attempt_at = 0.0
        self._failures = 0

    def records(self) -> list[DomainRecord]:
        """One bulk stats call (NOWAIT where supported); every domain with an empty dict if unsupported.

        Raises ConnectionFailedError when not connected, HypervisorError when listing fails.
        """
        conn = self.connect()
        what = f"getAllDomainStats on {self.uri}"
        if self._bulk_supported and self._nowait:
            try:
                records: list[DomainRecord] = conn.getAllDomainStats(
                    STATS_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
                )
                return records
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in FLAG_REJECTED:
                    raise translate_libvirt_error(exc, what) from exc
                # Daemons before libvirt 4.5 reject NOWAIT: ask without it from now on.
                log.debug("%s: bulk stats without NOWAIT (%s)", self.uri, exc.get_error_message())
                self._nowait = False
        if self._bulk_supported:
            try:
                with map_libvirt_errors(what):
                    records = conn.getAllDomainStats(STATS_GROUPS, 0)
                return records
            except OperationUnsupportedError as exc:
                log.info("%s: no bulk stats (%s); sampling domain by domain", self.uri, exc)
                self._bulk_supported = False
        with map_libvirt_errors(f"listAllDomains on {self.uri}"):
            return [(dom, {}) for dom in conn.listAllDomains(0)]
