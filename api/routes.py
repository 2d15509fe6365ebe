"""The HTTP API under /api/v1 as a Flask blueprint, mounted on the Dash app's own server.

Each operation is declared once in ``OPERATIONS`` with its query/body model and response model; the same
declaration validates requests here and generates the OpenAPI document (``api.openapi``).
Writes need ``[actions] enabled``, ``Authorization: Bearer <[actions] token>`` (compared in constant
time) and, for apply, an ``Idempotency-Key`` header: a replay of the same key with the same request gets
the stored response again, with another request a 409.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed

from api import models as m
from api.operations import IDEMPOTENCY_HEADER, OPERATIONS, PREFIX, Operation
from api.problems import PROBLEM_MEDIA_TYPE, ParameterError, ProblemError, bad_parameter, not_found
from api.service import ApiService, select_vms
from collector.errors import RightsizerError
from collector.store.faults import ReportsFaults
from core.access import Principal, auth_enabled, proxy_user, user_for_token
from core.parsing import json_loads
from core.tokens import token_matches

log = logging.getLogger(__name__)
_MAX_BODY_BYTES = 4_000_000
_MAX_KEYS = 10_000


def _json(payload: Any, status: int, headers: dict[str, str] | None = None,
          media_type: str = "application/json") -> Response:
    return Response(json.dumps(payload, default=str, allow_nan=False), status=status, mimetype=media_type,
                    headers=headers)


def problem_response(exc: ProblemError) -> Response:
    """Render a ProblemError as ``application/problem+json``."""
    return _json(exc.document(request.path), exc.status, dict(exc.headers), PROBLEM_MEDIA_TYPE)


def parse_query(model: type[BaseModel]) -> Any:
    """Validate the query string against ``model``; unknown or repeated scalar parameters are refused."""
    fields = model.model_fields
    raw: dict[str, Any] = {}
    for key in request.args:
        if key not in fields:
            raise bad_parameter(key, f"unknown parameter; known: {', '.join(sorted(fields)) or '(none)'}")
        values = request.args.getlist(key)
        annotation = str(fields[key].annotation)
        if annotation.startswith("list"):
            raw[key] = values
        elif len(values) > 1:
            raise bad_parameter(key, "given more than once")
        else:
            raw[key] = values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _validation_problem(exc, "query") from exc


def parse_body(model: type[BaseModel]) -> Any:
    """Validate a JSON body (empty = ``{}``) against ``model``."""
    data = request.get_data(cache=True)
    if len(data) > _MAX_BODY_BYTES:
        raise ProblemError(413, "too-large", "Body too large", f"the body is over {_MAX_BODY_BYTES} bytes")
    doc: Any = {}
    if data.strip():
        try:
            doc = json_loads(data)
        except (ValueError, RecursionError) as exc:
            raise ProblemError(400, "bad-body", "Body is not JSON", f"the body does not parse as JSON: {exc}",
                               (ParameterError(parameter="(body)", location="body", detail=str(exc)),)) from exc
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise _validation_problem(exc, "body", status=422) from exc


def _validation_problem(exc: ValidationError, location: str, status: int = 400) -> ProblemError:
    def name(loc: tuple[int | str, ...]) -> str:
        if location == "query":  # the parameter itself; a list item's index goes into the detail
            return str(loc[0]) if loc else "(query)"
        return ".".join(str(p) for p in loc) or "(body)"

    def detail(e: Any) -> str:
        item = f" (item {e['loc'][1]})" if location == "query" and len(e["loc"]) > 1 else ""
        return f"{e['msg']}{item}"

    errors = tuple(ParameterError(parameter=name(tuple(e["loc"])), location=location, detail=detail(e))
                   for e in exc.errors())
    first = errors[0]
    return ProblemError(status, "bad-parameter", "Bad parameter",
                        f"{location} parameter {first.parameter!r}: {first.detail}", errors)


class Idempotency:
    """Responses of write requests by idempotency key, with a fingerprint of the request that made them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, Response | None]] = {}
        self._busy = threading.Condition(self._lock)

    def run(self, key: str, fingerprint: str, call: Callable[[], Response]) -> Response:
        """Call once per key; replay the stored response for the same request, 409 for another one."""
        with self._busy:
            while True:
                seen = self._seen.get(key)
                if seen is None:
                    if len(self._seen) >= _MAX_KEYS:
                        self._seen.pop(next(iter(self._seen)))
                    self._seen[key] = (fingerprint, None)
                    break
                if seen[0] != fingerprint:
                    raise ProblemError(409, "idempotency-conflict", "Idempotency key reused",
                                       f"{IDEMPOTENCY_HEADER} {key!r} was used for another request; use a new key")
                if seen[1] is not None:
                    replay = seen[1]
                    return Response(replay.get_data(), status=replay.status_code, mimetype=replay.mimetype,
                                    headers={"Idempotent-Replayed": "true"})
                self._busy.wait(5.0)
        try:
            response = call()
        except BaseException:
            with self._busy:
                self._seen.pop(key, None)
                self._busy.notify_all()
            raise
        with self._busy:
            self._seen[key] = (fingerprint, response)
            self._busy.notify_all()
        return response


