"""``LibvirtSource``: one sampling cycle over every domain of one URI (``HypervisorSource``), never raising.

One bulk ``getAllDomainStats`` call per cycle (``ReadOnlyLink.records``), decoded by ``stats``; labels,
snapshot times and the per-domain path for drivers whose bulk call returns only the state group (the test
driver) come from ``domains``. One VM's failure is reported in the batch, never raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import libvirt

from collector.errors import ConnectionFailedError, HypervisorError, NoDataError, VmNotFoundError, VmShutOffError
from collector.hypervisor.base import error_kind
from collector.hypervisor.guestagent import GuestAgentProbe
from collector.hypervisor.libvirt.balloon import domains_without_period, set_balloon_period
from collector.hypervisor.libvirt.connection import DomainRecord, ReadOnlyLink, WaitingToReconnect
from collector.hypervisor.libvirt.domains import DomainCache, DomainReader
from collector.hypervisor.libvirt.errors import silence_libvirt_stderr
from collector.hypervisor.libvirt.stats import has_bulk_usage, sample_from_bulk
from collector.model import GuestFsUsage, SampleBatch, VmError, VmRef, VmSample, VmState

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LibvirtSource:
    """Samples every domain of one libvirt URI over a read-only connection (``HypervisorSource``).

    The connection opens lazily; after a failure the next attempt waits 1, 2, 4 ... 60 s, and until
    then ``sample_all`` returns a batch with ``ok=False``. Labels are read with one ``metadata()``
    call per domain per cycle (parsed only when the text changes). Snapshot times cost one call per
    domain plus one per snapshot (about 0.15 ms per call over qemu:///system, measured): too much for
    every cycle of a large host, so they are refreshed when a domain is first seen and then every
    ``snapshot_every_cycles`` cycles (spread over the cycles by UUID); the cached times are reported in
    between. The per-domain path re-reads the domain XML (disks, NICs, max vCPUs) on the same schedule
    (``xml_refresh_every_cycles``) and whenever the domain restarts.
    With ``enable_balloon_stats`` a short read-write connection turns on the guest's balloon stats
    period (``balloon_period_s``) once per newly started domain that has none configured.
    """

    def __init__(
        self,
        uri: str,
        *,
        balloon_period_s: int = 10,
        enable_balloon_stats: bool = False,
        snapshot_every_cycles: int = 30,
        xml_refresh_every_cycles: int = 30,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        open_readonly: Callable[[str], Any] | None = None,
        open_readwrite: Callable[[str], Any] | None = None,
        guest_agent_every_s: float = 0.0,
        guest_agent_timeout_s: float = 10.0,
    ) -> None:
        if balloon_period_s < 0:
            raise ValueError(f"balloon_period_s must be >= 0 seconds, got {balloon_period_s!r}")
        if snapshot_every_cycles < 1 or xml_refresh_every_cycles < 1:
            raise ValueError(
                f"refresh periods must be >= 1 cycle, got snapshot_every_cycles={snapshot_every_cycles!r}, "
                f"xml_refresh_every_cycles={xml_refresh_every_cycles!r}"
            )
        silence_libvirt_stderr()
        self._uri = uri
        self._balloon_period_s = balloon_period_s
        self._enable_balloon_stats = enable_balloon_stats and balloon_period_s > 0
        self._clock = clock
        self._monotonic = monotonic
        self._open_readwrite = open_readwrite or libvirt.open
        self._link = ReadOnlyLink(uri, open_readonly or libvirt.openReadOnly, monotonic)
        self._reader = DomainReader(self._link, is_due=self._due, snapshot_every_cycles=snapshot_every_cycles,
                                    xml_refresh_every_cycles=xml_refresh_every_cycles)
        self._cycle = 0
        self._cache: dict[str, DomainCache] = {}
        self._agent = (GuestAgentProbe(uri, every_s=guest_agent_every_s, timeout_s=guest_agent_timeout_s,
                                       open_readwrite=self._open_readwrite, clock=clock)
                       if guest_agent_every_s > 0 else None)

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def driver(self) -> str:
        """libvirt driver type of the open connection (e.g. "QEMU", "TEST"); empty before connecting."""
        return self._link.driver

    @property
    def guest_agent(self) -> GuestAgentProbe | None:
        """The guest filesystem probe (None when ``guest_agent_every_s`` is 0)."""
        return self._agent

    def close(self) -> None:
        """Close the connection (and the guest-agent probe's); the next ``sample_all`` reconnects at once."""
        if self._agent is not None:
            self._agent.close()
        self._link.close()

    def __enter__(self) -> LibvirtSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one cycle ------------------------------------------------------------------------------

    def sample_all(self) -> SampleBatch:
        """Sample every domain once; never raises (see ``HypervisorSource.sample_all``)."""
        started = self._monotonic()
        taken_at = self._clock()
        try:
            records = self._link.records()
        except ConnectionFailedError as exc:
            if self._link.is_open:
                self._link.drop()
            # Warn on each failed attempt; the cycles waiting for the next attempt stay quiet.
            log.log(logging.DEBUG if isinstance(exc, WaitingToReconnect) else logging.WARNING, "%s", exc)
            return self._batch(taken_at, started, (), (VmError(None, "connection", str(exc)),), ok=False)
        except HypervisorError as exc:
            log.warning("listing domains on %s failed: %s", self._uri, exc)
            return self._batch(taken_at, started, (), (VmError(None, error_kind(exc), str(exc)),), ok=False)
        self._cycle += 1
        samples: list[VmSample] = []
        errors: list[VmError] = []
        ok = self._sample_records(records, samples, errors)
        if not ok:
            return self._batch(taken_at, started, tuple(samples), tuple(errors), ok=False)
        return self._batch(taken_at, started, tuple(samples), tuple(errors), ok=True,
                           guest_fs=self._guest_fs(samples))

    def _sample_records(self, records: list[DomainRecord], samples: list[VmSample], errors: list[VmError]) -> bool:
        """Sample each record into ``samples``/``errors``; False when the connection broke mid-cycle."""
        seen: set[str] = set()
        new_running: list[tuple[Any, DomainCache]] = []
        for dom, stats in records:
            ref: VmRef | None = None
            try:
                ref = VmRef(self._uri, dom.UUIDString(), dom.name())
                seen.add(ref.uuid)
                entry = self._entry(dom, ref.uuid)
                sample = self._sample(dom, ref, stats, entry)
                samples.append(sample)
                errors.extend(self._usage_gap(sample))
                if self._balloon_due(sample, entry):
                    new_running.append((dom, entry))
            except ConnectionFailedError as exc:
                # The daemon went away mid-cycle: report what we have and reconnect next cycle.
                self._link.drop()
                log.warning("%s", exc)
                errors.append(VmError(ref, "connection", str(exc)))
                return False
            except (VmNotFoundError, VmShutOffError) as exc:
                log.debug("%s: %s", ref.name if ref else "domain", exc)
                errors.append(VmError(ref, error_kind(exc), str(exc)))
            except HypervisorError as exc:
                log.warning("%s: %s", ref.name if ref else "domain", exc)
                errors.append(VmError(ref, error_kind(exc), str(exc)))
            except Exception as exc:  # noqa: BLE001 - one VM must never end the cycle (STYLE.md section 5)
                log.exception("sampling %s failed", ref.name if ref else "a domain")
                errors.append(VmError(ref, "error", f"{type(exc).__name__}: {exc}"))
        for uuid in self._cache.keys() - seen:
            del self._cache[uuid]
        if new_running:
            self._turn_on_balloon_stats(new_running)
        return True

    def _usage_gap(self, sample: VmSample) -> list[VmError]:
        """Keep a running VM's inventory row without CPU time, but say that this cycle has no usage for it."""
        if sample.state is not VmState.RUNNING or sample.cpu_time_ns is not None or self._link.synthetic_cpu:
            return []
        gap = NoDataError(f"{sample.ref.name}: running but libvirt reported no CPU time this cycle")
        log.warning("%s", gap)
        return [VmError(sample.ref, error_kind(gap), str(gap))]

    def _balloon_due(self, sample: VmSample, entry: DomainCache) -> bool:
        return (self._enable_balloon_stats and sample.state is VmState.RUNNING
                and entry.balloon_checked_id != entry.dom_id)

    def _guest_fs(self, samples: list[VmSample]) -> Mapping[str, GuestFsUsage]:
        """Hand the running QEMU domains that are due to the guest-agent probe; return what it has so far."""
        if self._agent is None or self._link.driver.upper() != "QEMU":  # only QEMU has guest agents
            return {}
        self._agent.request(s.ref.uuid for s in samples if s.state is VmState.RUNNING)
        return self._agent.take()

    def _batch(
        self,
        taken_at: datetime,
        started: float,
        samples: tuple[VmSample, ...],
        errors: tuple[VmError, ...],
        *,
        ok: bool,
        guest_fs: Mapping[str, GuestFsUsage] | None = None,
    ) -> SampleBatch:
        return SampleBatch(
            uri=self._uri,
            host=self._link.host,
            taken_at=taken_at,
            samples=samples,
            errors=errors,
            duration_s=self._monotonic() - started,
            ok=ok,
            driver=self._link.driver,
            host_cpus=self._link.host_cpus,
            guest_fs=guest_fs or {},
        )

    def _entry(self, dom: Any, uuid: str) -> DomainCache:
        dom_id = dom.ID()
        entry = self._cache.get(uuid)
        if entry is None:
            entry = self._cache[uuid] = DomainCache.for_domain(uuid, dom_id)
        elif entry.dom_id != dom_id:
            # Restarted (or started/stopped): the live definition may differ now.
            entry.dom_id = dom_id
            entry.xml_facts = None
        return entry

    def _due(self, entry: DomainCache, every: int) -> bool:
        return (self._cycle + entry.offset) % every == 0

    def _sample(self, dom: Any, ref: VmRef, stats: Mapping[str, Any], entry: DomainCache) -> VmSample:
        labels = self._reader.labels(dom, ref, entry)
        snapshots = self._reader.snapshot_times(dom, ref, entry)
        if has_bulk_usage(stats):
            return sample_from_bulk(ref, self._link.host, stats, labels=labels, snapshots=snapshots,
                                    synthetic_cpu=self._link.synthetic_cpu)
        # Drivers such as the test driver return only the state group from the bulk call.
        return self._reader.sample(dom, ref, entry, labels, snapshots)

    def _turn_on_balloon_stats(self, doms: list[tuple[Any, DomainCache]]) -> None:
        """Set the balloon stats period on running domains that have none (one short RW connection)."""
        for _dom, entry in doms:
            entry.balloon_checked_id = entry.dom_id
        if self._link.synthetic_cpu:
            return  # test:/// opens a separate in-memory copy per connection: nothing to set
        todo = domains_without_period(dom for dom, _entry in doms)
        set_balloon_period(self._uri, todo, self._balloon_period_s, self._open_readwrite)
