"""Resize one VM through libvirt: validate -> pre_condition -> apply -> verify, with a working revert.

What changes when (QEMU driver facts, NOTES-environment.md):

* more vCPUs up to the live maximum: hot-plugged now and written to the persistent config;
* fewer vCPUs: persistent config only, effective at the next restart (live unplug times out on QEMU and
  can leave the domain wedged);
* memory up to the live maximum (``<memory>``): the balloon now and the persistent config;
* anything above a maximum needs the domain shut off: with restart policy ``allowed`` the VM is shut down
  gracefully, changed and started again; with ``window`` only inside a maintenance window; with ``never``
  the whole step is deferred and nothing is changed;
* a shut-off VM gets every change in its persistent config, effective at its next start.

Maxima are only ever raised, never lowered, so a later upsize can happen live.

Before changing anything the action saves the persistent (inactive) XML and the live values; on any
failure it redefines the saved XML, re-applies the saved live values where libvirt can (balloon; vCPUs can
only go back up live) and verifies the revert against libvirt, not against its own bookkeeping. Every
outcome is appended to the store's audit log.
"""

from __future__ import annotations

import getpass
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from collector.actions.locks import VmLock
from collector.actions.plan import ResizeStep, SizeSpec
from collector.actions.policy import RestartPermission
from collector.errors import (
    ActionError,
    ActionFailed,
    ActionSkipped,
    ConnectionFailedError,
    HypervisorError,
    VmNotFoundError,
    VmShutOffError,
)
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry

log = logging.getLogger(__name__)

LABELS_NAMESPACE = "https://rightsizer.dev/xmlns/labels/1"  # same as collector.hypervisor.base
EXCLUDE_LABEL = "rightsizer_exclude"
MACHINE_TYPE_LABEL = "machine_type"
KIB = 1024
MIB = 1024**2
GIB = 1024**3
#: Live memory counts as "at target" within this much: the balloon settles on whole pages.
MEMORY_TOLERANCE_BYTES = 4 * MIB
#: A plan's "current" memory may differ this much from what libvirt reports before we call it stale.
STALE_MEMORY_TOLERANCE = 0.02
ACTION_NAME = "resize"

Result = Literal[
    "planned", "applied", "unchanged", "deferred", "skipped", "failed", "reverted", "revert-failed"
]
Effect = Literal["unchanged", "live", "next-restart", "next-start", "restart-now", "deferred"]
Dimension = Literal["vcpus", "memory_bytes"]


class DomainControl(Protocol):
    """What a resize needs from ``collector.hypervisor.base.HypervisorControl`` (which satisfies it)."""

    @property
    def uri(self) -> str: ...

    def lookup(self, name_or_uuid: str) -> VmRef: ...

    def info(self, ref: VmRef) -> Any: ...  # DomainInfo: state, vcpus, max_vcpus, memory_bytes, ...

    def state(self, ref: VmRef) -> VmState: ...

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str: ...

    def define_xml(self, xml: str) -> VmRef: ...

    def set_labels(self, ref: VmRef, labels: Mapping[str, str], *, live: bool, config: bool) -> None: ...

    def set_vcpus(self, ref: VmRef, count: int, *, live: bool, config: bool, maximum: bool = False) -> None: ...

    def set_memory(
        self, ref: VmRef, memory_bytes: int, *, live: bool, config: bool, maximum: bool = False
    ) -> None: ...

    def host_capacity(self) -> Any: ...  # HostCapacity: cpus, memory_bytes

    def shutdown(self, ref: VmRef) -> None: ...

    def start(self, ref: VmRef) -> None: ...


class AuditLog(Protocol):
    """The audit part of ``TimeSeriesStore``."""

    def append_audit(self, entry: AuditEntry) -> int: ...

    def audit(self, vm_uuid: str | None = None) -> list[AuditEntry]: ...


# --------------------------------------------------------------------------------------------- XML


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """Sizes in a domain XML: current and maximum vCPUs, current and maximum memory in bytes."""

    vcpus: int
    max_vcpus: int
    memory_bytes: int
    max_memory_bytes: int


_DIM_NAMES = {"vcpus": "vCPUs", "memory_bytes": "memory"}

_UNITS = {
    "b": 1, "bytes": 1, "kb": 1000, "k": KIB, "kib": KIB, "mb": 1000**2, "m": MIB, "mib": MIB,
    "gb": 1000**3, "g": GIB, "gib": GIB, "tb": 1000**4, "t": 1024**4, "tib": 1024**4,
}


