"""/metrics behind the exporter-toolkit web configuration file: basic auth, TLS (and client certificates),
bad files, and the file read again when it changes -- on real sockets, in the server's own event loop."""

from __future__ import annotations

import base64
import http.client
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest

from collector.exposition import Exposition
from collector.metrics_server import MetricsServer
from collector.webconfig import WebConfigError, WebConfigWatch, load_web_config
from tests.helpers.tlscerts import Certs, make_certs

BODY = b"# TYPE up gauge\nup 1\n"


class _Source:
    def current(self) -> Exposition:
        return Exposition(families=(), text=BODY, gzipped=b"", rendered_at=0.0, render_seconds=0.0)

    def filtered(self, names: Collection[str]) -> bytes:
        return BODY


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@contextmanager
def _serve(web: WebConfigWatch | None) -> Iterator[int]:
    server = MetricsServer(_Source(), "127.0.0.1", 0, web_config=web, idle_timeout_s=4.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _get(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    conn.request("GET", "/metrics", headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp.getheader("WWW-Authenticate") or ""


def _client_ctx(certs: Certs, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        ctx.load_cert_chain(certs.client_cert, certs.client_key)
    return ctx


def test_basic_auth_401_without_or_with_wrong_credentials_200_with_the_right_ones(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{_hash('s3cret')}'\n")
    with _serve(WebConfigWatch(web)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        status, _body, challenge = _get(conn)
        assert (status, challenge) == (401, 'Basic realm="rightsizer /metrics"')
        assert _get(conn, _basic("prometheus", "wrong"))[0] == 401  # same kept-alive connection
        assert _get(conn, _basic("someone", "s3cret"))[0] == 401
        assert _get(conn, {"Authorization": "Bearer s3cret"})[0] == 401
        assert _get(conn, {"Authorization": "Basic !!notbase64"})[0] == 401
        assert _get(conn, _basic("prometheus", "s3cret"))[:2] == (200, BODY)
        assert _get(conn, _basic("prometheus", "s3cret"))[:2] == (200, BODY)  # cached verdict, same answer
        conn.close()


def test_tls_serves_https_and_refuses_plain_http(tmp_path: Path, certs: Certs) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                   "  min_version: TLS13\n")
    with _serve(WebConfigWatch(web)) as port:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=_client_ctx(certs))
        assert _get(conn)[:2] == (200, BODY)
        assert _get(conn)[:2] == (200, BODY)  # keep-alive over TLS
        assert conn.sock.version() == "TLSv1.3"
        conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _get(plain)
        plain.close()
        tls12 = _client_ctx(certs)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        old = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=tls12)
        with pytest.raises(ssl.SSLError):
            _get(old)
        old.close()


def test_a_client_that_stops_mid_handshake_holds_up_no_one(tmp_path: Path, certs: Certs) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    with _serve(WebConfigWatch(web)) as port:
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for s in stalled[:10]:
            s.sendall(b"\x16\x03\x01\x00\xff")  # the start of a ClientHello, never finished
        started = time.monotonic()
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=_client_ctx(certs))
        assert _get(conn)[:2] == (200, BODY)
        assert time.monotonic() - started < 1.0
        conn.close()
        for s in stalled:
            s.close()


def test_client_certificates_required_and_verified(tmp_path: Path, certs: Certs) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                   f"  client_ca_file: {certs.ca}\n  client_auth_type: RequireAndVerifyClientCert\n"
                   f"basic_auth_users:\n  p: '{_hash('pw')}'\n")
    with _serve(WebConfigWatch(web)) as port:
        with_cert = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=_client_ctx(certs, True))
        assert _get(with_cert)[0] == 401  # a certificate and still the password
        assert _get(with_cert, _basic("p", "pw"))[:2] == (200, BODY)
        with_cert.close()
        without = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=_client_ctx(certs))
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _get(without, _basic("p", "pw"))
        without.close()


