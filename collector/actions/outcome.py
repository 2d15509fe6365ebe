"""What a resize reports: its ``ActionResult``, its audit entry, and the notes on changes still pending."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from collector.actions.changes import DIM_NAMES, Operation, StepChanges, fmt_dim
from collector.actions.result import ActionResult, Result
from collector.actions.snapshot import DomainSnapshot
from collector.domxml import format_bytes
from collector.store.base import AuditEntry
from core.plan import ResizeStep

ACTION_NAME = "resize"
#: Outcomes after which the VM was not changed: their audit record needs no XML to recover from.
_UNCHANGED = ("planned", "unchanged", "skipped")


def _as_map(value: DomainSnapshot | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return {}
    return value.summary() if isinstance(value, DomainSnapshot) else dict(value)


def result_of(
    step: ResizeStep,
    result: Result,
    reason: str,
    before: DomainSnapshot | Mapping[str, Any] | None,
    after: DomainSnapshot | Mapping[str, Any] | None,
    changes: StepChanges | None = None,
    ops: Sequence[Operation] = (),
    *,
    libvirt_name: str = "",
) -> ActionResult:
    """Build the step's result; a VM that may have changed keeps its saved inactive XML for recovery.

    The result names the VM as libvirt names its UUID (``libvirt_name``, when looked up), not as the plan does:
    a plan file may carry a stale or wrong name, which the reason then mentions.
    """
    if libvirt_name and libvirt_name != step.vm.name:
        reason = f"{reason} (the plan named this VM {step.vm.name!r})".strip()
        step = replace(step, vm=replace(step.vm, name=libvirt_name))
    before_map = dict(_as_map(before))
    if isinstance(before, DomainSnapshot) and result not in _UNCHANGED:
        before_map["inactive_xml"] = before.inactive_xml  # for manual recovery: virsh define
    return ActionResult(
        step=step,
        result=result,
        reason=reason,
        changes=changes.changes if changes else (),
        before=before_map,
        after=_as_map(after),
        operations=tuple(o.name for o in ops),
    )


def audit_entry(
    res: ActionResult, *, ts: datetime, actor: str, plan_id: str, libvirt_name: str, operations: Sequence[str]
) -> AuditEntry:
    """The audit record of one result; ``libvirt_name`` is libvirt's name for the step's UUID (may be empty).

    libvirt's name, not the plan's, is recorded: a plan file may carry a stale or wrong name.
    """
    step = res.step
    name = libvirt_name or step.vm.name
    reason = res.reason
    if name != step.vm.name:
        reason = f"{reason} (the plan named this VM {step.vm.name!r})".strip()
    return AuditEntry(
        ts=ts,
        actor=actor,
        vm_uuid=step.vm.uuid,
        vm_name=name,
        action=ACTION_NAME,
        before=res.before,
        after={**res.after, "target_vcpus": step.target.vcpus,
               "target_memory_bytes": step.target.memory_bytes,
               "target_machine_type": step.target.machine_type,
               "operations": list(operations)},
        result=res.result,
        reason=reason,
        plan_id=plan_id,
        price_before_per_hour=step.price_before_per_hour,
        price_after_per_hour=step.price_after_per_hour,
        currency=step.currency,
    )


def pending_notes(changes: StepChanges, snap: DomainSnapshot) -> list[str]:
    """Say which applied changes take effect only at the next restart or start (``snap``: before the change)."""
    notes: list[str] = []
    max_before = format_bytes(snap.config.max_memory_bytes)
    for c in changes.changes:
        moment = "next restart" if c.effect == "next-restart" else "next start"
        deferred = c.effect in ("next-restart", "next-start")
        if deferred and c.before != c.after:
            notes.append(f"{DIM_NAMES[c.dimension]} {fmt_dim(c.dimension, c.before)} -> "
                         f"{fmt_dim(c.dimension, c.after)} takes effect at {moment}")
        elif c.lowers_maximum and deferred:  # only a leftover maximum
            notes.append(f"max memory {max_before} -> {format_bytes(c.after)} takes effect at {moment}")
        if c.lowers_maximum and c.effect == "live":
            notes.append(f"max memory {max_before} -> {format_bytes(c.after)} takes effect at next restart")
    return notes
