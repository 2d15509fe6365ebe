"""Deliver the digest by mail (SMTP) and webhooks (HTTP POST of JSON), once per digest and channel.

Channels come from ``[delivery]``: one mail channel (``smtp_host`` + ``mail_to``) and one per webhook URL. Each
is tried ``1 + retries`` times with exponential backoff (``retry_backoff_s``, doubled each time) on transient
failures; a permanent one (a refused recipient or sender, failed authentication, an HTTP 4xx other than 408/429)
is not retried. After a channel took a digest, the store's digest record says so at once (see
:mod:`analytics.reports.digest`): a second run, or ``serve`` restarted, skips channels that already have this
digest. Webhook URLs often carry a secret: the record keeps a hash of them, and messages show only scheme, host
and port.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from analytics.reports.digest import DIGEST_META_KEY, Digest, digest_for_store, sent_record
from collector.store.base import TimeSeriesStore
from core.errors import InputError, RightsizerError
from core.settings import DeliverySettings, Settings

log = logging.getLogger("rightsizer.delivery")

#: The HTML part's ceiling; the digest holds no charts, so this is far above what it needs.
MAX_HTML_BYTES = 200_000


class DeliveryError(RightsizerError):
    """A channel did not take the digest after every retry (the CLI exits 1)."""


class PermanentDeliveryError(DeliveryError):
    """The receiver refused the digest in a way a retry cannot change."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One place a digest goes: ``key`` identifies it in the record, ``label`` is safe to print."""

    key: str
    label: str
    send: Callable[[Digest], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened on one channel: ``sent``, ``skipped`` (it already has this digest) or ``failed``."""

    channel: str
    result: str
    attempts: int
    detail: str = ""


def channels(settings: DeliverySettings) -> list[Channel]:
    """The configured channels. Raises InputError for a half-configured mail channel."""
    out: list[Channel] = []
    if settings.mail_to or settings.smtp_host:
        missing = [k for k in ("smtp_host", "mail_from", "mail_to") if not getattr(settings, k)]
        if missing:
            raise InputError(f"[delivery] {', '.join(missing)} unset while "
                             f"{'mail_to' if settings.mail_to else 'smtp_host'} is set; set "
                             "smtp_host, mail_from and mail_to together (or none of them)")
        if settings.smtp_ca_file and not Path(settings.smtp_ca_file).is_file():
            raise InputError(f"[delivery] smtp_ca_file {settings.smtp_ca_file!r} is not a file; give the PEM "
                             "bundle that signs the SMTP server's certificate, or leave it empty")
        to = ",".join(sorted(settings.mail_to))
        out.append(Channel(key=f"mail:{settings.smtp_host}:{settings.smtp_port}:{to}",
                           label=f"mail to {', '.join(settings.mail_to)} via {settings.smtp_host}:{settings.smtp_port}",
                           send=lambda d: send_mail(settings, d)))
    for url in settings.webhook_urls:
        digest_of_url = hashlib.sha256(url.encode()).hexdigest()[:16]
        out.append(Channel(key=f"webhook:{digest_of_url}", label=f"webhook {safe_url(url)}",
                           send=_webhook_sender(url, settings.timeout_s)))
    return out


def _webhook_sender(url: str, timeout_s: float) -> Callable[[Digest], None]:
    def send(digest: Digest) -> None:
        post_webhook(url, webhook_payload(digest), timeout_s=timeout_s)

    return send


def safe_url(url: str) -> str:
    """``scheme://host:port/…``: enough to tell a webhook apart, without the path's or query's secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def mail_message(settings: DeliverySettings, digest: Digest) -> EmailMessage:
    """The digest as a multipart/alternative mail: text, then the small HTML part."""
    msg = EmailMessage()
    msg["Subject"] = digest.subject()
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.mail_to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    msg["X-Rightsizer-Digest"] = digest.digest_id
    msg.set_content(digest.text())
    page = digest.html()
    if len(page.encode()) > MAX_HTML_BYTES:  # never expected: the digest lists at most 10 + 20 VMs
        raise DeliveryError(f"the digest's HTML part is {len(page.encode())} bytes, over {MAX_HTML_BYTES}")
    msg.add_alternative(page, subtype="html")
    return msg


def send_mail(settings: DeliverySettings, digest: Digest) -> None:
    """Send the digest over SMTP. Raises PermanentDeliveryError or DeliveryError (transient)."""
    msg = mail_message(settings, digest)
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.timeout_s
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    try:
        smtp: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) if settings.smtp_tls
                              else smtplib.SMTP(host, port, timeout=timeout))
        with smtp:
            smtp.ehlo()
            encrypted = settings.smtp_tls
            if not settings.smtp_tls and settings.smtp_starttls != "never":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                    encrypted = True
                elif settings.smtp_starttls == "always":
                    raise PermanentDeliveryError(
                        f"SMTP server {host}:{port} does not offer STARTTLS and [delivery] smtp_starttls = "
                        "'always'; use smtp_tls for port 465, or 'auto'")
            if settings.smtp_user:
                if not encrypted and settings.smtp_starttls != "never":
                    raise PermanentDeliveryError(
                        f"SMTP server {host}:{port} offers no TLS; refusing to send the password in clear "
                        "(set [delivery] smtp_starttls = 'never' to allow it)")
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            refused = smtp.send_message(msg)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError,
            smtplib.SMTPNotSupportedError) as exc:
        raise PermanentDeliveryError(f"SMTP server {host}:{port} refused the mail: {_smtp_text(exc)}") from exc
    except smtplib.SMTPResponseException as exc:
        kind = PermanentDeliveryError if 500 <= exc.smtp_code < 600 else DeliveryError
        raise kind(f"SMTP server {host}:{port} answered {exc.smtp_code}: {_smtp_text(exc)}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentDeliveryError(f"SMTP server {host}:{port}: its certificate is not trusted "
                                     f"({exc.verify_message}); set [delivery] smtp_ca_file to the bundle that "
                                     "signs it") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP server {host}:{port}: {exc}") from exc
    if refused:
        raise PermanentDeliveryError(f"SMTP server {host}:{port} refused recipient(s) {sorted(refused)!r}")


