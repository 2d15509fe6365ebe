"""The dashboard sign-in with users configured: the gate, bcrypt passwords, the growing delay, the cookie."""

from __future__ import annotations

import bcrypt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.settings import AuthSettings
from dashboard.signin import COOKIE, mount_signin

HASH = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _app(clock: Clock, users: list[dict[str, object]] | None = None) -> FlaskClient:
    app = Flask("t")

    @app.get("/")
    def index() -> str:
        return "the overview"

    @app.get("/api/v1/vms")
    def api() -> str:
        return "api answers itself"

    auth = AuthSettings.model_validate({"users": users if users is not None else [
        {"name": "finops", "role": "viewer", "password_hash": HASH},
        {"name": "ops", "role": "operator", "password_hash": HASH, "scope": ["team=payments"]}]})
    mount_signin(app, auth, clock=clock)
    return app.test_client()


def test_without_users_nothing_is_gated() -> None:
    client = _app(Clock(), users=[])
    assert client.get("/").status_code == 200
    assert client.get("/signin").status_code == 404


def test_pages_need_a_session_and_the_api_keeps_its_own_tokens() -> None:
    client = _app(Clock())
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"] == "/signin?next=/"
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/api/v1/vms").status_code == 200
    assert client.get("/signin").status_code == 200


def test_the_right_password_gives_an_httponly_samesite_strict_cookie() -> None:
    client = _app(Clock())
    done = client.post("/signin", data={"name": "finops", "password": "correct horse", "next": "/"})
    assert done.status_code == 303 and done.headers["Location"] == "/"
    cookie = done.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS see below
    assert client.get("/").data == b"the overview"
    forged = _app(Clock())
    forged.set_cookie(COOKIE, "finops")
    assert forged.get("/").status_code == 401


def test_under_tls_the_cookie_is_secure() -> None:
    client = _app(Clock())
    done = client.post("/signin", data={"name": "finops", "password": "correct horse"},
                       base_url="https://localhost")
    assert "Secure" in done.headers["Set-Cookie"]


def test_failed_sign_ins_grow_the_delay_before_the_next_attempt() -> None:
    clock = Clock()
    client = _app(clock)
    waits = []
    for _ in range(4):
        assert client.post("/signin", data={"name": "finops", "password": "guess"}).status_code == 401
        refused = client.post("/signin", data={"name": "finops", "password": "correct horse"})
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        clock.t += waits[-1]
    assert waits == [1, 2, 4, 8]
    assert client.post("/signin", data={"name": "finops", "password": "correct horse"}).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_the_return_path_never_leaves_the_site(target: str) -> None:
    client = _app(Clock())
    done = client.post("/signin", data={"name": "finops", "password": "correct horse", "next": target})
    assert done.headers["Location"] == "/"


def test_a_scoped_user_is_refused_until_the_dashboard_can_narrow_to_a_scope() -> None:
    client = _app(Clock())
    refused = client.post("/signin", data={"name": "ops", "password": "correct horse"})
    assert refused.status_code == 403 and b"team=payments" in refused.data
    assert "Set-Cookie" not in refused.headers


def test_a_trusted_proxy_signs_in_an_unscoped_user_and_nobody_else() -> None:
    app = Flask("t")

    @app.get("/")
    def index() -> str:
        return "the overview"

    mount_signin(app, AuthSettings.model_validate({
        "proxy_header": "X-Forwarded-User", "trusted_proxies": ["127.0.0.2"],
        "users": [{"name": "finops", "role": "viewer"}, {"name": "ops", "role": "operator", "scope": ["team=x"]}]}))
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "127.0.0.2"}
    assert client.get("/", headers={"X-Forwarded-User": "finops"}, environ_base=proxy).data == b"the overview"
    assert client.get("/", headers={"X-Forwarded-User": "ops"}, environ_base=proxy).status_code == 403
    assert client.get("/", headers={"X-Forwarded-User": "mallory"}, environ_base=proxy).status_code == 403
    direct = client.get("/", headers={"X-Forwarded-User": "finops"}, environ_base={"REMOTE_ADDR": "127.0.0.3"})
    assert direct.status_code == 401  # the header from anyone but the proxy is ignored
