"""The HTTP API end to end: a real ``rightsizer serve`` process, a real HTTP client, schemathesis.

Reads and the schemathesis run use the demo fleet (test driver); the token-guarded apply runs on a
test-driver fleet written with a host section, with seeded history so the findings propose resizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from served import AUTH, TOKEN, Served, schemathesis_run, seeded_fleet_args, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("api-demo"), "--demo")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Six demo-shaped VMs on a test-driver node file with a host big enough for them, 30 days of history."""
    cwd = tmp_path_factory.mktemp("api-fleet")
    yield from serve(cwd, *seeded_fleet_args(cwd, 6))


def _problem(resp: requests.Response, status: int, parameter: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    doc = resp.json()
    assert doc["status"] == status and doc["title"] and doc["detail"] and doc["type"]
    if parameter is not None:
        assert parameter in doc["detail"]
        assert any(e["parameter"] == parameter for e in doc["errors"]), doc
    return doc


def test_read_endpoints_page_the_demo_fleet(demo: Served) -> None:
    first = requests.get(f"{demo.base}/api/v1/vms", params={"limit": 10}, timeout=30).json()
    assert first["total"] == 24 and len(first["items"]) == 10 and first["offset"] == 0
    second = requests.get(demo.base + first["next"], timeout=30).json()
    assert second["offset"] == 10 and {v["uuid"] for v in second["items"]}.isdisjoint(
        {v["uuid"] for v in first["items"]})
    team = requests.get(f"{demo.base}/api/v1/vms", params={"label": "team=payments"}, timeout=30).json()
    assert team["total"] >= 1 and all(v["labels"]["team"] == "payments" for v in team["items"])
    one = first["items"][0]
    assert requests.get(f"{demo.base}/api/v1/vms/{one['name']}", timeout=30).json()["uuid"] == one["uuid"]
    costs = requests.get(f"{demo.base}/api/v1/costs", params={"since": "7d", "group_by": "team"}, timeout=60).json()
    assert costs["group_by"] == "team" and costs["total"] > 0 and costs["currency"] == "EUR"
    assert sum(g["cost"] for g in costs["groups"]) == pytest.approx(costs["total"], rel=1e-6)
    backups = requests.get(f"{demo.base}/api/v1/backups", params={"limit": 1000}, timeout=30).json()
    assert backups["total"] == 24 and {b["status"] for b in backups["items"]} >= {"ok"}
    assert requests.get(f"{demo.base}/api/v1/audit", timeout=30).json()["total"] == 0
    assert requests.get(f"{demo.base}/healthz", timeout=30).json()["status"] == "ok"
    doc = requests.get(f"{demo.base}/api/v1/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/findings" in doc["paths"]


def test_findings_have_the_recommend_json_field_names(demo: Served) -> None:
    api = requests.get(f"{demo.base}/api/v1/findings", params={"limit": 1000}, timeout=120).json()
    out = subprocess.run([sys.executable, "-m", "rightsizer", "recommend", "--db", "var/demo.db", "--output",
                          "json"], capture_output=True, text=True, cwd=demo.cwd, timeout=300,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()), check=True)
    cli = json.loads(out.stdout)
    assert api["total"] == len(cli) == 24
    by_uuid = {r["uuid"]: r for r in cli}
    assert len(api["items"]) == 24
    for row in api["items"]:
        assert set(row) == set(by_uuid[row["uuid"]]), row["name"]
        assert row["finding"] == by_uuid[row["uuid"]]["finding"]
    over = requests.get(f"{demo.base}/api/v1/findings", params={"finding": "over-provisioned", "strategy": "krr",
                                                                 "lookback_days": 14}, timeout=120).json()
    assert len(over["items"]) == over["total"] >= 1
    assert all(r["finding"] == "over-provisioned" and r["strategy"] == "krr" for r in over["items"])


@pytest.mark.parametrize(("path", "params", "status", "parameter"), [
    ("/api/v1/vms", {"colour": "red"}, 400, "colour"),
    ("/api/v1/vms", {"limit": "0"}, 400, "limit"),
    ("/api/v1/vms", {"label": "no-equals"}, 400, "label"),
    ("/api/v1/findings", {"lookback_days": "nan"}, 400, "lookback_days"),
    ("/api/v1/findings", {"profile": "bogus"}, 400, "profile"),
    ("/api/v1/findings", {"strategy": "bogus"}, 400, "strategy"),
    ("/api/v1/costs", {"until": "9999-12-31T23:59:59"}, 400, "until"),
    ("/api/v1/costs", {"since": "0001-01-01"}, 400, "since"),
    ("/api/v1/costs", {"since": "2026-01-02", "until": "2026-01-01"}, 400, "since"),
    ("/api/v1/costs", {"group_by": "nosuchlabel"}, 400, "group_by"),
    ("/api/v1/vms/no-such-vm", {}, 404, "vm"),
    ("/api/v1/plans/plan-000000000000", {}, 404, "plan_id"),
    ("/api/v1/audit", {"vm": "no-such-vm"}, 404, "vm"),
])
def test_bad_input_is_a_problem_document_naming_the_parameter(demo: Served, path: str, params: dict[str, str],
                                                               status: int, parameter: str) -> None:
    _problem(requests.get(demo.base + path, params=params, timeout=60), status, parameter)


def test_writes_need_a_bearer_token(demo: Served) -> None:
    url = f"{demo.base}/api/v1/plans"
    missing = requests.post(url, json={}, timeout=60)
    _problem(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    _problem(requests.post(url, json={}, headers={"Authorization": "Bearer guess"}, timeout=60), 403)
    _problem(requests.post(url, json={}, headers={"Authorization": f"Basic {TOKEN}"}, timeout=60), 401)
    apply = requests.post(f"{url}/plan-000000000000/apply", headers=AUTH, json={}, timeout=60)
    _problem(apply, 400, "Idempotency-Key")


def test_idempotency_key_replays_and_refuses_another_body(demo: Served) -> None:
    url = f"{demo.base}/api/v1/plans"
    headers = {**AUTH, "Idempotency-Key": "create-payments-1"}
    first = requests.post(url, json={"label": ["team=payments"]}, headers=headers, timeout=120)
    assert first.status_code == 201, first.text
    again = requests.post(url, json={"label": ["team=payments"]}, headers=headers, timeout=120)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = requests.post(url, json={"label": ["team=search"]}, headers=headers, timeout=120)
    _problem(other, 409)
    plan = first.json()
    assert plan["steps"] and all(s["finding"] in ("over-provisioned", "under-provisioned") for s in plan["steps"])
    dry = requests.post(f"{url}/{plan['plan_id']}/dry-run", headers=AUTH, timeout=120)
    assert dry.status_code == 200 and dry.json()["kind"] == "dry-run"
    assert len(dry.json()["results"]) == len(plan["steps"])
    fetched = requests.get(f"{url}/{plan['plan_id']}", timeout=60).json()
    assert [r["kind"] for r in fetched["runs"]] == ["dry-run"]


def test_token_guarded_apply_goes_through_the_runner_and_the_audit_log(fleet: Served) -> None:
    url = f"{fleet.base}/api/v1/plans"
    plan = requests.post(url, json={}, headers=AUTH, timeout=120).json()
    assert plan["steps"], plan
    pid = plan["plan_id"]
    _problem(requests.post(f"{url}/{pid}/apply", headers={"Authorization": "Bearer guess",
                                                          "Idempotency-Key": "k1"}, timeout=60), 403)
    assert requests.get(f"{fleet.base}/api/v1/audit", timeout=60).json()["total"] == 0
    headers = {**AUTH, "Idempotency-Key": "apply-1"}
    applied = requests.post(f"{url}/{pid}/apply", headers=headers, timeout=300)
    assert applied.status_code == 200, applied.text
    results = applied.json()["results"]
    assert {r["result"] for r in results} <= {"applied", "deferred", "skipped", "unchanged"}, results
    assert any(r["result"] == "applied" for r in results), results
    replay = requests.post(f"{url}/{pid}/apply", headers=headers, timeout=300)
    assert replay.json() == applied.json() and replay.headers.get("Idempotent-Replayed") == "true"
    audit = requests.get(f"{fleet.base}/api/v1/audit", params={"limit": 1000}, timeout=60).json()
    assert audit["total"] == len([r for r in results if r["audit_id"] is not None])
    assert {e["actor"] for e in audit["items"]} == {"api"} and {e["plan_id"] for e in audit["items"]} == {pid}


def test_schemathesis_finds_no_5xx_and_no_schema_violation(demo: Served) -> None:
    without = schemathesis_run(demo)
    with_token = schemathesis_run(demo, f"Authorization: Bearer {TOKEN}")
    assert without["operations"] == with_token["operations"] == 17  # getSummary, listPlans, 3 dismissal ones
    log = demo.log.read_text()
    assert "Traceback" not in log, log[-3000:]
