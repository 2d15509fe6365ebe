"""Per-domain reads of one sampling cycle: labels, snapshot times, and the call-by-call stats path.

The bulk stats call covers usage on QEMU; what it cannot give (our labels in the domain metadata, snapshot
times) and what drivers without bulk usage lack (the test driver) is read here, one domain at a time, with
what does not change every cycle cached per domain in a ``DomainCache``.
"""

from __future__ import annotations

import functools
import logging
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import libvirt

from collector.domxml import LABELS_NAMESPACE, parse_labels
from collector.errors import OperationUnsupportedError, VmShutOffError
from collector.hypervisor.libvirt.connection import ReadOnlyLink
from collector.hypervisor.libvirt.errors import map_libvirt_errors, translate_libvirt_error
from collector.hypervisor.libvirt.stats import (
    KIB,
    XmlFacts,
    is_active,
    memory_used_bytes,
    parse_domain_xml,
    parse_snapshot_time,
    vm_state,
)
from collector.model import DiskSample, NetSample, VmRef, VmSample

log = logging.getLogger(__name__)

_LABEL_CACHE_SIZE = 4096


@dataclass(slots=True)
class DomainCache:
    """What we remember about one domain between cycles (keyed by UUID)."""

    dom_id: int
    offset: int  # spreads periodic refreshes over cycles
    metadata_xml: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    snapshot_times: tuple[datetime, ...] | None = None
    xml_facts: XmlFacts | None = None
    balloon_checked_id: int | None = None
    block_info: dict[str, Any] = field(default_factory=dict)  # per-domain path: blockInfo by target dev

    @classmethod
    def for_domain(cls, uuid: str, dom_id: int) -> DomainCache:
        """A fresh entry whose refresh offset is derived from the UUID (stable across restarts)."""
        return cls(dom_id=dom_id, offset=zlib.crc32(uuid.encode()) % 1_000_003)


@dataclass(frozen=True, slots=True)
class _Usage:
    """What the per-domain calls read of a running domain."""

    mem_stats: Mapping[str, int] | None
    disks: tuple[DiskSample, ...]
    nets: tuple[NetSample, ...]


