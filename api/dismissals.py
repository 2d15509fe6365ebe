"""Dismissals over HTTP: ``POST``/``DELETE /api/v1/findings/{vm}/dismissal`` and ``GET /api/v1/dismissals``.

The models and handlers of these three operations (declared in ``api.operations``); writes pass the same token
check as plans. A dismissal made here is audited with actor ``api`` (see docs/findings.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models import PageQuery
from api.problems import ProblemError
from api.service import ApiService
from core.dismissals import DISMISS_KINDS, MAX_REASON_CHARS, Dismissal

DismissKind = Literal[DISMISS_KINDS]  # type: ignore[valid-type]


class DismissalCreate(BaseModel):
    """Why the VM's finding is dismissed, and until when (absent or null: until restored)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=MAX_REASON_CHARS, description="why (required, not blank)")
    until: str | None = Field(default=None, max_length=64,
                              description="ISO 8601 time the finding comes back (a postponement); in the future")
    kind: DismissKind | None = Field(default=None, description="the finding kind (default: the VM's current)")


class RestoreQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=200)
    kind: DismissKind | None = Field(default=None, description="restore only this kind (default: every kind)")


class DismissalOut(BaseModel):
    """One dismissal: the VM, the finding kind, why, by whom, when, and until when (null: until restored)."""

    vm: str
    name: str
    kind: str
    reason: str
    until: datetime | None
    by: str
    at: datetime
    active: bool


class DismissalsRestored(BaseModel):
    restored: list[DismissalOut]


def _doc(d: Dismissal, now: datetime) -> dict[str, Any]:
    return {"vm": d.vm_uuid, "name": d.vm_name, "kind": d.kind, "reason": d.reason, "until": d.until,
            "by": d.actor, "at": d.at, "active": d.active(now)}


def dismissal_handlers(service: ApiService, page: Callable[[list[Any], Any], dict[str, Any]], *,
                       scoped_vm: Callable[[str], Any], actor: Callable[[], str],
                       visible: Callable[[list[Any]], list[Any]]) -> dict[str, Callable[..., Any]]:
    """The handlers by operation id; ``page`` cuts a list into the API's page document, ``scoped_vm`` finds a VM
    inside the caller's scope (404 outside it), ``actor`` names the authenticated caller for the audit log and
    ``visible`` narrows VMs to the caller's scope."""
    from analytics.findings.dismissal import new_dismissal
    from core.errors import InputError
    from core.instants import parse_iso_instant

    def dismiss(body: DismissalCreate, vm: str) -> Any:
        record = scoped_vm(vm)
        now = service.clock().replace(microsecond=0)
        try:
            until = parse_iso_instant(body.until, "until") if body.until is not None else None
            finding = None
            if body.kind is None:
                finding = service.analysis(None, None).by_uuid().get(record.uuid)
            d = new_dismissal(record, finding, reason=body.reason, actor=actor(), at=now, until=until,
                              kind=body.kind)
        except InputError as exc:
            raise ProblemError(422, "invalid-dismissal", "Dismissal not valid", str(exc)) from exc
        service.store.dismiss(d)
        return _doc(d, now)

    def restore(body: Any, q: RestoreQuery, vm: str) -> Any:
        record = scoped_vm(vm)
        now = service.clock().replace(microsecond=0)
        gone = service.store.restore(record.uuid, actor=actor(), at=now, kind=q.kind)
        if not gone:
            raise ProblemError(404, "not-found", "Not found", f"vm {vm!r}: no dismissal to restore")
        return {"restored": [_doc(d, now) for d in gone]}

    def list_dismissals(q: PageQuery) -> Any:
        now = service.clock().replace(microsecond=0)
        seen = {vm.uuid for vm in visible(service.store.vms())}
        return page([_doc(d, now) for d in service.store.dismissals() if d.vm_uuid in seen], q)

    return {"dismissFinding": dismiss, "restoreFinding": restore, "listDismissals": list_dismissals}
