"""The PromQL client's error edge: every bad answer becomes one error naming the URL and the query."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collector.store.promql_http import Credentials, PromqlClient, PromqlError, PromqlInputError
from rightsizer.cli import main


class _Handler(BaseHTTPRequestHandler):
    plan: list[tuple[int, bytes]] = []
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization", "")})
        status, body = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"plan": [], "seen": []})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()
    srv.server_close()


def _ok(data: object) -> tuple[int, bytes]:
    return 200, json.dumps({"status": "success", "data": data}).encode()


def _client(url: str, **kw: object) -> PromqlClient:
    return PromqlClient(url, retries=2, backoff_s=0.0, sleep=lambda s: None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "body", "words"), [
    (401, b"{}", "HTTP 401"),
    (403, b"{}", "HTTP 403"),
    (200, b"<html>hello</html>", "not JSON"),
    (404, b"not found", "Prometheus-compatible"),
    (400, json.dumps({"status": "error", "error": "parse error at char 3"}).encode(), "parse error at char 3"),
    (422, json.dumps({"status": "error", "error": "query processing would load too many samples"}).encode(),
     "too many samples"),
    (200, json.dumps({"hello": 1}).encode(), "no 'status'"),
])
def test_bad_answers_name_url_and_query(server, status, body, words):
    url, handler = server
    handler.plan = [(status, body)]
    with pytest.raises(PromqlInputError) as err:
        _client(url).query_range("up{job='x'}", 0, 3600, 60)
    text = str(err.value)
    assert words in text and url in text and "up{job='x'}" in text
    assert "\n" not in text


def test_unreachable_url_retries_then_names_url():
    client = _client("http://127.0.0.1:1")
    with pytest.raises(PromqlInputError, match=r"127\.0\.0\.1:1.*cannot reach"):
        client.labels()
    assert client.queries == 3  # first try + 2 retries


def test_transient_503_is_retried_then_succeeds(server):
    url, handler = server
    handler.plan = [(503, b"busy"), _ok({"resultType": "vector", "result": [
        {"metric": {"uuid": "u1"}, "value": [10.0, "2.5"]}]})]
    result = _client(url).query("x", 10.0)
    assert [(dict(s.labels), list(s.values)) for s in result] == [({"uuid": "u1"}, [2.5])]
    assert len(handler.seen) == 2


def test_persistent_503_is_a_runtime_error(server):
    url, handler = server
    handler.plan = [(503, b"busy")]
    with pytest.raises(PromqlError, match="HTTP 503"):
        _client(url).query("x", 10.0)


def test_credentials_are_sent(server):
    url, handler = server
    handler.plan = [_ok(["__name__"])]
    _client(url, credentials=Credentials(bearer_token="t0k")).labels()
    _client(url, credentials=Credentials(basic_user="a", basic_password="b")).labels()
    assert [s["auth"] for s in handler.seen] == ["Bearer t0k", "Basic YTpi"]


def test_not_http_url_is_rejected():
    with pytest.raises(PromqlInputError, match="ftp://x"):
        PromqlClient("ftp://x")


@pytest.mark.parametrize("command", ["recommend", "costs", "report"])
def test_cli_unreachable_source_exits_2_with_one_line(tmp_path, capsys, command):
    argv = [command, "--prometheus-url", "http://127.0.0.1:1", "--db", str(tmp_path / "c.db")]
    if command == "report":
        argv += ["--out", str(tmp_path / "out")]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "http://127.0.0.1:1" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.db").exists()


def test_cli_401_exits_2(server, tmp_path, capsys):
    url, handler = server
    handler.plan = [(401, b"{}")]
    token = tmp_path / "token"
    token.write_text("wrong\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[source]\nkind = "prometheus"\nurl = "{url}"\nbearer_token_file = "{token}"\n')
    assert main(["recommend", "--config", str(cfg), "--db", str(tmp_path / "c.db")]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and url in err
    assert handler.seen[0]["auth"] == "Bearer wrong"
