"""When a resize may restart a VM: the restart policy and its weekly maintenance windows (``core.windows``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from collector.errors import InputError
from core.windows import MaintenanceWindow

RestartPolicy = Literal["never", "allowed", "window"]
RESTART_POLICIES: tuple[str, ...] = ("never", "allowed", "window")


@dataclass(frozen=True, slots=True)
class RestartPermission:
    """Whether a resize that needs a shut-off may restart the VM now, and when it could otherwise."""

    allowed_now: bool
    when: str  # human text: "now", "in window sat 02:00-04:00 UTC (next opens …)", "never"
    policy: RestartPolicy
    window: MaintenanceWindow | None = None
    next_opening: datetime | None = None


def check_policy(policy: str, windows: Sequence[MaintenanceWindow]) -> RestartPolicy:
    """Validate a restart policy name against the configured windows. Raises InputError."""
    if policy not in RESTART_POLICIES:
        raise InputError(f"Restart policy {policy!r} is unknown; use one of {', '.join(RESTART_POLICIES)}")
    if policy == "window" and not windows:
        raise InputError(
            "Restart policy 'window' needs at least one maintenance window; set [actions] windows = "
            "['sat 02:00-04:00'] in the config file or choose --restart never|allowed"
        )
    return policy  # type: ignore[return-value]


def restart_permission(
    policy: str, windows: Sequence[MaintenanceWindow], now: datetime
) -> RestartPermission:
    """Decide whether a restart is allowed at ``now`` (aware) under ``policy``. Raises InputError."""
    checked = check_policy(policy, windows)
    if checked == "never":
        return RestartPermission(False, "never (restart policy 'never')", checked)
    if checked == "allowed":
        return RestartPermission(True, "now", checked)
    for w in windows:
        if w.contains(now):
            return RestartPermission(True, f"now (inside window {w})", checked, window=w, next_opening=now)
    soonest = min(windows, key=lambda w: w.next_opening(now))
    opening = soonest.next_opening(now)
    stamp = opening.strftime("%Y-%m-%d %H:%M %Z")
    return RestartPermission(
        False, f"in window {soonest} (next opens {stamp})", checked, window=soonest, next_opening=opening
    )
