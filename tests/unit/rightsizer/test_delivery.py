"""Digest delivery against a real SMTP server (aiosmtpd) and a local HTTP receiver, both on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics.catalogue import load_catalogue
from analytics.findings.headline import headline_saving
from analytics.reports.digest import DIGEST_META_KEY, digest_for_store
from collector.store.sqlite import SqliteStore
from core.errors import ConfigError, InputError
from core.settings import Settings, load_settings
from rightsizer.delivery import deliver, schedule_digest, send_digest
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history
from tests.helpers.receivers import smtp_server, webhook_server


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(tmp_path_factory.mktemp("delivery")) / "demo.db"
    store = SqliteStore(path)
    seed_synthetic_history(store, demo_fleet(), uri="test:///nowhere.xml")
    store.close()
    return path


@pytest.fixture
def store(seeded: Path, tmp_path: Path) -> Iterator[SqliteStore]:
    """A fresh copy of the demo store (with no digest record) per test."""
    import sqlite3

    path = tmp_path / "demo.db"
    with sqlite3.connect(seeded) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    s = SqliteStore(path)
    yield s
    s.close()


def _settings(**delivery: Any) -> Settings:
    return Settings.model_validate({"delivery": {"retry_backoff_s": 0.0, "timeout_s": 10, **delivery},
                                    "dashboard": {"public_url": "https://rs.example.com"}})


def _largest(store: SqliteStore) -> tuple[str, str]:
    digest = digest_for_store(store, load_catalogue(), Settings())
    assert digest.largest is not None
    return digest.largest.name, f"{digest.largest.monthly_saving:.2f}"


def test_mail_and_webhook_carry_the_digest_and_name_the_largest_saving(store):
    name, money = _largest(store)
    with smtp_server() as (port, box), webhook_server() as (url, hook):
        settings = _settings(smtp_host="127.0.0.1", smtp_port=port, mail_from="rightsizer@example.com",
                             mail_to=["ops@example.com", "finops@example.com"], webhook_urls=[url])
        digest, outcomes = send_digest(store, load_catalogue(), settings)
    assert [o.result for o in outcomes] == ["sent", "sent"]
    (sender, rcpts, msg), = box.mails
    assert sender == "rightsizer@example.com" and sorted(rcpts) == ["finops@example.com", "ops@example.com"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    assert name in msg["Subject"] and money in msg["Subject"]
    assert f"Largest saving: {name}" in text and money in text and name in page and money in page
    assert len(page.encode()) <= 200_000 and "<script" not in page
    assert msg["X-Rightsizer-Digest"] == digest.digest_id
    (body,) = hook.bodies
    assert set(body) == {"text"} and name in body["text"] and money in body["text"]
    assert "https://rs.example.com/vm/" in body["text"]
    # the best VM by the headline's own rule
    assert money == f"{max(headline_saving(f) for f in _analysis_findings(store)):.2f}"


def _analysis_findings(store: SqliteStore) -> Any:
    from analytics.analysis import AnalysisOptions, analyse_fleet

    catalogue = load_catalogue()
    return analyse_fleet(store, catalogue, AnalysisOptions.from_settings(Settings(), catalogue)).findings


def test_the_same_digest_is_never_sent_twice_to_a_channel_even_after_a_restart(store, tmp_path):
    with webhook_server() as (url, hook):
        settings = _settings(webhook_urls=[url])
        digest, first = send_digest(store, load_catalogue(), settings)
        path = store.path
        store.close()  # serve restarted: a new process opens the same store
        reopened = SqliteStore(path)
        try:
            again, second = send_digest(reopened, load_catalogue(), settings)
            assert again.digest_id == digest.digest_id and [o.result for o in second] == ["skipped"]
            assert again.previous_id == digest.digest_id and again.new == ()
            forced = deliver(reopened, again, settings.delivery, force=True)
            record = json.loads(reopened.get_meta(DIGEST_META_KEY) or "{}")
        finally:
            reopened.close()
    assert [o.result for o in first] == ["sent"] and [o.result for o in forced] == ["sent"]
    assert len(hook.bodies) == 2
    assert "T0KEN-secret" not in json.dumps(record)  # the webhook's secret path is never stored
    assert record["last"]["id"] == digest.digest_id


def test_a_new_channel_gets_the_digest_the_others_already_have(store):
    with webhook_server() as (url_a, hook_a), webhook_server() as (url_b, hook_b):
        send_digest(store, load_catalogue(), _settings(webhook_urls=[url_a]))
        _digest, outcomes = send_digest(store, load_catalogue(), _settings(webhook_urls=[url_a, url_b]))
    assert [o.result for o in outcomes] == ["skipped", "sent"]
    assert len(hook_a.bodies) == 1 and len(hook_b.bodies) == 1


def test_transient_failures_are_retried_with_doubling_backoff(store):
    waits: list[float] = []
    with webhook_server() as (url, hook):
        hook.statuses = [503, 502]
        settings = _settings(webhook_urls=[url], retries=3, retry_backoff_s=0.5)
        digest = digest_for_store(store, load_catalogue(), settings)
        (outcome,) = deliver(store, digest, settings.delivery, sleep=waits.append)
    assert outcome.result == "sent" and outcome.attempts == 3 and hook.requests == 3
    assert waits == [0.5, 1.0]


def test_a_refusal_is_not_retried_and_is_not_recorded(store):
    waits: list[float] = []
    with webhook_server() as (url, hook):
        hook.statuses = [404]
        settings = _settings(webhook_urls=[url], retries=3, retry_backoff_s=0.5)
        digest = digest_for_store(store, load_catalogue(), settings)
        (outcome,) = deliver(store, digest, settings.delivery, sleep=waits.append)
    assert outcome.result == "failed" and "HTTP 404" in outcome.detail and hook.requests == 1 and waits == []
    assert "T0KEN" not in outcome.detail
    assert store.get_meta(DIGEST_META_KEY) is None  # nothing sent: the next run tries again


def test_unreachable_webhook_fails_after_every_retry(store):
    from tests.helpers.receivers import free_port

    waits: list[float] = []
    settings = _settings(webhook_urls=[f"http://127.0.0.1:{free_port()}/hook"], retries=2, retry_backoff_s=1.0)
    digest = digest_for_store(store, load_catalogue(), settings)
    (outcome,) = deliver(store, digest, settings.delivery, sleep=waits.append)
    assert outcome.result == "failed" and "refused" in outcome.detail.lower() and waits == [1.0, 2.0]


def test_smtp_auth_logs_in_and_refuses_a_clear_text_password_unless_told(store):
    with smtp_server(user="digest", password="s3cret") as (port, box):
        base = {"smtp_host": "127.0.0.1", "smtp_port": port, "mail_from": "rs@example.com",
                "mail_to": ["ops@example.com"], "smtp_user": "digest", "smtp_password": "s3cret", "retries": 0}
        digest = digest_for_store(store, load_catalogue(), _settings(**base))
        (refused,) = deliver(store, digest, _settings(**base).delivery)  # auto: no STARTTLS offered here
        (sent,) = deliver(store, digest, _settings(**base, smtp_starttls="never").delivery)
    assert refused.result == "failed" and "in clear" in refused.detail
    assert sent.result == "sent" and box.logins == ["digest"] and len(box.mails) == 1


def test_starttls_is_used_when_offered_and_the_password_goes_only_over_it(store, tmp_path):
    with smtp_server(user="digest", password="s3cret", tls_dir=tmp_path) as (port, box):
        base = {"smtp_host": "127.0.0.1", "smtp_port": port, "mail_from": "rs@example.com",
                "mail_to": ["ops@example.com"], "smtp_user": "digest", "smtp_password": "s3cret", "retries": 2}
        digest = digest_for_store(store, load_catalogue(), _settings(**base))
        waits: list[float] = []
        (untrusted,) = deliver(store, digest, _settings(**base).delivery, sleep=waits.append)  # self-signed
        trusted = _settings(**base, smtp_ca_file=str(tmp_path / "smtp-cert.pem")).delivery
        (sent,) = deliver(store, digest, trusted)
    assert untrusted.result == "failed" and "smtp_ca_file" in untrusted.detail and waits == []  # not retried
    assert sent.result == "sent" and box.logins == ["digest"] and len(box.mails) == 1


def test_starttls_always_refuses_a_server_without_it(store):
    with smtp_server() as (port, box):
        settings = _settings(smtp_host="127.0.0.1", smtp_port=port, mail_from="rs@example.com",
                             mail_to=["ops@example.com"], smtp_starttls="always", retries=2)
        digest = digest_for_store(store, load_catalogue(), settings)
        waits: list[float] = []
        (outcome,) = deliver(store, digest, settings.delivery, sleep=waits.append)
    assert outcome.result == "failed" and "does not offer STARTTLS" in outcome.detail and waits == []
    assert box.mails == []


def test_wrong_smtp_password_is_a_permanent_failure(store):
    with smtp_server(user="digest", password="s3cret") as (port, box):
        settings = _settings(smtp_host="127.0.0.1", smtp_port=port, mail_from="rs@example.com",
                             mail_to=["ops@example.com"], smtp_user="digest", smtp_password="wrong",
                             smtp_starttls="never", retries=3, timeout_s=5)
        digest = digest_for_store(store, load_catalogue(), settings)
        waits: list[float] = []
        (outcome,) = deliver(store, digest, settings.delivery, sleep=waits.append)
    assert outcome.result == "failed" and waits == [] and box.mails == []


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("mail_to", ["ops@example.com", "not-an-address"], "'not-an-address' is not a mail address"),
    ("mail_from", "rightsizer at example", "'rightsizer at example' is not a mail address"),
    ("webhook_urls", ["hooks.slack.com/services/x"], "'hooks.slack.com/services/x' is not an http(s) URL"),
    ("webhook_urls", ["ftp://127.0.0.1/x"], "'ftp://127.0.0.1/x' is not an http(s) URL"),
])
def test_bad_addresses_and_urls_are_config_errors_naming_the_value(tmp_path, key, value, shown):
    path = tmp_path / "c.toml"
    path.write_text(f"[delivery]\n{key} = {json.dumps(value)}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert shown in str(err.value) and f"delivery.{key}" in str(err.value) and "\n" not in str(err.value)


def test_no_channel_or_half_a_mail_channel_is_bad_input(store):
    digest = digest_for_store(store, load_catalogue(), Settings())
    with pytest.raises(InputError, match="no channel"):
        deliver(store, digest, Settings().delivery)
    with pytest.raises(InputError, match="smtp_host, mail_from unset"):
        deliver(store, digest, _settings(mail_to=["ops@example.com"]).delivery)


class _Scheduler:
    def __init__(self) -> None:
        self.jobs: list[tuple[Any, Any, str]] = []

    def add_job(self, func: Any, trigger: Any, id: str) -> None:  # noqa: A002 - APScheduler's keyword
        self.jobs.append((func, trigger, id))


def test_serve_schedules_the_digest_at_the_cron_and_the_job_sends_it(store):
    with webhook_server() as (url, hook):
        settings = _settings(webhook_urls=[url]).model_copy(
            update={"reports": Settings().reports.model_copy(update={"digest_cron": "0 7 * * 1"})})
        scheduler = _Scheduler()
        schedule_digest(scheduler, settings, store, load_catalogue())
        ((job, trigger, job_id),) = scheduler.jobs
        assert job_id == "digest" and "day_of_week='1'" in str(trigger) and "hour='7'" in str(trigger)
        job()
        job()  # the same digest: skipped
    assert len(hook.bodies) == 1


def test_a_bad_digest_cron_or_no_channel_stops_serve_at_start(store):
    bad = Settings.model_validate({"reports": {"digest_cron": "every monday"},
                                   "delivery": {"webhook_urls": ["http://127.0.0.1:9/x"]}})
    with pytest.raises(ConfigError, match="reports.digest_cron = 'every monday'"):
        schedule_digest(_Scheduler(), bad, store, load_catalogue())
    none = Settings.model_validate({"reports": {"digest_cron": "0 7 * * 1"}})
    with pytest.raises(ConfigError, match="no channel"):
        schedule_digest(_Scheduler(), none, store, load_catalogue())
