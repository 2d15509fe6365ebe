"""The dashboard's sign-in when ``[[auth.users]]`` are configured: a password form, a signed session cookie.

Every dashboard path (pages, Dash callbacks, assets, CSV downloads) then needs a session; ``/api/v1`` keeps its
own bearer tokens and ``/healthz``/``/readyz`` stay open. Passwords are checked against the user's bcrypt
``password_hash``; after failed sign-ins from one address for one name, the next attempt is refused (429 with
Retry-After) until a delay has passed that doubles with each failure (1 s, 2 s, 4 s ... capped at 5 min). The
session cookie is HttpOnly, SameSite=Strict, Secure when the request came over TLS, signed with a key made at
start (sessions end when serve restarts) and valid 12 hours.

The signed-in user (:func:`current_principal`) is what the view model narrows every page, table, chart and
CSV export to (its label scope: ``dashboard.snapshot.Snapshot.within``) and what a write from a page is
checked against (an operator or admin; the audit row names the user).
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, g, has_request_context, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from core.access import Principal, auth_enabled, principal_of, proxy_user
from core.authsettings import AuthSettings, AuthUser

log = logging.getLogger(__name__)

COOKIE = "rightsizer_session"
SESSION_S = 12 * 3600
MAX_DELAY_S = 300.0
_OPEN_PREFIXES = ("/api/v1/", "/healthz", "/readyz", "/signin", "/signout")
#: Where the gate leaves the signed-in user for the rest of the request (``flask.g``).
_PRINCIPAL = "rightsizer_principal"


def current_principal() -> Principal | None:
    """The dashboard user of the request being served; None without ``[auth]`` (the open dashboard) or outside a
    request (background refreshes, which build the whole fleet's data)."""
    if not has_request_context():
        return None
    principal: Principal | None = g.get(_PRINCIPAL)
    return principal


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0

    def wait_s(self, now: float) -> float:
        """Seconds before another attempt is taken (0 when it may be made now)."""
        if self.count == 0:
            return 0.0
        return max(0.0, self.last + min(2.0 ** (self.count - 1), MAX_DELAY_S) - now)


class SignIn:
    """Users that may sign in, failed attempts per (address, name), and the session signer."""

    def __init__(self, auth: AuthSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.users = {u.name: u for u in auth.users}
        self.clock = clock
        self.signer = URLSafeTimedSerializer(secrets.token_bytes(32), salt="rightsizer-dashboard-session")
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], _Failures] = {}

    def session_user(self, cookie: str | None) -> AuthUser | None:
        """The signed-in user of a session cookie (None when absent, forged, expired or the user is gone)."""
        if not cookie:
            return None
        try:
            name = self.signer.loads(cookie, max_age=SESSION_S)
        except BadSignature:
            return None
        user = self.users.get(name) if isinstance(name, str) else None
        return user if user is not None and user.password_hash else None

    def wait_s(self, address: str, name: str) -> float:
        with self._lock:
            return self._failures.get((address, name), _Failures()).wait_s(self.clock())

    def check(self, address: str, name: str, password: str) -> AuthUser | None:
        """The user when ``password`` is theirs; else None, and the failure counted for the delay."""
        import bcrypt

        user = self.users.get(name)
        ok = False
        if user is not None and user.password_hash:
            try:
                ok = bcrypt.checkpw(password.encode("utf-8", "surrogatepass"), user.password_hash.encode())
            except ValueError:
                log.warning("user %r: password_hash is not a bcrypt hash; that user cannot sign in", name)
        with self._lock:
            if ok:
                self._failures.pop((address, name), None)
                return user
            if len(self._failures) > 10_000:
                self._failures.clear()
            failed = self._failures.setdefault((address, name), _Failures())
            failed.count += 1
            failed.last = self.clock()
        return None


def _page(message: str, status: int, next_path: str = "/") -> Response:
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - rightsizer</title></head>
<body><main><h1>Sign in</h1>
{f'<p role="alert">{html.escape(message)}</p>' if message else ''}
<form method="post" action="/signin">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label>Name <input name="name" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form></main></body></html>
"""
    return Response(body, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """A local path to return to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def mount_signin(server: Flask, auth: AuthSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
    """Require a dashboard sign-in on ``server`` when ``auth`` has users (nothing changes without)."""
    if not auth_enabled(auth):
        return
    state = SignIn(auth, clock)

    @server.before_request
    def _gate() -> BaseResponse | None:
        path = request.path
        if path.startswith(_OPEN_PREFIXES):
            return None
        user = state.session_user(request.cookies.get(COOKIE))
        if user is not None:
            setattr(g, _PRINCIPAL, principal_of(user))
            return None
        proxied = proxy_user(auth, request.remote_addr, request.headers.get(auth.proxy_header or "X-Unset"),
                             request.headers.get(auth.proxy_groups_header or "X-Unset"))
        if isinstance(proxied, Principal):
            setattr(g, _PRINCIPAL, proxied)
            return None
        if proxied is not None:  # a trusted proxy named someone who is no user and in no mapped group
            log.warning("dashboard: proxy user %r refused (no [[auth.users]] name, no [[auth.groups]] group)",
                        request.headers.get(auth.proxy_header, "")[:100])
            return Response("your proxy sign-in is not a dashboard user of rightsizer (unknown name, and none of "
                            "your groups is mapped in [[auth.groups]])\n", status=403, mimetype="text/plain")
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            target = request.full_path.rstrip("?")
            return redirect(f"/signin?next={target}", code=302)
        return Response("sign in first at /signin\n", status=401, mimetype="text/plain")

    @server.get("/signin")
    def _form() -> Response:
        return _page("", 200, _safe_next(request.args.get("next")))

    @server.post("/signin")
    def _submit() -> BaseResponse:
        name = request.form.get("name", "")[:200]
        password = request.form.get("password", "")[:1000]
        next_path = _safe_next(request.form.get("next"))
        address = request.remote_addr or "?"
        wait = state.wait_s(address, name)
        if wait > 0:
            response = _page(f"Too many failed sign-ins; try again in {wait:.0f} s.", 429, next_path)
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        user = state.check(address, name, password)
        if user is None:
            log.warning("dashboard sign-in failed for name %r from %s", name, address)
            return _page("Wrong name or password.", 401, next_path)
        log.info("dashboard sign-in: %r from %s", name, address)
        signed_in = redirect(next_path, code=303)
        signed_in.set_cookie(COOKIE, state.signer.dumps(user.name), max_age=SESSION_S, httponly=True,
                            samesite="Strict", secure=request.is_secure, path="/")
        return signed_in

    @server.post("/signout")
    def _signout() -> BaseResponse:
        response = redirect("/signin", code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
        return response