@pytest.mark.parametrize(("text", "message"), [
    ("basic_auth_users: [a, b]\n", "basic_auth_users = ['a', 'b']: expected a mapping"),
    ("basic_auth_users:\n  p: plaintext\n", "basic_auth_users.p is not a bcrypt hash (value not shown)"),
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
     "tls_server_config.cert_file = '/nonexistent.crt': no readable file there"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, client_auth_type: Sometimes}\n",
     "client_auth_type = 'Sometimes': use one of NoClientCert"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, min_version: TLS10}\n",
     "min_version = 'TLS10': use TLS12 or TLS13"),
    ("tls_server_config: {cert_file: CERT, key_file: CERT}\n", "do not load as a PEM certificate and its key"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, client_auth_type: RequireAndVerifyClientCert}\n",
     "needs tls_server_config.client_ca_file"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, cipher_suites: [TLS_AES_128_GCM_SHA256]}\n",
     "tls_server_config.cipher_suites is not supported here"),
    ("basic_auth_users: {p: [\n", "is not valid YAML"),
    ("users: {}\n", "unknown key 'users'"),
])
def test_a_bad_file_is_one_line_naming_the_key(tmp_path: Path, certs: Certs, text: str, message: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text.replace("CERT", str(certs.server_cert)).replace("KEY", str(certs.server_key)))
    with pytest.raises(WebConfigError) as err:
        load_web_config(web)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and str(web) in str(err.value)
    assert "plaintext" not in str(err.value)


def test_a_missing_file_is_an_error() -> None:
    with pytest.raises(WebConfigError, match="cannot be read"):
        load_web_config("/nonexistent/web.yml")


def test_the_file_is_read_again_when_it_changes_and_a_bad_one_keeps_the_old(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  p: '{_hash('one')}'\n")
    with _serve(WebConfigWatch(web)) as port:
        def status(password: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                return _get(conn, _basic("p", password))[0]
            finally:
                conn.close()

        def until(password: str, expected: int) -> None:
            deadline = time.monotonic() + 5
            while status(password) != expected:
                assert time.monotonic() < deadline, f"password {password!r} never answered {expected}"
                time.sleep(0.1)

        assert status("one") == 200
        web.write_text(f"basic_auth_users:\n  p: '{_hash('two')}'\n")
        os.utime(web, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))  # a new mtime even within one tick
        until("two", 200)
        assert status("one") == 401
        with caplog.at_level(logging.ERROR, logger="collector.webconfig"):
            web.write_text("basic_auth_users: {p: [\n")
            os.utime(web, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
            deadline = time.monotonic() + 5
            while not caplog.records:
                assert time.monotonic() < deadline, "no log line about the bad file"
                time.sleep(0.1)
        assert status("two") == 200  # the bad file kept the previous configuration
        assert [r.getMessage().count("\n") for r in caplog.records] == [0]
        assert "keeping the previous web configuration" in caplog.records[0].getMessage()
        web.write_text("")  # an empty file: no TLS, no users
        os.utime(web, ns=(time.time_ns(), time.time_ns() + 3_000_000_000))
        until("anything", 200)


def test_a_password_being_checked_holds_up_no_other_scrape(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    slow = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=13)).decode()  # about a second per check here
    web.write_text(f"basic_auth_users:\n  p: '{slow}'\n")
    with _serve(WebConfigWatch(web)) as port:
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _get(warm, _basic("p", "right"))[0] == 200  # checked once; cached from now on
        finished: dict[str, float] = {}

        def wrong() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            assert _get(conn, _basic("p", "wrong-guess"))[0] == 401
            finished["wrong"] = time.monotonic()
            conn.close()

        guess = threading.Thread(target=wrong)
        guess.start()
        time.sleep(0.05)  # the guess's check is under way
        for _ in range(5):
            assert _get(warm, _basic("p", "right"))[:2] == (200, BODY)
        finished["right"] = time.monotonic()
        guess.join(30)
        assert finished["right"] < finished["wrong"]
        warm.close()
