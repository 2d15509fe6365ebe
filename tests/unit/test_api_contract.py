"""The API contract on a Flask test client over a real SQLite store: 401 before 403, every duration the schema
allows, plans kept in the store across a restart and listed, OpenAPI links from a new plan, scoped plan lists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from analytics.catalogue import load_catalogue
from api.openapi import openapi_document
from api.routes import mount_api
from api.service import ApiService
from collector.actions.result import ActionResult
from collector.store.sqlite import SqliteStore
from core.access import token_sha256
from core.plan import ResizePlan
from core.settings import Settings
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history

TOKEN = "t0ken"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-contract") / "rs.db"
    store = SqliteStore(path)
    seed_synthetic_history(store, demo_fleet(12), days=20, uri="test:///default", points_per_hour=1, now=NOW)
    store.close()
    return path


class Runs:
    """A plan runner that records who ran which plan (the real one is exercised by the integration tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str]] = []

    def __call__(self, plan: ResizePlan, apply: bool, actor: str) -> list[ActionResult]:
        self.calls.append((plan.plan_id, apply, actor))
        return []


def _client(db: Path, settings: dict[str, Any], runner: Runs | None = None) -> tuple[FlaskClient, SqliteStore]:
    store = SqliteStore(db)
    app = Flask("t")
    mount_api(app, ApiService(Settings.model_validate(settings), store, load_catalogue("stackit-eu01"),
                              runner=runner, clock=lambda: NOW))
    return app.test_client(), store


def test_a_write_without_credentials_is_401_even_with_actions_disabled(db: Path) -> None:
    client, store = _client(db, {})
    try:
        missing = client.post("/api/v1/plans", json={})
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        disabled = client.post("/api/v1/plans", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert disabled.status_code == 403 and disabled.json["type"].endswith("actions-disabled")  # type: ignore[index]
    finally:
        store.close()


@pytest.mark.parametrize(("query", "start", "end"), [
    ({"until": "0d"}, None, NOW),
    ({"until": "0h", "since": "1d"}, datetime(2026, 11, 30, 12, tzinfo=UTC), NOW),
    ({"since": "99999w"}, datetime(1970, 1, 1, tzinfo=UTC), None),
])
def test_every_duration_the_schema_allows_is_accepted(db: Path, query: dict[str, str], start: datetime | None,
                                                      end: datetime | None) -> None:
    client, store = _client(db, {})
    try:
        resp = client.get("/api/v1/costs", query_string=query)
        assert resp.status_code == 200, resp.json
        doc = resp.json
        assert doc is not None
        if start is not None:
            assert datetime.fromisoformat(doc["window_start"]) == start
        if end is not None:
            assert datetime.fromisoformat(doc["window_end"]) == end
    finally:
        store.close()


def test_plans_are_kept_in_the_store_and_listed_after_a_restart(db: Path) -> None:
    settings = {"actions": {"enabled": True, "token": TOKEN}}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client, store = _client(db, settings, Runs())
    try:
        made = client.post("/api/v1/plans", json={"label": ["team=payments"]}, headers=auth)
        assert made.status_code == 201, made.json
        plan_id = made.json["plan_id"]  # type: ignore[index]
        assert client.post(f"/api/v1/plans/{plan_id}/dry-run", headers=auth).status_code == 200
    finally:
        store.close()
    runner = Runs()
    client, store = _client(db, settings, runner)  # a new serve over the same store
    try:
        listed = client.get("/api/v1/plans").json
        assert listed is not None and plan_id in [p["plan_id"] for p in listed["items"]]
        again = client.get(f"/api/v1/plans/{plan_id}").json
        assert again is not None and again["steps"] == made.json["steps"]  # type: ignore[index]
        assert [r["kind"] for r in again["runs"]] == ["dry-run"]
        applied = client.post(f"/api/v1/plans/{plan_id}/apply", headers={**auth, "Idempotency-Key": "a"})
        assert applied.status_code == 200 and runner.calls == [(plan_id, True, "api")]
    finally:
        store.close()


def test_a_scoped_user_lists_only_plans_inside_its_scope(db: Path) -> None:
    settings = {"actions": {"enabled": True}, "auth": {"users": [
        {"name": "admin", "role": "admin", "token_sha256": token_sha256("adm")},
        {"name": "ops", "role": "operator", "token_sha256": token_sha256("ops"), "scope": ["team=payments"]}]}}
    client, store = _client(db, settings, Runs())
    try:
        search = client.post("/api/v1/plans", json={"label": ["team=search"]},
                             headers={"Authorization": "Bearer adm"}).json
        assert search is not None and search["steps"]
        assert client.get("/api/v1/plans").status_code == 401
        mine = client.get("/api/v1/plans", headers={"Authorization": "Bearer ops"}).json
        assert mine is not None and search["plan_id"] not in [p["plan_id"] for p in mine["items"]]
        hidden = client.get(f"/api/v1/plans/{search['plan_id']}", headers={"Authorization": "Bearer ops"})
        assert hidden.status_code == 404
        everything = client.get("/api/v1/plans", headers={"Authorization": "Bearer adm"}).json
        assert everything is not None and search["plan_id"] in [p["plan_id"] for p in everything["items"]]
    finally:
        store.close()


def test_a_new_plan_links_to_its_get_dry_run_and_apply() -> None:
    doc = openapi_document()
    created = doc["paths"]["/api/v1/plans"]["post"]["responses"]["201"]
    links = created["links"]
    assert {name: link["operationId"] for name, link in links.items()} == {
        "getPlan": "getPlan", "dryRunPlan": "dryRunPlan", "applyPlan": "applyPlan"}
    assert {link["parameters"]["plan_id"] for link in links.values()} == {"$response.body#/plan_id"}
    operation_ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert set(links) <= operation_ids


def test_with_users_the_document_asks_a_token_on_reads_too() -> None:
    open_doc, users_doc = openapi_document(), openapi_document(users=True)
    assert "security" not in open_doc["paths"]["/api/v1/vms"]["get"]
    assert users_doc["paths"]["/api/v1/vms"]["get"]["security"] == [{"bearer": []}]
    assert "401" in users_doc["paths"]["/api/v1/vms"]["get"]["responses"]
    assert "security" not in users_doc["paths"]["/healthz"]["get"]


def test_behind_a_trusted_proxy_the_header_names_the_user_with_its_scope(db: Path) -> None:
    settings = {"actions": {"enabled": True}, "auth": {
        "proxy_header": "X-Forwarded-User", "trusted_proxies": ["127.0.0.2"],
        "users": [{"name": "ops", "role": "operator", "scope": ["team=payments"]}]}}
    client, store = _client(db, settings, Runs())
    try:
        proxy = {"REMOTE_ADDR": "127.0.0.2"}
        mine = client.get("/api/v1/vms", headers={"X-Forwarded-User": "ops"}, environ_base=proxy).json
        assert mine is not None and mine["items"]
        assert {v["labels"]["team"] for v in mine["items"]} == {"payments"}
        unknown = client.get("/api/v1/vms", headers={"X-Forwarded-User": "mallory"}, environ_base=proxy)
        assert unknown.status_code == 403
        spoofed = client.get("/api/v1/vms", headers={"X-Forwarded-User": "ops"},
                             environ_base={"REMOTE_ADDR": "127.0.0.9"})
        assert spoofed.status_code == 401
    finally:
        store.close()
