"""Pure change planning for one resize step: which dimension changes when, and the libvirt calls for it.

What changes when (QEMU driver facts, NOTES-environment.md):

* more vCPUs up to the live maximum: hot-plugged now and written to the persistent config;
* fewer vCPUs: persistent config only, effective at the next restart (live unplug times out on QEMU and
  can leave the domain wedged);
* memory up to the live maximum (``<memory>``): the balloon now and the persistent config;
* anything above a maximum needs the domain shut off: with restart policy ``allowed`` the VM is shut down
  gracefully, changed and started again; with ``window`` only inside a maintenance window; with ``never``
  the whole step is deferred and nothing is changed;
* a shut-off VM gets every change in its persistent config, effective at its next start.

A memory downsize also lowers the persistent maximum (``<memory>``) to the target, so the guest cannot
balloon back and boots as the smaller size; the live maximum stays until the next restart (QEMU cannot
lower it live). The vCPU maximum is only ever raised, so a later vCPU upsize can happen live.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from collector.actions.policy import RestartPermission
from collector.actions.snapshot import DomainSnapshot
from collector.domxml import MACHINE_TYPE_LABEL, MIB, format_bytes
from core.plan import SizeSpec

#: Live memory counts as "at target" within this much: the balloon settles on whole pages.
MEMORY_TOLERANCE_BYTES = 4 * MIB

Effect = Literal["unchanged", "live", "next-restart", "next-start", "restart-now", "deferred"]
Dimension = Literal["vcpus", "memory_bytes"]
DIM_NAMES = {"vcpus": "vCPUs", "memory_bytes": "memory"}

@dataclass(frozen=True, slots=True)
class Change:
    """One dimension of a step: before -> after, and when it takes effect."""

    dimension: Dimension
    before: int
    after: int
    effect: Effect
    when: str
    raises_maximum: bool = False
    lowers_maximum: bool = False


@dataclass(frozen=True, slots=True)
class StepChanges:
    """How a step would be carried out against the observed domain."""

    changes: tuple[Change, ...]
    restart: bool = False  # apply shuts the VM down, changes it and starts it again
    deferred: bool = False  # nothing is applied now
    reason: str = ""

    @property
    def unchanged(self) -> bool:
        return all(c.effect == "unchanged" for c in self.changes)

    @property
    def lowers_max_memory(self) -> bool:
        return any(c.lowers_maximum for c in self.changes)


def lowers_max_memory(snap: DomainSnapshot, target: SizeSpec) -> bool:
    """Return True when the step shrinks memory and the persistent maximum is above the target."""
    return target.memory_bytes < snap.config.memory_bytes and target.memory_bytes < snap.config.max_memory_bytes


def leftover_max_memory(snap: DomainSnapshot, target: SizeSpec) -> bool:
    """Return True when the VM already has the target's memory, but its persistent maximum is still above
    it (a downsize by an older rightsizer, or by hand, that left ``<memory>`` as it was).

    The step must name the machine type the VM is to be: that type's memory is all the VM may balloon to.
    Whether the VM carries the ``machine_type`` label yet does not matter (the step sets it). A bare size
    step leaves the maximum alone, as an operator may keep headroom for a later live upsize.
    """
    return (bool(target.machine_type)
            and snap.config.memory_bytes == target.memory_bytes < snap.config.max_memory_bytes)


def _lower_leftover_max(snap: DomainSnapshot, target: SizeSpec, change: Change) -> Change:
    """The memory change of a VM with a leftover maximum: only the persistent maximum is lowered."""
    if change.dimension != "memory_bytes" or change.effect != "unchanged" or not leftover_max_memory(snap, target):
        return change
    effect: Effect = "next-restart" if snap.running else "next-start"
    when = (f"max memory {format_bytes(snap.config.max_memory_bytes)} -> {format_bytes(target.memory_bytes)} "
            f"at {effect.replace('-', ' ')} (persistent config; an earlier downsize left it above the memory)")
    return replace(change, effect=effect, when=when, lowers_maximum=True)


def _with_lowered_max(snap: DomainSnapshot, target: SizeSpec, change: Change) -> Change:
    """Mark a memory change that also lowers the persistent maximum, and say when that takes effect."""
    if change.dimension != "memory_bytes" or change.effect in ("unchanged", "deferred"):
        return change
    if not lowers_max_memory(snap, target):
        return change
    moment = {"live": "at next restart", "next-start": "at next start"}.get(change.effect, "now")
    when = (f"{change.when}; max memory {format_bytes(snap.config.max_memory_bytes)} -> "
            f"{format_bytes(target.memory_bytes)} {moment} (persistent config)")
    return replace(change, when=when, lowers_maximum=True)


def mem_close(a: int, b: int) -> bool:
    """Return True when two memory sizes in bytes are equal within the balloon's tolerance."""
    return abs(a - b) <= MEMORY_TOLERANCE_BYTES