def _smtp_text(exc: smtplib.SMTPException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient(s) " + ", ".join(sorted(exc.recipients))
    error = getattr(exc, "smtp_error", b"")
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error or exc)


def webhook_payload(digest: Digest) -> dict[str, Any]:
    """The JSON a webhook gets: Slack's ``text`` (also read by Mattermost, Rocket.Chat, Teams workflows)."""
    return {"text": digest.text()}


def post_webhook(url: str, payload: dict[str, Any], *, timeout_s: float) -> None:
    """POST ``payload`` as JSON. Raises PermanentDeliveryError (4xx but 408/429) or DeliveryError."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "rightsizer"})
    where = safe_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http(s) checked in settings
            response.read()
    except urllib.error.HTTPError as exc:
        kind = PermanentDeliveryError if 400 <= exc.code < 500 and exc.code not in (408, 429) else DeliveryError
        raise kind(f"webhook {where} answered HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryError(f"webhook {where}: {reason}") from exc


def with_retries(send: Callable[[], None], *, retries: int, backoff_s: float,
                 sleep: Callable[[float], None] = time.sleep, what: str = "") -> int:
    """Call ``send`` until it succeeds, at most ``1 + retries`` times; returns the attempts it took.

    Waits ``backoff_s``, then twice that, ... between attempts. A PermanentDeliveryError ends at once; the last
    DeliveryError is raised when every attempt failed.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            send()
            return attempt
        except PermanentDeliveryError:
            raise
        except DeliveryError as exc:
            if attempt > retries:
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: attempt %d failed (%s); retrying in %.1f s", what, attempt, exc, wait)
            sleep(wait)


