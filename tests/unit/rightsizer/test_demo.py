from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libvirt
import numpy as np
import pytest

from collector.domxml import LABELS_NAMESPACE
from collector.model import VmState
from collector.store.sqlite import SqliteStore
from rightsizer import demo
from rightsizer.demo_history import seed_synthetic_history

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
RS = "{https://rightsizer.dev/xmlns/labels/1}"
TEST = "{http://libvirt.org/schemas/domain/test/1.0}"


def test_fleet_is_deterministic_and_varied() -> None:
    fleet = demo.demo_fleet(24, seed=7)
    assert fleet == demo.demo_fleet(24, seed=7)
    assert fleet != demo.demo_fleet(24, seed=8)
    assert len({vm.name for vm in fleet}) == 24 and len({vm.uuid for vm in fleet}) == 24
    profiles = Counter(vm.profile for vm in fleet)
    assert profiles["shutoff"] == 3 and profiles["idle"] == 3 and profiles["oversized"] == 4
    assert profiles["growing"] == profiles["undersized"] == profiles["no-balloon-stats"] == 1
    assert sum(not vm.running for vm in fleet) == 3
    assert len({(vm.vcpus, vm.memory_bytes) for vm in fleet}) >= 4
    assert len({vm.host for vm in fleet}) == 3
    for vm in fleet:
        assert {"team", "env", "project", "backup_policy"} <= set(vm.labels)
    assert any("machine_type" in vm.labels for vm in fleet)


def test_demo_fleet_rejects_empty() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        demo.demo_fleet(0)


def test_fleet_xml_shape(tmp_path: Path) -> None:
    path = tmp_path / "fleet.xml"
    fleet = demo.write_demo_fleet_xml(path, n=24, seed=7, now=NOW)
    root = ET.parse(path).getroot()
    domains = root.findall("domain")
    assert len(domains) == 24
    by_name = {d.findtext("name"): d for d in domains}
    for vm in fleet:
        dom = by_name[vm.name]
        assert dom.get("type") == "test"
        assert dom.findtext("uuid") == vm.uuid
        assert int(dom.findtext("memory")) == vm.memory_bytes // 1024
        assert int(dom.findtext("vcpu")) == vm.vcpus
        assert dom.find("devices/memballoon").get("model") == "virtio"
        labels = {e.get("name"): e.text for e in dom.find(f"metadata/{RS}labels")}
        assert labels == dict(vm.labels)
        assert (dom.findtext(f"{TEST}runstate") == "5") is (not vm.running)


def test_fleet_xml_opens_in_the_libvirt_test_driver(tmp_path: Path) -> None:
    path = tmp_path / "fleet.xml"
    fleet = demo.write_demo_fleet_xml(path, n=24, seed=7, now=NOW)
    assert {vm.backup_age_h is None for vm in fleet} == {True, False}  # both kinds of snapshot list are checked
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.openReadOnly(f"test://{path}")
    try:
        domains = {d.UUIDString(): d for d in conn.listAllDomains()}
        assert set(domains) == {vm.uuid for vm in fleet}
        assert all(vm.labels for vm in fleet)  # each VM's labels are checked below
        for vm in fleet:
            dom = domains[vm.uuid]
            assert dom.name() == vm.name
            state = dom.state()[0]
            assert (state == libvirt.VIR_DOMAIN_SHUTOFF) is (not vm.running)
            meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, LABELS_NAMESPACE)
            assert all(f'name="{k}">{v}<' in meta for k, v in vm.labels.items())
            snaps = dom.listAllSnapshots()
            if vm.backup_age_h is None:
                assert snaps == []
            else:
                created = int(ET.fromstring(snaps[0].getXMLDesc()).findtext("creationTime"))
                assert created == int((NOW - timedelta(hours=vm.backup_age_h)).timestamp())
    finally:
        conn.close()


