"""The digest's content: a formatter over the one analysis (top 10 by saving, new findings, links, HTML size)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.analysis import AnalysisOptions, FleetAnalysis, analyse_fleet
from analytics.catalogue import load_catalogue
from analytics.findings.headline import SAVING_KINDS, headline_saving
from analytics.reports.digest import TOP_N, build_digest, digest_for_store, finding_key, is_notable
from collector.store.sqlite import SqliteStore
from core.settings import Settings
from rightsizer.demo import demo_fleet
from rightsizer.demo_history import seed_synthetic_history


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, FleetAnalysis]]:
    store = SqliteStore(Path(tmp_path_factory.mktemp("digest")) / "demo.db")
    seed_synthetic_history(store, demo_fleet(), uri="test:///nowhere.xml")
    catalogue = load_catalogue()
    analysis = analyse_fleet(store, catalogue, AnalysisOptions.from_settings(Settings(), catalogue))
    yield store, analysis
    store.close()


def test_top_ten_follow_the_headline_savings_with_kind_and_risk(demo):
    _store, analysis = demo
    digest = build_digest(analysis)
    savers = sorted((headline_saving(f) for f in analysis.findings if not f.excluded and headline_saving(f) > 0),
                    reverse=True)
    assert len(savers) > TOP_N  # the demo has more savers than the digest lists
    assert [round(i.monthly_saving, 6) for i in digest.top] == [round(s, 6) for s in savers[:TOP_N]]
    for item in digest.top:
        assert item.kinds and set(item.kinds) <= set(SAVING_KINDS)
        assert item.risk in ("very-low", "low", "medium", "high", "very-high")
    assert {k for i in digest.top for k in i.kinds} >= {"resize", "idle-stop", "stopped-disks", "schedule"}
    assert digest.headline == analysis.headline


def test_text_html_and_subject_name_the_largest_saving_to_the_cent(demo):
    _store, analysis = demo
    digest = build_digest(analysis)
    best = max(analysis.findings, key=headline_saving)
    money = f"{headline_saving(best):.2f}"
    for body in (digest.text(), digest.html(), digest.subject()):
        assert best.name in body and money in body
    assert re.search(rf"Largest saving: .*{re.escape(best.name)}.*, {money} EUR/month", digest.text())


def test_first_digest_lists_every_notable_finding_then_only_what_is_new(demo):
    _store, analysis = demo
    first = build_digest(analysis)
    notable = [f for f in analysis.findings if is_notable(f)]
    assert first.previous_id is None and len(first.new) == len(notable) > 0
    assert "first digest" in first.text()
    again = build_digest(analysis, previous_keys=first.keys, previous_id=first.digest_id)
    assert again.new == () and again.digest_id == first.digest_id
    assert "New findings since the last digest: 0" in again.text()
    dropped = finding_key(notable[0])
    later = build_digest(analysis, previous_keys=[k for k in first.keys if k != dropped], previous_id="x")
    assert [i.uuid for i in later.new] == [notable[0].uuid]


def test_links_to_vm_pages_only_with_a_public_url(demo):
    _store, analysis = demo
    plain = build_digest(analysis)
    assert all(i.link == "" for i in plain.top) and "/vm/" not in plain.text() + plain.html()
    linked = build_digest(analysis, public_url="https://rs.example.com/")
    for item in linked.top:
        assert item.link == f"https://rs.example.com/vm/{item.uuid}"
        assert item.link in linked.text() and f"href='{item.link}'" in linked.html()


def test_html_part_is_small_static_and_escaped(demo):
    _store, analysis = demo
    page = build_digest(analysis).html()
    assert len(page.encode()) <= 200_000
    assert "<script" not in page.lower() and "plotly" not in page.lower()
    assert page.count("<tr>") == TOP_N + 1


def test_digest_for_store_reports_overdue_backups_and_realised_savings(demo):
    store, analysis = demo
    digest = digest_for_store(store, load_catalogue(), Settings())
    assert digest.as_of == analysis.now and digest.top == build_digest(analysis).top
    assert digest.backups_overdue and all(b.is_overdue for b in digest.backups_overdue)
    assert f"Backups overdue: {len(digest.backups_overdue)}" in digest.text()
    assert "Realised savings: none yet" in digest.text()  # nothing applied on the demo
    doc = digest.as_json()
    assert doc["top"][0]["monthly_savings"] == round(digest.top[0].monthly_saving, 2)


def test_realised_savings_are_summed_and_named(demo):
    from datetime import timedelta

    from analytics.realised import RealisedSaving

    _store, analysis = demo
    applied = RealisedSaving(vm_uuid="u1", vm_name="shop-frontend-02", plan_id="p1",
                             applied_at=analysis.now - timedelta(days=3), ended_at=None, price_before_per_hour=0.6,
                             price_after_per_hour=0.2, hours=72.0, saving=28.8, currency="EUR")
    stop = RealisedSaving(vm_uuid="u2", vm_name="etl-batch-01", plan_id="p2", applied_at=analysis.now,
                          ended_at=None, price_before_per_hour=0.06, price_after_per_hour=0.0, hours=10.5,
                          saving=0.63, currency="EUR")
    digest = build_digest(analysis, realised=[applied, stop])
    assert "Realised savings: 29.43 EUR so far from 2 applied changes" in digest.text()
    assert "29.43 EUR so far" in digest.html() and digest.as_json()["realised_savings"] == 29.43


def test_a_schedule_only_saving_reads_as_the_schedule(demo):
    _store, analysis = demo
    digest = build_digest(analysis)
    scheduled = [i for i in digest.top if i.kinds == ("schedule",)]
    assert scheduled, "the demo proposes a schedule for a VM that needs no resize"
    assert scheduled[0].reason.startswith("on/off schedule: on ")
    item = scheduled[0]
    assert f"{item.name}: {item.finding}; schedule {item.monthly_saving:.2f} EUR/month - on/off" in digest.text()


def test_names_and_reasons_are_escaped_in_the_html_part(demo):
    from dataclasses import replace

    _store, analysis = demo
    best = max(analysis.findings, key=headline_saving)
    hostile = replace(best, name="<img src=x onerror=alert(1)>", reasons={"overall": "a & <b>"})
    findings = tuple(hostile if f.uuid == best.uuid else f for f in analysis.findings)
    page = build_digest(replace(analysis, findings=findings), public_url="https://rs.example.com").html()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "a &amp; &lt;b&gt;" in page
