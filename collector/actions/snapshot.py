"""What a resize sees of a domain: the control it needs, and a snapshot of state, live values and config.

A snapshot is what a revert goes back to and what verification compares against; it is read from libvirt,
never from the action's own bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from collector.domxml import MACHINE_TYPE_LABEL, ConfigSpec, parse_config, parse_labels
from collector.errors import VmShutOffError
from collector.hypervisor.base import DomainInfo, HostCapacity
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry


class DomainControl(Protocol):
    """What a resize needs from ``collector.hypervisor.base.HypervisorControl`` (which satisfies it)."""

    @property
    def uri(self) -> str: ...

    def lookup(self, name_or_uuid: str) -> VmRef: ...

    def info(self, ref: VmRef) -> DomainInfo: ...

    def state(self, ref: VmRef) -> VmState: ...

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str: ...

    def define_xml(self, xml: str) -> VmRef: ...

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None: ...

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None: ...

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None: ...

    def host_capacity(self) -> HostCapacity: ...

    def shutdown(self, ref: VmRef) -> None: ...

    def start(self, ref: VmRef) -> None: ...

    def close(self) -> None: ...


class AuditLog(Protocol):
    """The audit part of ``TimeSeriesStore``."""

    def append_audit(self, entry: AuditEntry) -> int: ...

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]: ...


@dataclass(frozen=True, slots=True)
class DomainSnapshot:
    """What a domain looked like at one moment: the saved state a revert goes back to.

    ``live_*`` are what runs now (equal to the config when shut off); ``config`` is the persistent XML's.
    """

    ref: VmRef
    state: VmState
    persistent: bool
    live_vcpus: int
    live_max_vcpus: int
    live_memory_bytes: int
    live_max_memory_bytes: int
    config: ConfigSpec
    labels: Mapping[str, str]
    inactive_xml: str
    taken_at: datetime

    @property
    def running(self) -> bool:
        return self.state is VmState.RUNNING

    def summary(self) -> dict[str, Any]:
        """The values the audit log and the diff show (no XML)."""
        return {
            "state": self.state.value,
            "vcpus": self.live_vcpus,
            "max_vcpus": self.live_max_vcpus,
            "memory_bytes": self.live_memory_bytes,
            "max_memory_bytes": self.live_max_memory_bytes,
            "config_vcpus": self.config.vcpus,
            "config_max_vcpus": self.config.max_vcpus,
            "config_memory_bytes": self.config.memory_bytes,
            "config_max_memory_bytes": self.config.max_memory_bytes,
            "machine_type": self.labels.get(MACHINE_TYPE_LABEL, ""),
        }


def take_snapshot(control: DomainControl, ref: VmRef, now: datetime) -> DomainSnapshot:
    """Read state, live values and the persistent XML of ``ref``. Raises HypervisorError subclasses."""
    for attempt in range(3):
        try:
            info = control.info(ref)
            break
        except VmShutOffError:
            # The domain stopped between the reads that make up info() (e.g. during a shutdown); read again.
            if attempt == 2:
                raise
            time.sleep(0.1)
    persistent = info.persistent
    xml = control.get_domain_xml(ref, inactive=True)
    config = parse_config(xml)
    return DomainSnapshot(
        ref=ref,
        state=info.state,
        persistent=persistent,
        live_vcpus=info.vcpus,
        live_max_vcpus=info.max_vcpus,
        live_memory_bytes=info.memory_bytes,
        live_max_memory_bytes=info.max_memory_bytes,
        config=config,
        labels=parse_labels(xml),
        inactive_xml=xml,
        taken_at=now,
    )

