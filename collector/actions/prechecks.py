"""The checks a resize runs before it changes anything; each raises ``ActionSkipped`` or ``ActionFailed``.

Skipped means the step no longer applies (the VM is gone, excluded, or changed since the plan); failed
means it cannot be done as planned (an invalid or too large target, libvirt unreadable).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.actions.changes import MEMORY_TOLERANCE_BYTES
from collector.actions.snapshot import AuditLog, DomainControl, DomainSnapshot
from collector.domxml import EXCLUDE_LABEL, KIB, MIB, format_bytes, is_excluded
from collector.errors import ActionFailed, ActionSkipped, HypervisorError
from collector.model import VmState
from core.plan import ResizeStep

#: A plan's "current" memory may differ this much from what libvirt reports before we call it stale.
STALE_MEMORY_TOLERANCE = 0.02
_MIN_TARGET_MEMORY_BYTES = 64 * MIB


def check_target(step: ResizeStep) -> None:
    """Check the step itself (not the VM): at least 1 vCPU and 64 MiB, memory a whole number of KiB."""
    t = step.target
    if t.vcpus < 1 or t.memory_bytes < _MIN_TARGET_MEMORY_BYTES or t.memory_bytes % KIB:
        raise ActionFailed(
            f"Target of {step.vm.name!r} is invalid ({t.vcpus} vCPUs, {t.memory_bytes} bytes); "
            "regenerate the plan"
        )


def check_resizable(snap: DomainSnapshot, name: str) -> None:
    """Skip a VM that is paused or crashed, transient, or labelled ``rightsizer_exclude``."""
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


def check_stale(step: ResizeStep, snap: DomainSnapshot) -> None:
    """Skip a step whose 'current' size no longer matches the VM (live or persistent)."""
    cur = step.current
    vcpus_ok = cur.vcpus in (snap.live_vcpus, snap.config.vcpus)
    tol = max(MEMORY_TOLERANCE_BYTES, int(cur.memory_bytes * STALE_MEMORY_TOLERANCE))
    mem_ok = any(abs(cur.memory_bytes - m) <= tol for m in (snap.live_memory_bytes, snap.config.memory_bytes))
    if not (vcpus_ok and mem_ok):
        raise ActionSkipped(
            f"VM {step.vm.name!r} changed since the plan was made: it has {snap.live_vcpus} vCPUs and "
            f"{format_bytes(snap.live_memory_bytes)}, the plan expected {cur.vcpus} vCPUs and "
            f"{format_bytes(cur.memory_bytes)}; regenerate the plan"
        )


def check_host(control: DomainControl, step: ResizeStep) -> None:
    """Fail a target larger than the host's CPUs or memory, before any change."""
    try:
        host = control.host_capacity()
    except HypervisorError as exc:
        raise ActionFailed(f"Cannot read the host's capacity on {control.uri}: {exc}") from exc
    t = step.target
    if t.vcpus > host.cpus or t.memory_bytes > host.memory_bytes:
        raise ActionFailed(
            f"Target of VM {step.vm.name!r} ({t.vcpus} vCPUs, {format_bytes(t.memory_bytes)}) does not fit "
            f"host {host.hostname or control.uri} ({host.cpus} CPUs, "
            f"{format_bytes(host.memory_bytes)}); choose a smaller machine type"
        )


def check_recent(audit_log: AuditLog | None, step: ResizeStep, now: datetime, min_days: int) -> None:
    """Skip a VM the audit log shows resized less than ``min_days`` days before ``now`` (0 turns it off)."""
    if audit_log is None or min_days <= 0:
        return
    since = now - timedelta(days=min_days)
    recent = [e for e in audit_log.audit(step.vm.uuid) if e.result == "applied" and e.ts >= since]
    if recent:
        last = max(e.ts for e in recent)
        raise ActionSkipped(
            f"VM {step.vm.name!r} was resized on {last:%Y-%m-%d %H:%M} UTC, less than {min_days} "
            "days ago; wait, or lower [actions] min_days_between_resizes"
        )
