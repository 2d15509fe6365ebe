"""``DomainSnapshot`` values of one VM (web-1, 4 of 8 vCPUs, 8 GiB) for tests of the resize logic."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.actions.snapshot import DomainSnapshot
from collector.domxml import ConfigSpec
from collector.model import VmRef, VmState
from core.plan import ResizeStep, SizeSpec

GIB = 1024**3
TAKEN_AT = datetime(2024, 6, 3, 12, tzinfo=UTC)
REF = VmRef("qemu:///system", "3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41", "web-1")
DOMAIN_XML = """<domain type='kvm'>
  <name>web-1</name>
  <uuid>3f1c5e0a-6b1d-4d2e-9c1a-0f5e2b7d9a41</uuid>
  <metadata>
    <rs:labels xmlns:rs="https://rightsizer.dev/xmlns/labels/1">
      <rs:label name="team">payments</rs:label>
      <rs:label name="machine_type">c1.2</rs:label>
    </rs:labels>
    <other:thing xmlns:other="https://example.org/other">keep</other:thing>
  </metadata>
  <memory unit='KiB'>8388608</memory>
  <currentMemory unit='KiB'>8388608</currentMemory>
  <vcpu placement='static' current='4'>8</vcpu>
</domain>"""


def snapshot(*, running: bool = True, vcpus: int = 4, max_vcpus: int = 8, mem: int = 8 * GIB,
             max_mem: int = 8 * GIB, cfg_vcpus: int | None = None, cfg_mem: int | None = None,
             labels: dict[str, str] | None = None) -> DomainSnapshot:
    """web-1 running (or shut off) with these live values; the config equals them unless ``cfg_*`` is given."""
    return DomainSnapshot(
        ref=REF, state=VmState.RUNNING if running else VmState.SHUTOFF, persistent=True,
        live_vcpus=vcpus, live_max_vcpus=max_vcpus, live_memory_bytes=mem, live_max_memory_bytes=max_mem,
        config=ConfigSpec(cfg_vcpus or vcpus, max_vcpus, cfg_mem or mem, max_mem),
        labels=labels if labels is not None else {"machine_type": "c1.2"}, inactive_xml=DOMAIN_XML, taken_at=TAKEN_AT,
    )


def resize_step(vcpus: int, mem: int, machine_type: str = "") -> ResizeStep:
    """web-1 from c1.2 (4 vCPUs, 8 GiB, 0.224 EUR/h) to ``vcpus`` and ``mem`` bytes at 0.112 EUR/h."""
    return ResizeStep(vm=REF, current=SizeSpec(4, 8 * GIB, "c1.2"), target=SizeSpec(vcpus, mem, machine_type),
                      price_before_per_hour=0.224, price_after_per_hour=0.112, currency="EUR",
                      finding="over-provisioned")
