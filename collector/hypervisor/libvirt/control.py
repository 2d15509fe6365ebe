"""Read-write control of one libvirt URI (``HypervisorControl``): what the resize and stop actions call.

Sampling never comes through here: it reads over ``ReadOnlyLink``. Memory crosses this boundary in bytes;
libvirt takes and reports KiB (``setMemoryFlags``, ``info()``) and MiB for the host (``getInfo``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import libvirt

from collector.domxml import LABELS_NAMESPACE, LABELS_PREFIX
from collector.errors import ConnectionFailedError
from collector.hypervisor.base import DomainInfo, HostCapacity
from collector.hypervisor.libvirt.errors import close_quietly, map_libvirt_errors, silence_libvirt_stderr
from collector.hypervisor.libvirt.stats import KIB, parse_snapshot_time, vm_state
from collector.model import VmRef, VmState


class LibvirtControl:
    """Read-write control of one libvirt URI (``HypervisorControl``); the connection opens lazily."""

    def __init__(self, uri: str, *, open_readwrite: Callable[[str], Any] | None = None) -> None:
        silence_libvirt_stderr()
        self._uri = uri
        self._open = open_readwrite or libvirt.open
        self._conn: Any = None

    @property
    def uri(self) -> str:
        return self._uri

    def close(self) -> None:
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def __enter__(self) -> LibvirtControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> Any:
        if self._conn is None:
            with self._errors(f"open({self._uri!r})"):
                self._conn = self._open(self._uri)
        return self._conn

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Like ``map_libvirt_errors``; a broken connection is dropped so the next call reopens it."""
        try:
            with map_libvirt_errors(what):
                yield
        except ConnectionFailedError:
            self.close()
            raise

    def _domain(self, ref: VmRef) -> Any:
        with self._errors(f"lookup of {ref.name!r} ({ref.uuid}) on {self._uri}"):
            return self._connection().lookupByUUIDString(ref.uuid)

    def _ref(self, dom: Any) -> VmRef:
        return VmRef(self._uri, dom.UUIDString(), dom.name())

    def lookup(self, name_or_uuid: str) -> VmRef:
        """Find a domain by UUID string or name; raises VmNotFoundError."""
        conn = self._connection()
        try:
            dom = conn.lookupByUUIDString(name_or_uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                with self._errors(f"lookup of {name_or_uuid!r} on {self._uri}"):
                    raise
            with self._errors(f"lookup of {name_or_uuid!r} on {self._uri}"):
                dom = conn.lookupByName(name_or_uuid)
        return self._ref(dom)

    def info(self, ref: VmRef) -> DomainInfo:
        """Read state and allocation: live values when running, the persistent config otherwise."""
        dom = self._domain(ref)
        with self._errors(f"info({ref.name!r})"):
            state_code, max_mem_kib, mem_kib, nr_vcpus, _cpu_time = dom.info()
            active = dom.isActive()
            which = libvirt.VIR_DOMAIN_AFFECT_LIVE if active else libvirt.VIR_DOMAIN_AFFECT_CONFIG
            max_vcpus = dom.vcpusFlags(which | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
            persistent = bool(dom.isPersistent())
        return DomainInfo(
            ref=ref,
            state=vm_state(state_code),
            vcpus=nr_vcpus,
            max_vcpus=max_vcpus,
            memory_bytes=mem_kib * KIB,
            max_memory_bytes=max_mem_kib * KIB,
            persistent=persistent,
        )

    def state(self, ref: VmRef) -> VmState:
        """Read the domain's run state."""
        dom = self._domain(ref)
        with self._errors(f"state({ref.name!r})"):
            return vm_state(dom.state(0)[0])

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str:
        """Return the persistent (``inactive``) or live domain XML."""
        dom = self._domain(ref)
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        with self._errors(f"XMLDesc({ref.name!r})"):
            xml: str = dom.XMLDesc(flags)
        return xml

    def define_xml(self, xml: str) -> VmRef:
        """Define or redefine a persistent domain from ``xml``."""
        with self._errors(f"defineXML on {self._uri}"):
            dom = self._connection().defineXML(xml)
        return self._ref(dom)

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None:
        """Replace the domain's labels (our metadata namespace) live and/or in the persistent config.

        One ``setMetadata`` call per target: some drivers refuse LIVE|CONFIG in one call.
        """
        dom = self._domain(ref)
        # libvirt binds the element to the namespace itself: the text carries no prefix
        items = "".join(f"<label name={quoteattr(k)}>{escape(v)}</label>" for k, v in sorted(labels.items()))
        text = f"<labels>{items}</labels>"
        for wanted, flag in ((config, libvirt.VIR_DOMAIN_AFFECT_CONFIG), (live, libvirt.VIR_DOMAIN_AFFECT_LIVE)):
            if wanted:
                with self._errors(f"setMetadata({ref.name!r})"):
                    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, LABELS_PREFIX, LABELS_NAMESPACE, flag)

    @staticmethod
    def _flags(live: bool, config: bool, maximum: int, use_maximum: bool) -> int:
        if not (live or config):
            raise ValueError("choose live=True and/or config=True; neither would change nothing")
        flags = (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0) | (
            libvirt.VIR_DOMAIN_AFFECT_CONFIG if config else 0
        )
        return flags | (maximum if use_maximum else 0)

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None:
        """Set vCPUs (``maximum`` sets the ceiling, config only); OperationInvalidError when refused."""
        if count < 1:
            raise ValueError(f"vCPU count must be >= 1, got {count!r}")
        flags = self._flags(live, config, libvirt.VIR_DOMAIN_VCPU_MAXIMUM, maximum)
        dom = self._domain(ref)
        with self._errors(f"setVcpusFlags({ref.name!r}, {count}, flags={flags})"):
            dom.setVcpusFlags(count, flags)

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None:
        """Set memory in bytes (libvirt takes KiB; rounded down), or its maximum (config only)."""
        if memory_bytes < KIB:
            raise ValueError(f"memory must be >= 1 KiB, got {memory_bytes!r} bytes")
        flags = self._flags(live, config, libvirt.VIR_DOMAIN_MEM_MAXIMUM, maximum)
        dom = self._domain(ref)
        with self._errors(f"setMemoryFlags({ref.name!r}, {memory_bytes // KIB} KiB, flags={flags})"):
            dom.setMemoryFlags(memory_bytes // KIB, flags)

    def host_capacity(self) -> HostCapacity:
        """Read the host's logical CPUs and memory (getInfo reports MiB)."""
        conn = self._connection()
        with self._errors(f"getInfo on {self._uri}"):
            _model, memory_mib, cpus, *_rest = conn.getInfo()
            hostname = conn.getHostname()
        return HostCapacity(hostname=hostname, cpus=cpus, memory_bytes=memory_mib * 1024 * 1024)

    def shutdown(self, ref: VmRef) -> None:
        """Send the guest an ACPI shutdown request; returns without waiting."""
        dom = self._domain(ref)
        with self._errors(f"shutdown({ref.name!r})"):
            dom.shutdown()

    def start(self, ref: VmRef) -> None:
        """Start a defined, shut-off domain."""
        dom = self._domain(ref)
        with self._errors(f"create({ref.name!r})"):
            dom.create()

    def destroy(self, ref: VmRef) -> None:
        """Power the domain off at once."""
        dom = self._domain(ref)
        with self._errors(f"destroy({ref.name!r})"):
            dom.destroy()

    def snapshot_times(self, ref: VmRef) -> tuple[datetime, ...]:
        """Creation times (UTC) of the domain's snapshots, oldest first."""
        dom = self._domain(ref)
        times: list[datetime] = []
        with self._errors(f"listAllSnapshots({ref.name!r})"):
            for snap in dom.listAllSnapshots(0):
                created = parse_snapshot_time(snap.getXMLDesc(0))
                if created is not None:
                    times.append(created)
        return tuple(sorted(times))
