"""dashboard/web.py: gzip, the partial plotly.js bundle and the cheroot server, on a real (tiny) app."""

from __future__ import annotations

import gzip
import socket
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from tinyfleet import NOW

from analytics.catalogue import load_catalogue
from collector.config import Settings
from collector.store.sqlite import SqliteStore
from dashboard import web
from dashboard.app import create_app


def _app(store: SqliteStore, *, lean: bool = True) -> Flask:
    app = create_app(Settings(), store, load_catalogue(), data_mode="demo", clock=lambda: NOW, warm=False,
                     lean=lean)
    server: Flask = app.server
    return server


def test_text_responses_are_gzipped_when_the_client_accepts_it(tiny_store: SqliteStore) -> None:
    client = _app(tiny_store).test_client()
    plain = client.get("/")
    zipped = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    page = gzip.decompress(zipped.data)
    assert page.startswith(b"<!DOCTYPE html>") and len(page) == len(plain.data)  # each carries its own end_id
    assert b"<title>rightsizer</title>" in page


def test_static_bundles_are_gzipped_once_and_the_plain_app_is_not(tiny_store: SqliteStore) -> None:
    client = _app(tiny_store).test_client()
    index = client.get("/").data.decode()
    path = next(part.split('"')[0] for part in index.split('src="')[1:] if "dash_core_components.v" in part)
    first = client.get(path, headers={"Accept-Encoding": "gzip"})
    again = client.get(path, headers={"Accept-Encoding": "gzip"})
    raw = client.get(path)
    assert first.headers["Content-Encoding"] == "gzip" and first.data == again.data
    assert gzip.decompress(first.data) == raw.data and len(first.data) < len(raw.data) / 2
    plain = _app(tiny_store, lean=False).test_client()
    assert "Content-Encoding" not in plain.get("/", headers={"Accept-Encoding": "gzip"}).headers


def test_partial_bundle_is_served_when_fetched(tmp_path: Path) -> None:
    bundle = web.plotly_bundle_path(tmp_path)
    bundle.write_text(f"/* plotly.js (basic - minified) v{web.plotly_version()} */ window.Plotly = {{}};")
    server = Flask(__name__)
    web.enable_compression(server)
    urls = web.plotly_script(server, vendor=tmp_path)
    assert urls == [web.PLOTLY_ROUTE + bundle.name]
    response = server.test_client().get(urls[0], headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.mimetype == "application/javascript"
    assert "immutable" in response.headers["Cache-Control"]
    assert gzip.decompress(response.data) == bundle.read_bytes()


def test_missing_bundle_falls_back_to_dash_and_says_how_to_fetch(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    assert web.plotly_script(Flask(__name__), vendor=tmp_path) == []
    assert "scripts/fetch-plotly.sh" in caplog.text


def test_app_loads_the_partial_bundle_when_present(tiny_store: SqliteStore) -> None:
    index = _app(tiny_store).test_client().get("/").data.decode()
    if web.plotly_bundle_path().is_file():
        assert f'src="{web.PLOTLY_ROUTE}{web.plotly_bundle_path().name}"' in index
    else:  # make run/test fetch it; a bare pip install gets Dash's full bundle
        assert web.PLOTLY_ROUTE not in index


def test_server_binds_port_zero_serves_and_stops(tiny_store: SqliteStore) -> None:
    server = web.start_server(_app(tiny_store), "127.0.0.1", 0, name="test")
    try:
        assert server.port > 0
        with urllib.request.urlopen(server.url + "/", timeout=10) as response:
            assert response.status == 200 and b"rightsizer" in response.read()
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_busy_port_raises_before_anything_starts(tiny_store: SqliteStore) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(OSError, match="in use"):  # and no socket leaks (the suite turns leaks into errors)
            web.start_server(_app(tiny_store), "127.0.0.1", port)
    finally:
        holder.close()
