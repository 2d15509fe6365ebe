"""The dashboard sign-in with users configured: the gate, bcrypt passwords, the growing delay, the cookie."""

from __future__ import annotations

import bcrypt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.authsettings import AuthSettings
from dashboard.signin import COOKIE, current_principal, mount_signin

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


def _who_app(auth: dict[str, object]) -> FlaskClient:
    app = Flask("t")

    @app.get("/")
    def index() -> str:
        who = current_principal()
        return "open" if who is None else f"{who.name} {who.role} {','.join(who.scope)}"

    mount_signin(app, AuthSettings.model_validate(auth))
    return app.test_client()


def test_a_scoped_user_signs_in_and_the_pages_know_their_role_and_scope() -> None:
    client = _who_app({"users": [{"name": "ops", "role": "operator", "password_hash": HASH,
                                  "scope": ["team=payments"]}]})
    done = client.post("/signin", data={"name": "ops", "password": "correct horse"})
    assert done.status_code == 303 and COOKIE in done.headers["Set-Cookie"]
    assert client.get("/").data == b"ops operator team=payments"
    assert _who_app({}).get("/").data == b"open"  # no [auth]: the dashboard is open, nobody is signed in


def test_a_trusted_proxy_names_a_user_or_maps_a_group_and_nobody_else() -> None:
    client = _who_app({
        "proxy_header": "X-Forwarded-User", "trusted_proxies": ["127.0.0.2"], "proxy_groups_header": "X-Groups",
        "users": [{"name": "finops", "role": "viewer"}, {"name": "ops", "role": "operator", "scope": ["team=x"]}],
        "groups": [{"name": "admins", "role": "admin"},
                   {"name": "payments-ops", "role": "operator", "scope": ["team=payments"]},
                   {"name": "staff", "role": "viewer", "scope": ["env=dev"]}]})
    proxy = {"REMOTE_ADDR": "127.0.0.2"}

    def get(user: str, groups: str | None = None, env: dict[str, str] = proxy) -> tuple[int, bytes]:
        headers = {"X-Forwarded-User": user} | ({"X-Groups": groups} if groups is not None else {})
        r = client.get("/", headers=headers, environ_base=env)
        return r.status_code, r.data

    assert get("finops") == (200, b"finops viewer ")
    assert get("ops") == (200, b"ops operator team=x")
    assert get("ops", "admins") == (200, b"ops operator team=x")  # a configured user keeps their own entry
    # another name: the first [[auth.groups]] entry (file order) among the proxy's groups
    assert get("carol", "staff, payments-ops") == (200, b"carol operator team=payments")
    assert get("dave", "staff") == (200, b"dave viewer env=dev")
    assert get("erin", "admins,staff") == (200, b"erin admin ")
    assert get("mallory")[0] == 403 and get("mallory", "contractors")[0] == 403
    direct = get("finops", "admins", env={"REMOTE_ADDR": "127.0.0.3"})
    assert direct[0] == 401  # the headers from anyone but the proxy are ignored
