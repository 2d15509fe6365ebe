"""HTTP response headers that keep the dashboard out of other sites' frames and pin where code may come from.

The Content-Security-Policy allows scripts only from the app itself plus the hashes of Dash's own inline
scripts (``Dash.csp_hashes``); styles may be inline because Dash components and plotly.js set ``style``
attributes and inject ``<style>`` elements. ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` stop
click-jacking of the apply control.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from dash import Dash
from flask import Response


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
    """Send the CSP, X-Frame-Options and related headers on every response (call after callbacks exist)."""
    headers = {
        "Content-Security-Policy": content_security_policy(app.csp_hashes()),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    def _secure(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

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
