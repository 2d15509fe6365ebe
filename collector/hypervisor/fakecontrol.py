"""An in-memory ``HypervisorControl`` for unit tests of the resize action's logic.

Each domain keeps a live size and a persistent (config) size with the QEMU driver's rules: live changes
need a running domain and stay within the live maximum; maxima change in the config only; a start copies
the config into the live values. ``fail_on`` injects a ``HypervisorError`` into the next call of a named
method, so revert paths can be tested. The evidence that real libvirt behaves so comes from the
integration tests (QEMU guests and the test driver), not from this fake.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from collector.domxml import KIB, LABELS_NAMESPACE, LABELS_PREFIX, ConfigSpec, parse_config, parse_labels
from collector.errors import (
    HypervisorError,
    OperationInvalidError,
    VmNotFoundError,
    VmShutOffError,
)
from collector.hypervisor.base import DomainInfo, HostCapacity
from collector.model import VmRef, VmState


@dataclass(slots=True)
class FakeDomain:
    """One fake domain: run state, live and persistent sizes, live and persistent labels."""

    name: str
    uuid: str
    state: VmState
    live: ConfigSpec
    config: ConfigSpec
    labels: dict[str, str] = field(default_factory=dict)
    live_labels: dict[str, str] = field(default_factory=dict)
    persistent: bool = True


class FakeControl:
    """``HypervisorControl`` over in-memory domains on one URI; every call is recorded in ``calls``."""

    def __init__(self, *, uri: str = "fake:///control", host: HostCapacity | None = None) -> None:
        self._uri = uri
        self.host = host or HostCapacity(hostname="fake-host", cpus=16, memory_bytes=64 * 1024**3)
        self.domains: dict[str, FakeDomain] = {}
        self.fail_on: dict[str, HypervisorError] = {}
        self.calls: list[str] = []
        self.closed = False

    @property
    def uri(self) -> str:
        return self._uri

    def add(self, name: str, *, vcpus: int, memory_bytes: int, max_vcpus: int = 0, max_memory_bytes: int = 0,
            state: VmState = VmState.RUNNING, labels: Mapping[str, str] | None = None,
            persistent: bool = True) -> VmRef:
        """Define a domain (maxima default to the current size); return its reference."""
        spec = ConfigSpec(vcpus, max_vcpus or vcpus, memory_bytes, max_memory_bytes or memory_bytes)
        dom = FakeDomain(name, str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)), state, spec, spec,
                         dict(labels or {}), dict(labels or {}), persistent)
        self.domains[dom.uuid] = dom
        return VmRef(self._uri, dom.uuid, name)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        error = self.fail_on.pop(method, None)
        if error is not None:
            raise error

    def _dom(self, ref: VmRef) -> FakeDomain:
        dom = self.domains.get(ref.uuid)
        if dom is None:
            raise VmNotFoundError(f"no domain with UUID {ref.uuid!r} on {self._uri}")
        return dom

    def lookup(self, name_or_uuid: str) -> VmRef:
        self._call("lookup")
        for dom in self.domains.values():
            if name_or_uuid in (dom.uuid, dom.name):
                return VmRef(self._uri, dom.uuid, dom.name)
        raise VmNotFoundError(f"no domain {name_or_uuid!r} on {self._uri}")

    def info(self, ref: VmRef) -> DomainInfo:
        self._call("info")
        dom = self._dom(ref)
        spec = dom.live if dom.state is VmState.RUNNING else dom.config
        return DomainInfo(ref, dom.state, spec.vcpus, spec.max_vcpus, spec.memory_bytes, spec.max_memory_bytes,
                          dom.persistent)

    def state(self, ref: VmRef) -> VmState:
        self._call("state")
        return self._dom(ref).state

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str:
        self._call("get_domain_xml")
        dom = self._dom(ref)
        running = dom.state is VmState.RUNNING and not inactive
        spec, labels = (dom.live, dom.live_labels) if running else (dom.config, dom.labels)
        items = "".join(f"<{LABELS_PREFIX}:label name={quoteattr(k)}>{escape(v)}</{LABELS_PREFIX}:label>"
                        for k, v in sorted(labels.items()))
        return (f"<domain type='test'><name>{escape(dom.name)}</name><uuid>{dom.uuid}</uuid>"
                f"<metadata><{LABELS_PREFIX}:labels xmlns:{LABELS_PREFIX}={quoteattr(LABELS_NAMESPACE)}>{items}"
                f"</{LABELS_PREFIX}:labels></metadata>"
                f"<memory unit='KiB'>{spec.max_memory_bytes // KIB}</memory>"
                f"<currentMemory unit='KiB'>{spec.memory_bytes // KIB}</currentMemory>"
                f"<vcpu current='{spec.vcpus}'>{spec.max_vcpus}</vcpu></domain>")

    def define_xml(self, xml: str) -> VmRef:
        self._call("define_xml")
        root = ET.fromstring(xml)
        uuid = root.findtext("uuid") or ""
        dom = self.domains.get(uuid)
        if dom is None:
            raise OperationInvalidError(f"the fake defines only known domains, not {uuid!r}")
        dom.config = parse_config(xml)
        dom.labels = parse_labels(xml)
        return VmRef(self._uri, dom.uuid, dom.name)

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None:
        self._call("set_labels")
        dom = self._dom(ref)
        if live:
            self._require_running(dom)
            dom.live_labels = dict(labels)
        if config:
            dom.labels = dict(labels)

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None:
        self._call("set_vcpus")
        dom = self._dom(ref)
        if maximum:
            dom.config = replace(dom.config, max_vcpus=count)
            return
        if live:
            self._require_running(dom)
            if count > dom.live.max_vcpus:
                raise OperationInvalidError(f"{count} vCPUs exceed the live maximum {dom.live.max_vcpus}")
            dom.live = replace(dom.live, vcpus=count)
        if config:
            if count > dom.config.max_vcpus:
                raise OperationInvalidError(f"{count} vCPUs exceed the config maximum {dom.config.max_vcpus}")
            dom.config = replace(dom.config, vcpus=count)

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None:
        self._call("set_memory")
        dom = self._dom(ref)
        if maximum:
            dom.config = replace(dom.config, max_memory_bytes=memory_bytes)
            return
        if live:
            self._require_running(dom)
            if memory_bytes > dom.live.max_memory_bytes:
                raise OperationInvalidError("memory exceeds the live maximum")
            dom.live = replace(dom.live, memory_bytes=memory_bytes)
        if config:
            if memory_bytes > dom.config.max_memory_bytes:
                raise OperationInvalidError("memory exceeds the config maximum")
            dom.config = replace(dom.config, memory_bytes=memory_bytes)

    def host_capacity(self) -> HostCapacity:
        self._call("host_capacity")
        return self.host

    def shutdown(self, ref: VmRef) -> None:
        self._call("shutdown")
        dom = self._dom(ref)
        self._require_running(dom)
        dom.state = VmState.SHUTOFF

    def start(self, ref: VmRef) -> None:
        self._call("start")
        dom = self._dom(ref)
        if dom.state is VmState.RUNNING:
            raise OperationInvalidError(f"domain {dom.name!r} is already running")
        dom.state = VmState.RUNNING
        dom.live = dom.config
        dom.live_labels = dict(dom.labels)

    def destroy(self, ref: VmRef) -> None:
        self._call("destroy")
        self._dom(ref).state = VmState.SHUTOFF

    def snapshot_times(self, ref: VmRef) -> tuple[datetime, ...]:
        self._call("snapshot_times")
        self._dom(ref)
        return ()

    def close(self) -> None:
        self.closed = True

    @staticmethod
    def _require_running(dom: FakeDomain) -> None:
        if dom.state is not VmState.RUNNING:
            raise VmShutOffError(f"domain {dom.name!r} is not running")
