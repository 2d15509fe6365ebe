"""Who a VM is: the identity every package names it by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VmRef:
    """Identity of a VM: the URI it lives on, its UUID and its name."""

    uri: str
    uuid: str
    name: str
