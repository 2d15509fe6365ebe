"""The hypervisor boundary: Protocols in ``base``, libvirt in ``libvirt`` (sole importer), fakes in ``fake``.

Importing this package does not load libvirt; import ``collector.hypervisor.libvirt`` for that.
"""

from __future__ import annotations

from collector.domxml import LABELS_NAMESPACE
from collector.hypervisor.base import (
    DomainInfo,
    HostCapacity,
    HypervisorControl,
    HypervisorSource,
    error_kind,
)

__all__ = [
    "LABELS_NAMESPACE",
    "DomainInfo",
    "HostCapacity",
    "HypervisorControl",
    "HypervisorSource",
    "error_kind",
]
