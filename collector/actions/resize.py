"""Resize one VM through libvirt: validate -> pre_condition -> apply -> verify, with a working revert.

When each dimension changes is decided in ``collector.actions.changes`` (pure); this module runs the
steps. Before changing anything the action saves the persistent (inactive) XML and the live values
(``collector.actions.snapshot``); on any failure it redefines the saved XML, re-applies the saved live
values where libvirt can (balloon; vCPUs can only go back up live) and verifies the revert against
libvirt, not against its own bookkeeping. Every outcome is appended to the store's audit log.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from collector.actions.changes import (
    DIM_NAMES,
    MEMORY_TOLERANCE_BYTES,
    Operation,
    StepChanges,
    build_operations,
    fmt_dim,
    is_at_target,
    mem_close,
    plan_changes,
)
from collector.actions.locks import VmLock
from collector.actions.plan import ResizeStep
from collector.actions.policy import RestartPermission
from collector.actions.result import ActionResult, Result
from collector.actions.snapshot import AuditLog, DomainControl, DomainSnapshot, take_snapshot
from collector.domxml import EXCLUDE_LABEL, KIB, MACHINE_TYPE_LABEL, MIB, format_bytes, is_excluded
from collector.errors import (
    ActionError,
    ActionFailed,
    ActionSkipped,
    ConnectionFailedError,
    HypervisorError,
    VmNotFoundError,
)
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry

log = logging.getLogger(__name__)

#: A plan's "current" memory may differ this much from what libvirt reports before we call it stale.
STALE_MEMORY_TOLERANCE = 0.02
ACTION_NAME = "resize"


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
        name = ref.name or name
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
        if is_excluded(snap.labels):
            raise ActionSkipped(
                f"VM {name!r} carries label {EXCLUDE_LABEL}={snap.labels[EXCLUDE_LABEL]}; it is never resized"
            )
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
                f"host {host.hostname or self.control.uri} ({host.cpus} CPUs, "
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
            if changes.lowers_max_memory and snap.config.max_memory_bytes != t.memory_bytes:
                problems.append(f"config max memory {snap.config.max_memory_bytes} != {t.memory_bytes}")
            if t.machine_type and snap.labels.get(MACHINE_TYPE_LABEL, "") != t.machine_type:
                problems.append(f"label machine_type {snap.labels.get(MACHINE_TYPE_LABEL)!r} != {t.machine_type!r}")
            if expect_running != snap.running:
                problems.append(f"state {snap.state.value}, expected {saved.state.value}")
            elif snap.running:
                if not mem_close(snap.live_memory_bytes, t.memory_bytes):
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
            elif now.running and not mem_close(now.live_memory_bytes, saved.live_memory_bytes):
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
        if not info.persistent:
            return "the VM became transient (undefined while running); the saved XML was not redefined"
        self.control.define_xml(saved.inactive_xml)
        notes.append("redefined the saved persistent XML")
        if saved.running:
            if info.state is VmState.SHUTOFF:
                self.control.start(ref)
                notes.append("started it again")
            elif info.state is VmState.RUNNING:
                self.control.set_labels(ref, saved.labels, live=True, config=False)
                if not mem_close(info.memory_bytes, saved.live_memory_bytes):
                    self.control.set_memory(ref, saved.live_memory_bytes, live=True, config=False)
                    notes.append(f"ballooned back to {format_bytes(saved.live_memory_bytes)}")
                if info.vcpus < saved.live_vcpus:
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
            moment = "next restart" if c.effect == "next-restart" else "next start"
            if c.effect in ("next-restart", "next-start") and c.before != c.after:
                notes.append(f"{DIM_NAMES[c.dimension]} {fmt_dim(c.dimension, c.before)} -> "
                             f"{fmt_dim(c.dimension, c.after)} takes effect at {moment}")
            elif c.lowers_maximum and c.effect in ("next-restart", "next-start"):  # only a leftover maximum
                notes.append(f"max memory {format_bytes(snap.config.max_memory_bytes)} -> "
                             f"{format_bytes(c.after)} takes effect at {moment}")
            if c.lowers_maximum and c.effect == "live":
                notes.append(f"max memory {format_bytes(snap.config.max_memory_bytes)} -> "
                             f"{format_bytes(c.after)} takes effect at next restart")
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
        step = self.step
        # libvirt's name for the UUID, not the plan's: a plan file may carry a stale or wrong name
        if self._ref is not None and self._ref.name and self._ref.name != step.vm.name:
            reason = f"{reason} (the plan named this VM {step.vm.name!r})".strip()
            step = replace(step, vm=replace(step.vm, name=self._ref.name))
        return ActionResult(
            step=step,
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
        name, reason = res.step.vm.name, res.reason  # libvirt's name once the UUID was looked up (``_result``)
        entry = AuditEntry(
            ts=self.clock(),
            actor=self.actor,
            vm_uuid=self.step.vm.uuid,
            vm_name=name,
            action=ACTION_NAME,
            before=res.before,
            after={**res.after, "target_vcpus": self.step.target.vcpus,
                   "target_memory_bytes": self.step.target.memory_bytes,
                   "target_machine_type": self.step.target.machine_type,
                   "operations": list(self.done)},
            result=res.result,
            reason=reason,
            plan_id=self.plan_id,
            price_before_per_hour=self.step.price_before_per_hour,
            price_after_per_hour=self.step.price_after_per_hour,
            currency=self.step.currency,
        )
        audit_id = self.audit_log.append_audit(entry)
        return replace(res, audit_id=audit_id)