def fmt_dim(dim: str, value: int) -> str:
    """Render one dimension's value: memory as a size, vCPUs as a count."""
    return format_bytes(value) if dim == "memory_bytes" else str(value)


def is_at_target(snap: DomainSnapshot, target: SizeSpec) -> bool:
    """Return True when nothing is left to do: config at target, live at target or only waiting for a
    restart to drop vCPUs."""
    cfg = snap.config
    if cfg.vcpus != target.vcpus or cfg.memory_bytes != target.memory_bytes:
        return False
    if target.machine_type and snap.labels.get(MACHINE_TYPE_LABEL, "") != target.machine_type:
        return False
    if leftover_max_memory(snap, target):
        return False
    if not snap.running:
        return True
    return mem_close(snap.live_memory_bytes, target.memory_bytes) and snap.live_vcpus >= target.vcpus



def plan_changes(snap: DomainSnapshot, target: SizeSpec, permission: RestartPermission) -> StepChanges:
    """Decide how each dimension changes and when it takes effect (pure; see the module doc)."""
    if not snap.running:
        planned = _offline_changes(snap, target)
    elif target.vcpus > snap.live_max_vcpus or target.memory_bytes > snap.live_max_memory_bytes:
        planned = _restart_changes(snap, target, permission)
    else:
        planned = _live_changes(snap, target)
    return replace(planned, changes=tuple(_lower_leftover_max(snap, target, _with_lowered_max(snap, target, c))
                                          for c in planned.changes))


def _offline_changes(snap: DomainSnapshot, target: SizeSpec) -> StepChanges:
    changes = []
    offline: tuple[tuple[Dimension, int, int, int], ...] = (
        ("vcpus", snap.config.vcpus, target.vcpus, snap.config.max_vcpus),
        ("memory_bytes", snap.config.memory_bytes, target.memory_bytes, snap.config.max_memory_bytes),
    )
    for dim, before, after, cur_max in offline:
        if before == after:
            changes.append(Change(dim, before, after, "unchanged", "-"))
        else:
            changes.append(Change(dim, before, after, "next-start",
                                  "next start (VM is shut off; persistent config)", after > cur_max))
    return StepChanges(tuple(changes))


def _restart_changes(snap: DomainSnapshot, target: SizeSpec, permission: RestartPermission) -> StepChanges:
    vc_before, vc_after = snap.live_vcpus, target.vcpus
    vc_raise = vc_after > snap.live_max_vcpus
    mem_before, mem_after = snap.live_memory_bytes, target.memory_bytes
    mem_raise = mem_after > snap.live_max_memory_bytes
    what = []
    if vc_raise:
        what.append(f"max vCPUs {snap.live_max_vcpus} -> {vc_after}")
    if mem_raise:
        what.append(f"max memory {format_bytes(snap.live_max_memory_bytes)} -> {format_bytes(mem_after)}")
    why = "needs a restart to raise " + " and ".join(what)
    if permission.allowed_now:
        when = "now (graceful shutdown, change, start)"
        effect: Effect = "restart-now"
    else:
        effect = "deferred"
        if permission.policy == "never":
            when = "deferred (needs a restart; restart policy 'never')"
            why = f"deferred: {why}; restart policy 'never' (use --restart allowed or --restart window)"
        else:
            when = permission.when
            why = f"deferred: {why}; {permission.when}"
    changes = []
    online: tuple[tuple[Dimension, int, int, bool], ...] = (
        ("vcpus", vc_before, vc_after, vc_raise), ("memory_bytes", mem_before, mem_after, mem_raise)
    )
    for dim, before, after, raised in online:
        same = before == after if dim == "vcpus" else mem_close(before, after)
        cfg_same = (snap.config.vcpus == after) if dim == "vcpus" else (snap.config.memory_bytes == after)
        if same and cfg_same:
            changes.append(Change(dim, before, after, "unchanged", "-"))
        else:
            changes.append(Change(dim, before, after, effect, when, raised))
    return StepChanges(tuple(changes), restart=effect == "restart-now", deferred=effect == "deferred",
                       reason=why)