class DomainReader:
    """Reads one domain at a time over ``link``; ``is_due(entry, every)`` says when a cached fact is stale."""

    def __init__(self, link: ReadOnlyLink, *, is_due: Callable[[DomainCache, int], bool],
                 snapshot_every_cycles: int, xml_refresh_every_cycles: int) -> None:
        self._link = link
        self._is_due = is_due
        self._snapshot_every = snapshot_every_cycles
        self._xml_every = xml_refresh_every_cycles
        self._label_cache: dict[str, dict[str, str]] = {}

    # -- metadata -------------------------------------------------------------------------------

    def labels(self, dom: Any, ref: VmRef, entry: DomainCache) -> Mapping[str, str]:
        """Our labels from the domain metadata; parsed only when the metadata text changed."""
        if "metadata" in self._link.unsupported:
            return {}
        try:
            metadata_xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, LABELS_NAMESPACE, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                entry.metadata_xml, entry.labels = None, {}
                return entry.labels
            err = translate_libvirt_error(exc, f"metadata({ref.name!r})")
            if isinstance(err, OperationUnsupportedError):
                self._link.unsupported.add("metadata")
                return {}
            raise err from exc
        if metadata_xml != entry.metadata_xml:
            entry.metadata_xml, entry.labels = metadata_xml, self._parse_labels(metadata_xml, ref)
        return entry.labels

    def _parse_labels(self, metadata_xml: str, ref: VmRef) -> dict[str, str]:
        labels = self._label_cache.get(metadata_xml)
        if labels is None:
            try:
                labels = parse_labels(metadata_xml)
            except ET.ParseError as exc:
                log.warning("%s: unreadable labels %r (%s); ignoring them", ref.name, metadata_xml, exc)
                labels = {}
            if len(self._label_cache) >= _LABEL_CACHE_SIZE:
                self._label_cache.clear()
            self._label_cache[metadata_xml] = labels
        return labels

    def snapshot_times(self, dom: Any, ref: VmRef, entry: DomainCache) -> tuple[datetime, ...]:
        """Snapshot creation times, oldest first; re-read when first seen and every ``snapshot_every_cycles``."""
        if "snapshots" in self._link.unsupported:
            return ()
        if entry.snapshot_times is not None and not self._is_due(entry, self._snapshot_every):
            return entry.snapshot_times
        times: list[datetime] = []
        try:
            with map_libvirt_errors(f"listAllSnapshots({ref.name!r})"):
                for snap in dom.listAllSnapshots(0):
                    created = parse_snapshot_time(snap.getXMLDesc(0))
                    if created is not None:
                        times.append(created)
        except OperationUnsupportedError:
            self._link.unsupported.add("snapshots")
            return ()
        entry.snapshot_times = tuple(sorted(times))
        return entry.snapshot_times

    # -- the call-by-call path ------------------------------------------------------------------

    def sample(
        self,
        dom: Any,
        ref: VmRef,
        entry: DomainCache,
        labels: Mapping[str, str],
        snapshots: tuple[datetime, ...],
    ) -> VmSample:
        """Sample a domain with one call per value, for drivers whose bulk call returns only the state."""
        try:
            state_code, max_mem_kib, mem_kib, nr_vcpus, cpu_time_ns = dom.info()
        except libvirt.libvirtError as exc:
            raise translate_libvirt_error(exc, f"info({ref.name!r})") from exc
        state = vm_state(state_code)
        running = is_active(state)
        facts = self._xml_facts(dom, ref, entry, nr_vcpus)
        usage = self._usage(dom, ref, entry, facts) if running else _Usage(None, (), ())
        # memoryStats() keys carry no "balloon." prefix; swap_in/swap_out are KiB, major_fault a count.
        mem_stats = usage.mem_stats or {}
        swap_in = mem_stats.get("swap_in")
        swap_out = mem_stats.get("swap_out")
        return VmSample(
            ref=ref,
            host=self._link.host,
            state=state,
            vcpus=nr_vcpus,
            max_vcpus=max(facts.max_vcpus, nr_vcpus),
            memory_bytes=mem_kib * KIB,
            max_memory_bytes=max_mem_kib * KIB,
            cpu_time_ns=cpu_time_ns if running and not self._link.synthetic_cpu else None,
            memory_used_bytes=memory_used_bytes(mem_stats, prefix="") if usage.mem_stats else None,
            swap_in_bytes=swap_in * KIB if swap_in is not None else None,
            swap_out_bytes=swap_out * KIB if swap_out is not None else None,
            major_faults=mem_stats.get("major_fault"),
            disks=usage.disks,
            nets=usage.nets,
            labels=labels,
            snapshot_times=snapshots,
        )

    def _xml_facts(self, dom: Any, ref: VmRef, entry: DomainCache, nr_vcpus: int) -> XmlFacts:
        facts = entry.xml_facts
        if facts is None or self._is_due(entry, self._xml_every) or nr_vcpus > facts.max_vcpus:
            with map_libvirt_errors(f"XMLDesc({ref.name!r})"):
                facts = parse_domain_xml(dom.XMLDesc(0))
            entry.xml_facts = facts
            entry.block_info = {}  # capacity/allocation are re-read on the XML schedule, not every cycle
        return facts

    def _usage(self, dom: Any, ref: VmRef, entry: DomainCache, facts: XmlFacts) -> _Usage:
        mem_stats = self._optional("memoryStats", f"memoryStats({ref.name!r})", dom.memoryStats)
        disks = [self._disk(dom, ref, entry, dev) for dev in facts.disks]
        nets: list[NetSample] = []
        for dev in facts.nics:
            what = f"interfaceStats({ref.name!r}, {dev!r})"
            ns = self._optional("interfaceStats", what, functools.partial(dom.interfaceStats, dev))
            # interfaceStats: (rx_bytes, rx_packets, rx_errs, rx_drop, tx_bytes, tx_packets, ...)
            if ns is not None:
                nets.append(NetSample(device=dev, rx_bytes=ns[0], tx_bytes=ns[4]))
        return _Usage(mem_stats, tuple(d for d in disks if d is not None), tuple(nets))

    def _disk(self, dom: Any, ref: VmRef, entry: DomainCache, dev: str) -> DiskSample | None:
        what = f"({ref.name!r}, {dev!r})"
        bs = self._optional("blockStats", "blockStats" + what, functools.partial(dom.blockStats, dev))
        if bs is None:
            return None
        bi = entry.block_info.get(dev)
        if bi is None:
            bi = self._optional("blockInfo", "blockInfo" + what, functools.partial(dom.blockInfo, dev))
            entry.block_info[dev] = bi
        # blockStats: (rd_req, rd_bytes, wr_req, wr_bytes, errs); blockInfo: [capacity, allocation, physical]
        return DiskSample(
            device=dev,
            read_bytes=bs[1],
            write_bytes=bs[3],
            read_reqs=bs[0],
            write_reqs=bs[2],
            capacity_bytes=bi[0] if bi else None,
            allocation_bytes=bi[1] if bi else None,
        )

    def _optional(self, api: str, what: str, call: Callable[[], Any]) -> Any:
        """Run one per-domain stats call; None when the driver lacks it (remembered) or the VM is off."""
        if api in self._link.unsupported:
            return None
        try:
            return call()
        except libvirt.libvirtError as exc:  # no context manager here: this runs ~4 times per domain
            err = translate_libvirt_error(exc, what)
            if isinstance(err, OperationUnsupportedError):
                log.debug("%s: %s unsupported, not asking again (%s)", self._link.uri, api, err)
                self._link.unsupported.add(api)
                return None
            if isinstance(err, VmShutOffError):
                return None
            raise err from exc