def _size_bytes(el: ET.Element | None) -> int | None:
    if el is None or el.text is None:
        return None
    unit = (el.get("unit") or "KiB").lower()
    return int(el.text.strip()) * _UNITS.get(unit, KIB)


def parse_config(xml: str) -> ConfigSpec:
    """Read vCPUs and memory from a domain XML. Raises ActionFailed when the XML lacks them."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ActionFailed(f"Domain XML does not parse ({exc}); cannot read its size") from exc
    vcpu = root.find("vcpu")
    max_mem = _size_bytes(root.find("memory"))
    if vcpu is None or vcpu.text is None or max_mem is None:
        raise ActionFailed("Domain XML has no <vcpu> or <memory>; cannot read its size")
    max_vcpus = int(vcpu.text.strip())
    cur_mem = _size_bytes(root.find("currentMemory"))
    return ConfigSpec(
        vcpus=int(vcpu.get("current", max_vcpus)),
        max_vcpus=max_vcpus,
        memory_bytes=cur_mem if cur_mem is not None else max_mem,
        max_memory_bytes=max_mem,
    )


def parse_labels(xml: str) -> dict[str, str]:
    """Return the ``<rs:labels>`` of a domain XML (empty when none)."""
    root = ET.fromstring(xml)
    out: dict[str, str] = {}
    for el in root.iterfind(f"metadata/{{{LABELS_NAMESPACE}}}labels/{{{LABELS_NAMESPACE}}}label"):
        name = el.get("name")
        if name:
            out[name] = (el.text or "").strip()
    return out


# ------------------------------------------------------------------------------------- snapshots


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
    persistent = bool(getattr(info, "persistent", True))
    xml = control.get_domain_xml(ref, inactive=True)
    config = parse_config(xml)
    return DomainSnapshot(
        ref=ref,
        state=info.state,
        persistent=persistent,
        live_vcpus=int(info.vcpus),
        live_max_vcpus=int(info.max_vcpus),
        live_memory_bytes=int(info.memory_bytes),
        live_max_memory_bytes=int(info.max_memory_bytes),
        config=config,
        labels=parse_labels(xml),
        inactive_xml=xml,
        taken_at=now,
    )


# --------------------------------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class Change:
    """One dimension of a step: before -> after, and when it takes effect."""

    dimension: Dimension
    before: int
    after: int
    effect: Effect
    when: str
    raises_maximum: bool = False


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


def _mem_close(a: int, b: int) -> bool:
    return abs(a - b) <= MEMORY_TOLERANCE_BYTES


def format_bytes(n: int) -> str:
    """Render a memory size for people: whole GiB, else whole MiB below 1 GiB, else GiB with 2 decimals."""
    if n % GIB == 0:
        return f"{n // GIB} GiB"
    if n < GIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    return f"{n / GIB:.2f} GiB"



def is_at_target(snap: DomainSnapshot, target: SizeSpec) -> bool:
    """Return True when nothing is left to do: config at target, live at target or only waiting for a
    restart to drop vCPUs."""
    cfg = snap.config
    if cfg.vcpus != target.vcpus or cfg.memory_bytes != target.memory_bytes:
        return False
    if target.machine_type and snap.labels.get(MACHINE_TYPE_LABEL, "") != target.machine_type:
        return False
    if not snap.running:
        return True
    return _mem_close(snap.live_memory_bytes, target.memory_bytes) and snap.live_vcpus >= target.vcpus


def plan_changes(snap: DomainSnapshot, target: SizeSpec, permission: RestartPermission) -> StepChanges:
    """Decide how each dimension changes and when it takes effect (pure; see the module doc)."""
    if not snap.running:
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

    vc_before, vc_after = snap.live_vcpus, target.vcpus
    vc_raise = vc_after > snap.live_max_vcpus
    mem_before, mem_after = snap.live_memory_bytes, target.memory_bytes
    mem_raise = mem_after > snap.live_max_memory_bytes
    needs_restart = vc_raise or mem_raise
    if needs_restart:
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
            same = before == after if dim == "vcpus" else _mem_close(before, after)
            cfg_same = (snap.config.vcpus == after) if dim == "vcpus" else (snap.config.memory_bytes == after)
            if same and cfg_same:
                changes.append(Change(dim, before, after, "unchanged", "-"))
            else:
                changes.append(Change(dim, before, after, effect, when, raised))
        return StepChanges(tuple(changes), restart=effect == "restart-now", deferred=effect == "deferred",
                           reason=why)

    changes = []
    if vc_after == vc_before and snap.config.vcpus == vc_after:
        changes.append(Change("vcpus", vc_before, vc_after, "unchanged", "-"))
    elif vc_after >= vc_before:
        changes.append(Change("vcpus", vc_before, vc_after, "live", "now (live hot-plug + persistent config)"))
    else:
        changes.append(Change("vcpus", vc_before, vc_after, "next-restart",
                              "next restart (persistent config only; live unplug is not attempted)"))
    if _mem_close(mem_before, mem_after) and snap.config.memory_bytes == mem_after:
        changes.append(Change("memory_bytes", mem_before, mem_after, "unchanged", "-"))
    else:
        changes.append(Change("memory_bytes", mem_before, mem_after, "live",
                              "now (live balloon + persistent config)"))
    return StepChanges(tuple(changes))


# ------------------------------------------------------------------------------------- operations


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
    if changes.deferred or changes.unchanged and not _label_differs(snap, target):
        return []
    ops: list[Operation] = []
    if changes.restart:
        ops.append(Operation("graceful shutdown", "shutdown"))
    if _label_differs(snap, target):
        ops.append(Operation(f"set label machine_type={target.machine_type}", "define"))
    cfg = snap.config
    if target.memory_bytes > cfg.max_memory_bytes:
        ops.append(Operation("raise max memory (config)", "memory", target.memory_bytes, config=True,
                             maximum=True))
    if cfg.memory_bytes != target.memory_bytes:
        ops.append(Operation("set memory (config)", "memory", target.memory_bytes, config=True))
    if target.vcpus > cfg.max_vcpus:
        ops.append(Operation("raise max vCPUs (config)", "vcpus", target.vcpus, config=True, maximum=True))
    if cfg.vcpus != target.vcpus:
        ops.append(Operation("set vCPUs (config)", "vcpus", target.vcpus, config=True))
    if changes.restart:
        ops.append(Operation("start", "start"))
    elif snap.running:
        if not _mem_close(snap.live_memory_bytes, target.memory_bytes):
            ops.append(Operation("set memory (live balloon)", "memory", target.memory_bytes, live=True))
        if target.vcpus > snap.live_vcpus:
            ops.append(Operation("hot-plug vCPUs (live)", "vcpus", target.vcpus, live=True))
    return ops


def _label_differs(snap: DomainSnapshot, target: SizeSpec) -> bool:
    return bool(target.machine_type) and snap.labels.get(MACHINE_TYPE_LABEL, "") != target.machine_type


# ----------------------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class ActionResult:
    """Outcome of one step: what was (or would be) changed, and the audit record's id."""

    step: ResizeStep
    result: Result
    reason: str
    changes: tuple[Change, ...] = ()
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    operations: tuple[str, ...] = ()
    audit_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.result in ("planned", "applied", "unchanged", "deferred", "skipped")