def _live_changes(snap: DomainSnapshot, target: SizeSpec) -> StepChanges:
    vc_before, vc_after = snap.live_vcpus, target.vcpus
    mem_before, mem_after = snap.live_memory_bytes, target.memory_bytes
    changes = []
    if vc_after == vc_before and snap.config.vcpus == vc_after:
        changes.append(Change("vcpus", vc_before, vc_after, "unchanged", "-"))
    elif vc_after >= vc_before:
        changes.append(Change("vcpus", vc_before, vc_after, "live", "now (live hot-plug + persistent config)"))
    else:
        changes.append(Change("vcpus", vc_before, vc_after, "next-restart",
                              "next restart (persistent config only; live unplug is not attempted)"))
    if mem_close(mem_before, mem_after) and snap.config.memory_bytes == mem_after:
        changes.append(Change("memory_bytes", mem_before, mem_after, "unchanged", "-"))
    else:
        changes.append(Change("memory_bytes", mem_before, mem_after, "live",
                              "now (live balloon + persistent config)"))
    return StepChanges(tuple(changes))


@dataclass(frozen=True, slots=True)
class Operation:
    """One libvirt call of an apply, named for the audit log."""

    name: str
    kind: Literal["shutdown", "start", "define", "vcpus", "memory"]
    value: int = 0
    live: bool = False
    config: bool = False
    maximum: bool = False


def build_operations(snap: DomainSnapshot, target: SizeSpec, changes: StepChanges) -> list[Operation]:
    """Return the libvirt calls for a step, config before live so a failure leaves little to undo.

    The live vCPU hot-plug comes last: it is the one change a revert cannot take back live.
    """
    if changes.deferred or changes.unchanged and not label_differs(snap, target):
        return []
    ops: list[Operation] = []
    if changes.restart:
        ops.append(Operation("graceful shutdown", "shutdown"))
    if label_differs(snap, target):
        ops.append(Operation(f"set label machine_type={target.machine_type}", "define"))
    cfg = snap.config
    if target.memory_bytes > cfg.max_memory_bytes:
        ops.append(Operation("raise max memory (config)", "memory", target.memory_bytes, config=True,
                             maximum=True))
    if cfg.memory_bytes != target.memory_bytes:
        ops.append(Operation("set memory (config)", "memory", target.memory_bytes, config=True))
    if changes.lowers_max_memory:
        ops.append(Operation("lower max memory (config)", "memory", target.memory_bytes, config=True,
                             maximum=True))
    if target.vcpus > cfg.max_vcpus:
        ops.append(Operation("raise max vCPUs (config)", "vcpus", target.vcpus, config=True, maximum=True))
    if cfg.vcpus != target.vcpus:
        ops.append(Operation("set vCPUs (config)", "vcpus", target.vcpus, config=True))
    if changes.restart:
        ops.append(Operation("start", "start"))
    elif snap.running:
        if not mem_close(snap.live_memory_bytes, target.memory_bytes):
            ops.append(Operation("set memory (live balloon)", "memory", target.memory_bytes, live=True))
        if target.vcpus > snap.live_vcpus:
            ops.append(Operation("hot-plug vCPUs (live)", "vcpus", target.vcpus, live=True))
    return ops


def label_differs(snap: DomainSnapshot, target: SizeSpec) -> bool:
    """Return True when the step sets a machine_type label the domain does not carry yet."""
    return bool(target.machine_type) and snap.labels.get(MACHINE_TYPE_LABEL, "") != target.machine_type

