"""Users, roles and label scopes: token lookup by hash, scope matching, the settings that declare them."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from core.access import Principal, in_scope, proxy_user, token_sha256, user_for_token
from core.authsettings import AuthSettings
from core.errors import ConfigError
from core.settings import Settings, load_settings
from rightsizer.access_log import access_mode, log_access_mode


def _auth(**users: dict[str, object]) -> AuthSettings:
    return AuthSettings.model_validate({"users": [{"name": n, **u} for n, u in users.items()]})


def test_token_hash_is_the_sha256sum_of_the_token_text() -> None:
    assert token_sha256("s3cret") == hashlib.sha256(b"s3cret").hexdigest()


def test_a_token_finds_its_user_and_only_by_its_hash() -> None:
    auth = _auth(alice={"role": "admin", "token_sha256": token_sha256("a-token")},
                 bob={"role": "viewer", "token_sha256": token_sha256("b-token").upper(), "scope": ["team=x"]})
    assert user_for_token(auth, "a-token") == Principal("alice", "admin", ())
    assert user_for_token(auth, "b-token") == Principal("bob", "viewer", ("team=x",))  # hex case ignored
    assert user_for_token(auth, token_sha256("a-token")) is None  # the hash itself is not a token
    assert user_for_token(auth, "") is None
    assert user_for_token(auth, "a-token ") is None


def test_a_user_without_a_token_hash_cannot_be_reached_by_an_empty_token() -> None:
    auth = _auth(carol={"role": "admin"})
    assert user_for_token(auth, "") is None and user_for_token(auth, "anything") is None


@pytest.mark.parametrize(("labels", "scope", "inside"), [
    ({"team": "payments"}, [], True),
    (None, [], True),
    ({"team": "payments"}, ["team=payments"], True),
    ({"team": "search"}, ["team=payments"], False),
    (None, ["team=payments"], False),
    ({"team": "search"}, ["team=payments", "team=search"], True),  # OR within a key
    ({"team": "payments", "env": "dev"}, ["team=payments", "env=prod"], False),  # AND across keys
    ({"team": "payments", "env": "prod"}, ["team=payments", "env=prod"], True),
])
def test_scope_is_or_within_a_key_and_across_keys(labels: dict[str, str] | None, scope: list[str],
                                                  inside: bool) -> None:
    assert in_scope(labels, scope) is inside


def test_roles_that_may_write() -> None:
    assert [Principal("x", r).may_write for r in ("viewer", "operator", "admin")] == [False, True, True]


@pytest.mark.parametrize(("users", "message"), [
    ('[[auth.users]]\nname = "a"\ntoken_sha256 = "abc"\n', "64 hex digits"),
    ('[[auth.users]]\nname = "a"\nrole = "root"\n', "auth.users.0.role"),
    ('[[auth.users]]\nname = "a"\nscope = ["payments"]\n', "not key=value"),
    ('[[auth.users]]\nname = "a"\n[[auth.users]]\nname = "a"\n', "more than once"),
    (f'[[auth.users]]\nname = "a"\ntoken_sha256 = "{"0" * 64}"\n[[auth.users]]\nname = "b"\n'
     f'token_sha256 = "{"0" * 64}"\n', "same token_sha256"),
    ('[[auth.users]]\nname = "a"\ntoken = "plain"\n', "unknown key"),
])
def test_bad_user_entries_are_config_errors_naming_the_key(tmp_path: Path, users: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(users, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(path, env={})
    assert "plain" not in str(err.value)  # the value of a misspelt key is never shown


def test_the_start_log_says_plainly_when_the_dashboard_and_api_are_open(caplog: pytest.LogCaptureFixture) -> None:
    open_loopback = Settings()
    assert "OPEN to anyone" in access_mode(open_loopback)
    with caplog.at_level(logging.INFO, logger="rightsizer.access"):
        log_access_mode(open_loopback)
        log_access_mode(Settings.model_validate({"dashboard": {"listen": "0.0.0.0:8050"}}))
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]
    users = Settings.model_validate({"auth": {"users": [{"name": "ops", "role": "operator",
                                                         "scope": ["team=payments"]}]}})
    text = access_mode(users)
    assert "bearer token" in text and "ops (operator; scope team=payments)" in text and "OPEN" not in text
    assert "dashboard needs a sign-in, open to nobody" in text


def test_a_proxy_header_counts_only_from_a_trusted_proxy_and_names_a_configured_user() -> None:
    auth = AuthSettings.model_validate({"proxy_header": "X-Forwarded-User", "trusted_proxies": ["10.0.0.0/24", "::1"],
                                        "users": [{"name": "ops", "role": "operator", "scope": ["team=x"]}]})
    assert proxy_user(auth, "10.0.0.7", "ops") == Principal("ops", "operator", ("team=x",))
    assert proxy_user(auth, "::1", " ops ") == Principal("ops", "operator", ("team=x",))
    assert proxy_user(auth, "10.0.1.7", "ops") is None  # not the proxy: the header is ignored
    assert proxy_user(auth, "10.0.0.7", None) is None and proxy_user(auth, "10.0.0.7", "") is None
    assert proxy_user(auth, "10.0.0.7", "mallory") is False  # the proxy vouches for someone unknown
    assert proxy_user(auth, "not-an-ip", "ops") is None


@pytest.mark.parametrize(("auth", "message"), [
    ({"proxy_header": "X-Forwarded-User"}, "needs trusted_proxies"),
    ({"proxy_header": "X-Forwarded-User", "trusted_proxies": ["10.0.0.300"]}, "not an IP address"),
])
def test_a_proxy_header_without_a_valid_trusted_proxy_is_refused(auth: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthSettings.model_validate(auth)
