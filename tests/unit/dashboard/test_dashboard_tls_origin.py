"""The dashboard port over TLS (its own event-loop server), its security headers on every answer, and the
refusal of state-changing requests a browser sends for another site."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

import pytest
from tinyfleet import NOW

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.errors import ConfigError
from core.settings import DashboardSettings, Settings
from dashboard.security import cross_site_refusal
from dashboard.web import start_server
from rightsizer.listeners import dashboard_ssl_context
from rightsizer.webapp import build_web_app
from tests.helpers.tlscerts import Certs, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _tls(certs: Certs) -> ssl.SSLContext:
    ctx = dashboard_ssl_context(DashboardSettings(tls_cert_file=str(certs.server_cert),
                                                  tls_key_file=str(certs.server_key)))
    assert ctx is not None
    return ctx


def _echo(env: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app answering its URL scheme and the body it got, or 1 MB of bytes for /big."""
    body = env["wsgi.input"].read()
    out = b"x" * 1_000_000 if env["PATH_INFO"] == "/big" else f"{env['wsgi.url_scheme']} {len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


def test_https_on_the_dashboard_server_and_plain_http_refused(certs: Certs) -> None:
    web = start_server(_echo, "127.0.0.1", 0, ssl_context=_tls(certs))
    try:
        assert web.url.startswith("https://127.0.0.1:")
        client = ssl.create_default_context(cafile=str(certs.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=5, context=client)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"https 0"
        conn.request("POST", "/", body=b"y" * 200_000)  # a body in many TLS records, same connection
        assert conn.getresponse().read() == b"https 200000"
        conn.request("GET", "/big")  # more than one send: partial TLS writes
        assert len(conn.getresponse().read()) == 1_000_000
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            plain.request("GET", "/")
            plain.getresponse().read()
        plain.close()
        silent = socket.create_connection(("127.0.0.1", web.port))  # never starts a handshake
        conn = http.client.HTTPSConnection("127.0.0.1", web.port, timeout=5, context=client)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"https 0"
        conn.close()
        silent.close()
    finally:
        web.stop()


@pytest.mark.parametrize(("settings", "message"), [
    ({"tls_cert_file": "CERT"}, "[dashboard] tls_key_file is empty while the other TLS file is set"),
    ({"tls_cert_file": "/nonexistent.pem", "tls_key_file": "KEY"},
     "[dashboard] tls_cert_file = '/nonexistent.pem': no such file"),
    ({"tls_cert_file": "CA", "tls_key_file": "KEY"}, "do not load as a PEM certificate and its key"),
])
def test_bad_dashboard_tls_settings_are_one_line(certs: Certs, settings: dict[str, str], message: str) -> None:
    paths = {"CERT": str(certs.server_cert), "KEY": str(certs.server_key), "CA": str(certs.ca)}
    with pytest.raises(ConfigError) as err:
        dashboard_ssl_context(DashboardSettings(**{k: paths.get(v, v) for k, v in settings.items()}))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("method", "origin", "site", "refused"), [
    ("POST", "https://evil.example", None, True),
    ("POST", "null", None, True),
    ("POST", "http://dash.example:8050", None, False),
    ("POST", "http://DASH.example:8050/", None, False),
    ("POST", "https://dash.example:8050", None, True),  # another scheme is another origin
    ("POST", None, "cross-site", True),
    ("POST", None, "same-site", True),
    ("POST", "https://proxy.example", "same-origin", False),  # the browser's word: Host rewritten by a proxy
    ("DELETE", None, "none", False),
    ("POST", None, None, False),  # curl, scripts
    ("GET", "https://evil.example", "cross-site", False),  # reads are not state-changing
])
def test_cross_site_refusal(method: str, origin: str | None, site: str | None, refused: bool) -> None:
    assert (cross_site_refusal(method, origin, site, "http://dash.example:8050") is not None) is refused


def test_dashboard_and_api_refuse_cross_site_writes_and_carry_headers(tiny_store: SqliteStore) -> None:
    app = build_web_app(Settings(), tiny_store, load_catalogue(), data_mode="demo", clock=lambda: NOW, warm=False)
    client = app.server.test_client()
    update = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [],
              "changedPropIds": []}
    for path in ("/_dash-update-component", "/api/v1/plans"):
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            response = client.post(path, data=json.dumps(update), content_type="application/json", headers=headers)
            assert response.status_code == 403, (path, headers)
            assert b"state-changing requests are accepted only" in response.data
        for headers in ({}, {"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"}):
            response = client.post(path, data=json.dumps(update), content_type="application/json", headers=headers)
            assert b"state-changing requests are accepted only" not in response.data, (path, headers)
    for path in ("/", "/api/v1/vms", "/no-such-page", "/api/v1/no-such"):
        response = client.get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert response.headers["Referrer-Policy"] == "same-origin", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: no HSTS
    assert "Strict-Transport-Security" in client.get("/", base_url="https://localhost").headers
