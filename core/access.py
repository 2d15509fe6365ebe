"""Who is asking and what they may see: users from ``[[auth.users]]``, their role and their label scope.

A bearer token is matched by its SHA-256 (only the hash is configured), compared in constant time against
every user so the time taken does not tell which user came close. A scope is a list of ``key=value`` label
selectors: a VM is inside when, for every key named, its label has one of the values given for that key
(OR within a key, AND across keys); an empty scope is the whole fleet.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from core.authsettings import AuthSettings, AuthUser

WRITE_ROLES = frozenset({"operator", "admin"})


class _Labelled(Protocol):
    @property
    def labels(self) -> Mapping[str, str] | None: ...


L = TypeVar("L", bound=_Labelled)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the name recorded in the audit log, the role and the label scope."""

    name: str
    role: str
    scope: tuple[str, ...] = ()

    @property
    def may_write(self) -> bool:
        return self.role in WRITE_ROLES

    def sees(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a VM with ``labels`` is inside this principal's scope."""
        return in_scope(labels, self.scope)

    def visible(self, vms: Iterable[L]) -> list[L]:
        """The VMs of ``vms`` inside the scope, in their order."""
        return [vm for vm in vms if self.sees(vm.labels)]


def scope_selectors(scope: Sequence[str]) -> dict[str, set[str]]:
    """``["team=a", "team=b", "env=prod"]`` -> ``{"team": {"a", "b"}, "env": {"prod"}}``."""
    wanted: dict[str, set[str]] = {}
    for item in scope:
        key, _, value = item.partition("=")
        wanted.setdefault(key.strip(), set()).add(value.strip())
    return wanted


def in_scope(labels: Mapping[str, str] | None, scope: Sequence[str]) -> bool:
    """Whether ``labels`` match every key of ``scope`` (empty scope: always)."""
    have = labels or {}
    return all(have.get(key) in values for key, values in scope_selectors(scope).items())


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a bearer token, as ``token_sha256`` stores it (``printf %s TOKEN | sha256sum``)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def principal_of(user: AuthUser) -> Principal:
    return Principal(user.name, user.role, tuple(user.scope))


def user_for_token(auth: AuthSettings, token: str) -> Principal | None:
    """The user whose ``token_sha256`` is the hash of ``token``; None when no user has it."""
    if not token:
        return None
    offered = token_sha256(token).encode()
    found: AuthUser | None = None
    for user in auth.users:  # every hash is compared, whichever matches
        if user.token_sha256 and hmac.compare_digest(offered, user.token_sha256.encode()) and found is None:
            found = user
    return principal_of(found) if found is not None else None


def auth_enabled(auth: AuthSettings) -> bool:
    """Whether ``[[auth.users]]`` or a proxy header is configured (else the dashboard and the API are open)."""
    return bool(auth.users) or bool(auth.proxy_header)


def from_trusted_proxy(auth: AuthSettings, address: str | None) -> bool:
    """Whether ``address`` (the TCP peer) is one of ``[auth] trusted_proxies``."""
    import ipaddress

    if not auth.proxy_header or not address:
        return False
    try:
        peer = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(n.strip(), strict=False) for n in auth.trusted_proxies)


def proxy_user(auth: AuthSettings, address: str | None, header: str | None,
               groups_header: str | None = None) -> Principal | None | bool:
    """The user a trusted proxy names in ``[auth] proxy_header``.

    An ``[[auth.users]]`` name is that user (their role and scope); another name takes the role and scope of
    the first ``[[auth.groups]]`` entry (file order) among the groups the proxy lists in ``proxy_groups_header``
    (comma-separated), under the name the proxy gave. False when the proxy named someone who is neither; None
    when the request is not from a trusted proxy or carries no name (then the headers are ignored and other
    credentials apply).
    """
    if header is None or not from_trusted_proxy(auth, address):
        return None
    name = header.strip()
    if not name:
        return None
    for user in auth.users:
        if user.name == name:
            return principal_of(user)
    if auth.proxy_groups_header and groups_header:
        theirs = {g.strip() for g in groups_header.split(",") if g.strip()}
        for group in auth.groups:
            if group.name in theirs:
                return Principal(name[:100], group.role, tuple(group.scope))
    return False
