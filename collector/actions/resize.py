"""Resize one VM through libvirt: validate -> pre_condition -> apply -> verify, with a working revert.

``ResizeAction`` runs the steps; the parts live beside it, one job each: ``changes`` decides when each
dimension changes (pure), ``prechecks`` the checks before any change, ``snapshot`` reads what a revert goes
back to, ``verify`` compares libvirt against the target, ``revert`` puts the saved state back, and
``outcome`` builds the result and the audit record. Before changing anything the action saves the
persistent (inactive) XML and the live values; on any failure it reverts and verifies the revert against
libvirt, not against its own bookkeeping. Every outcome is appended to the store's audit log.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.actions import prechecks
from collector.actions.changes import Operation, StepChanges, build_operations, is_at_target, plan_changes
from collector.actions.locks import VmLock
from collector.actions.outcome import audit_entry, pending_notes, result_of
from collector.actions.policy import RestartPermission
from collector.actions.result import ActionResult
from collector.actions.revert import RevertResult, RevertTiming, revert_to
from collector.actions.snapshot import AuditLog, DomainControl, DomainSnapshot, take_snapshot
from collector.actions.verify import poll_until_settled, target_problems
from collector.domxml import MACHINE_TYPE_LABEL
from collector.errors import (
    ActionError,
    ActionFailed,
    ActionSkipped,
    ConnectionFailedError,
    HypervisorError,
    VmNotFoundError,
)
from collector.model import VmRef, VmState
from core.plan import ResizeStep

log = logging.getLogger(__name__)


def default_actor() -> str:
    """Return the OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
        prechecks.check_target(self.step)

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
        prechecks.check_resizable(snap, name)
        return snap

    def check_stale(self, snap: DomainSnapshot) -> None:
        """Refuse a plan whose 'current' size no longer matches the VM. Raises ActionSkipped."""
        prechecks.check_stale(self.step, snap)

    def check_host(self) -> None:
        """Refuse a target larger than the host. Raises ActionFailed before any change."""
        prechecks.check_host(self.control, self.step)

    def check_recent(self) -> None:
        """Refuse a VM resized less than ``min_days_between_resizes`` ago (audit log). Raises ActionSkipped."""
        prechecks.check_recent(self.audit_log, self.step, self.clock(), self.min_days)

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
        # libvirtd restarting: the control reconnects, so reads are retried a while longer
        give_up_at = time.monotonic() + self.verify_timeout_s + self.reconnect_timeout_s
        snap, problems = poll_until_settled(
            lambda: take_snapshot(self.control, ref, self.clock()),
            lambda snap: target_problems(snap, saved, self.step.target, changes),
            timeout_s=self.verify_timeout_s, poll_s=self.poll_s,
            retry=lambda exc: isinstance(exc, ConnectionFailedError) and time.monotonic() < give_up_at,
        )
        if problems:
            raise ActionFailed(f"Verification of VM {self.step.vm.name!r} failed: {'; '.join(problems)}")
        return snap

    def revert(self) -> RevertResult:
        """Put the VM back into the saved state and verify it against libvirt (see ``revert.revert_to``).

        Returns (outcome, text, snapshot after): "reverted", "revert-failed" or "failed" (the VM vanished).
        Never raises for libvirt errors: they become the text.
        """
        timing = RevertTiming(self.verify_timeout_s, self.reconnect_timeout_s, self.poll_s)
        return revert_to(self.control, self._require_ref(), self._require_saved(), timing=timing, clock=self.clock)

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
                return self._result_of("unchanged", "already at target" + pending, snap, snap)
            self.check_stale(snap)
            self.check_host()
            self.check_recent()
        except ActionSkipped as exc:
            return self._result_of("skipped", str(exc), self.saved, None)
        except ActionFailed as exc:
            return self._result_of("failed", str(exc), self.saved, None)
        changes = plan_changes(snap, self.step.target, self.permission)
        self.changes = changes
        if changes.deferred:
            return self._result_of("deferred", changes.reason, snap, snap, changes)
        return snap, changes

    def preview(self) -> ActionResult:
        """Dry run: inspect the VM and say what would change and when; changes nothing, writes no audit."""
        prepared = self._prepare()
        if isinstance(prepared, ActionResult):
            return prepared
        snap, changes = prepared
        ops = build_operations(snap, self.step.target, changes)
        return self._result_of("planned", "dry run; add --yes to apply", snap, None, changes, ops)

    def execute(self) -> ActionResult:
        """Lock the VM, run every phase, revert on failure, append the audit record; never raises ActionError."""
        lock = None
        if self.lock_dir is not None:
            lock = VmLock(self.lock_dir, self.step.vm.uuid, holder=f"{self.actor} {self.plan_id}".strip())
            try:
                lock.acquire()
            except ActionSkipped as exc:
                return self._audited(self._result_of("skipped", str(exc), None, None))
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
            self._audited(self._result_of(outcome, f"interrupted after {len(self.done)} step(s); {text}",
                                       snap, now, changes, ops))
            raise
        except (HypervisorError, ActionError) as exc:
            failed_at = len(self.done) + 1
            what = f"step {failed_at} ({ops[failed_at - 1].name})" if failed_at <= len(ops) else "verification"
            cause = f"{what} failed: {exc}"
            log.warning("%s: %s; reverting", self.step.vm.name, cause)
            outcome, text, now = self.revert()
            return self._result_of(outcome, f"{cause}; {text}", snap, now, changes, ops)
        notes = ["applied and verified against libvirt", *pending_notes(changes, snap)]
        return self._result_of("applied", "; ".join(notes), snap, after, changes, ops)

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

    def _result_of(self, *args: Any, **kwargs: Any) -> ActionResult:
        """:func:`result_of` for this step, naming the VM as libvirt does once its UUID was looked up."""
        return result_of(self.step, *args, libvirt_name=self._ref.name if self._ref is not None else "", **kwargs)

    def _audited(self, res: ActionResult) -> ActionResult:
        if self.audit_log is None:
            return res
        entry = audit_entry(res, ts=self.clock(), actor=self.actor, plan_id=self.plan_id,
                            libvirt_name=self._ref.name if self._ref is not None else "", operations=self.done)
        return replace(res, audit_id=self.audit_log.append_audit(entry))