def _bearer() -> str:
    """The bearer token of the request, or "" when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(service: ApiService) -> Principal | None:
    """The user the request's bearer token belongs to (401 when users are configured and it is missing or
    unknown); None when ``[[auth.users]]`` is not configured (the API is open, writes need ``[actions] token``)."""
    auth = service.settings.auth
    if not auth_enabled(auth):
        return None
    proxied = proxy_user(auth, request.remote_addr, request.headers.get(auth.proxy_header or "X-Unset"),
                         request.headers.get(auth.proxy_groups_header or "X-Unset"))
    if proxied is False:
        name = request.headers.get(auth.proxy_header, "").strip()[:100]
        raise ProblemError(403, "forbidden", "Unknown proxy user", f"the proxy signed in {name!r}, who is not in "
                           "[[auth.users]] and in no group of [[auth.groups]]; add a user or map a group")
    if isinstance(proxied, Principal):
        return proxied
    token = _bearer()
    if not token:
        raise ProblemError(401, "unauthenticated", "Token required", "send 'Authorization: Bearer <your token>'",
                           headers={"WWW-Authenticate": 'Bearer realm="rightsizer"'})
    principal = user_for_token(auth, token)
    if principal is None:
        log.warning("API %s %s: bearer token of no configured user refused", request.method, request.path)
        raise ProblemError(401, "unauthenticated", "Unknown token", "the bearer token is not that of any user; "
                           "ask an admin for a token whose sha256 is in [[auth.users]]",
                           headers={"WWW-Authenticate": 'Bearer realm="rightsizer", error="invalid_token"'})
    return principal


def check_token(service: ApiService, principal: Principal | None = None) -> None:
    """Authenticate first, then authorise: no bearer token → 401; then a role that may not write, actions
    disabled or (without users) a token other than ``[actions] token`` → 403."""
    actions = service.settings.actions
    disabled = ProblemError(403, "actions-disabled", "Actions disabled",
                            "writes need [actions] enabled = true (and [actions] token set when no [[auth.users]] "
                            "are configured); restart serve after")
    if principal is not None:
        if not principal.may_write:
            raise ProblemError(403, "forbidden", "Role may not write",
                               f"user {principal.name!r} has role {principal.role!r}; plans need operator or admin")
        if not actions.enabled or service.runner is None:
            raise disabled
        return
    expected = actions.token.get_secret_value()
    token = _bearer()
    if not token:
        raise ProblemError(401, "unauthenticated", "Token required",
                           "send 'Authorization: Bearer <[actions] token>'",
                           headers={"WWW-Authenticate": 'Bearer realm="rightsizer"'})
    if not actions.enabled or not expected or service.runner is None:
        raise disabled
    if not token_matches(token, expected):
        raise ProblemError(403, "forbidden", "Wrong token", "the bearer token does not match [actions] token")


def _idempotency_key(required: bool) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        if required:
            raise bad_parameter(IDEMPOTENCY_HEADER, "required for this request (any unique text, e.g. a UUID)",
                                location="header")
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise bad_parameter(IDEMPOTENCY_HEADER, "must be 1-200 printable characters", location="header")
    return key


def _page(items: list[Any], q: Any, path: str) -> dict[str, Any]:
    total = len(items)
    chunk = items[q.offset:q.offset + q.limit]
    nxt = None
    if q.offset + q.limit < total:
        args = request.args.to_dict(flat=False)
        args["offset"] = [str(q.offset + q.limit)]
        args["limit"] = [str(q.limit)]
        from urllib.parse import urlencode

        nxt = f"{path}?{urlencode(args, doseq=True)}"
    return {"items": chunk, "total": total, "limit": q.limit, "offset": q.offset, "next": nxt}


def _vm_doc(vm: Any) -> dict[str, Any]:
    return {"uuid": vm.uuid, "name": vm.name, "uri": vm.uri, "host": vm.host, "state": vm.state.value,
            "vcpus": vm.vcpus, "max_vcpus": vm.max_vcpus, "memory_bytes": vm.memory_bytes,
            "max_memory_bytes": vm.max_memory_bytes, "labels": dict(vm.labels or {}), "source": vm.source,
            "first_seen": vm.first_seen, "last_seen": vm.last_seen}


def _plan_doc(stored: Any) -> dict[str, Any]:
    return {**stored.plan.to_dict(), "runs": list(stored.runs)}


def _caller() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


def _visible(vms: list[Any]) -> list[Any]:
    """``vms`` narrowed to the caller's scope (all of them when the API is open)."""
    principal = _caller()
    return vms if principal is None else principal.visible(vms)


