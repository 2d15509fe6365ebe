"""The VM page's "Dismiss…" control: dismiss or postpone the VM's finding, or restore it, behind the action token.

The values come from a browser (or a crafted request): anything but text is refused with a message; nothing
here raises. A change is written to the store with its audit row (actor: the signed-in user, ``dashboard`` on an
open dashboard), then the snapshot is rebuilt so every page shows it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from collector.errors import RightsizerError
from core.dismissals import Dismissal
from dashboard.apply import write_refusal

if TYPE_CHECKING:
    from dashboard.data import DashboardData

ACTOR = "dashboard"


def _refusal(data: DashboardData, token: object) -> str | None:
    """Why a write is refused (the apply control's rule: ``dashboard.apply.write_refusal``), None when allowed."""
    return write_refusal(data.settings.actions, token, "Dismissing", "changed", data.principal())


def _actor(data: DashboardData) -> str:
    principal = data.principal()
    return ACTOR if principal is None else principal.name


def dismissal_of(data: DashboardData, uuid: object) -> Dismissal | None:
    """The VM's dismissal that applies to its finding now (None when not dismissed)."""
    if not isinstance(uuid, str):
        return None
    f = data.snapshot().findings.get(uuid)
    return f.dismissed if f is not None else None


def status_text(d: Dismissal | None) -> str:
    if d is None:
        return "Not dismissed."
    until = f"until {d.until:%Y-%m-%d %H:%M} UTC" if d.until is not None else "until restored"
    return f"{d.kind.capitalize()} {d.state} by {d.actor} {until}: {d.reason}"


def _expiry(text: str, now: datetime) -> datetime | None:
    from core.dismissals import expiry
    from core.errors import InputError

    cleaned = text.strip()
    if not cleaned:
        return None
    try:
        return expiry(now, for_=cleaned)
    except InputError:
        pass
    try:
        return expiry(now, until=cleaned)
    except InputError as exc:
        if "in the past" in str(exc):
            raise InputError(f"until {cleaned!r} is in the past; give a later date") from None
        raise InputError(f"until {cleaned!r} is neither a date (2027-01-31) nor a duration (30d); "
                         "leave it empty to dismiss until restored") from None


def dismiss(data: DashboardData, uuid: object, reason: object, until: object, token: object) -> str:
    """Dismiss (``until`` empty) or postpone the VM's current finding; returns the message to show."""
    from analytics.findings.dismissal import new_dismissal
    from core.errors import InputError

    refused = _refusal(data, token)
    if refused is not None:
        return refused
    if not isinstance(uuid, str) or not isinstance(reason, str) or not isinstance(until, str | None):
        return "Give a reason (and, to postpone, a date or a duration)."
    snap = data.snapshot()
    vm = snap.by_uuid.get(uuid)
    if vm is None:
        return f"VM {uuid!r} is not in the store; reload the page."
    f = snap.findings.get(uuid)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        d = new_dismissal(vm, f.source if f is not None else None, reason=reason, actor=_actor(data), at=now,
                          until=_expiry(until or "", now))
        data.store.dismiss(d)
    except InputError as exc:
        return f"{vm.name}: not dismissed: {exc}"
    except RightsizerError as exc:
        return f"{vm.name}: failed: {exc}"
    data.refresh()
    return f"{vm.name}: {status_text(d)}"


def restore(data: DashboardData, uuid: object, token: object) -> str:
    """Restore every dismissal of the VM; returns the message to show."""
    refused = _refusal(data, token)
    if refused is not None:
        return refused
    snap = data.snapshot()
    vm = snap.by_uuid.get(uuid) if isinstance(uuid, str) else None
    if vm is None:
        return f"VM {uuid!r} is not in the store; reload the page."
    try:
        gone = data.store.restore(vm.uuid, actor=_actor(data), at=datetime.now(UTC).replace(microsecond=0))
    except RightsizerError as exc:
        return f"{vm.name}: failed: {exc}"
    if not gone:
        return f"{vm.name}: nothing to restore (no dismissal)."
    data.refresh()
    return f"{vm.name}: restored ({', '.join(d.kind for d in gone)})."
