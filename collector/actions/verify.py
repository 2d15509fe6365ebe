"""Verification against libvirt: what differs from the target (or the saved state), polled until it settles.

Both a resize and its revert are checked by reading the domain again (``take_snapshot``), never from the
action's own bookkeeping; the balloon needs a moment to reach a new size, hence the polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from collector.actions.changes import StepChanges, mem_close
from collector.actions.snapshot import DomainSnapshot
from collector.domxml import MACHINE_TYPE_LABEL
from collector.errors import HypervisorError
from core.plan import SizeSpec

#: The shortest wait between attempts while libvirt is unreachable (e.g. libvirtd restarting).
RECONNECT_POLL_S = 0.5


def target_problems(
    snap: DomainSnapshot, saved: DomainSnapshot, target: SizeSpec, changes: StepChanges
) -> list[str]:
    """What ``snap`` still lacks of ``target``: the persistent config always, the live values where applied."""
    problems = _config_problems(snap, target, changes)
    if saved.running != snap.running:
        problems.append(f"state {snap.state.value}, expected {saved.state.value}")
    elif snap.running:
        if not mem_close(snap.live_memory_bytes, target.memory_bytes):
            problems.append(f"live memory {snap.live_memory_bytes} != {target.memory_bytes}")
        if changes.restart and snap.live_vcpus != target.vcpus:
            problems.append(f"live vCPUs {snap.live_vcpus} != {target.vcpus} after restart")
        if not changes.restart and target.vcpus > saved.live_vcpus and snap.live_vcpus != target.vcpus:
            problems.append(f"live vCPUs {snap.live_vcpus} != {target.vcpus} after hot-plug")
    return problems


def _config_problems(snap: DomainSnapshot, target: SizeSpec, changes: StepChanges) -> list[str]:
    problems: list[str] = []
    config = snap.config
    if config.vcpus != target.vcpus:
        problems.append(f"config vCPUs {config.vcpus} != {target.vcpus}")
    if config.memory_bytes != target.memory_bytes:
        problems.append(f"config memory {config.memory_bytes} != {target.memory_bytes}")
    if config.max_vcpus < target.vcpus or config.max_memory_bytes < target.memory_bytes:
        problems.append("config maximum below target")
    if changes.lowers_max_memory and config.max_memory_bytes != target.memory_bytes:
        problems.append(f"config max memory {config.max_memory_bytes} != {target.memory_bytes}")
    label = snap.labels.get(MACHINE_TYPE_LABEL, "")
    if target.machine_type and label != target.machine_type:
        problems.append(f"label machine_type {snap.labels.get(MACHINE_TYPE_LABEL)!r} != {target.machine_type!r}")
    return problems


def revert_problems(now: DomainSnapshot, saved: DomainSnapshot) -> list[str]:
    """What ``now`` differs in from the ``saved`` state: config, labels, state, live memory when running."""
    problems: list[str] = []
    if now.config != saved.config:
        problems.append(f"config {now.config} != saved {saved.config}")
    if dict(now.labels) != dict(saved.labels):
        problems.append("labels differ from the saved ones")
    if now.state is not saved.state:
        problems.append(f"state {now.state.value} != saved {saved.state.value}")
    elif now.running and not mem_close(now.live_memory_bytes, saved.live_memory_bytes):
        problems.append(f"live memory {now.live_memory_bytes} != saved {saved.live_memory_bytes}")
    return problems


def poll_until_settled(
    read: Callable[[], DomainSnapshot],
    problems_of: Callable[[DomainSnapshot], list[str]],
    *,
    timeout_s: float,
    poll_s: float,
    retry: Callable[[HypervisorError], bool],
) -> tuple[DomainSnapshot, list[str]]:
    """Read until ``problems_of`` finds none or ``timeout_s`` passes; return the last read and its problems.

    A ``HypervisorError`` from ``read`` is retried while ``retry(exc)`` is true, else raised.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            snap = read()
        except HypervisorError as exc:
            if not retry(exc):
                raise
            time.sleep(max(poll_s, RECONNECT_POLL_S))
            continue
        problems = problems_of(snap)
        if not problems or time.monotonic() >= deadline:
            return snap, problems
        time.sleep(poll_s)
