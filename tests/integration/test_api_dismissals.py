"""Dismissals over HTTP against a real ``rightsizer serve --demo``: token-guarded writes, the finding marked,
the summary leaving it out, plans skipping it, the audit rows, restore, and bad input as problem documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from served import AUTH, Served, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("api-dismiss"), "--demo")


def _status(resp: requests.Response, status: int, needle: str = "") -> dict[str, object]:
    assert resp.status_code == status, resp.text
    doc: dict[str, object] = resp.json()
    assert needle in str(doc.get("detail", "")), doc
    return doc


def test_dismiss_postpone_and_restore_a_finding_over_http(demo: Served) -> None:
    base = f"{demo.base}/api/v1"
    rows = requests.get(f"{base}/findings", params={"limit": 1000}, timeout=120).json()["items"]
    top = next(r for r in rows if r["action"] == "resize" and r["monthly_savings"] > 0 and not r["excluded"])
    assert top["dismissed"] is None
    summary0 = requests.get(f"{base}/summary", timeout=120).json()
    url = f"{base}/findings/{top['name']}/dismissal"
    until = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    body = {"reason": "quarter-end batch", "until": until.isoformat()}
    _status(requests.post(url, json=body, timeout=60), 401)
    _status(requests.post(url, json=body, headers={"Authorization": "Bearer guess"}, timeout=60), 403)
    _status(requests.post(url, json={**body, "reason": "  "}, headers=AUTH, timeout=60), 422, "reason is empty")
    _status(requests.post(url, json={**body, "until": "2020-01-01"}, headers=AUTH, timeout=60), 422, "past")
    _status(requests.post(f"{base}/findings/no-such-vm/dismissal", json=body, headers=AUTH, timeout=60), 404)
    assert requests.get(f"{base}/dismissals", timeout=60).json()["total"] == 0

    made = requests.post(url, json=body, headers=AUTH, timeout=120)
    assert made.status_code == 201, made.text
    d = made.json()
    assert (d["vm"], d["kind"], d["reason"], d["by"], d["active"]) == (top["uuid"], "resize", "quarter-end batch",
                                                                      "api", True)
    assert datetime.fromisoformat(d["until"]) == until
    listed = requests.get(f"{base}/dismissals", timeout=60).json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == top["name"]
    row = next(r for r in requests.get(f"{base}/findings", params={"limit": 1000}, timeout=120).json()["items"]
               if r["uuid"] == top["uuid"])
    assert row["dismissed"]["reason"] == "quarter-end batch" and row["dismissed"]["kind"] == "resize"
    summary1 = requests.get(f"{base}/summary", timeout=120).json()
    assert summary1["dismissed"] == 1
    assert summary1["dismissed_monthly_savings"] == pytest.approx(top["monthly_savings"], abs=0.01)
    assert summary1["gross_monthly_savings"] == pytest.approx(
        summary0["gross_monthly_savings"] - top["monthly_savings"], abs=0.02)
    plan = requests.post(f"{base}/plans", json={"vms": [top["name"]]}, headers=AUTH, timeout=120).json()
    assert plan["steps"] == []  # a dismissed finding is never planned
    audit = requests.get(f"{base}/audit", params={"vm": top["name"]}, timeout=60).json()["items"]
    assert [(e["action"], e["actor"], e["reason"], e["result"]) for e in audit] == [
        ("postpone", "api", "quarter-end batch", "recorded")]

    restored = requests.delete(url, headers=AUTH, timeout=60)
    assert restored.status_code == 200, restored.text
    assert [r["kind"] for r in restored.json()["restored"]] == ["resize"]
    _status(requests.delete(url, headers=AUTH, timeout=60), 404, "no dismissal")
    assert requests.get(f"{base}/summary", timeout=120).json() == summary0
    plan = requests.post(f"{base}/plans", json={"vms": [top["name"]]}, headers=AUTH, timeout=120).json()
    assert [s["name"] for s in plan["steps"]] == [top["name"]]
    assert "Traceback" not in Path(demo.log).read_text()
