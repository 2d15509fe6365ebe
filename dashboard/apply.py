"""The dashboard's apply control: which resizes it offers, and the guarded call into the shared runner."""

from __future__ import annotations

from typing import Protocol

from collector.errors import ActionError, RightsizerError
from core.access import Principal
from core.settings import ActionSettings
from core.tokens import token_matches
from dashboard.snapshot import Snapshot

#: Findings the apply control offers a resize for.
APPLICABLE_FINDINGS = ("over-provisioned", "under-provisioned", "idle")


class ApplyHook(Protocol):
    """Apply one resize through the same path as ``rightsizer apply``; returns a one-line outcome.

    Raises ActionError (ActionSkipped / ActionFailed) or another RightsizerError when it does not apply.
    """

    def __call__(self, vm_uuid: str, machine_type: str, *, actor: str) -> str: ...


def apply_choices(snap: Snapshot, rec_ids: list[tuple[str, str]]) -> list[tuple[str, str, list[str]]]:
    """(UUID, VM name, option type names) of the listed findings (id, name) that could be applied."""
    out = []
    for uuid, name in rec_ids:
        f = snap.findings.get(uuid)
        if f is None:
            continue
        if f.excluded or f.finding not in APPLICABLE_FINDINGS or f.dismissed is not None:
            continue
        names = [o.machine_type for o in f.options] or ([f.recommended_type] if f.recommended_type else [])
        if names:
            out.append((uuid, name, names))
    return out


def write_refusal(actions: ActionSettings, token: object, doing: str, done: str,
                  principal: Principal | None = None) -> str | None:
    """Why a write from the dashboard is refused, None when allowed; ``doing``/``done`` name the write
    ("Applying"/"applied").

    ``[actions] enabled`` always; then a signed-in user (``principal``) must be an operator or admin (the sign-in
    is the credential; no token); on an open dashboard, the ``[actions] token``.
    """
    if not actions.enabled:
        return f"{doing} is disabled: set [actions] enabled = true and restart the dashboard."
    if principal is not None:
        if principal.may_write:
            return None
        return f"{principal.name} is a {principal.role}; only an operator or admin may change anything. Nothing " \
               f"was {done}."
    expected = actions.token.get_secret_value()
    if not expected:
        return f"{doing} needs a token: set [actions] token in the config file."
    if not token_matches(token, expected):
        return f"Wrong or missing token; nothing was {done}."
    return None


def apply_resize(actions: ActionSettings, snap: Snapshot, hook: ApplyHook | None, vm_uuid: object,
                 machine_type: object, token: object, principal: Principal | None = None) -> str:
    """Check the caller (:func:`write_refusal`) and the choice, then call the apply hook; returns the message to
    show. ``snap`` is the caller's view (cut to their scope): a VM outside it is not offered. The audit row's
    actor is the signed-in user's name ("dashboard" on an open dashboard).

    The values come from a browser (or a crafted request): anything but text is refused, and the machine
    type must be one of the options the dashboard offers for that VM. Never raises ActionError.
    """
    if hook is None:
        return "Applying is disabled: set [actions] enabled = true and restart the dashboard."
    refused = write_refusal(actions, token, "Applying", "applied", principal)
    if refused is not None:
        return refused
    if not isinstance(vm_uuid, str) or not isinstance(machine_type, str) or not vm_uuid or not machine_type:
        return "Choose a VM and a machine type first."
    vm = snap.by_uuid.get(vm_uuid)
    if vm is None:
        return f"VM {vm_uuid!r} is not in the store; reload the page."
    offered = next((names for uuid, _name, names in apply_choices(snap, [(vm_uuid, vm.name)]) if uuid == vm_uuid),
                   [])
    if machine_type not in offered:
        choices = ", ".join(offered) or "none (no applicable recommendation)"
        return (f"{vm.name}: {machine_type!r} is not among the options offered for this VM ({choices}); "
                "nothing was applied.")
    try:
        outcome = hook(vm_uuid, machine_type, actor=principal.name if principal is not None else "dashboard")
    except ActionError as exc:
        return f"{vm.name}: not applied: {exc}"
    except RightsizerError as exc:
        return f"{vm.name}: failed: {exc}"
    snap.mark_stale()  # rebuild in the background on the next read, to show the change
    return f"{vm.name}: {outcome}"
