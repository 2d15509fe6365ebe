"""Which kind a finding is, for dismissing it, and the dismissals applied to a fleet's findings.

A finding's kind (``core.dismissals.DISMISS_KINDS``) is what a person would be turning down: ``stop`` (an idle
VM to stop), ``resize`` (a type change, up or down), ``schedule`` (an on/off schedule, when that is all the VM
is advised) or ``storage`` (a cheaper volume class or smaller disks). A dismissal applies while it is active
and the VM's finding is still of its kind; when the finding changes kind the dismissal lapses (it stays
stored, and applies again should the kind come back, until it expires or is restored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from analytics.findings.finding import VmFinding
from collector.model import VmRecord
from core.dismissals import DISMISS_KINDS, Dismissal, checked_kind, checked_reason
from core.errors import InputError


def finding_kind(f: VmFinding) -> str | None:
    """The kind a dismissal of ``f`` is keyed on; None when the VM is advised nothing to dismiss."""
    if f.excluded:
        return None
    if f.action == "stop":
        return "stop"
    if f.action == "resize" and (f.changes_type or f.monthly_savings):
        return "resize"
    if f.schedule is not None:
        return "schedule"
    if f.storage is not None and f.storage.monthly_savings > 0:
        return "storage"
    return None


def apply_dismissals(findings: Sequence[VmFinding], dismissals: Iterable[Dismissal],
                     now: datetime) -> list[VmFinding]:
    """``findings`` with ``dismissed`` set where an active dismissal of the VM matches its kind."""
    active = {(d.vm_uuid, d.kind): d for d in dismissals if d.active(now)}
    if not active:
        return list(findings)
    out = []
    for f in findings:
        kind = finding_kind(f)
        d = active.get((f.uuid, kind)) if kind is not None else None
        out.append(replace(f, dismissed=d) if d is not None else f)
    return out


def resolve_vm(vms: Iterable[VmRecord], text: str) -> VmRecord:
    """The VM named ``text`` (its name or UUID); raises InputError when the store knows none."""
    known = list(vms)
    for vm in known:
        if text in (vm.uuid, vm.name):
            return vm
    raise InputError(f"VM {text!r} is unknown to the store ({len(known)} VMs); pass a VM name or UUID that "
                     "'rightsizer recommend' lists")


def new_dismissal(vm: VmRecord, finding: VmFinding | None, *, reason: str, actor: str, at: datetime,
                  until: datetime | None, kind: str | None = None) -> Dismissal:
    """A checked dismissal of ``vm``'s finding: of ``kind`` when given, else of its current finding's kind.

    Raises InputError for an empty reason, an unknown kind, an expiry not after ``at``, or no kind given for
    a VM whose finding has nothing to dismiss.
    """
    text = checked_reason(reason)
    if kind is None:
        kind = finding_kind(finding) if finding is not None else None
        if kind is None:
            raise InputError(f"VM {vm.name!r} has no finding to dismiss now; pass --kind "
                             f"({'|'.join(DISMISS_KINDS)}) to dismiss one ahead")
    if until is not None and until <= at:
        raise InputError(f"until {until.isoformat()!r} is in the past; pass a later time")
    return Dismissal(vm_uuid=vm.uuid, kind=checked_kind(kind), reason=text, actor=actor or "unknown", at=at,
                     until=until, vm_name=vm.name)
