"""The dashboard sends X-Frame-Options and a CSP, and serve warns when actions are exposed."""

from __future__ import annotations

import pytest
from tinyfleet import NOW

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from dashboard.app import create_app
from dashboard.security import exposure_warning, is_loopback


def test_every_response_carries_frame_and_csp_headers(tiny_store: SqliteStore) -> None:
    app = create_app(Settings(), tiny_store, load_catalogue(), data_mode="demo", clock=lambda: NOW, warm=False)
    client = app.server.test_client()
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/no-such-page"):
        response = client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY", path
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        hashes = app.csp_hashes()
        assert hashes and all(h in csp for h in hashes)  # Dash's inline renderer script may run
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("listen", "actions", "warns"),
    [("0.0.0.0:8050", True, True), ("[::]:8050", True, True), ("192.0.2.7:8050", True, True),
     ("dash.example:8050", True, True), ("127.0.0.1:8050", True, False), ("[::1]:8050", True, False),
     ("localhost:8050", True, False), ("0.0.0.0:8050", False, False)],
)
def test_non_loopback_listener_with_actions_warns(listen: str, actions: bool, warns: bool) -> None:
    text = exposure_warning(listen, actions_enabled=actions)
    assert (text is not None) is warns
    if text:
        assert listen in text and "[actions]" in text


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")
