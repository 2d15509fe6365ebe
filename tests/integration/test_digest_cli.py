"""``rightsizer digest --send --config FILE --db PATH`` end to end on a demo store: a real SMTP server (aiosmtpd)
and an HTTP receiver on 127.0.0.1 take the digest; a second run sends nothing; bad input exits 2 in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.analysis import AnalysisOptions, analyse_fleet
from analytics.catalogue import load_catalogue
from analytics.findings.headline import headline_saving
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history
from tests.helpers.receivers import smtp_server, webhook_server

REPO = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIGHTSIZER_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "rightsizer", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A demo store, the name of its VM with the largest saving and that saving to 2 decimals."""
    db = tmp_path_factory.mktemp("digest-cli") / "demo.db"
    store = SqliteStore(db)
    seed_synthetic_history(store, demo_fleet(), uri="test:///nowhere.xml")
    catalogue = load_catalogue()
    findings = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(Settings(), catalogue)).findings
    store.close()
    best = max(findings, key=headline_saving)
    return db, best.name, f"{headline_saving(best):.2f}"


def test_digest_send_delivers_by_mail_and_webhook_once(demo_db, tmp_path):
    db, name, money = demo_db
    with smtp_server() as (port, box), webhook_server() as (url, hook):
        config = tmp_path / "rightsizer.toml"
        config.write_text(
            "[dashboard]\npublic_url = \"https://rightsizer.example.com\"\n\n"
            f"[delivery]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nmail_from = \"rightsizer@example.com\"\n"
            f"mail_to = [\"ops@example.com\"]\nwebhook_urls = [\"{url}\"]\nretry_backoff_s = 0.1\n")
        first = _cli(tmp_path, "digest", "--send", "--config", str(config), "--db", str(db))
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [
            "sent: mail to ops@example.com via 127.0.0.1:" + str(port), "sent: webhook http://127.0.0.1:"
            + url.split(":")[2].split("/")[0] + "/…"]
        second = _cli(tmp_path, "digest", "--send", "--config", str(config), "--db", str(db))
        assert second.returncode == 0, second.stderr
        assert [line.split(" (")[0] for line in second.stdout.splitlines()] == [
            line.replace("sent:", "skipped:") for line in first.stdout.splitlines()]
    (_sender, rcpts, msg), = box.mails
    assert rcpts == ["ops@example.com"]
    mail_text = msg.get_body(("plain",)).get_content()
    assert name in msg["Subject"] and money in msg["Subject"] and name in mail_text and money in mail_text
    assert "https://rightsizer.example.com/vm/" in mail_text
    assert len(msg.get_body(("html",)).get_content().encode()) <= 200_000
    (body,) = hook.bodies
    assert name in body["text"] and money in body["text"]


def test_digest_prints_without_sending(demo_db, tmp_path):
    db, name, money = demo_db
    proc = _cli(tmp_path, "digest", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stdout and money in proc.stdout and "Top 10 by saving" in proc.stdout
    html = _cli(tmp_path, "digest", "--format", "html", "--db", str(db))
    assert html.returncode == 0 and html.stdout.startswith("<!doctype html>") and name in html.stdout
    doc = _cli(tmp_path, "digest", "--output", "json", "--db", str(db))
    assert doc.returncode == 0, doc.stderr
    parsed = json.loads(doc.stdout)
    assert f"{parsed['top'][0]['monthly_savings']:.2f}" == money and len(parsed["top"]) == 10
    assert parsed["headline"]["gross_monthly_savings"] > 0


@pytest.mark.parametrize(("toml", "shown"), [
    ('[delivery]\nwebhook_urls = ["not a url"]\n', "'not a url' is not an http(s) URL"),
    ('[delivery]\nsmtp_host = "127.0.0.1"\nmail_from = "a@example.com"\nmail_to = ["ops"]\n',
     "'ops' is not a mail address"),
    ("", "[delivery] has no channel"),
])
def test_bad_delivery_settings_exit_2_with_one_line(demo_db, tmp_path, toml, shown):
    db, _name, _money = demo_db
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    proc = _cli(tmp_path, "digest", "--send", "--config", str(config), "--db", str(db))
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and shown in proc.stderr


def test_unreachable_channel_exits_1_and_names_it(demo_db, tmp_path):
    from tests.helpers.receivers import free_port

    db, _name, _money = demo_db
    config = tmp_path / "down.toml"
    config.write_text(f'[delivery]\nwebhook_urls = ["http://127.0.0.1:{free_port()}/hook"]\nretries = 1\n'
                      "retry_backoff_s = 0.1\n")
    proc = _cli(tmp_path, "digest", "--send", "--config", str(config), "--db", str(db))
    assert proc.returncode == 1
    assert "failed: webhook http://127.0.0.1:" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("rightsizer digest: digest ")
