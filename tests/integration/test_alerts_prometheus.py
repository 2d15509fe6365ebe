"""The shipped alerting rules in a real Prometheus scraping `rightsizer serve --demo` (the test-driver demo fleet).

Prometheus loads dashboard/prometheus/rightsizer.alerts.yml (its group interval shortened from 1m to 1s so the
test does not wait a minute for the first evaluation). Every rule must evaluate without error; the alerts the
demo's state calls for must be pending (their `for:` has not passed) with the VM in their labels and summary,
for the same VMs the digest names; a second target that does not answer makes RightsizerExporterDown pending.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from engines import Engine, start_prometheus

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "dashboard" / "prometheus" / "rightsizer.alerts.yml"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")}
    env["PYTHONPATH"] = str(REPO)
    env["RIGHTSIZER_COLLECTOR__LOCAL_URI"] = "qemu+tcp://127.0.0.1:1/system"  # nothing answers: demo mode
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path, str, str]]:
    work = tmp_path_factory.mktemp("alerts")
    port, dead = free_port(), f"127.0.0.1:{free_port()}"
    log = work / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", "--demo", "--db", str(work / "rs.db"),
                                  "--interval", "2", "--metrics-listen", f"127.0.0.1:{port}", "--no-dashboard"],
                                 stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=work)
    prom: Engine | None = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    if b"rightsizer_vm_signal{" in resp.read():
                        break
            except OSError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve --demo never exported rightsizer_vm_signal:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        rules = work / "rightsizer.alerts.yml"
        text = ALERTS.read_text(encoding="utf-8")
        assert "    interval: 1m\n" in text
        rules.write_text(text.replace("    interval: 1m\n", "    interval: 1s\n"))
        prom = start_prometheus(work / "prometheus", {f"127.0.0.1:{port}": {}, dead: {}}, interval="1s",
                                rules=rules)
        prom.wait_for("rightsizer_vm_backup_overdue", timeout_s=60)
        yield prom, work / "rs.db", f"127.0.0.1:{port}", dead
    finally:
        if prom is not None:
            prom.stop()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()


def _api(prom: Engine, path: str) -> dict[str, object]:
    body = json.loads(prom.get(path))
    assert body["status"] == "success", body
    data: dict[str, object] = body["data"]
    return data


def _alerts_until(prom: Engine, names: set[str], timeout_s: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while True:
        alerts: list[dict[str, object]] = _api(prom, "/api/v1/alerts")["alerts"]  # type: ignore[assignment]
        if names <= {a["labels"]["alertname"] for a in alerts} or time.monotonic() > deadline:  # type: ignore[index]
            return alerts
        time.sleep(0.5)


def test_every_rule_evaluates_in_prometheus(demo):
    prom, _db, _target, _dead = demo
    deadline = time.monotonic() + 60
    while True:
        groups = _api(prom, "/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]  # type: ignore[attr-defined]
        if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == ALERTS.read_text(encoding="utf-8").count("- alert:")
    assert [r["name"] for r in rules if r["health"] != "ok"] == []


def test_demo_state_makes_its_alerts_pending_with_the_vm_named(demo):
    prom, db, _target, dead = demo
    expected = {"RightsizerBackupOverdue", "RightsizerLargeSavingLowRisk", "RightsizerExporterDown",
                "RightsizerVmIdle"}
    alerts = _alerts_until(prom, expected)
    by_name: dict[str, list[dict[str, object]]] = {}
    for a in alerts:
        by_name.setdefault(a["labels"]["alertname"], []).append(a)  # type: ignore[index]
    assert expected <= set(by_name), sorted(by_name)
    idle = {r["metric"]["vm"] for r in prom.query("rightsizer_vm_idle == 1")}  # type: ignore[index]
    assert idle and idle == {a["labels"]["vm"] for a in by_name["RightsizerVmIdle"]}  # type: ignore[index]
    assert all(a["state"] == "pending" for a in alerts)  # every `for:` is longer than the test
    overdue = {a["labels"]["vm"] for a in by_name["RightsizerBackupOverdue"]}  # type: ignore[index]
    assert all(f"VM {a['labels']['vm']}: backup overdue" == a["annotations"]["summary"]  # type: ignore[index]
               for a in by_name["RightsizerBackupOverdue"])
    (down,) = by_name["RightsizerExporterDown"]
    assert down["labels"]["instance"] == dead and down["labels"]["severity"] == "critical"  # type: ignore[index]
    big = by_name["RightsizerLargeSavingLowRisk"]
    assert big and all(a["labels"]["risk"] in ("very-low", "low") and a["labels"]["vm"]  # type: ignore[index]
                       in a["annotations"]["summary"] for a in big)  # type: ignore[index]
    # the digest of the same store names the same overdue backups and the same low-risk savings
    proc = subprocess.run([sys.executable, "-m", "rightsizer", "digest", "--output", "json", "--db", str(db)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    digest = json.loads(proc.stdout)
    assert overdue == {b["name"] for b in digest["backups_overdue"]}
    low_risk = {i["name"]: f"{i['monthly_savings']:.2f}" for i in digest["top"]
                if i["risk"] in ("very-low", "low") and "resize" in i["kinds"] and i["monthly_savings"] > 100}
    assert low_risk and all(f"VM {name}: {money} EUR/month" in " ".join(
        str(a["annotations"]["summary"]) for a in big) for name, money in low_risk.items())  # type: ignore[index]
