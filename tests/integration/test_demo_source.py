"""Demo mode: the test driver gives inventory, the demo fleet gives hosts and synthetic usage."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from collector.hypervisor.libvirt import LibvirtSource
from collector.model import VmState
from collector.sampler import Sampler
from rightsizer.demo import demo_fleet, write_demo_fleet_xml
from rightsizer.demo_source import DemoSource

pytestmark = pytest.mark.integration


def test_demo_source_keeps_fleet_hosts_and_yields_sane_rates(tmp_path, store, clock):
    fleet = demo_fleet()
    path = (tmp_path / "fleet.xml").resolve()
    write_demo_fleet_xml(path, vms=fleet)
    source = DemoSource(LibvirtSource(f"test://{path}", clock=clock), fleet)
    sampler = Sampler([source], store, clock=clock, interval_s=60)
    sampler.poll_once()
    clock.advance(60)
    (batch,) = sampler.poll_once()
    by_uuid = {vm.uuid: vm for vm in fleet}
    assert {vm.running for vm in fleet} == {True, False}  # both branches below are checked
    assert any(vm.profile == "no-balloon-stats" and vm.running for vm in fleet)
    assert {s.ref.uuid for s in batch.samples} == set(by_uuid)
    for s in batch.samples:
        assert s.host == by_uuid[s.ref.uuid].host  # not the test driver's own hostname
        assert (s.state is VmState.RUNNING) == by_uuid[s.ref.uuid].running
    raw = store.frame(clock.now - timedelta(hours=1), clock.now + timedelta(hours=1), resolution="raw")
    last = raw[raw["ts"] == raw["ts"].max()].set_index("vm")
    for uuid, vm in by_uuid.items():
        row = last.loc[uuid]
        if vm.running:
            assert 0 < row["cpu_vcpus"] <= vm.vcpus
            if vm.profile == "no-balloon-stats":
                assert row["memory_used_bytes"] != row["memory_used_bytes"]  # NaN: unknown stays unknown
            else:
                assert 0 < row["memory_used_bytes"] < vm.memory_bytes
        else:
            assert row["state"] == "shutoff" and row["cpu_vcpus"] == 0
    hosts = Counter(r.host for r in store.vms())
    assert len(hosts) > 1


def test_the_demo_plan_dry_runs_cleanly(tmp_path, capsys):
    import json

    from collector.store.sqlite import SqliteStore
    from rightsizer.cli import main
    from rightsizer.demo_history import seed_synthetic_history

    fleet = demo_fleet()
    path = (tmp_path / "fleet.xml").resolve()
    write_demo_fleet_xml(path, vms=fleet)
    db = tmp_path / "demo.db"
    store = SqliteStore(db)
    seed_synthetic_history(store, fleet, uri=f"test://{path}")  # what 'serve --demo' seeds
    store.set_meta("data_mode", "demo")
    store.close()
    assert main(["apply", "--from-findings", "--db", str(db), "--output", "json"]) == 0
    results = [r for r in json.loads(capsys.readouterr().out) if r.get("action", "resize") == "resize"]
    assert len(results) >= 3  # the demo fleet has over- and under-provisioned VMs to resize
    assert not [r for r in results if "does not fit host" in str(r.get("reason"))]
