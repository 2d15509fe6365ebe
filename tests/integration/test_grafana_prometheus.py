"""Every panel query of dashboard/grafana/rightsizer.json against a real Prometheus scraping `rightsizer serve`.

Two serve processes are scraped, as two hypervisor agents would be: one in demo mode (the test-driver demo
fleet: machine types and costs, team labels, backups, findings including idle and upsizes) and one sampling
the real QEMU guests (CPU time, vCPU delay, block request times, balloon swap and fault counters, which the
test driver does not report). Prometheus loads dashboard/prometheus/rightsizer.rules.yml. Each query, with
the Grafana variables replaced as "All" would, must return series, and each series must carry every label
its legend names (``{{vm}}``, ``{{label_team}}`` …); a table panel's rows must carry the labels its joins
bring in (finding, classes …).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import Engine, free_port, start_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.guests]

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "dashboard" / "grafana" / "rightsizer.json"
RULES = REPO / "dashboard" / "prometheus" / "rightsizer.rules.yml"
#: What "All" and Grafana's built-in interval become here (1 s scrapes, so 30 s holds many samples).
VARIABLES = {"$__rate_interval": "30s", "$__interval": "30s", "$host": ".*", "$vm": ".*"}
_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_GROUP_LEFT = re.compile(r"group_left\s*\(([^)]*)\)")


def table_labels(expr: str) -> set[str]:
    """Columns a table panel shows: the VM, the currency and every label its joins bring in."""
    joined = {name.strip() for names in _GROUP_LEFT.findall(expr) for name in names.split(",") if name.strip()}
    return {"vm", "currency"} | joined


def panel_queries() -> list[tuple[str, str, str, str]]:
    """(panel title, panel type, expression with variables replaced, legend format) of every target."""
    doc = json.loads(GRAFANA.read_text(encoding="utf-8"))
    out: list[tuple[str, str, str, str]] = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(VARIABLES, key=len, reverse=True):
                expr = expr.replace(name, VARIABLES[name])
            assert "$" not in expr, f"{panel['title']!r}: unreplaced variable in {expr!r}"
            out.append((panel["title"], panel["type"], expr, target.get("legendFormat", "")))
    return out


def _start_serve(cwd: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO),
               RIGHTSIZER_COLLECTOR__LOCAL_URI="qemu+tcp://127.0.0.1:1/system")  # nothing answers there
    cwd.mkdir(parents=True, exist_ok=True)
    with (cwd / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "rightsizer", "serve", *args, "--db", str(cwd / "rs.db"),
                                 "--interval", "2", "--metrics-listen", f"127.0.0.1:{port}", "--no-dashboard"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    return proc, f"127.0.0.1:{port}"


def _wait_metrics(target: str, proc: subprocess.Popen[bytes], log: Path, needle: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as resp:
                if needle in resp.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"serve at {target} never exported {needle!r}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def scraped(tmp_path: Path, libvirtd: str, guests: dict[str, object]) -> Iterator[Engine]:
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    prom: Engine | None = None
    try:
        demo, demo_target = _start_serve(tmp_path / "demo", "--demo")
        procs.append((demo, tmp_path / "demo" / "serve.log"))
        live, live_target = _start_serve(tmp_path / "live", "--uri", libvirtd)
        procs.append((live, tmp_path / "live" / "serve.log"))
        _wait_metrics(demo_target, demo, tmp_path / "demo" / "serve.log", "rightsizer_vm_idle{")
        _wait_metrics(live_target, live, tmp_path / "live" / "serve.log", "rightsizer_vm_cpu_delay_seconds_total{")
        prom = start_prometheus(tmp_path / "prometheus", {demo_target: {}, live_target: {}}, interval="1s",
                                rules=RULES)
        prom.wait_for("rightsizer_up", timeout_s=60, count=2)
        yield prom
    finally:
        if prom is not None:
            prom.stop()
        for proc, _log in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _query_until(prom: Engine, expr: str, timeout_s: float) -> list[dict[str, object]]:
    """Poll an instant query until it has series (rates need two scrapes inside their window)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = prom.query(expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_every_panel_query_returns_series_with_its_legend_labels(scraped: Engine) -> None:
    queries = panel_queries()
    assert len(queries) >= 20
    failures: list[str] = []
    for title, kind, expr, legend in queries:
        result = _query_until(scraped, expr, timeout_s=45)
        if not result:
            failures.append(f"{title!r}: no series for {expr}")
            continue
        wanted = set(_LEGEND_LABEL.findall(legend)) | (table_labels(expr) if kind == "table" else set())
        for series in result:
            metric = series["metric"]
            assert isinstance(metric, dict)
            missing = sorted(name for name in wanted if not metric.get(name))
            if missing:
                failures.append(f"{title!r}: series {metric} lacks {missing} (legend {legend!r}) for {expr}")
                break
    assert not failures, "\n".join(failures)
    # the recording rules loaded beside the scrapes, every group healthy
    rules = json.loads(scraped.get("/api/v1/rules"))["data"]["groups"]
    assert [g["name"] for g in rules] == ["rightsizer-hourly"]
    assert rules[0]["rules"] and all(r["health"] in ("ok", "unknown") for r in rules[0]["rules"]), rules

