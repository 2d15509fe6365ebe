"""Start and stop domains on their schedule windows: the read-write side of on/off schedules.

A stop is a graceful ACPI shutdown (``virDomainShutdown``) followed by a wait of ``timeout_s`` for the
domain to reach shut-off; it is never forced. A stop is skipped -- and audited -- when the VM is excluded
(``rightsizer_exclude``), already off, or busy: its CPU exceeded the idle threshold in any sample of the
last ``busy_lookback_s`` (or there is no sample to tell). A start boots a shut-off domain and is skipped when
it already runs. Every attempt becomes one append-only audit row (action ``schedule-stop``/``schedule-start``)
with the compute price before and after, so realised savings (``analytics.realised.realised_savings``) count
the stopped hours the same way as a resize.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from collector.actions.locks import VmLock
from collector.domxml import is_excluded
from collector.errors import ActionSkipped, HypervisorError
from collector.model import VmRef, VmState
from collector.store.base import AuditEntry

log = logging.getLogger("rightsizer.schedule")

PowerAction = Literal["start", "stop"]
AUDIT_ACTIONS: Mapping[PowerAction, str] = {"start": "schedule-start", "stop": "schedule-stop"}


class PowerControl(Protocol):
    """The part of ``HypervisorControl`` a schedule needs (``LibvirtControl`` implements it)."""

    def state(self, ref: VmRef) -> VmState: ...

    def get_domain_xml(self, ref: VmRef, *, inactive: bool) -> str: ...

    def shutdown(self, ref: VmRef) -> None: ...

    def start(self, ref: VmRef) -> None: ...


class RecentCpu(Protocol):
    """Where the busy check reads recent CPU demand (the store's raw samples)."""

    def recent_peak_vcpus(self, vm_uuid: str, since: datetime) -> float | None:
        """Highest CPU demand (vCPU-equivalents) sampled since ``since``; None when there is no sample."""
        ...


class AuditSink(Protocol):
    def append_audit(self, entry: AuditEntry) -> int: ...


@dataclass(frozen=True, slots=True)
class ScheduledVm:
    """A VM under a schedule: its identity, its window text and its compute price while running."""

    ref: VmRef
    schedule: str  # e.g. "Mon-Fri 07:00-19:00 UTC"
    source: str  # "label" or "proposal"
    price_per_hour: float | None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class PowerResult:
    vm: ScheduledVm
    action: PowerAction
    result: str  # applied | skipped | failed
    reason: str


@dataclass(frozen=True, slots=True)
class PowerSettings:
    """Thresholds of one start/stop: idle threshold (vCPU), busy lookback and shutdown timeout (seconds)."""

    idle_vcpus: float = 0.03
    busy_lookback_s: float = 900.0
    timeout_s: float = 120.0
    poll_s: float = 1.0


class StoreCpu:
    """:class:`RecentCpu` over a ``TimeSeriesStore``'s raw samples."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def recent_peak_vcpus(self, vm_uuid: str, since: datetime) -> float | None:
        frame = self._store.frame(since, datetime.now(UTC) + timedelta(seconds=1), resolution="raw", vms=[vm_uuid])
        if frame.empty:
            return None
        values = frame["cpu_vcpus"].dropna()
        return float(values.max()) if len(values) else None


def _labels(control: PowerControl, ref: VmRef) -> dict[str, str]:
    from collector.domxml import parse_labels

    return parse_labels(control.get_domain_xml(ref, inactive=False))


def _busy_reason(cpu: RecentCpu, vm: ScheduledVm, settings: PowerSettings, now: datetime) -> str | None:
    since = now - timedelta(seconds=settings.busy_lookback_s)
    peak = cpu.recent_peak_vcpus(vm.ref.uuid, since)
    minutes = settings.busy_lookback_s / 60
    if peak is None:
        return f"no CPU sample in the last {minutes:g} min; a VM whose load is unknown is not stopped"
    if peak > settings.idle_vcpus:
        return (f"busy: CPU reached {peak:.2f} vCPU in the last {minutes:g} min (idle threshold "
                f"{settings.idle_vcpus:g}); stop skipped, it stays on until the next window end")
    return None


def stop_vm(
    control: PowerControl, vm: ScheduledVm, cpu: RecentCpu, settings: PowerSettings, *,
    now: datetime, sleep: Callable[[float], None] = time.sleep,
) -> PowerResult:
    """Shut ``vm`` down by ACPI unless it is excluded, off or busy; wait up to the timeout. Never raises."""
    try:
        if is_excluded(_labels(control, vm.ref)):
            return PowerResult(vm, "stop", "skipped", "excluded (rightsizer_exclude=true); never stopped")
        if control.state(vm.ref) is not VmState.RUNNING:
            return PowerResult(vm, "stop", "skipped", f"not running ({control.state(vm.ref).value})")
        busy = _busy_reason(cpu, vm, settings, now)
        if busy is not None:
            return PowerResult(vm, "stop", "skipped", busy)
        control.shutdown(vm.ref)
        waited = 0.0
        while waited < settings.timeout_s:
            if control.state(vm.ref) is VmState.SHUTOFF:
                return PowerResult(vm, "stop", "applied", f"ACPI shutdown done after {waited:.0f} s "
                                   f"(window {vm.schedule} closed)")
            sleep(settings.poll_s)
            waited += settings.poll_s
        return PowerResult(vm, "stop", "failed", f"still running {settings.timeout_s:g} s after the ACPI shutdown "
                           "request; left running (the guest may ignore the power button)")
    except HypervisorError as exc:
        return PowerResult(vm, "stop", "failed", str(exc))


def start_vm(control: PowerControl, vm: ScheduledVm) -> PowerResult:
    """Start ``vm`` when it is shut off (window opens). Never raises."""
    try:
        state = control.state(vm.ref)
        if state is VmState.RUNNING:
            return PowerResult(vm, "start", "skipped", "already running")
        if state is not VmState.SHUTOFF:
            return PowerResult(vm, "start", "skipped", f"in state {state.value}; only a shut-off VM is started")
        control.start(vm.ref)
        return PowerResult(vm, "start", "applied", f"started (window {vm.schedule} opened)")
    except HypervisorError as exc:
        return PowerResult(vm, "start", "failed", str(exc))


def audit_entry(res: PowerResult, *, actor: str, now: datetime | None = None) -> AuditEntry:
    """The audit row of one start/stop. An applied stop saves its price per hour until the next start."""
    running = res.vm.price_per_hour
    stopped_applied = res.action == "stop" and res.result == "applied"
    return AuditEntry(
        ts=now or datetime.now(UTC), actor=actor, vm_uuid=res.vm.ref.uuid, vm_name=res.vm.ref.name,
        action=AUDIT_ACTIONS[res.action],
        before={"schedule": res.vm.schedule},
        after={"state": ("shutoff" if res.action == "stop" else "running")} if res.result == "applied" else {},
        result=res.result, reason=res.reason, plan_id=f"schedule:{res.vm.source}",
        price_before_per_hour=running if res.result == "applied" else None,
        price_after_per_hour=(0.0 if stopped_applied else running) if res.result == "applied" else None,
        currency=res.vm.currency,
    )


def run_power(
    action: PowerAction, control: PowerControl, vm: ScheduledVm, *, cpu: RecentCpu, audit: AuditSink,
    settings: PowerSettings, actor: str, now: datetime | None = None, lock_dir: Path | None = None,
) -> PowerResult:
    """Run one scheduled start or stop and append its audit row; logs the outcome. Never raises for the VM.

    With ``lock_dir`` it holds the VM's apply lock (collector.actions.locks) meanwhile, so a window edge never
    starts or stops a VM an apply is resizing (it is skipped, audited, and the next edge tries again).
    """
    now = now or datetime.now(UTC)
    lock = VmLock(lock_dir, vm.ref.uuid, holder=f"{actor} {action}".strip()) if lock_dir is not None else None
    try:
        if lock is not None:
            lock.acquire()
    except ActionSkipped as exc:
        res = PowerResult(vm, action, "skipped", str(exc))
    else:
        try:
            res = stop_vm(control, vm, cpu, settings, now=now) if action == "stop" else start_vm(control, vm)
        finally:
            if lock is not None:
                lock.release()
    audit.append_audit(audit_entry(res, actor=actor))
    log.info("schedule %s %s: %s (%s)", action, vm.ref.name, res.result, res.reason)
    return res
