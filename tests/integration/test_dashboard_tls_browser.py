"""The dashboard over TLS in Chromium: pages render under the CSP, callbacks (POSTs the Origin check sees) work,
HSTS and the other headers arrive, and a page of another origin cannot make the dashboard change state."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import DashboardSettings, Settings
from dashboard.app import create_app
from dashboard.web import start_server
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history
from rightsizer.listeners import dashboard_ssl_context
from tests.helpers.dropdown import pick_by_search
from tests.helpers.tlscerts import make_certs

pytestmark = [pytest.mark.integration, pytest.mark.browser]



class _Recorder:
    """A WSGI wrapper that records (method, path, status) of every request the dashboard answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, env: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            self.seen.append((env["REQUEST_METHOD"], env["PATH_INFO"], status.split()[0]))
            return start_response(status, headers, exc_info)

        return self.app(env, start)


def test_dashboard_over_tls_in_a_browser(tmp_path: Path, browser: Browser) -> None:
    certs = make_certs(tmp_path / "certs")
    store = SqliteStore(tmp_path / "rs.db")
    fleet = list(demo_fleet(24, seed=11))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    seed_synthetic_history(store, fleet, days=10, now=now, seed=5, points_per_hour=1)
    app = create_app(Settings(), store, load_catalogue(), data_mode="demo")
    recorder = _Recorder(app.server)
    tls = dashboard_ssl_context(DashboardSettings(tls_cert_file=str(certs.server_cert),
                                                  tls_key_file=str(certs.server_key)))
    server = start_server(recorder, "127.0.0.1", 0, name="dashboard-tls-test", ssl_context=tls)
    dashboard = server.url

    class Attacker(BaseHTTPRequestHandler):  # another origin whose page posts to the dashboard
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            body = (f"<script>fetch('{dashboard}/_dash-update-component', {{method: 'POST', mode: 'no-cors', "
                    "body: '{}', headers: {'Content-Type': 'text/plain'}}).finally(() => "
                    "document.title = 'sent');</script>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    attacker = HTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    errors: list[str] = []
    try:
        # one Chromium for the session (conftest's ``browser``)
        context = browser.new_context(ignore_https_errors=True)  # the test CA is not in Chromium's store
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
        response = page.goto(dashboard + "/vms")
        assert response is not None and dashboard.startswith("https://")
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "same-origin"
        page.wait_for_selector("#vms-table td[data-dash-column='name']")
        assert page.inner_text("#vms-count").startswith(f"{len(fleet)} VMs match")
        pick_by_search(page, "app-filter-labels", "team=payments")  # a callback: Dash POSTs /_dash-update-component
        page.keyboard.press("Escape")
        page.wait_for_function(
            f"() => !document.querySelector('#vms-count').innerText.startsWith('{len(fleet)} VMs')")
        updates = [s for s in recorder.seen if s[1] == "/_dash-update-component"]
        assert updates and all(status == "200" for _m, _p, status in updates)  # the page's own POSTs pass
        before = len(recorder.seen)
        page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")
        page.wait_for_function("() => document.title === 'sent'")
        refused = [s for s in recorder.seen[before:] if s[1] == "/_dash-update-component"]
        assert refused == [("POST", "/_dash-update-component", "403")]
        context.close()
    finally:
        attacker.shutdown()
        attacker.server_close()
        server.stop()
        store.close()
    assert errors == []