def test_synthetic_history_behaves_as_labelled(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "demo.db")
    fleet = demo.demo_fleet(24, seed=7)
    written = seed_synthetic_history(store, fleet, days=7, now=NOW, seed=7, points_per_hour=2)
    assert written == 24 * 7 * 24 * 2
    assert store.get_meta("data_mode") == "demo"
    records = {r.uuid: r for r in store.vms()}
    assert {r.source for r in records.values()} == {"demo"}
    assert {r.state for r in records.values()} == {VmState.RUNNING, VmState.SHUTOFF}
    hours = store.frame(NOW - timedelta(days=7), NOW + timedelta(hours=1), resolution="hour")
    assert len(hours) == 24 * (7 * 24 + 1)  # the last point (at NOW) opens one more hour

    def stat(profile: str, column: str, fn: str = "mean") -> float:
        vm = next(v for v in fleet if v.profile == profile)
        rows = hours[hours["vm"] == vm.uuid]
        return float(getattr(rows[column], fn)()) / (vm.vcpus if "cpu" in column else vm.memory_bytes)

    assert stat("idle", "cpu_max_vcpus", "max") * next(v for v in fleet if v.profile == "idle").vcpus < 0.03
    assert stat("oversized", "cpu_p95_vcpus", "median") < 0.15
    assert stat("oversized", "memory_used_max_bytes", "max") < 0.35
    under = next(v for v in fleet if v.profile == "undersized")
    u = hours[hours["vm"] == under.uuid]
    assert (u["cpu_max_vcpus"] >= 0.95 * under.vcpus).mean() > 0.08  # saturated in the busy hours
    assert u["cpu_mean_vcpus"].median() > 0.7 * under.vcpus
    assert stat("undersized", "memory_used_max_bytes", "median") > 0.88
    assert stat("steady", "memory_used_max_bytes", "mean") > 0.5
    growing = next(v for v in fleet if v.profile == "growing")
    g = hours[hours["vm"] == growing.uuid]
    assert g["cpu_mean_vcpus"].iloc[-48:].mean() > g["cpu_mean_vcpus"].iloc[:48].mean() * 1.1
    no_stats = next(v for v in fleet if v.profile == "no-balloon-stats")
    assert hours[hours["vm"] == no_stats.uuid]["memory_used_max_bytes"].isna().all()
    steady = hours[hours["vm"] == next(v for v in fleet if v.profile == "steady").uuid]
    by_hour = steady.groupby(steady["ts"].dt.hour)["cpu_mean_vcpus"].mean()
    assert by_hour.loc[13:15].mean() > by_hour.loc[[1, 2, 3]].mean() * 1.5  # working-day rhythm
    backups = store.backups()
    assert {vm.backup_age_h is None for vm in fleet} == {True, False}
    for vm in fleet:
        if vm.backup_age_h is None:
            assert vm.uuid not in backups
        else:
            expected = NOW - timedelta(hours=vm.backup_age_h)
            assert abs((backups[vm.uuid] - expected).total_seconds()) < 1.0
    assert np.isfinite(hours["running_s"]).all()
    store.close()


def test_seed_rejects_bad_arguments(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "x.db")
    with pytest.raises(ValueError, match="positive"):
        seed_synthetic_history(store, demo.demo_fleet(2), days=0, now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        seed_synthetic_history(store, demo.demo_fleet(2), days=1, now=datetime(2026, 1, 1))
    store.close()


@pytest.mark.parametrize("hour", [3, 11, 19])
def test_the_demo_has_a_large_low_risk_saving_whatever_the_hour_it_is_seeded(tmp_path, hour) -> None:
    # the alert RightsizerLargeSavingLowRisk must fire on serve --demo at any time of day: an oversized VM's memory
    # peaks once sat on a memory step, so from 03:00 its target filled to over 90 % and the risk read medium
    from analytics.analysis import AnalysisOptions, analyse_fleet
    from analytics.catalogue import load_catalogue
    from core.settings import Settings

    now = datetime(2026, 12, 7, hour, 17, tzinfo=UTC)
    store = SqliteStore(tmp_path / "demo.db")
    try:
        seed_synthetic_history(store, demo.demo_fleet(), days=30, now=now)
        catalogue = load_catalogue()
        options = AnalysisOptions.from_settings(Settings(), catalogue, now=now)
        findings = analyse_fleet(store, catalogue, options).findings
        assert [f.name for f in findings if f.monthly_savings > 100 and f.risk.value in ("very-low", "low")]
    finally:
        store.close()
