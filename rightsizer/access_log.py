"""One line at start saying who may use the dashboard and the API: open to whoever reaches the port, or users."""

from __future__ import annotations

import logging

from core.access import auth_enabled
from core.settings import Settings

log = logging.getLogger("rightsizer.access")


def access_mode(settings: Settings) -> str:
    """The sentence ``serve`` logs about access to the dashboard and the API."""
    listen = settings.dashboard.listen
    if not auth_enabled(settings.auth):
        writes = ("writes need [actions] token" if settings.actions.enabled else "writes are disabled")
        return (f"access: the dashboard and the API on {listen} are OPEN to anyone who can reach that port "
                f"(no [[auth.users]] configured; {writes}); see docs/security.md")
    users = settings.auth.users
    roles = ", ".join(f"{u.name} ({u.role}{'; scope ' + ' '.join(u.scope) if u.scope else ''})" for u in users)
    auth = settings.auth
    groups = "".join(f"; proxy group {g.name} -> {g.role}{' scope ' + ' '.join(g.scope) if g.scope else ''}"
                     for g in auth.groups) if auth.proxy_groups_header else ""
    proxy = (f"; a {auth.proxy_header} header names the user when sent from "
             f"{', '.join(auth.trusted_proxies)}{groups}" if auth.proxy_header else "")
    signers = ", ".join(sorted(u.name for u in users if u.password_hash))
    return (f"access: the API on {listen} needs a bearer token of one of {len(users)} user(s): {roles}; "
            f"the dashboard needs a sign-in, open to {signers or 'nobody (no user has a password_hash)'}, each "
            f"seeing their scope{proxy}")


def log_access_mode(settings: Settings) -> None:
    """Log :func:`access_mode`: info for users, or an open service on loopback (the laptop mode); a warning for
    an open service on any other address."""
    message = access_mode(settings)
    host = settings.dashboard.listen.rpartition(":")[0].strip("[]")
    loopback = host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
    if loopback or auth_enabled(settings.auth):
        log.info("%s", message)
    else:
        log.warning("%s", message)
