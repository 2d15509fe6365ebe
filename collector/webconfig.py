"""The Prometheus exporter-toolkit web configuration file, for the /metrics listener.

The same YAML as every Prometheus exporter takes with ``--web.config.file``::

    tls_server_config:
      cert_file: /etc/rightsizer/metrics.crt
      key_file: /etc/rightsizer/metrics.key
      client_ca_file: /etc/rightsizer/scrapers-ca.crt   # optional
      client_auth_type: RequireAndVerifyClientCert       # optional, NoClientCert by default
      min_version: TLS13                                 # optional, TLS12 by default
    basic_auth_users:
      prometheus: $2b$12$...                             # bcrypt hash

Either section may be left out. ``load_web_config`` reads and checks a file (``WebConfigError``, one line,
on anything wrong); ``WebConfigWatch`` keeps the last good one and reads the file again when its
modification time or size changes (a bad new file keeps the old configuration and logs one line).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from core.errors import ConfigError

log = logging.getLogger(__name__)

#: exporter-toolkit's client_auth_type values and what they mean for ``ssl``: (verify mode, certificate required)
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_MIN_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
             "cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "cert", "key"}
_SUPPORTED_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_AUTH_CACHE = 256  # (user, password digest) -> verdict, so a scrape every few seconds costs one bcrypt check
# compared against when the user is unknown, so an unknown name takes as long as a wrong password
_DUMMY_HASH = bcrypt.hashpw(b"unknown user", bcrypt.gensalt(rounds=10))


class WebConfigError(ConfigError):
    """The web configuration file is missing, unreadable or wrong (one line, naming the file and the key)."""


@dataclass(frozen=True)
class WebConfig:
    """A checked web configuration: a server TLS context (None = plain HTTP) and the basic-auth users."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verdicts: dict[tuple[str, bytes], bool] = field(default_factory=dict, compare=False, repr=False)

    @property
    def requires_auth(self) -> bool:
        return bool(self.users)

    def quick_verdict(self, authorization: str | None) -> bool | None:
        """Whether an ``Authorization`` header value lets the request through, when that is known without a
        bcrypt check (no users, no or malformed credentials, a verdict cached); None when it needs one
        (``authorized``, a fraction of a second of CPU: the event loop runs it on a worker thread)."""
        if not self.users:
            return True
        credentials = _credentials(authorization)
        if credentials is None:
            return False
        return self._verdicts.get((credentials[0], hashlib.sha256(credentials[1]).digest()))

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value lets the request through (always, with no users)."""
        verdict = self.quick_verdict(authorization)
        if verdict is not None:
            return verdict
        user, password = _credentials(authorization) or ("", b"")
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password, hashed if hashed is not None else _DUMMY_HASH)  # releases the GIL
        verdict = ok and hashed is not None
        if len(self._verdicts) >= _AUTH_CACHE:
            self._verdicts.clear()
        self._verdicts[(user, hashlib.sha256(password).digest())] = verdict
        return verdict


def _credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a ``Basic`` Authorization value; None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password.encode("utf-8")) if sep else None


def _fail(path: Path, what: str) -> WebConfigError:
    return WebConfigError(f"web config file {str(path)!r}: {what}")


def _file(path: Path, tls: dict[str, Any], key: str) -> str:
    value = tls.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(path, f"tls_server_config.{key} = {value!r}: expected a file path")
    resolved = Path(value) if os.path.isabs(value) else path.parent / value  # relative to the YAML, as upstream
    if not resolved.is_file() or not os.access(resolved, os.R_OK):
        raise _fail(path, f"tls_server_config.{key} = {value!r}: no readable file there; fix the path")
    return str(resolved)


def _tls_context(path: Path, tls: Any) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise _fail(path, f"tls_server_config = {tls!r}: expected a mapping")
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise _fail(path, f"unknown key tls_server_config.{sorted(unknown)[0]}; known: {', '.join(sorted(_TLS_KEYS))}")
    unsupported = {k for k in set(tls) - _SUPPORTED_TLS_KEYS if tls[k] not in (None, "", [], False)}
    if unsupported:
        raise _fail(path, f"tls_server_config.{sorted(unsupported)[0]} is not supported here; "
                          f"use only {', '.join(sorted(_SUPPORTED_TLS_KEYS))}")
    cert, key = _file(path, tls, "cert_file"), _file(path, tls, "key_file")
    auth = tls.get("client_auth_type") or "NoClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        raise _fail(path, f"tls_server_config.client_auth_type = {auth!r}: use one of {', '.join(CLIENT_AUTH_TYPES)}")
    version = tls.get("min_version") or "TLS12"
    if version not in _MIN_VERSIONS:
        raise _fail(path, f"tls_server_config.min_version = {version!r}: use TLS12 or TLS13")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _MIN_VERSIONS[version]
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # a non-blocking loop: no handshake in the middle of a response
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise _fail(path, f"cert_file {tls['cert_file']!r} / key_file {tls['key_file']!r} do not load as a PEM "
                          f"certificate and its key ({exc}); fix them") from None
    ca = tls.get("client_ca_file")
    verifies = auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    if verifies and not ca:
        raise _fail(path, f"client_auth_type {auth!r} needs tls_server_config.client_ca_file")
    if ca:
        try:
            ctx.load_verify_locations(_file(path, tls, "client_ca_file"))
        except ssl.SSLError as exc:
            raise _fail(path, f"client_ca_file {ca!r} does not load as PEM CA certificates ({exc})") from None
    if auth in ("RequestClientCert", "RequireAnyClientCert"):
        # these ask for a certificate without checking who signed it; Python's ssl always checks a certificate it
        # asks for, so they need the client CA too
        if not ca:
            raise _fail(path, f"client_auth_type {auth!r} needs tls_server_config.client_ca_file here "
                              "(the certificate a client sends is checked against it)")
    ctx.verify_mode = CLIENT_AUTH_TYPES[auth]
    return ctx


def _users(path: Path, users: Any) -> dict[str, bytes]:
    if users is None:
        return {}
    if not isinstance(users, dict):
        raise _fail(path, f"basic_auth_users = {users!r}: expected a mapping of user name to bcrypt hash")
    out: dict[str, bytes] = {}
    for name, hashed in users.items():
        if not isinstance(hashed, str):
            raise _fail(path, f"basic_auth_users.{name} is not a bcrypt hash string (value not shown)")
        raw = hashed.encode("ascii", "replace")
        if len(raw) != 60 or raw[:4] not in (b"$2a$", b"$2b$", b"$2y$"):
            raise _fail(path, f"basic_auth_users.{name} is not a bcrypt hash (value not shown); make one with "
                              "python3 -c 'import bcrypt,getpass; print(bcrypt.hashpw(getpass.getpass().encode(), "
                              "bcrypt.gensalt()).decode())'")
        out[str(name)] = raw
    return out


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check the web configuration file; ``WebConfigError`` (one line) when it cannot be used."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(p, f"cannot be read ({exc.__class__.__name__}: {exc}); pass an existing YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # the problem and where, never the snippet: the line may hold a hash
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise _fail(p, f"is not valid YAML ({problem}{where}); fix it") from None
    if data is None:
        return WebConfig()
    if not isinstance(data, dict):
        raise _fail(p, f"expected a YAML mapping, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(p, f"unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_TOP_KEYS))}")
    tls = data.get("tls_server_config")
    return WebConfig(ssl_context=_tls_context(p, tls) if tls else None, users=_users(p, data.get("basic_auth_users")))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class WebConfigWatch:
    """The current web configuration of a file, read again when the file changes (``refresh``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp = _stamp(self.path)
        self.config = load_web_config(self.path)

    def refresh(self) -> bool:
        """Read the file again when its modification time or size changed; True when a new config is in use.

        A file that no longer loads keeps the previous configuration and logs one line (once per change).
        """
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.config = load_web_config(self.path)
        except WebConfigError as exc:
            log.error("%s; keeping the previous web configuration", exc)
            return False
        log.info("web config file %r read again: TLS %s, %d basic-auth user(s)", str(self.path),
                 "on" if self.config.ssl_context else "off", len(self.config.users))
        return True