def _scoped_vm(service: ApiService, key: str) -> Any:
    """The VM ``key`` names, as a 404 when it is outside the caller's scope (its existence is not told)."""
    vm = service.vm(key)
    principal = _caller()
    if principal is not None and not principal.sees(vm.labels):
        raise not_found("VM", key, "vm")
    return vm


def _plan_visible(service: ApiService, stored: Any) -> bool:
    """Whether every VM of a stored plan is inside the caller's scope."""
    principal = _caller()
    if principal is None:
        return True
    labels = {v.uuid: v.labels for v in service.store.vms()}
    return all(principal.sees(labels.get(step.vm.uuid)) for step in stored.plan.steps)


def _check_plan_scope(service: ApiService, plan_id: str) -> None:
    """A plan with any VM outside the caller's scope is a 404 to them (they could not have made it)."""
    if not _plan_visible(service, service.plan(plan_id)):
        raise not_found("plan", plan_id, "plan_id")


def _handlers(service: ApiService) -> dict[str, Callable[..., Any]]:
    def list_vms(q: m.VmsQuery) -> Any:
        return _page([_vm_doc(v) for v in select_vms(_visible(service.vms()), q.host, q.label)], q, request.path)

    def get_vm(vm: str) -> Any:
        return _vm_doc(_scoped_vm(service, vm))

    def get_costs(q: m.CostsQuery) -> Any:
        return service.costs(q.since, q.until, q.group_by, keep=_visible if _caller() is not None else None)

    def list_findings(q: m.FindingsQuery) -> Any:
        chosen = {v.uuid for v in select_vms(_visible(service.vms()), q.host, q.label)}
        rows = [f.plan_entry() for f in service.findings(q.lookback_days, q.profile, q.strategy)
                if f.uuid in chosen and (not q.finding or f.finding.value in q.finding)]
        rows.sort(key=lambda r: (-r["monthly_savings"], r["name"]))
        return _page(rows, q, request.path)

    def get_summary(q: m.FindingsQuery) -> Any:
        from analytics.findings.headline import headline_of

        chosen = {v.uuid for v in select_vms(_visible(service.vms()), q.host, q.label)}
        return headline_of(f for f in service.findings(q.lookback_days, q.profile, q.strategy)
                           if f.uuid in chosen and (not q.finding or f.finding.value in q.finding)).as_json()

    def list_backups(q: m.BackupsQuery) -> Any:
        rows = [{"vm_uuid": b.vm_uuid, "vm_name": b.vm_name, "newest": b.newest, "age_s": b.age_s,
                 "policy": b.policy, "policy_source": b.policy_source, "max_age_s": b.max_age_s,
                 "overdue_by_s": b.overdue_by_s, "status": b.status, "urgency": b.urgency, "reason": b.reason}
                for b in service.backups(select_vms(_visible(service.vms()), q.host, q.label))]
        return _page(rows, q, request.path)

    def list_audit(q: m.AuditQuery) -> Any:
        uuid = _scoped_vm(service, q.vm).uuid if q.vm else None
        entries = sorted(service.store.audit(uuid), key=lambda e: (e.ts, e.id or 0), reverse=True)
        if _caller() is not None:
            seen = {v.uuid for v in _visible(service.store.vms())}
            entries = [e for e in entries if e.vm_uuid in seen]
        rows = [{"id": e.id, "ts": e.ts, "actor": e.actor, "vm_uuid": e.vm_uuid, "vm_name": e.vm_name,
                 "action": e.action, "result": e.result, "reason": e.reason, "plan_id": e.plan_id,
                 "price_before_per_hour": e.price_before_per_hour, "price_after_per_hour": e.price_after_per_hour,
                 "currency": e.currency, "before": dict(e.before), "after": dict(e.after)} for e in entries]
        return _page(rows, q, request.path)

    def list_plans(q: m.PageQuery) -> Any:
        return _page([_plan_doc(p) for p in service.plans() if _plan_visible(service, p)], q, request.path)

    def get_plan(plan_id: str) -> Any:
        _check_plan_scope(service, plan_id)
        return _plan_doc(service.plan(plan_id))

    def create_plan(body: m.PlanCreate) -> Any:
        plan = service.create_plan(body.vms, body.host, body.label, body.lookback_days, body.profile,
                                   body.strategy, keep=_visible if _caller() is not None else None)
        return _plan_doc(service.plan(plan.plan_id))

    def actor() -> str:
        principal = _caller()
        return "api" if principal is None else principal.name

    def dry_run(body: m.EmptyBody, plan_id: str) -> Any:
        _check_plan_scope(service, plan_id)
        return service.run(plan_id, apply=False, actor=actor())

    def apply(body: m.EmptyBody, plan_id: str) -> Any:
        _check_plan_scope(service, plan_id)
        return service.run(plan_id, apply=True, actor=actor())

    from api.dismissals import dismissal_handlers

    return {**dismissal_handlers(service, lambda items, q: _page(items, q, request.path),
                                 scoped_vm=lambda key: _scoped_vm(service, key), actor=actor, visible=_visible),
            "listVms": list_vms, "getVm": get_vm, "getCosts": get_costs, "listFindings": list_findings,
            "getSummary": get_summary,
            "listBackups": list_backups, "listAudit": list_audit, "listPlans": list_plans, "getPlan": get_plan,
            "createPlan": create_plan,
            "dryRunPlan": dry_run, "applyPlan": apply}


