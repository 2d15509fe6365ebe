"""Domain XML: sizes and labels read from it, byte sizes written for people."""

from __future__ import annotations

from collector.domxml import ConfigSpec, format_bytes, parse_config, parse_labels
from tests.helpers.snapshots import DOMAIN_XML

GIB = 1024**3
MIB = 1024**2


def test_parse_config_and_labels() -> None:
    assert parse_config(DOMAIN_XML) == ConfigSpec(vcpus=4, max_vcpus=8, memory_bytes=8 * GIB, max_memory_bytes=8 * GIB)
    assert parse_labels(DOMAIN_XML) == {"team": "payments", "machine_type": "c1.2"}
    mib_xml = "<domain><memory unit='MiB'>256</memory><vcpu>2</vcpu></domain>"
    assert parse_config(mib_xml) == ConfigSpec(2, 2, 256 * MIB, 256 * MIB)


def test_format_bytes() -> None:
    assert format_bytes(8 * GIB) == "8 GiB"
    assert format_bytes(160 * MIB) == "160 MiB"
    assert format_bytes(1536 * MIB) == "1.50 GiB"
