"""The dashboard's apply control goes through the action module: token first, then audit and libvirt."""

from __future__ import annotations

import pytest

from analytics.catalogue import load_catalogue
from collector.config import load_settings
from collector.hypervisor.libvirt import LibvirtControl, LibvirtSource
from collector.hypervisor.testfleet import FleetDomain, domain_uuid, write_fleet
from collector.sampler import Sampler
from collector.store.sqlite import SqliteStore
from dashboard.data import DashboardData
from rightsizer.service import make_apply_hook

pytestmark = pytest.mark.integration
GIB = 1024**3


@pytest.fixture
def rig(tmp_path):
    web = FleetDomain(name="rs-dash-web", uuid=domain_uuid("rs-dash-web"), vcpus=4, max_vcpus=4,
                      memory_bytes=16 * GIB, max_memory_bytes=16 * GIB, labels={"team": "web"})
    uri = write_fleet(tmp_path / "fleet.xml", [web])
    settings = load_settings(env={}, overrides={"actions": {"enabled": True, "token": "s3cret"},
                                                "store": {"path": str(tmp_path / "rs.db")}})
    store = SqliteStore(tmp_path / "rs.db")
    Sampler([LibvirtSource(uri)], store).poll_once()  # the VM enters the store through real collection
    catalogue = load_catalogue()
    data = DashboardData(settings, store, catalogue, data_mode="live")
    yield uri, store, data, make_apply_hook(settings, store, catalogue)
    data.wait_for_refresh()  # an apply schedules a background rebuild that reads the store
    store.close()


def test_wrong_token_applies_nothing(rig):
    _uri, store, data, hook = rig
    (vm,) = store.vms()
    message = data.apply(hook, vm.uuid, "g1.2", "guess")
    assert "Wrong or missing token" in message
    assert store.audit() == []


def test_right_token_resizes_through_the_action_module(rig):
    uri, store, data, hook = rig
    (vm,) = store.vms()
    message = data.apply(hook, vm.uuid, "g1.2", "s3cret")
    assert message.startswith("rs-dash-web: applied"), message
    (entry,) = store.audit(vm.uuid)
    assert entry.result == "applied" and entry.actor == "dashboard"
    assert entry.after["machine_type"] == "g1.2"
    assert entry.price_after_per_hour == pytest.approx(load_catalogue().get("g1.2").price_per_hour)
    # a second apply right away is refused by the same pre-check the CLI has (resized recently)
    again = data.apply(hook, vm.uuid, "g1.1", "s3cret")
    assert "skipped" in again or "recently" in again, again
    assert LibvirtControl(uri).host_capacity().cpus > 0