def deliver(store: TimeSeriesStore, digest: Digest, settings: DeliverySettings, *, force: bool = False,
            sleep: Callable[[float], None] = time.sleep, now: Callable[[], datetime] = lambda: datetime.now(UTC),
            ) -> list[Outcome]:
    """Send ``digest`` on every channel that does not have it yet, recording each success at once.

    ``force`` sends to every channel again. When no channel failed, the digest becomes the "last" one (the
    base of the next digest's new findings). Raises InputError when no channel is configured.
    """
    chans = channels(settings)
    if not chans:
        raise InputError("[delivery] has no channel: set smtp_host, mail_from and mail_to, or webhook_urls")
    outcomes: list[Outcome] = []
    for ch in chans:
        done = _channel_record(store, ch.key)
        if not force and done.get("id") == digest.digest_id:
            outcomes.append(Outcome(ch.label, "skipped", 0, f"already sent at {done.get('sent_at')}"))
            continue
        try:
            attempts = with_retries(partial(ch.send, digest), retries=settings.retries,
                                    backoff_s=settings.retry_backoff_s, sleep=sleep, what=ch.label)
        except DeliveryError as exc:
            outcomes.append(Outcome(ch.label, "failed", -1, str(exc)))
            continue
        _record_channel(store, ch.key, digest.digest_id, now())
        outcomes.append(Outcome(ch.label, "sent", attempts))
    if not any(o.result == "failed" for o in outcomes):
        _record_last(store, digest, now())
    return outcomes


def _channel_record(store: TimeSeriesStore, key: str) -> dict[str, Any]:
    chans = sent_record(store).get("channels")
    entry = chans.get(key) if isinstance(chans, dict) else None
    return entry if isinstance(entry, dict) else {}


def _record_channel(store: TimeSeriesStore, key: str, digest_id: str, at: datetime) -> None:
    record = sent_record(store)
    chans = record.get("channels")
    chans = dict(chans) if isinstance(chans, dict) else {}
    chans[key] = {"id": digest_id, "sent_at": at.isoformat()}
    record["channels"] = chans
    store.set_meta(DIGEST_META_KEY, json.dumps(record, sort_keys=True))


def _record_last(store: TimeSeriesStore, digest: Digest, at: datetime) -> None:
    record = sent_record(store)
    last = record.get("last")
    if isinstance(last, dict) and last.get("id") == digest.digest_id:
        return  # already the base of "new": keep its time
    record["last"] = {"id": digest.digest_id, "sent_at": at.isoformat(), "keys": list(digest.keys)}
    store.set_meta(DIGEST_META_KEY, json.dumps(record, sort_keys=True))


def send_digest(store: TimeSeriesStore, catalogue: Any, settings: Settings, *, force: bool = False,
                sleep: Callable[[float], None] = time.sleep) -> tuple[Digest, list[Outcome]]:
    """Build the digest of the store and deliver it (``digest --send`` and serve's ``digest_cron`` job)."""
    digest = digest_for_store(store, catalogue, settings)
    return digest, deliver(store, digest, settings.delivery, force=force, sleep=sleep)


def schedule_digest(scheduler: Any, settings: Settings, store: Any, catalogue: Any) -> None:
    """Add serve's digest job at ``[reports] digest_cron`` (UTC). Raises ConfigError for a bad expression
    and InputError when ``[delivery]`` has no channel."""
    from apscheduler.triggers.cron import CronTrigger

    from core.errors import ConfigError

    expr = settings.reports.digest_cron
    try:
        trigger = CronTrigger.from_crontab(expr, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(f"reports.digest_cron = {expr!r}: {exc}; use a crontab line such as '0 7 * * 1'") from exc
    if not channels(settings.delivery):
        raise ConfigError(f"reports.digest_cron = {expr!r} but [delivery] has no channel: set smtp_host, "
                          "mail_from and mail_to, or webhook_urls")

    def job() -> None:
        try:
            digest, outcomes = send_digest(store, catalogue, settings)
        except RightsizerError:
            log.exception("scheduled digest failed")
            return
        for o in outcomes:
            (log.warning if o.result == "failed" else log.info)(
                "digest %s: %s %s%s", digest.digest_id, o.channel, o.result,
                f" ({o.detail})" if o.detail else "")

    scheduler.add_job(job, trigger, id="digest")
    log.info("digest: %r through %d channel(s)", expr, len(channels(settings.delivery)))
