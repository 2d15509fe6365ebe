"""Test-driver fleet files: deterministic, and libvirt's test driver reads them as written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import libvirt

from collector.domxml import parse_labels
from collector.hypervisor.libvirt import silence_libvirt_stderr
from collector.hypervisor.testfleet import domain_uuid, make_fleet, write_fleet


def test_make_fleet_is_deterministic_per_seed() -> None:
    assert make_fleet(20, seed=3) == make_fleet(20, seed=3)
    assert make_fleet(20, seed=3) != make_fleet(20, seed=4)
    fleet = make_fleet(50)
    assert sum(not d.running for d in fleet) == 5  # every 10th
    assert [d.name for d in fleet if d.labels.get("rightsizer_exclude") == "true"] == ["vm-0024", "vm-0049"]
    assert fleet[0].uuid == domain_uuid("vm-0000")


def test_test_driver_opens_the_fleet(tmp_path: Path) -> None:
    silence_libvirt_stderr()
    taken = datetime(2026, 2, 1, tzinfo=UTC)
    fleet = make_fleet(30, snapshot_at=taken)
    uri = write_fleet(tmp_path / "fleet.xml", fleet)

    conn = libvirt.openReadOnly(uri)
    try:
        doms = {d.name(): d for d in conn.listAllDomains(0)}
        inactive = {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE)}
        first = doms["vm-0000"]
        labels = parse_labels(
            first.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, "https://rightsizer.dev/xmlns/labels/1", 0)
        )
        snaps = first.listAllSnapshots(0)
        snap_xml = snaps[0].getXMLDesc(0)
    finally:
        conn.close()

    assert uri == f"test://{(tmp_path / 'fleet.xml').resolve()}"
    assert len(doms) == 30
    assert inactive == {"vm-0009", "vm-0019", "vm-0029"}
    assert labels == dict(fleet[0].labels)
    assert len(snaps) == 1 and f"<creationTime>{int(taken.timestamp())}</creationTime>" in snap_xml
