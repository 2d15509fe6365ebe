"""Real receivers on 127.0.0.1 for delivery tests: an SMTP server (aiosmtpd) and an HTTP webhook endpoint."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server received: (envelope sender, recipients, parsed message) per mail."""

    mails: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl, 1 day), PEM files in ``directory``."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@contextmanager
def smtp_server(*, user: str = "", password: str = "", tls_dir: Path | None = None,
                ) -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server on 127.0.0.1; with ``user`` it offers AUTH for that password; with ``tls_dir`` it
    requires STARTTLS with a self-signed certificate written there (``smtp-cert.pem``), AUTH only after it."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    box = Mailbox()
    kwargs: dict[str, Any] = {}
    if tls_dir is not None:
        cert, key = self_signed_cert(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs = {"tls_context": context, "require_starttls": True}
    if user:
        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = data.login.decode() == user and data.password.decode() == password
            if ok:
                box.logins.append(user)
            return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

        # without TLS, AUTH is offered over plain text (required would make aiosmtpd warn)
        kwargs |= {"authenticator": authenticate, "auth_require_tls": tls_dir is not None,
                   "auth_exclude_mechanism": ["LOGIN"]}
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@dataclass
class Webhook:
    """What the HTTP endpoint received, and the statuses it answers with (then 200)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    requests: int = 0


@contextmanager
def webhook_server() -> Iterator[tuple[str, Webhook]]:
    """An HTTP endpoint on 127.0.0.1 recording JSON POSTs to /hook/<secret>; yields its URL."""
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server hook
            hook.requests += 1
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = hook.statuses.pop(0) if hook.statuses else 200
            if status == 200:
                assert self.headers.get("Content-Type") == "application/json"
                hook.bodies.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook/T0KEN-secret", hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