def _view(op: Operation, handler: Callable[..., Any], service: ApiService,
          idempotency: Idempotency) -> Callable[..., Response]:
    def view(**path: str) -> Response:
        try:
            principal = authenticate(service)
            g.principal = principal
            if op.write:
                check_token(service, principal)
                key = _idempotency_key(op.idempotency_required)
                args = [parse_body(op.body)] if op.body is not None else []
                if op.query is not None:
                    args.append(parse_query(op.query))
                elif request.args:
                    raise bad_parameter(next(iter(request.args)), "this operation takes no query parameters")

                def call() -> Response:
                    return _json(op.response.model_validate(handler(*args, **path)).model_dump(mode="json"),
                                 op.status)

                if key is None:
                    return call()
                digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\0"
                                        + request.get_data(cache=True)).hexdigest()
                return idempotency.run(key, digest, call)
            if op.query is not None:
                payload = handler(parse_query(op.query), **path)
            else:
                if request.args:
                    raise bad_parameter(next(iter(request.args)), "this operation takes no query parameters")
                payload = handler(**path)
            return _json(op.response.model_validate(payload).model_dump(mode="json"), op.status)
        except ProblemError as exc:
            return problem_response(exc)
        except RightsizerError as exc:
            log.warning("API %s %s failed: %s", request.method, request.path, exc)
            return problem_response(ProblemError(503, "unavailable", "Service unavailable", str(exc)))

    view.__name__ = op.operation_id
    return view


