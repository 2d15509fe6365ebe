"""Put a VM back into the state saved before a resize, and verify that against libvirt.

The saved persistent XML is redefined; live values go back where libvirt can (balloon, labels, vCPUs
only upwards: QEMU cannot unplug them live). Every call is idempotent, so the whole sequence is retried
while libvirt is unreachable (e.g. libvirtd restarting), up to the reconnect timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from collector.actions.changes import mem_close
from collector.actions.snapshot import DomainControl, DomainSnapshot, take_snapshot
from collector.actions.verify import RECONNECT_POLL_S, poll_until_settled, revert_problems
from collector.domxml import format_bytes
from collector.errors import ConnectionFailedError, HypervisorError, VmNotFoundError
from collector.model import VmRef, VmState

log = logging.getLogger(__name__)

RevertOutcome = Literal["reverted", "revert-failed", "failed"]
#: (outcome, text, snapshot after): see ``revert_to``.
RevertResult = tuple[RevertOutcome, str, DomainSnapshot | None]


@dataclass(frozen=True, slots=True)
class RevertTiming:
    """How long a revert waits: for the balloon to settle, for libvirt to come back, between reads (s)."""

    verify_timeout_s: float
    reconnect_timeout_s: float
    poll_s: float


def revert_to(
    control: DomainControl,
    ref: VmRef,
    saved: DomainSnapshot,
    *,
    timing: RevertTiming,
    clock: Callable[[], datetime],
) -> RevertResult:
    """Revert ``ref`` to ``saved`` and verify it against libvirt.

    Returns "reverted" when libvirt shows the saved state again, "revert-failed" when it does not, "failed"
    when the VM vanished (it is not re-created). Never raises for libvirt errors: they become the text.
    """
    reconnect_deadline = time.monotonic() + timing.reconnect_timeout_s
    notes: list[str] = []
    early = _revert_with_retries(control, ref, saved, notes, reconnect_deadline, timing.poll_s)
    if early is not None:
        return early

    def retry(exc: HypervisorError) -> bool:
        return isinstance(exc, ConnectionFailedError) and time.monotonic() < reconnect_deadline

    try:
        now, problems = poll_until_settled(
            lambda: take_snapshot(control, ref, clock()), lambda snap: revert_problems(snap, saved),
            timeout_s=max(timing.verify_timeout_s, 0.0), poll_s=timing.poll_s, retry=retry,
        )
    except HypervisorError as exc:
        outcome: RevertOutcome = "failed" if isinstance(exc, VmNotFoundError) else "revert-failed"
        return outcome, "; ".join(notes + [f"cannot read the VM after revert: {exc}"]), None
    if now.running and now.live_vcpus > saved.live_vcpus:
        notes.append(
            f"live vCPUs stay at {now.live_vcpus} (saved {saved.live_vcpus}) until the next restart: "
            "QEMU cannot unplug them live; the persistent config is restored"
        )
    if problems:
        return "revert-failed", "; ".join(notes + ["revert NOT verified: " + "; ".join(problems)]), now
    return "reverted", "; ".join(notes + ["revert verified against libvirt"]), now


def _revert_with_retries(
    control: DomainControl, ref: VmRef, saved: DomainSnapshot, notes: list[str], reconnect_deadline: float,
    poll_s: float,
) -> RevertResult | None:
    """Run the revert calls, again while libvirt is unreachable; a result when there is nothing to verify."""
    while True:
        notes.clear()
        try:
            gone = _revert_once(control, ref, saved, notes)
        except ConnectionFailedError as exc:
            if time.monotonic() >= reconnect_deadline:
                return "revert-failed", "; ".join(notes + [f"cannot reach libvirt to revert: {exc}"]), None
            log.warning("%s: libvirt unreachable during revert (%s); retrying", ref.name, exc)
            time.sleep(max(poll_s, RECONNECT_POLL_S))
            continue
        except HypervisorError as exc:
            notes.append(f"revert step failed: {exc}")
            return None
        return ("failed", gone, None) if gone else None


def _revert_once(control: DomainControl, ref: VmRef, saved: DomainSnapshot, notes: list[str]) -> str:
    """Run the revert calls once; return a non-empty reason when there is nothing to revert to."""
    try:
        info = control.info(ref)
    except VmNotFoundError:
        return "the VM no longer exists (undefined by someone else); nothing was re-created"
    if not info.persistent:
        return "the VM became transient (undefined while running); the saved XML was not redefined"
    control.define_xml(saved.inactive_xml)
    notes.append("redefined the saved persistent XML")
    if not saved.running:
        return ""
    if info.state is VmState.SHUTOFF:
        control.start(ref)
        notes.append("started it again")
    elif info.state is VmState.RUNNING:
        control.set_labels(ref, saved.labels, live=True, config=False)
        if not mem_close(info.memory_bytes, saved.live_memory_bytes):
            control.set_memory(ref, saved.live_memory_bytes, live=True, config=False)
            notes.append(f"ballooned back to {format_bytes(saved.live_memory_bytes)}")
        if info.vcpus < saved.live_vcpus:
            control.set_vcpus(ref, saved.live_vcpus, live=True, config=False)
            notes.append(f"hot-plugged back to {saved.live_vcpus} vCPUs")
    return ""
