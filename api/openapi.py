"""The OpenAPI 3.1 document, generated from the operations table and the pydantic models.

Why no extra library: pydantic (already our validation library, well kept, JSON Schema 2020-12 output)
produces the schemas, and OpenAPI 3.1 takes JSON Schema 2020-12 as it is; the paths come from the same
``OPERATIONS`` table the blueprint routes and validates with. Frameworks that generate OpenAPI for Flask
(flask-openapi3, spectree, apispec) would add a second way to declare the same routes on top of Dash's
Flask server; this keeps one declaration and no new dependency.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.models import Health
from api.operations import IDEMPOTENCY_HEADER, OPERATIONS, PREFIX, Operation
from api.problems import PROBLEM_MEDIA_TYPE, Problem

_REF = "#/components/schemas/{model}"
_ERRORS_READ = {"400": "bad parameter", "404": "unknown id or path", "503": "the store cannot be read"}
_ERRORS_WITH_USERS = {"401": "no bearer token, or one of no configured user"}
_ERRORS_WRITE = {**_ERRORS_READ, "401": "no bearer token", "403": "actions disabled, wrong token, a role that may "
                 "not write or a VM outside the caller's scope",
                 "409": "idempotency key reused for another request", "413": "body too large",
                 "422": "body not valid"}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if "anyOf" in prop:
            options = [o for o in prop.pop("anyOf") if o.get("type") != "null"]
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
            if prop.get("default", 0) is None:
                prop.pop("default")
        description = prop.pop("description", "")
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop,
                                 "description": description}
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        params.append(param)
    return params


#: Where a new plan leads: its GET, dry-run and apply, by the plan_id of the 201 body.
_PLAN_LINKS = {
    target: {"operationId": target, "parameters": {"plan_id": "$response.body#/plan_id"},
             "description": description}
    for target, description in (("getPlan", "the plan and its runs"),
                                ("dryRunPlan", "inspect each VM of the plan; changes nothing"),
                                ("applyPlan", "apply the plan"))
}


def _operation(op: Operation, response_names: dict[type[BaseModel], str], users: bool) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1,
                                                                     "maxLength": 200}}
        for name in re.findall(r"<(\w+)>", op.path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    if op.write:
        params.append({"name": IDEMPOTENCY_HEADER, "in": "header", "required": op.idempotency_required,
                       "description": "a replay with the same key and request returns the first response",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"}})
    responses: dict[str, Any] = {
        str(op.status): {"description": "OK", "content": {"application/json": {"schema": {
            "$ref": _REF.format(model=response_names[op.response])}}}},
    }
    if op.operation_id == "createPlan":
        responses[str(op.status)]["links"] = _PLAN_LINKS
    errors = _ERRORS_WRITE if op.write else {**_ERRORS_READ, **(_ERRORS_WITH_USERS if users else {})}
    for code, why in errors.items():
        responses[code] = {"description": why, "content": {PROBLEM_MEDIA_TYPE: {"schema": {
            "$ref": _REF.format(model="Problem")}}}}
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "parameters": params,
                           "responses": responses}
    if op.body is not None:
        doc["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
            "$ref": _REF.format(model=response_names[op.body])}}}}
    if op.write or users:
        doc["security"] = [{"bearer": []}]
    return doc


def openapi_document(*, users: bool = False) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for /api/v1, /healthz and /readyz; with ``users`` (``[[auth.users]]``
    configured) every /api/v1 operation needs a bearer token, reads included."""
    models: list[type[BaseModel]] = [Problem, Health]
    for op in OPERATIONS:
        models += [op.response] + ([op.body] if op.body is not None else [])
    unique = list(dict.fromkeys(models))
    keys, defs = models_json_schema([(mdl, "validation") for mdl in unique], ref_template=_REF)
    names = {mdl: keys[(mdl, "validation")]["$ref"].rsplit("/", 1)[1] for mdl in unique}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path = re.sub(r"<(\w+)>", r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, names, users)
    for path, op_id, summary in (("/healthz", "healthz", "The process serves"),
                                 ("/readyz", "readyz", "The store can be read")):
        paths[path] = {"get": {"operationId": op_id, "summary": summary, "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": _REF.format(
                model="Health")}}}},
            **({"503": {"description": "not ready", "content": {"application/json": {"schema": {
                "$ref": _REF.format(model="Health")}}}}} if op_id == "readyz" else {}),
        }}}
    paths[f"{PREFIX}/openapi.json"] = {"get": {"operationId": "openapi", "summary": "This document",
                                               "responses": {"200": {"description": "OK", "content": {
                                                   "application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rightsizer API", "version": "1",
                 "description": "Costs, findings, backups, plans and audited resizes; errors are RFC 9457 "
                                "problem documents."},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