def api_blueprint(service: ApiService) -> Blueprint:
    """The /api/v1 blueprint (plus /healthz and /readyz) over ``service``."""
    from api.openapi import openapi_document

    bp = Blueprint("api_v1", __name__)
    idempotency = Idempotency()
    handlers = _handlers(service)
    for op in OPERATIONS:
        bp.add_url_rule(op.path, endpoint=op.operation_id, view_func=_view(op, handlers[op.operation_id], service,
                                                                          idempotency), methods=[op.method])
    document = openapi_document(users=auth_enabled(service.settings.auth))

    @bp.get(f"{PREFIX}/openapi.json")
    def openapi() -> Response:
        return _json(document, 200)

    @bp.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok", "detail": "serving"}, 200)

    @bp.get("/readyz")
    def readyz() -> Response:
        try:
            n = len(service.store.vms())
        except RightsizerError as exc:
            return _json({"status": "not-ready", "detail": f"store unreadable: {exc}"}, 503)
        if isinstance(service.store, ReportsFaults) and service.store.fault:
            return _json({"status": "not-ready", "detail": f"store not writable: {service.store.fault}"}, 503)
        return _json({"status": "ready", "detail": f"store holds {n} VM(s)"}, 200)

    return bp


def allowed_methods(path: str) -> list[str]:
    """The methods the API serves on ``path`` (empty when no operation matches it)."""
    methods = {"GET"} if path == f"{PREFIX}/openapi.json" else set()
    for op in OPERATIONS:
        if re.fullmatch(re.sub(r"<\w+>", "[^/]+", op.path), path):
            methods.add(op.method)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods | {"OPTIONS"}) if methods else []


def mount_api(server: Flask, service: ApiService) -> None:
    """Register the API on the Dash app's Flask server.

    Dash serves its pages from a catch-all route, so paths under /api/v1 that no operation serves (or a
    method an operation does not take) are answered here with a 404/405 problem document, and OPTIONS
    lists exactly the API's methods.
    """
    server.register_blueprint(api_blueprint(service))

    @server.before_request
    def _api_guard() -> Response | None:
        if not request.path.startswith(PREFIX + "/"):
            return None
        rule = request.url_rule
        if rule is not None and rule.rule.startswith(PREFIX) and request.method != "OPTIONS":
            return None
        allowed = allowed_methods(request.path)
        allow = ", ".join(allowed)
        if request.method == "OPTIONS" and allowed:
            return Response(status=204, headers={"Allow": allow})
        if allowed:
            return problem_response(ProblemError(405, "method-not-allowed", "Method not allowed",
                                                 f"{request.method} is not allowed on {request.path}; use {allow}",
                                                 headers={"Allow": allow}))
        return problem_response(ProblemError(404, "not-found", "Not found", f"no API endpoint {request.path!r}"))

    @server.errorhandler(405)
    def _method_not_allowed(exc: MethodNotAllowed) -> Response:
        return Response("Method not allowed", status=405, headers={"Allow": ", ".join(sorted(exc.valid_methods or ()))})
