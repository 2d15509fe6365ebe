"""What ``serve`` checks and says about the TLS and authentication of its listeners before it starts them."""

from __future__ import annotations

import ssl
from pathlib import Path

from collector.webconfig import load_web_config
from core.errors import ConfigError
from core.settings import DashboardSettings, Settings


def dashboard_ssl_context(dashboard: DashboardSettings) -> ssl.SSLContext | None:
    """The server TLS context of the dashboard port (None = plain HTTP); ConfigError (one line) when the
    certificate or key is missing, unreadable, or the two do not belong together."""
    cert, key = dashboard.tls_cert_file, dashboard.tls_key_file
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "tls_key_file" if cert else "tls_cert_file"
        raise ConfigError(f"[dashboard] {missing} is empty while the other TLS file is set; set both "
                          "tls_cert_file and tls_key_file, or neither")
    for name, value in (("tls_cert_file", cert), ("tls_key_file", key)):
        if not Path(value).is_file():
            raise ConfigError(f"[dashboard] {name} = {value!r}: no such file; give the PEM file's path")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"[dashboard] tls_cert_file = {cert!r} / tls_key_file = {key!r} do not load as a PEM "
                          f"certificate and its key ({exc}); fix them") from None
    return ctx


def check_tls_files(settings: Settings, role: str) -> None:
    """Read every TLS and authentication file ``serve`` will use, so a bad one stops it at start (exit 2)."""
    if settings.exporter.web_config_file:
        load_web_config(settings.exporter.web_config_file)
    if settings.dashboard.enabled and role != "agent":
        dashboard_ssl_context(settings.dashboard)


def metrics_banner(listen: str, web_config_file: str) -> str:
    """The /metrics address as the start-up log shows it, with what protects it."""
    if not web_config_file:
        return f"http://{listen}/metrics (no TLS, no authentication)"
    config = load_web_config(web_config_file)
    scheme = "https" if config.ssl_context is not None else "http"
    auth = f"basic auth for {len(config.users)} user(s)" if config.users else "no authentication"
    return f"{scheme}://{listen}/metrics ({auth}; web config {web_config_file!r}, read again when it changes)"
