"""Run a resize plan: one ``ResizeAction`` per step, sharing one read-write connection per URI.

The CLI (``rightsizer apply``) and the dashboard's apply control both come through here, so the same
pre-checks, lock, audit, verification and revert apply to every resize.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from collector.actions.locks import vm_lock_dir
from collector.actions.plan import ResizePlan, ResizeStep, SizeSpec, plan_id_for
from collector.actions.policy import restart_permission
from collector.actions.resize import ResizeAction
from collector.actions.result import ActionResult
from collector.actions.snapshot import AuditLog, DomainControl
from collector.errors import HypervisorError
from collector.model import VmRef, is_trace_uri
from core.settings import ActionSettings
from core.windows import parse_windows


def run_plan(
    plan: ResizePlan,
    settings: ActionSettings,
    *,
    store: AuditLog | None,
    apply: bool,
    actor: str,
    shutdown_timeout_s: float = 120.0,
    control_for: Callable[[str], DomainControl] | None = None,
) -> list[ActionResult]:
    """Preview (``apply=False``) or execute every step; a failing URI is reported per VM, never raised.

    ``store`` takes the audit log (None for a preview without a store). Each applied step holds its VM's lock
    in the host's lock directory (``[actions] lock_dir``, see collector.actions.locks), the same for every store.
    Raises nothing of its own.
    """
    if control_for is None:
        from collector.hypervisor.libvirt import LibvirtControl

        control_for = LibvirtControl
    windows = parse_windows(settings.windows)
    permission = restart_permission(settings.restart, windows, datetime.now(UTC))
    lock_dir = vm_lock_dir(settings.lock_dir) if apply else None
    controls: dict[str, DomainControl] = {}
    results: list[ActionResult] = []
    try:
        for step in plan.steps:
            if is_trace_uri(step.vm.uri):
                results.append(ActionResult(step=step, result="skipped",
                                            reason="imported from a trace: there is no libvirt domain to resize"))
                continue
            control = controls.get(step.vm.uri)
            if control is None:
                control = controls[step.vm.uri] = control_for(step.vm.uri)
            action = ResizeAction(
                control, step, permission=permission, audit=store,
                lock_dir=lock_dir, plan_id=plan.plan_id,
                actor=actor, min_days_between_resizes=settings.min_days_between_resizes,
                shutdown_timeout_s=shutdown_timeout_s,
            )
            try:
                results.append(action.execute() if apply else action.preview())
            except HypervisorError as exc:  # e.g. the URI is unreachable: report it per VM, go on
                results.append(ActionResult(step=step, result="failed", reason=str(exc)))
    finally:
        for control in controls.values():
            control.close()
    return results


def single_step_plan(
    vm: VmRef, current: SizeSpec, target: SizeSpec, *, price_before: float | None, price_after: float | None,
    currency: str, finding: str = "",
) -> ResizePlan:
    """A plan of one step (the dashboard's apply control resizes one VM at a time)."""
    step = ResizeStep(vm=vm, current=current, target=target, price_before_per_hour=price_before,
                      price_after_per_hour=price_after, currency=currency, finding=finding)
    return ResizePlan(plan_id=plan_id_for([step]), created_at=datetime.now(UTC), steps=(step,), source="dashboard")