def default_actor() -> str:
    """Return the OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ----------------------------------------------------------------------------------------- action


class ResizeAction:
    """Resize one VM as a ``ResizeStep`` says, or explain why not. One instance per step and attempt.

    ``execute()`` runs the whole cycle and returns an ``ActionResult``; the phases (``validate``,
    ``pre_condition``, ``apply``, ``verify``, ``revert``) raise ``ActionSkipped``/``ActionFailed``.
    """

    def __init__(
        self,
        control: DomainControl,
        step: ResizeStep,
        *,
        permission: RestartPermission,
        audit: AuditLog | None = None,
        lock_dir: Path | str | None = None,
        plan_id: str = "",
        actor: str | None = None,
        min_days_between_resizes: int = 7,
        shutdown_timeout_s: float = 120.0,
        verify_timeout_s: float = 30.0,
        reconnect_timeout_s: float = 30.0,
        poll_s: float = 0.25,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.control = control
        self.step = step
        self.permission = permission
        self.audit_log = audit
        self.lock_dir = Path(lock_dir) if lock_dir is not None else None
        self.plan_id = plan_id
        self.actor = actor or default_actor()
        self.min_days = min_days_between_resizes
        self.shutdown_timeout_s = shutdown_timeout_s
        self.verify_timeout_s = verify_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.poll_s = poll_s
        self.clock = clock
        self.saved: DomainSnapshot | None = None
        self.changes: StepChanges | None = None
        self.done: list[str] = []
        self._ref: VmRef | None = None

    # -- phases ----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the step itself (not the VM). Raises ActionFailed."""
        t = self.step.target
        if t.vcpus < 1 or t.memory_bytes < 64 * MIB or t.memory_bytes % KIB:
            raise ActionFailed(
                f"Target of {self.step.vm.name!r} is invalid ({t.vcpus} vCPUs, {t.memory_bytes} bytes); "
                "regenerate the plan"
            )

    def pre_condition(self) -> DomainSnapshot:
        """Check the VM exists (by UUID), is running or shut off, persistent and not excluded; save its state.

        Raises ActionSkipped (gone, paused/crashed, transient, ``rightsizer_exclude=true``) or ActionFailed
        (libvirt error). Returns the snapshot, also kept as ``self.saved``. The plan-dependent checks
        follow in ``check_stale``, ``check_host`` and ``check_recent``.
        """
        name = self.step.vm.name
        try:
            ref = self.control.lookup(self.step.vm.uuid)
        except VmNotFoundError as exc:
            raise ActionSkipped(
                f"VM {name!r} ({self.step.vm.uuid}) no longer exists on {self.control.uri}; drop it from the plan"
            ) from exc
        except HypervisorError as exc:
            raise ActionFailed(f"Cannot look up VM {name!r} on {self.control.uri}: {exc}") from exc
        self._ref = ref
        try:
            snap = take_snapshot(self.control, ref, self.clock())
        except VmNotFoundError as exc:
            raise ActionSkipped(f"VM {name!r} disappeared while being inspected; drop it from the plan") from exc
        except HypervisorError as exc:
            raise ActionFailed(f"Cannot read VM {name!r}: {exc}") from exc
        self.saved = snap
        if snap.state not in (VmState.RUNNING, VmState.SHUTOFF):
            raise ActionSkipped(
                f"VM {name!r} is {snap.state.value}; resizes need a running or shut-off VM -- resume or "
                "shut it down and run the plan again"
            )
        if not snap.persistent:
            raise ActionSkipped(
                f"VM {name!r} is transient (no persistent config to change); define it persistently first"
            )
        if snap.labels.get(EXCLUDE_LABEL, "").strip().lower() == "true":
            raise ActionSkipped(f"VM {name!r} carries label {EXCLUDE_LABEL}=true; it is never resized")
        return snap

    def check_stale(self, snap: DomainSnapshot) -> None:
        """Refuse a plan whose 'current' size no longer matches the VM. Raises ActionSkipped."""
        cur = self.step.current
        vcpus_ok = cur.vcpus in (snap.live_vcpus, snap.config.vcpus)
        tol = max(MEMORY_TOLERANCE_BYTES, int(cur.memory_bytes * STALE_MEMORY_TOLERANCE))
        mem_ok = any(abs(cur.memory_bytes - m) <= tol for m in (snap.live_memory_bytes, snap.config.memory_bytes))
        if not (vcpus_ok and mem_ok):
            raise ActionSkipped(
                f"VM {self.step.vm.name!r} changed since the plan was made: it has {snap.live_vcpus} vCPUs and "
                f"{format_bytes(snap.live_memory_bytes)}, the plan expected {cur.vcpus} vCPUs and "
                f"{format_bytes(cur.memory_bytes)}; regenerate the plan"
            )

    def check_host(self) -> None:
        """Refuse a target larger than the host. Raises ActionFailed before any change."""
        try:
            host = self.control.host_capacity()
        except HypervisorError as exc:
            raise ActionFailed(f"Cannot read the host's capacity on {self.control.uri}: {exc}") from exc
        t = self.step.target
        if t.vcpus > host.cpus or t.memory_bytes > host.memory_bytes:
            raise ActionFailed(
                f"Target of VM {self.step.vm.name!r} ({t.vcpus} vCPUs, {format_bytes(t.memory_bytes)}) does not fit "
                f"host {getattr(host, 'hostname', '') or self.control.uri} ({host.cpus} CPUs, "
                f"{format_bytes(host.memory_bytes)}); choose a smaller machine type"
            )

    def check_recent(self) -> None:
        """Refuse a VM resized less than ``min_days_between_resizes`` ago (audit log). Raises ActionSkipped."""
        if self.audit_log is None or self.min_days <= 0:
            return
        since = self.clock() - timedelta(days=self.min_days)
        recent = [e for e in self.audit_log.audit(self.step.vm.uuid) if e.result == "applied" and e.ts >= since]
        if recent:
            last = max(e.ts for e in recent)
            raise ActionSkipped(
                f"VM {self.step.vm.name!r} was resized on {last:%Y-%m-%d %H:%M} UTC, less than {self.min_days} "
                "days ago; wait, or lower [actions] min_days_between_resizes"
            )

    def apply(self, ops: Sequence[Operation]) -> None:
        """Run the libvirt calls in order. Raises HypervisorError or ActionFailed on the first failure."""
        ref = self._require_ref()
        for op in ops:
            log.info("%s: %s", self.step.vm.name, op.name)
            if op.kind == "shutdown":
                self.control.shutdown(ref)
                self.done.append(op.name)
                self._wait_state(ref, VmState.SHUTOFF, self.shutdown_timeout_s, "graceful shutdown")
                continue
            if op.kind == "start":
                self.control.start(ref)
            elif op.kind == "define":
                # the collector reads the live metadata, so a running VM gets the new label live too
                saved = self._require_saved()
                labels = {**saved.labels, MACHINE_TYPE_LABEL: self.step.target.machine_type}
                running = self.control.state(ref) is VmState.RUNNING
                self.control.set_labels(ref, labels, live=running, config=True)
            elif op.kind == "vcpus":
                self.control.set_vcpus(ref, op.value, live=op.live, config=op.config, maximum=op.maximum)
            else:
                self.control.set_memory(ref, op.value, live=op.live, config=op.config, maximum=op.maximum)
            self.done.append(op.name)

    def verify(self, changes: StepChanges) -> DomainSnapshot:
        """Check libvirt now shows the target (persistent XML always, live where applied). Raises ActionFailed."""
        saved = self._require_saved()
        ref = self._require_ref()
        t = self.step.target
        expect_running = saved.running
        deadline = time.monotonic() + self.verify_timeout_s
        problems: list[str] = []
        while True:
            try:
                snap = take_snapshot(self.control, ref, self.clock())
            except ConnectionFailedError:
                if time.monotonic() >= deadline + self.reconnect_timeout_s:
                    raise
                time.sleep(max(self.poll_s, 0.5))  # libvirtd restarting: the control reconnects
                continue
            problems = []
            if snap.config.vcpus != t.vcpus:
                problems.append(f"config vCPUs {snap.config.vcpus} != {t.vcpus}")
            if snap.config.memory_bytes != t.memory_bytes:
                problems.append(f"config memory {snap.config.memory_bytes} != {t.memory_bytes}")
            if snap.config.max_vcpus < t.vcpus or snap.config.max_memory_bytes < t.memory_bytes:
                problems.append("config maximum below target")
            if t.machine_type and snap.labels.get(MACHINE_TYPE_LABEL, "") != t.machine_type:
                problems.append(f"label machine_type {snap.labels.get(MACHINE_TYPE_LABEL)!r} != {t.machine_type!r}")
            if expect_running != snap.running:
                problems.append(f"state {snap.state.value}, expected {saved.state.value}")
            elif snap.running:
                if not _mem_close(snap.live_memory_bytes, t.memory_bytes):
                    problems.append(f"live memory {snap.live_memory_bytes} != {t.memory_bytes}")
                if changes.restart and snap.live_vcpus != t.vcpus:
                    problems.append(f"live vCPUs {snap.live_vcpus} != {t.vcpus} after restart")
                if not changes.restart and t.vcpus > saved.live_vcpus and snap.live_vcpus != t.vcpus:
                    problems.append(f"live vCPUs {snap.live_vcpus} != {t.vcpus} after hot-plug")
            if not problems or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        if problems:
            raise ActionFailed(f"Verification of VM {self.step.vm.name!r} failed: {'; '.join(problems)}")
        return snap

    def revert(self) -> tuple[Literal["reverted", "revert-failed", "failed"], str, DomainSnapshot | None]:
        """Put the VM back into the saved state and verify it against libvirt.

        Returns (outcome, text, snapshot after): "reverted" when libvirt shows the saved state again,
        "revert-failed" when it does not, "failed" when the VM vanished (it is not re-created). Never
        raises for libvirt errors: they become the text. Every revert call is idempotent, so the whole
        sequence is retried while libvirt is unreachable (e.g. libvirtd restarting), up to
        ``reconnect_timeout_s``.
        """
        saved = self._require_saved()
        ref = self._require_ref()
        reconnect_deadline = time.monotonic() + self.reconnect_timeout_s
        while True:
            notes: list[str] = []
            try:
                gone = self._revert_once(saved, ref, notes)
                break
            except ConnectionFailedError as exc:
                if time.monotonic() >= reconnect_deadline:
                    return "revert-failed", "; ".join(notes + [f"cannot reach libvirt to revert: {exc}"]), None
                log.warning("%s: libvirt unreachable during revert (%s); retrying", self.step.vm.name, exc)
                time.sleep(max(self.poll_s, 0.5))
            except HypervisorError as exc:
                notes.append(f"revert step failed: {exc}")
                gone = ""
                break
        if gone:
            return "failed", gone, None
        # Verify against libvirt, with time for the balloon to settle.
        deadline = time.monotonic() + max(self.verify_timeout_s, 0.0)
        while True:
            try:
                now = take_snapshot(self.control, ref, self.clock())
            except HypervisorError as exc:
                if isinstance(exc, ConnectionFailedError) and time.monotonic() < reconnect_deadline:
                    time.sleep(max(self.poll_s, 0.5))
                    continue
                outcome: Literal["failed", "revert-failed"] = (
                    "failed" if isinstance(exc, VmNotFoundError) else "revert-failed")
                return outcome, "; ".join(notes + [f"cannot read the VM after revert: {exc}"]), None
            problems = []
            if now.config != saved.config:
                problems.append(f"config {now.config} != saved {saved.config}")
            if dict(now.labels) != dict(saved.labels):
                problems.append("labels differ from the saved ones")
            if now.state is not saved.state:
                problems.append(f"state {now.state.value} != saved {saved.state.value}")
            elif now.running and not _mem_close(now.live_memory_bytes, saved.live_memory_bytes):
                problems.append(f"live memory {now.live_memory_bytes} != saved {saved.live_memory_bytes}")
            if not problems or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        if now.running and now.live_vcpus > saved.live_vcpus:
            notes.append(
                f"live vCPUs stay at {now.live_vcpus} (saved {saved.live_vcpus}) until the next restart: "
                "QEMU cannot unplug them live; the persistent config is restored"
            )
        if problems:
            return "revert-failed", "; ".join(notes + ["revert NOT verified: " + "; ".join(problems)]), now
        return "reverted", "; ".join(notes + ["revert verified against libvirt"]), now

    def _revert_once(self, saved: DomainSnapshot, ref: VmRef, notes: list[str]) -> str:
        """Run the revert calls once; return a non-empty reason when there is nothing to revert to."""
        try:
            info = self.control.info(ref)
        except VmNotFoundError:
            return "the VM no longer exists (undefined by someone else); nothing was re-created"
        if not getattr(info, "persistent", True):
            return "the VM became transient (undefined while running); the saved XML was not redefined"
        self.control.define_xml(saved.inactive_xml)
        notes.append("redefined the saved persistent XML")
        if saved.running:
            if info.state is VmState.SHUTOFF:
                self.control.start(ref)
                notes.append("started it again")
            elif info.state is VmState.RUNNING:
                self.control.set_labels(ref, saved.labels, live=True, config=False)
                if not _mem_close(int(info.memory_bytes), saved.live_memory_bytes):
                    self.control.set_memory(ref, saved.live_memory_bytes, live=True, config=False)
                    notes.append(f"ballooned back to {format_bytes(saved.live_memory_bytes)}")
                if int(info.vcpus) < saved.live_vcpus:
                    self.control.set_vcpus(ref, saved.live_vcpus, live=True, config=False)
                    notes.append(f"hot-plugged back to {saved.live_vcpus} vCPUs")
        return ""

    # -- orchestration ----------------------------------------------------------------------------

    def _prepare(self) -> ActionResult | tuple[DomainSnapshot, StepChanges]:
        """Run validate and every pre-check; return an early result or the snapshot and the changes."""
        try:
            self.validate()
            snap = self.pre_condition()
            if is_at_target(snap, self.step.target):
                pending = ""
                if snap.running and snap.live_vcpus > self.step.target.vcpus:
                    pending = f"; {snap.live_vcpus} -> {self.step.target.vcpus} vCPUs take effect at next restart"
                return self._result("unchanged", "already at target" + pending, snap, snap)
            self.check_stale(snap)
            self.check_host()
            self.check_recent()
        except ActionSkipped as exc:
            return self._result("skipped", str(exc), self.saved, None)
        except ActionFailed as exc:
            return self._result("failed", str(exc), self.saved, None)
        changes = plan_changes(snap, self.step.target, self.permission)
        self.changes = changes
        if changes.deferred:
            return self._result("deferred", changes.reason, snap, snap, changes)
        return snap, changes

    def preview(self) -> ActionResult:
        """Dry run: inspect the VM and say what would change and when; changes nothing, writes no audit."""
        prepared = self._prepare()
        if isinstance(prepared, ActionResult):
            return prepared
        snap, changes = prepared
        ops = build_operations(snap, self.step.target, changes)
        return self._result("planned", "dry run; add --yes to apply", snap, None, changes, ops)

    def execute(self) -> ActionResult:
        """Lock the VM, run every phase, revert on failure, append the audit record; never raises ActionError."""
        lock = None
        if self.lock_dir is not None:
            lock = VmLock(self.lock_dir, self.step.vm.uuid, holder=f"{self.actor} {self.plan_id}".strip())
            try:
                lock.acquire()
            except ActionSkipped as exc:
                return self._audited(self._result("skipped", str(exc), None, None))
        try:
            return self._audited(self._execute_locked())
        finally:
            if lock is not None:
                lock.release()

    def _execute_locked(self) -> ActionResult:
        prepared = self._prepare()
        if isinstance(prepared, ActionResult):
            return prepared
        snap, changes = prepared
        ops = build_operations(snap, self.step.target, changes)
        try:
            self.apply(ops)
            after = self.verify(changes)
        except KeyboardInterrupt:
            # Interrupted half-way: put the VM back before giving up, then let the interrupt through.
            outcome, text, now = self.revert()
            self._audited(self._result(outcome, f"interrupted after {len(self.done)} step(s); {text}",
                                       snap, now, changes, ops))
            raise
        except (HypervisorError, ActionError) as exc:
            failed_at = len(self.done) + 1
            what = f"step {failed_at} ({ops[failed_at - 1].name})" if failed_at <= len(ops) else "verification"
            cause = f"{what} failed: {exc}"
            log.warning("%s: %s; reverting", self.step.vm.name, cause)
            outcome, text, now = self.revert()
            return self._result(outcome, f"{cause}; {text}", snap, now, changes, ops)
        notes = ["applied and verified against libvirt"]
        for c in changes.changes:
            if c.effect in ("next-restart", "next-start"):
                moment = "next restart" if c.effect == "next-restart" else "next start"
                notes.append(f"{_DIM_NAMES[c.dimension]} {_fmt_dim(c.dimension, c.before)} -> "
                             f"{_fmt_dim(c.dimension, c.after)} takes effect at {moment}")
        return self._result("applied", "; ".join(notes), snap, after, changes, ops)

    # -- helpers ----------------------------------------------------------------------------------

    def _require_ref(self) -> VmRef:
        if self._ref is None:
            raise ActionFailed("pre_condition() must run before apply/verify/revert")
        return self._ref

    def _require_saved(self) -> DomainSnapshot:
        if self.saved is None:
            raise ActionFailed("pre_condition() must run before apply/verify/revert")
        return self.saved

    def _wait_state(self, ref: VmRef, state: VmState, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.control.state(ref)
            if current is state:
                return
            if time.monotonic() >= deadline:
                raise ActionFailed(
                    f"{what} of VM {self.step.vm.name!r} did not finish within {timeout_s:g}s "
                    f"(state {current.value}); the guest may ignore ACPI"
                )
            time.sleep(self.poll_s)

    def _result(
        self,
        result: Result,
        reason: str,
        before: DomainSnapshot | Mapping[str, Any] | None,
        after: DomainSnapshot | Mapping[str, Any] | None,
        changes: StepChanges | None = None,
        ops: Sequence[Operation] = (),
    ) -> ActionResult:
        def as_map(v: DomainSnapshot | Mapping[str, Any] | None) -> Mapping[str, Any]:
            if v is None:
                return {}
            return v.summary() if isinstance(v, DomainSnapshot) else dict(v)

        before_map = dict(as_map(before))
        if isinstance(before, DomainSnapshot) and result not in ("planned", "unchanged", "skipped"):
            before_map["inactive_xml"] = before.inactive_xml  # for manual recovery: virsh define
        return ActionResult(
            step=self.step,
            result=result,
            reason=reason,
            changes=changes.changes if changes else (),
            before=before_map,
            after=as_map(after),
            operations=tuple(o.name for o in ops),
        )

    def _audited(self, res: ActionResult) -> ActionResult:
        if self.audit_log is None:
            return res
        entry = AuditEntry(
            ts=self.clock(),
            actor=self.actor,
            vm_uuid=self.step.vm.uuid,
            vm_name=self.step.vm.name,
            action=ACTION_NAME,
            before=res.before,
            after={**res.after, "target_vcpus": self.step.target.vcpus,
                   "target_memory_bytes": self.step.target.memory_bytes,
                   "target_machine_type": self.step.target.machine_type,
                   "operations": list(self.done)},
            result=res.result,
            reason=res.reason,
            plan_id=self.plan_id,
            price_before_per_hour=self.step.price_before_per_hour,
            price_after_per_hour=self.step.price_after_per_hour,
            currency=self.step.currency,
        )
        audit_id = self.audit_log.append_audit(entry)
        return replace(res, audit_id=audit_id)


# ------------------------------------------------------------------------------------------- diff

#: Monthly figures use 720 h, as the price catalogue does (STACKIT publishes monthly = hourly x 720).
HOURS_PER_MONTH = 720.0


def _fmt_dim(dim: str, value: int) -> str:
    return format_bytes(value) if dim == "memory_bytes" else str(value)


def _fmt_price(value: float | None) -> str:
    return "?" if value is None else f"{value:.4f}"


def format_result(res: ActionResult) -> str:
    """Render one step as a human-readable diff: sizes, price and when each change takes effect."""
    s = res.step
    head = f"{s.vm.name} ({s.vm.uuid}) on {s.vm.uri or '?'}"
    if s.finding:
        head += f" -- {s.finding}"
    lines = [f"{head}  [{res.result}]"]
    rows: list[tuple[str, str, str]] = []
    if res.changes:
        for c in res.changes:
            rows.append((_DIM_NAMES[c.dimension], f"{_fmt_dim(c.dimension, c.before)} -> "
                         f"{_fmt_dim(c.dimension, c.after)}", "unchanged" if c.effect == "unchanged" else c.when))
    else:
        rows.append(("vCPUs", f"{s.current.vcpus} -> {s.target.vcpus}", "-"))
        rows.append(("memory", f"{format_bytes(s.current.memory_bytes)} -> {format_bytes(s.target.memory_bytes)}", "-"))
    if s.current.machine_type or s.target.machine_type:
        rows.append(("type", f"{s.current.machine_type or '?'} -> {s.target.machine_type or '?'}", ""))
    if s.price_before_per_hour is not None or s.price_after_per_hour is not None:
        cur = f" {s.currency}/h" if s.currency else "/h"
        text = f"{_fmt_price(s.price_before_per_hour)} -> {_fmt_price(s.price_after_per_hour)}{cur}"
        note = ""
        if s.price_before_per_hour is not None and s.price_after_per_hour is not None:
            delta = s.price_after_per_hour - s.price_before_per_hour
            verb = "saves" if delta < 0 else "costs"
            note = (f"{verb} {abs(delta):.4f}{cur} ({abs(delta) * HOURS_PER_MONTH:.2f} "
                    f"{s.currency or ''}/month)").replace(" /month", "/month")
        rows.append(("price", text, note))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    for label, value, when in rows:
        lines.append(f"  {label.ljust(w1)}  {value.ljust(w2)}  {when}".rstrip())
    if res.reason:
        lines.append(f"  {res.reason}")
    return "\n".join(lines)


def format_results(results: Sequence[ActionResult]) -> str:
    """Render every step's diff, blank-line separated, with a one-line total."""
    if not results:
        return "The plan has no steps: nothing to do.\n"
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    total = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return "\n\n".join(format_result(r) for r in results) + f"\n\n{len(results)} VM(s): {total}\n"


def result_row(res: ActionResult) -> dict[str, Any]:
    """Flatten a result for JSON/CSV output (one row per VM)."""
    s = res.step
    by_dim = {c.dimension: c for c in res.changes}
    vc, mem = by_dim.get("vcpus"), by_dim.get("memory_bytes")
    return {
        "name": s.vm.name,
        "uuid": s.vm.uuid,
        "uri": s.vm.uri,
        "result": res.result,
        "vcpus_before": vc.before if vc else s.current.vcpus,
        "vcpus_after": s.target.vcpus,
        "vcpus_when": vc.when if vc else "",
        "memory_bytes_before": mem.before if mem else s.current.memory_bytes,
        "memory_bytes_after": s.target.memory_bytes,
        "memory_when": mem.when if mem else "",
        "machine_type_before": s.current.machine_type,
        "machine_type_after": s.target.machine_type,
        "price_before_per_hour": s.price_before_per_hour,
        "price_after_per_hour": s.price_after_per_hour,
        "currency": s.currency,
        "finding": s.finding,
        "reason": res.reason,
        "operations": list(res.operations),
        "audit_id": res.audit_id,
    }
