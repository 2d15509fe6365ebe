"""Users, roles and scopes on the HTTP API, end to end on a real ``rightsizer serve --config FILE``.

The contract of issue 22: a viewer over the whole fleet and an operator scoped to ``team=payments``.
Authenticate first (no token → 401), then authorise (role or scope → 403); every read is narrowed to the
scope; the audit actor is the authenticated user's name.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from served import Served, schemathesis_run, seeded_fleet_args, serve

from core.access import token_sha256

pytestmark = pytest.mark.integration

VIEWER = secrets.token_urlsafe(24)
PASSWORD = secrets.token_urlsafe(12)
OPERATOR = secrets.token_urlsafe(24)


def _config(path: Path) -> Path:
    path.write_text(
        "[actions]\nenabled = true\nrestart = \"never\"\n\n"
        f"[[auth.users]]\nname = \"viewer-all\"\nrole = \"viewer\"\ntoken_sha256 = \"{token_sha256(VIEWER)}\"\n"
        f"password_hash = \"{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\"\n\n"
        f"[[auth.users]]\nname = \"ops-payments\"\nrole = \"operator\"\n"
        f"token_sha256 = \"{token_sha256(OPERATOR)}\"\nscope = [\"team=payments\"]\n",
        encoding="utf-8")
    return path


def _bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cwd = tmp_path_factory.mktemp("api-auth-demo")
    yield from serve(cwd, "--demo", "--config", str(_config(cwd / "auth.toml")))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Demo-shaped VMs on a test-driver node file (so apply really resizes), 30 days of history, the users."""
    cwd = tmp_path_factory.mktemp("api-auth-fleet")
    yield from serve(cwd, *seeded_fleet_args(cwd, 12),
                     "--config", str(_config(cwd / "auth.toml")))


def _vms(served: Served, token: str) -> list[dict[str, object]]:
    resp = requests.get(f"{served.base}/api/v1/vms", params={"limit": 1000}, headers=_bearer(token), timeout=60)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, object]] = resp.json()["items"]
    return items


def test_no_token_is_401_and_a_viewer_reads_all_but_may_not_plan(demo: Served) -> None:
    for path in ("vms", "costs", "findings", "summary", "backups", "audit"):
        resp = requests.get(f"{demo.base}/api/v1/{path}", timeout=60)
        assert resp.status_code == 401, (path, resp.text)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = requests.get(f"{demo.base}/api/v1/vms", headers=_bearer("not-a-user-token"), timeout=60)
    assert unknown.status_code == 401 and 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    assert requests.post(f"{demo.base}/api/v1/plans", json={}, timeout=60).status_code == 401
    everyone = _vms(demo, VIEWER)
    teams = {str(v["labels"]["team"]) for v in everyone}  # type: ignore[index]
    assert "payments" in teams and len(teams) > 1, teams
    refused = requests.post(f"{demo.base}/api/v1/plans", json={}, headers=_bearer(VIEWER), timeout=60)
    assert refused.status_code == 403 and "viewer" in refused.json()["detail"], refused.text


def test_the_operator_sees_only_its_scope_on_every_read(demo: Served) -> None:
    everyone = _vms(demo, VIEWER)
    mine = _vms(demo, OPERATOR)
    payments = {v["uuid"] for v in everyone if v["labels"]["team"] == "payments"}  # type: ignore[index]
    assert payments and {v["uuid"] for v in mine} == payments
    other = next(v for v in everyone if v["uuid"] not in payments)
    hidden = requests.get(f"{demo.base}/api/v1/vms/{other['name']}", headers=_bearer(OPERATOR), timeout=60)
    assert hidden.status_code == 404
    assert requests.get(f"{demo.base}/api/v1/vms/{other['name']}", headers=_bearer(VIEWER),
                        timeout=60).status_code == 200
    findings = requests.get(f"{demo.base}/api/v1/findings", params={"limit": 1000}, headers=_bearer(OPERATOR),
                            timeout=120).json()
    assert findings["total"] and {f["uuid"] for f in findings["items"]} <= payments
    costs = requests.get(f"{demo.base}/api/v1/costs", params={"group_by": "vm"}, headers=_bearer(OPERATOR),
                         timeout=120).json()
    all_costs = requests.get(f"{demo.base}/api/v1/costs", params={"group_by": "vm"}, headers=_bearer(VIEWER),
                             timeout=120).json()
    assert {r["uuid"] for r in costs["vms"]} <= payments and costs["vms"]
    assert 0 < costs["total"] < all_costs["total"]
    assert costs["month_to_date"] < all_costs["month_to_date"]
    backups = requests.get(f"{demo.base}/api/v1/backups", params={"limit": 1000}, headers=_bearer(OPERATOR),
                           timeout=60).json()
    assert backups["items"] and {b["vm_uuid"] for b in backups["items"]} <= payments


