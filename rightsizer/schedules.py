"""Wiring of on/off schedules: which VMs are scheduled, their APScheduler jobs, the 7-day dry run.

A VM is scheduled when it carries a ``schedule`` label: a window (``Mon-Fri 07:00-19:00``, several joined
by ``;``, zone from the text or ``[schedules] timezone``) or ``auto`` for the proposed window. Excluded VMs
and VMs imported from traces are never scheduled. Applying needs ``[actions] schedules = true``; the
jobs call :func:`collector.actions.schedule.run_power`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analytics.schedules import (
    AUTO_SCHEDULE,
    SCHEDULE_LABEL,
    PlannedPower,
    format_window,
    parse_schedule,
    upcoming_actions,
)
from collector.actions.locks import vm_lock_dir
from collector.actions.schedule import PowerAction, PowerSettings, ScheduledVm, StoreCpu, run_power
from collector.domxml import is_excluded
from collector.errors import InputError
from collector.model import VmRecord, VmRef, is_trace_uri
from core.settings import Settings
from core.windows import MaintenanceWindow

log = logging.getLogger("rightsizer.schedule")
JOB_PREFIX = "schedule-"


@dataclass(frozen=True, slots=True)
class Resolved:
    """Scheduled VMs with their parsed windows, and one note per labelled VM left out (and why)."""

    vms: tuple[tuple[ScheduledVm, tuple[MaintenanceWindow, ...]], ...]
    notes: tuple[str, ...]


def resolve_scheduled(
    vms: Sequence[VmRecord], findings: Mapping[str, Any], settings: Settings, *,
    overrides: Mapping[str, str] | None = None,
) -> Resolved:
    """The VMs to start and stop. ``findings`` maps UUID -> VmFinding (proposal, price);
    ``overrides`` maps UUID -> schedule text replacing the label (dry-run previews).

    Raises InputError for a malformed override; a malformed label becomes a note.
    """
    zone = settings.schedules.timezone
    out: list[tuple[ScheduledVm, tuple[MaintenanceWindow, ...]]] = []
    notes: list[str] = []
    for vm in vms:
        labels = vm.labels or {}
        text = (overrides or {}).get(vm.uuid) or labels.get(SCHEDULE_LABEL, "").strip()
        if not text:
            continue
        if is_excluded(labels) or is_trace_uri(vm.uri):
            notes.append(f"{vm.name}: {'excluded' if is_excluded(labels) else 'imported trace'}; never scheduled")
            continue
        finding = findings.get(vm.uuid)
        if getattr(finding, "excluded", False):
            notes.append(f"{vm.name}: excluded by a policy; never scheduled")
            continue
        source = "label"
        if text.lower() == AUTO_SCHEDULE:
            proposal = getattr(finding, "schedule", None)
            if proposal is None:
                notes.append(f"{vm.name}: schedule=auto but no window fits its demand (pattern "
                             f"{getattr(finding, 'pattern', 'unknown')}); not scheduled")
                continue
            text, zone_used, source = proposal.on, proposal.timezone, "proposal"
        else:
            zone_used = zone
        try:
            windows = parse_schedule(text, zone_used)
        except InputError as exc:
            if overrides and vm.uuid in overrides:
                raise
            notes.append(f"{vm.name}: label {SCHEDULE_LABEL}={text!r} ignored: {exc}")
            continue
        price = None
        currency = ""
        if finding is not None:
            price = finding.price_after_per_hour if finding.changes_type else finding.price_before_per_hour
            currency = finding.currency
        text = "; ".join(f"{format_window(w.days, w.start_minute, w.duration_minutes)} {w.zone}" for w in windows)
        scheduled = ScheduledVm(VmRef(vm.uri, vm.uuid, vm.name), text, source,
                                price, currency)
        out.append((scheduled, windows))
    return Resolved(tuple(out), tuple(notes))


def dry_run(resolved: Resolved, start: datetime, *, days: float = 7.0) -> list[dict[str, Any]]:
    """Every start/stop the service would make from ``start`` over ``days``, as rows in time order."""
    rows: list[tuple[PlannedPower, ScheduledVm]] = []
    for vm, windows in resolved.vms:
        rows.extend((p, vm) for p in upcoming_actions(windows, start, days=days))
    rows.sort(key=lambda r: (r[0].when, r[1].ref.name, r[0].action))
    return [{"when": p.when.isoformat(timespec="minutes"), "vm": vm.ref.name, "action": p.action,
             "window": p.window, "source": vm.source, "uuid": vm.ref.uuid} for p, vm in rows]


def edge_trigger(window: MaintenanceWindow, action: PowerAction) -> Any:
    """An APScheduler trigger firing at exactly the instants the dry run lists for one edge of ``window``.

    A cron trigger in the window's zone fired twice when an edge fell in the hour an autumn change repeats
    (02:30 Europe/Berlin on the last Sunday of October), while the dry run listed it once; both now come from
    ``upcoming_actions``, across the spring and autumn changes alike.
    """
    from apscheduler.triggers.base import BaseTrigger

    class _EdgeTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler is untyped
        __slots__ = ("window", "action")

        def __init__(self, window: MaintenanceWindow, action: PowerAction) -> None:
            self.window, self.action = window, action

        def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
            return next_edge(self.window, self.action, previous_fire_time, now)

        def __str__(self) -> str:
            w = self.window
            return f"{self.action} of {format_window(w.days, w.start_minute, w.duration_minutes)} {w.zone}"

    return _EdgeTrigger(window, action)


def next_edge(window: MaintenanceWindow, action: PowerAction, previous: datetime | None,
              now: datetime) -> datetime | None:
    """The first ``action`` edge of ``window`` the dry run lists after ``previous`` (else from ``now``)."""
    start = previous + timedelta(seconds=1) if previous is not None else now
    for planned in upcoming_actions([window], start, days=8):  # every weekly window has both edges in 8 days
        if planned.action == action and planned.when >= start:
            return planned.when
    return None


def register_jobs(scheduler: Any, resolved: Resolved, job: Callable[[PowerAction, ScheduledVm], Any]) -> list[str]:
    """Add (or replace) one job per window edge (``edge_trigger``); drop schedule jobs of VMs no longer scheduled."""
    wanted: list[str] = []
    for vm, windows in resolved.vms:
        for i, window in enumerate(windows):
            for action in ("start", "stop"):
                job_id = f"{JOB_PREFIX}{action}-{vm.ref.uuid}-{i}"
                scheduler.add_job(job, edge_trigger(window, action), args=(action, vm), id=job_id,
                                  replace_existing=True, misfire_grace_time=120)
                wanted.append(job_id)
    for existing in scheduler.get_jobs():
        if existing.id.startswith(JOB_PREFIX) and existing.id not in wanted:
            scheduler.remove_job(existing.id)
    return wanted


def power_settings(settings: Settings) -> PowerSettings:
    s = settings.schedules
    return PowerSettings(idle_vcpus=settings.idle.cpu_vcpus_below, busy_lookback_s=s.busy_lookback_minutes * 60,
                         timeout_s=s.stop_timeout_s)


def make_power_job(
    settings: Settings, store: Any, control_for: Callable[[str], Any] | None = None, *, actor: str = "schedule",
) -> Callable[[PowerAction, ScheduledVm], Any]:
    """The job APScheduler runs at a window edge: one read-write connection, one start/stop, one audit row."""
    if control_for is None:
        from collector.hypervisor.libvirt import LibvirtControl

        control_for = LibvirtControl
    cpu = StoreCpu(store)
    limits = power_settings(settings)
    lock_dir = vm_lock_dir(settings.actions.lock_dir)

    def job(action: PowerAction, vm: ScheduledVm) -> Any:
        try:
            control = control_for(vm.ref.uri)
        except Exception:  # noqa: BLE001 - an unreachable URI must not kill the scheduler thread
            log.exception("schedule %s %s: cannot open %s", action, vm.ref.name, vm.ref.uri)
            return None
        try:
            return run_power(action, control, vm, cpu=cpu, audit=store, settings=limits, actor=actor,
                             lock_dir=lock_dir)
        finally:
            control.close()

    return job
