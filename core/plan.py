"""Plan value types: what analytics proposes and the actions apply (sizes, steps, plans, stop constants).

Deciding and changing meet on these neutral values, as a decision engine and an applier meet on action plans:
``analytics`` builds them, ``collector.actions`` parses, checks and runs them, and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.identity import VmRef
from core.units import MIB

PLAN_VERSION = 1
#: Smallest memory a plan may set; a guest below this does not boot a usual kernel.
MIN_MEMORY_BYTES = 64 * MIB
#: Findings for which ``plan_from_findings`` proposes a resize.
RESIZE_FINDINGS = frozenset({"over-provisioned", "under-provisioned", "resize-regret"})
#: ``action`` values of ``recommend --output json`` entries that are not resizes (left out of a resize plan).
NOT_RESIZE_ACTIONS = frozenset({"stop", "none"})


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """A VM size: vCPUs, memory in bytes and the machine type it corresponds to (may be empty)."""

    vcpus: int
    memory_bytes: int
    machine_type: str = ""


@dataclass(frozen=True, slots=True)
class ResizeStep:
    """Resize one VM from ``current`` to ``target``; prices are per hour in ``currency``."""

    vm: VmRef
    current: SizeSpec
    target: SizeSpec
    price_before_per_hour: float | None = None
    price_after_per_hour: float | None = None
    currency: str = ""
    finding: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.vm.uuid,
            "name": self.vm.name,
            "uri": self.vm.uri,
            "current": _spec_dict(self.current),
            "target": _spec_dict(self.target),
            "price_before_per_hour": self.price_before_per_hour,
            "price_after_per_hour": self.price_after_per_hour,
            "currency": self.currency,
            "finding": self.finding,
        }


@dataclass(frozen=True, slots=True)
class ResizePlan:
    """An ordered set of resize steps, at most one per VM. ``plan_id`` is derived from the steps."""

    plan_id: str
    created_at: datetime
    steps: tuple[ResizeStep, ...] = ()
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "plan_id": self.plan_id,
            "created_at": self.created_at.isoformat(),
            "steps": [s.to_dict() for s in self.steps],
        }

    def with_uri(self, uri: str) -> ResizePlan:
        """Return the same plan with every VM on ``uri`` (the ``--uri`` override)."""
        steps = tuple(
            ResizeStep(
                vm=VmRef(uri=uri, uuid=s.vm.uuid, name=s.vm.name), current=s.current, target=s.target,
                price_before_per_hour=s.price_before_per_hour, price_after_per_hour=s.price_after_per_hour,
                currency=s.currency, finding=s.finding,
            )
            for s in self.steps
        )
        return ResizePlan(plan_id=self.plan_id, created_at=self.created_at, steps=steps, source=self.source)


def _spec_dict(s: SizeSpec) -> dict[str, Any]:
    return {"vcpus": s.vcpus, "memory_bytes": s.memory_bytes, "machine_type": s.machine_type}


#: The action name of a stop (in plans, findings and the audit log).
STOP_ACTION = "stop"
#: Deleting stays a person's act: plans and findings carry this sentence beside every delete option.
DELETE_IS_MANUAL = "deleting a VM is left to a person: rightsizer never deletes"
