"""The hypervisor boundary: what the sampler reads and what the resize actions change.

Sizes are bytes, CPU time is nanoseconds, counts are plain ints. Implementations raise only
``collector.errors`` classes; ``sample_all`` raises nothing at all and reports failures in the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from collector.errors import (
    ConnectionFailedError,
    HypervisorError,
    NoDataError,
    OperationInvalidError,
    OperationUnsupportedError,
    VmNotFoundError,
    VmShutOffError,
)
from collector.model import SampleBatch, VmRef, VmState


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """Current allocation of one domain: live values when it runs, persistent config when it does not."""

    ref: VmRef
    state: VmState
    vcpus: int
    max_vcpus: int
    memory_bytes: int
    max_memory_bytes: int
    persistent: bool


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """What one hypervisor host offers: logical CPUs and physical memory."""

    hostname: str
    cpus: int
    memory_bytes: int


class HypervisorSource(Protocol):
    """Read-only view of one hypervisor URI, sampled once per collection cycle."""

    @property
    def uri(self) -> str:
        """The URI this source samples."""
        ...

    def sample_all(self) -> SampleBatch:
        """Sample every domain once: one bulk stats call where the driver supports it.

        ``cpu_time_ns`` and disk/net counters are cumulative. A VM that fails is reported in
        ``batch.errors``; an unreachable URI gives ``batch.ok == False``. Never raises.
        """
        ...

    def close(self) -> None:
        """Release the connection; a later ``sample_all`` reconnects."""
        ...


class HypervisorControl(Protocol):
    """Read-write control of one hypervisor URI, used by the resize actions.

    Every method raises ``HypervisorError`` subclasses: ``VmNotFoundError`` when the domain is gone,
    ``VmShutOffError`` when it must run, ``OperationUnsupportedError``/``OperationInvalidError`` when
    the driver refuses, ``ConnectionFailedError`` when the URI is unreachable.
    """

    @property
    def uri(self) -> str:
        """The URI this control acts on."""
        ...

    def lookup(self, name_or_uuid: str) -> VmRef:
        """Find a domain by UUID string or name."""
        ...

    def info(self, ref: VmRef) -> DomainInfo:
        """Read the domain's state and allocation (live when running)."""
        ...

    def state(self, ref: VmRef) -> VmState:
        """Read the domain's run state."""
        ...

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str:
        """Return the domain XML: the persistent definition when ``inactive``, else the live one."""
        ...

    def define_xml(self, xml: str) -> VmRef:
        """Define (or redefine) a persistent domain from XML."""
        ...

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None:
        """Replace the domain's labels live and/or in the persistent config."""
        ...

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None:
        """Set the vCPU count (or the maximum, config only) live and/or in the persistent config."""
        ...

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None:
        """Set the memory allocation in bytes (rounded down to KiB), or the maximum (config only)."""
        ...

    def host_capacity(self) -> HostCapacity:
        """Read the host's logical CPU count and memory."""
        ...

    def shutdown(self, ref: VmRef) -> None:
        """Ask the guest to shut down (ACPI); returns at once."""
        ...

    def start(self, ref: VmRef) -> None:
        """Start a defined, shut-off domain."""
        ...

    def destroy(self, ref: VmRef) -> None:
        """Power the domain off at once."""
        ...

    def snapshot_times(self, ref: VmRef) -> tuple[datetime, ...]:
        """Creation times (UTC) of the domain's snapshots, oldest first."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_KINDS: tuple[tuple[type[HypervisorError], str], ...] = (
    (VmNotFoundError, "not-found"),
    (VmShutOffError, "shut-off"),
    (NoDataError, "no-data"),
    (OperationUnsupportedError, "unsupported"),
    (OperationInvalidError, "invalid"),
    (ConnectionFailedError, "connection"),
)


#: Every slug ``error_kind`` returns; the exporter shows each at 0 before its first error.
ERROR_KINDS: tuple[str, ...] = (*(kind for _cls, kind in _KINDS), "hypervisor")


def error_kind(exc: HypervisorError) -> str:
    """Return the short slug used for ``VmError.kind`` and the ``errors_total{kind}`` metric."""
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    return "hypervisor"
