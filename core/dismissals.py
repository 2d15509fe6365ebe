"""A dismissed or postponed finding: the value type every surface shares, and the checks of its inputs.

A dismissal is keyed on the VM's UUID and the finding's kind (``DISMISS_KINDS``). ``until`` None means
"until restored" (a dismissal); a time means "until then" (a postponement). It applies only while the VM's
finding is still of that kind: a VM dismissed as a resize that now should be stopped shows the stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.durations import parse_duration
from core.errors import InputError
from core.instants import parse_iso_instant

#: The kinds of finding that can be dismissed.
DISMISS_KINDS: tuple[str, ...] = ("resize", "stop", "schedule", "storage")
#: The longest reason kept (a sentence, not a document).
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Dismissal:
    """A finding of kind ``kind`` on VM ``vm_uuid`` left out of the headline and plans until ``until``
    (None: until restored), by ``actor`` at ``at`` for ``reason``."""

    vm_uuid: str
    kind: str
    reason: str
    actor: str
    at: datetime
    until: datetime | None = None
    vm_name: str = ""

    @property
    def action(self) -> str:
        """The audit action: ``postpone`` when it has an expiry, ``dismiss`` otherwise."""
        return "dismiss" if self.until is None else "postpone"

    @property
    def state(self) -> str:
        """``dismissed`` or ``postponed``, as a page or a line says it."""
        return self.action + ("ed" if self.action == "dismiss" else "d")

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def as_json(self) -> dict[str, Any]:
        return {"vm": self.vm_uuid, "name": self.vm_name, "kind": self.kind, "reason": self.reason,
                "until": None if self.until is None else self.until.isoformat(), "by": self.actor,
                "at": self.at.isoformat()}


def checked_reason(text: str) -> str:
    """The reason stripped; raises InputError when empty or longer than ``MAX_REASON_CHARS``."""
    reason = " ".join(text.split())
    if not reason:
        raise InputError("the reason is empty; say why the finding is dismissed (--reason TEXT)")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"the reason is {len(reason)} characters; keep it to {MAX_REASON_CHARS}")
    return reason


def checked_kind(kind: str) -> str:
    if kind not in DISMISS_KINDS:
        raise InputError(f"kind {kind!r} is unknown; use one of {', '.join(DISMISS_KINDS)}")
    return kind


def expiry(now: datetime, until: str | None = None, for_: str | None = None) -> datetime | None:
    """The expiry of ``--until WHEN`` (ISO 8601) or ``--for 30d`` (a duration from ``now``); None with neither.

    Raises InputError for both at once, a bad value, or an expiry not after ``now``.
    """
    if until is not None and for_ is not None:
        raise InputError("--until and --for both given; pass one of them")
    if for_ is not None:
        return now + parse_duration(for_)
    if until is None:
        return None
    when = parse_iso_instant(until, "--until")
    if when <= now:
        raise InputError(f"--until {until!r} is in the past (now {now:%Y-%m-%dT%H:%M:%SZ}); pass a later time")
    return when
