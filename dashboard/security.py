"""HTTP response headers that keep the dashboard out of other sites' frames and pin where code may come from.

The Content-Security-Policy allows scripts only from the app itself plus the hashes of Dash's own inline
scripts (``Dash.csp_hashes``); styles may be inline because Dash components and plotly.js set ``style``
attributes and inject ``<style>`` elements. ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` stop
click-jacking of the apply control.

State-changing requests (every method but GET, HEAD and OPTIONS: Dash's ``/_dash-update-component`` and the
API's writes) that a browser sends on behalf of another site are refused with 403 (``cross_site_refusal``);
requests without ``Origin`` or ``Sec-Fetch-Site`` (curl, scripts, Prometheus) are not browser requests
from another site and pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from dash import Dash
from flask import Response, request

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # "none": the user typed it or followed a bookmark


def cross_site_refusal(method: str, origin: str | None, fetch_site: str | None, own_origin: str) -> str | None:
    """Why a request is refused as sent by a browser for another site, or None when it may go on.

    ``own_origin`` is scheme://host[:port] as the client addressed this server. A browser's ``Sec-Fetch-Site``
    decides when present (it cannot be set by a page's script); else ``Origin`` must be this server's own.
    """
    if method.upper() in _SAFE_METHODS:
        return None
    if fetch_site:
        if fetch_site.lower() in _SAME_SITE_FETCHES:
            return None
        return f"Sec-Fetch-Site {fetch_site!r}: state-changing requests are accepted only from this dashboard's pages"
    if origin is None:
        return None  # not a browser's cross-site request: curl, scripts, the API's own clients
    if origin.lower().rstrip("/") == own_origin.lower():
        return None
    return (f"Origin {origin!r} is not this dashboard ({own_origin!r}): state-changing requests are accepted only "
            "from its own pages; behind a reverse proxy, pass the Host header through unchanged")


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """The CSP header value for a Dash app whose inline scripts have these hashes."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def add_security_headers(app: Dash) -> None:
    """Send the CSP, X-Frame-Options and related headers on every response (call after callbacks exist), and
    refuse state-changing requests a browser sends for another site (403)."""
    headers = {
        "Content-Security-Policy": content_security_policy(app.csp_hashes()),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    def _secure(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    def _same_origin_writes() -> Response | None:
        why = cross_site_refusal(request.method, request.headers.get("Origin"),
                                 request.headers.get("Sec-Fetch-Site"), f"{request.scheme}://{request.host}")
        if why is None:
            return None
        return Response(f"{why}\n", status=403, mimetype="text/plain")

    app.server.before_request(_same_origin_writes)
    app.server.after_request(_secure)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for 0.0.0.0, :: and every other address."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(listen: str, *, actions_enabled: bool) -> str | None:
    """The warning ``serve`` logs when the apply control is reachable beyond this machine, else None."""
    host = listen.rpartition(":")[0]
    if not actions_enabled or is_loopback(host):
        return None
    return (f"the dashboard listens on {listen}, beyond this machine, with [actions] enabled: anyone who reaches "
            "it and has the token can resize VMs; listen on 127.0.0.1 behind an authenticating TLS proxy, or "
            "disable actions")