def test_the_operator_plans_only_inside_its_scope(demo: Served) -> None:
    everyone = _vms(demo, VIEWER)
    outside = next(v for v in everyone if v["labels"]["team"] != "payments")  # type: ignore[index]
    inside = next(v for v in everyone if v["labels"]["team"] == "payments")  # type: ignore[index]
    url = f"{demo.base}/api/v1/plans"
    refused = requests.post(url, json={"vms": [outside["name"]]}, headers=_bearer(OPERATOR), timeout=120)
    assert refused.status_code == 403 and outside["name"] in refused.json()["detail"], refused.text
    made = requests.post(url, json={"vms": [inside["name"]]}, headers=_bearer(OPERATOR), timeout=120)
    assert made.status_code == 201, made.text
    everything = requests.post(url, json={}, headers=_bearer(OPERATOR), timeout=120)
    assert everything.status_code == 201
    payments = {v["uuid"] for v in everyone if v["labels"]["team"] == "payments"}  # type: ignore[index]
    assert {s["uuid"] for s in everything.json()["steps"]} <= payments


def test_apply_audits_the_authenticated_name(fleet: Served) -> None:
    url = f"{fleet.base}/api/v1/plans"
    plan = requests.post(url, json={}, headers=_bearer(OPERATOR), timeout=120)
    assert plan.status_code == 201 and plan.json()["steps"], plan.text
    pid = plan.json()["plan_id"]
    viewer_apply = requests.post(f"{url}/{pid}/apply", headers=_bearer(VIEWER, **{"Idempotency-Key": "v1"}),
                                 timeout=60)
    assert viewer_apply.status_code == 403
    applied = requests.post(f"{url}/{pid}/apply", headers=_bearer(OPERATOR, **{"Idempotency-Key": "ops-1"}),
                            timeout=300)
    assert applied.status_code == 200, applied.text
    audited = [r for r in applied.json()["results"] if r["audit_id"] is not None]  # applied or deferred
    assert audited, applied.text
    audit = requests.get(f"{fleet.base}/api/v1/audit", params={"limit": 1000}, headers=_bearer(VIEWER),
                         timeout=60).json()
    assert audit["total"] == len(audited) and {e["actor"] for e in audit["items"]} == {"ops-payments"}, audit
    assert {e["plan_id"] for e in audit["items"]} == {pid}


def test_schemathesis_is_clean_without_a_token_and_with_a_viewers_and_an_operators(demo: Served) -> None:
    runs = {who: schemathesis_run(demo, *headers, label=who) for who, headers in (
        ("anonymous", ()), ("viewer", (f"Authorization: Bearer {VIEWER}",)),
        ("operator", (f"Authorization: Bearer {OPERATOR}",)))}
    assert {r["operations"] for r in runs.values()} == {17}  # with the 3 dismissal operations
    assert all(r["cases"] > 100 for r in runs.values()), runs
    log = demo.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def test_the_dashboard_needs_a_sign_in_and_opens_after_it(demo: Served) -> None:
    page = requests.get(f"{demo.base}/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=60)
    assert page.status_code == 302 and page.headers["Location"].startswith("/signin")
    assert requests.post(f"{demo.base}/_dash-update-component", json={}, timeout=60).status_code == 401
    with requests.Session() as browser:
        wrong = browser.post(f"{demo.base}/signin", data={"name": "viewer-all", "password": "guess"}, timeout=60)
        assert wrong.status_code == 401
        too_soon = browser.post(f"{demo.base}/signin", data={"name": "viewer-all", "password": PASSWORD},
                                timeout=60)
        assert too_soon.status_code == 429
        time.sleep(int(too_soon.headers["Retry-After"]))
        signed = browser.post(f"{demo.base}/signin", data={"name": "viewer-all", "password": PASSWORD},
                              allow_redirects=False, timeout=60)
        assert signed.status_code == 303, signed.text
        assert "HttpOnly" in signed.headers["Set-Cookie"] and "SameSite=Strict" in signed.headers["Set-Cookie"]
        overview = browser.get(f"{demo.base}/", headers={"Accept": "text/html"}, timeout=60)
        assert overview.status_code == 200 and "_dash-config" in overview.text
    assert "dashboard needs a sign-in, open to viewer-all" in demo.log.read_text()
