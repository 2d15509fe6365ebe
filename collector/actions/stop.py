"""Stop an idle VM: a graceful (ACPI) shutdown, verified and audited. Never a delete.

Stops are planned by the ``idle`` finding and run only when the person applying asks for them
(``rightsizer apply --allow-stop``). Deleting a VM stays a person's act: there is no delete here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from collector.errors import HypervisorError
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry
from core.plan import STOP_ACTION

ACTION_NAME = STOP_ACTION
StopOutcome = Literal["planned", "applied", "unchanged", "skipped", "failed"]


class StopControl(Protocol):
    """What a stop needs from a read-write libvirt connection (``LibvirtControl`` fits)."""

    def state(self, ref: VmRef) -> VmState: ...

    def shutdown(self, ref: VmRef) -> None: ...


class StopAudit(Protocol):
    def append_audit(self, entry: AuditEntry) -> int: ...


@dataclass(frozen=True, slots=True)
class StopStep:
    """Stop one VM; ``price_per_hour`` is the compute price the stop saves per hour."""

    vm: VmRef
    price_per_hour: float | None = None
    currency: str = ""
    finding: str = "idle"

    def to_dict(self, *, allowed: bool, note: str) -> dict[str, Any]:
        return {"uuid": self.vm.uuid, "name": self.vm.name, "action": ACTION_NAME, "allowed": allowed, "note": note}


@dataclass(frozen=True, slots=True)
class StopResult:
    step: StopStep
    result: StopOutcome
    reason: str


def stop_vm(
    control: StopControl, step: StopStep, *, apply: bool, audit: StopAudit | None, actor: str,
    timeout_s: float = 120.0, poll_s: float = 0.5, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> StopResult:
    """Shut ``step.vm`` down gracefully and wait until it is off (``apply``), or only check it (preview).

    Every applied attempt is audited (action ``stop``). Never raises for hypervisor errors: they are the
    ``failed`` result.
    """
    ref = step.vm
    try:
        state = control.state(ref)
        if state is VmState.SHUTOFF:
            return _done(step, "unchanged", "already shut off", audit, actor, clock, apply)
        if not apply:
            return StopResult(step, "planned", "would shut it down gracefully (ACPI); it is not deleted")
        control.shutdown(ref)
        deadline = time.monotonic() + timeout_s
        while (state := control.state(ref)) is not VmState.SHUTOFF:
            if time.monotonic() >= deadline:
                return _done(step, "failed", f"still {state.value} {timeout_s:g}s after the shutdown request; "
                             "the guest may ignore ACPI", audit, actor, clock, apply)
            time.sleep(poll_s)
    except HypervisorError as exc:
        return _done(step, "failed", str(exc), audit, actor, clock, apply)
    return _done(step, "applied", "shut down gracefully (not deleted)", audit, actor, clock, apply)


def _done(step: StopStep, result: StopOutcome, reason: str, audit: StopAudit | None, actor: str,
          clock: Callable[[], datetime], apply: bool) -> StopResult:
    if apply and audit is not None:
        audit.append_audit(AuditEntry(
            ts=clock(), actor=actor, vm_uuid=step.vm.uuid, vm_name=step.vm.name, action=ACTION_NAME, before={},
            after={"state": "shutoff" if result in ("applied", "unchanged") else "unknown"}, result=result,
            reason=reason, currency=step.currency, price_before_per_hour=step.price_per_hour,
            # a shut-off VM's compute is not billed; its disks are, before and after alike
            price_after_per_hour=0.0 if step.price_per_hour is not None else None,
        ))
    return StopResult(step, result, reason)
