"""dashboard/web.py: gzip, the partial plotly.js bundle and the WSGI server, on a real (tiny) app."""

from __future__ import annotations

import gzip
import socket
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from tinyfleet import NOW

from analytics.catalogue import load_catalogue
from collector.store.sqlite import SqliteStore
from core.settings import Settings
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


def _scripts(index: str) -> list[str]:
    return [part.split('"')[0] for part in index.split('<script src="')[1:]]


def test_polyfill_is_replaced_by_the_fetched_regenerator_runtime(tmp_path: Path) -> None:
    from dash import Dash, html

    app = Dash(__name__, serve_locally=True)
    app.layout = html.Div("x")
    with app.server.test_request_context("/"):
        dash_scripts = app._generate_scripts_html()
    assert [s for s in _scripts(dash_scripts) if "/deps/polyfill@" in s], "Dash no longer ships its polyfill"
    runtime = web.regenerator_path(tmp_path)
    runtime.write_text("regeneratorRuntime = runtime;")
    server = Flask(__name__)
    web.enable_compression(server)
    url = web.regenerator_script(server, vendor=tmp_path)
    assert url == web.PLOTLY_ROUTE + runtime.name
    lean = _scripts(web.without_polyfill(dash_scripts, url))
    assert lean[0] == url and not [s for s in lean if "polyfill" in s]
    assert lean[1:] == [s for s in _scripts(dash_scripts) if "/deps/polyfill@" not in s]  # the rest, in order
    response = server.test_client().get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and gzip.decompress(response.data) == runtime.read_bytes()


def test_missing_runtime_keeps_dash_polyfill_and_says_how_to_fetch(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    assert web.regenerator_script(Flask(__name__), vendor=tmp_path) is None
    assert "scripts/fetch-plotly.sh" in caplog.text


def test_app_index_drops_the_polyfill_when_the_runtime_was_fetched(tiny_store: SqliteStore) -> None:
    lean = _scripts(_app(tiny_store).test_client().get("/").data.decode())
    plain = _scripts(_app(tiny_store, lean=False).test_client().get("/").data.decode())
    assert [s for s in plain if "/deps/polyfill@" in s]
    if web.regenerator_path().is_file():
        assert web.PLOTLY_ROUTE + web.regenerator_path().name in lean
        assert not [s for s in lean if "/deps/polyfill@" in s]
    else:  # make run/test fetch it; a bare pip install keeps Dash's polyfill
        assert [s for s in lean if "/deps/polyfill@" in s]


@pytest.mark.parametrize(("path", "chunks"), [
    ("/", {"async-dropdown.js", "async-graph.js"}),
    ("/vms", {"async-dropdown.js", "async-table.js", "async-highlight.js"}),
    ("/backups", {"async-dropdown.js", "async-graph.js", "async-table.js", "async-highlight.js"}),
    ("/vm/demo-vm-1", {"async-dropdown.js", "async-graph.js"}),
])
def test_index_preloads_the_layout_and_the_chunks_its_page_draws(tiny_store: SqliteStore, path: str,
                                                                 chunks: set[str]) -> None:
    client = _app(tiny_store).test_client()
    index = client.get(path).data.decode()
    preloads = [part.split('"')[0] for part in index.split('<link rel="preload" href="')[1:]]
    assert preloads[:2] == ["/_dash-layout", "/_dash-dependencies"]
    assert {p.rsplit("/", 1)[1] for p in preloads[2:]} == chunks
    for url in preloads[2:]:  # a chunk Dash renamed would be preloaded in vain: each must be served
        assert client.get(url).status_code == 200, url
    assert '<link rel="preload"' not in _app(tiny_store, lean=False).test_client().get(path).data.decode()


def test_dash_callback_post_over_the_configured_body_limit_is_413_unread(tiny_store: SqliteStore) -> None:
    from dashboard.wsgiserver import Limits

    limit = Settings().dashboard.max_body_bytes
    assert limit == 10 * 1024 * 1024
    server = web.start_server(_app(tiny_store), "127.0.0.1", 0, name="test", limits=Limits(max_body_bytes=limit))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 419430400\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 413 ")
        with urllib.request.urlopen(f"{server.url}/_dash-layout", timeout=10) as resp:
            assert resp.status == 200
    finally:
        server.stop()
