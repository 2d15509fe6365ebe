"""The ``[auth]`` settings: users with roles and label scopes, the trusted reverse proxy and its groups
(``core.access`` applies them; docs/security.md explains them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.section import Section as _Section


def _label_selectors(v: list[str]) -> list[str]:
    """A scope's entries, each ``key=value``."""
    for item in v:
        key, sep, _value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"scope entry {item!r} is not key=value (e.g. team=payments)")
    return v


class AuthUser(_Section):
    name: str = Field(min_length=1, max_length=100, description="the user's name, recorded as the audit actor")
    role: Literal["viewer", "operator", "admin"] = Field(
        default="viewer", description="viewer reads; operator and admin also make, dry-run and apply plans")
    token_sha256: str = Field(default="", description="hex SHA-256 of the user's API bearer token (only the hash "
                              "is stored); empty = no API access")
    password_hash: str = Field(default="", description="bcrypt hash of the dashboard sign-in password; empty = "
                               "no dashboard sign-in")
    scope: list[str] = Field(default_factory=list, description="label selectors key=value the user may see and "
                             "act on (OR within a key, AND across keys); empty = the whole fleet")

    @field_validator("token_sha256")
    @classmethod
    def _sha256(cls, v: str) -> str:
        if v and (len(v) != 64 or any(c not in "0123456789abcdefABCDEF" for c in v)):
            raise ValueError("expected 64 hex digits (sha256sum of the token)")
        return v.lower()

    _scope = field_validator("scope")(lambda v: _label_selectors(v))


class AuthGroup(_Section):
    name: str = Field(min_length=1, max_length=200, description="a group name as the proxy sends it in "
                      "proxy_groups_header (e.g. an oauth2-proxy or Keycloak group such as /finops or payments-ops)")
    role: Literal["viewer", "operator", "admin"] = Field(
        default="viewer", description="the role of a proxy user in this group")
    scope: list[str] = Field(default_factory=list, description="label selectors key=value members may see and "
                             "act on (as [[auth.users]] scope); empty = the whole fleet")

    _scope = field_validator("scope")(lambda v: _label_selectors(v))


class AuthSettings(_Section):
    users: list[AuthUser] = Field(default_factory=list, description="[[auth.users]] entries; none (and no "
                                  "proxy_header) = the dashboard and API are open to whoever reaches their port")
    proxy_header: str = Field(default="", max_length=100, description="request header in which a trusted "
                              "reverse proxy names the signed-in user (e.g. X-Forwarded-User); an [[auth.users]] "
                              "name takes that user's role and scope, another name those of its first group in "
                              "[[auth.groups]]; empty = no proxy mode")
    proxy_groups_header: str = Field(default="", max_length=100, description="request header in which the trusted "
                                     "proxy lists the user's groups, comma-separated (e.g. X-Forwarded-Groups); "
                                     "empty = groups are not read")
    groups: list[AuthGroup] = Field(default_factory=list, description="[[auth.groups]]: role and scope of a proxy "
                                    "user by group; the first entry (in file order) naming one of the user's groups "
                                    "applies, so list the most privileged first")
    trusted_proxies: list[str] = Field(default_factory=list, description="addresses or networks (127.0.0.1, "
                                       "10.0.0.0/24) whose proxy_header is believed; from any other it is ignored")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for item in v:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network such as 127.0.0.1 or 10.0.0.0/24") \
                    from None
        return v

    @model_validator(mode="after")
    def _proxy_needs_trust(self) -> AuthSettings:
        if self.proxy_header and not self.trusted_proxies:
            raise ValueError("proxy_header needs trusted_proxies (the proxy's address), else anyone could send it")
        return self

    @field_validator("users")
    @classmethod
    def _unique(cls, v: list[AuthUser]) -> list[AuthUser]:
        names = [u.name for u in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"user name {dup[0]!r} appears more than once; names must be unique")
        hashes = [u.token_sha256 for u in v if u.token_sha256]
        if len(hashes) != len(set(hashes)):
            raise ValueError("two users have the same token_sha256; give each user its own token")
        return v
