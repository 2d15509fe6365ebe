"""The exposition's sample order: every other per-VM family reversed, so gzip reaches the VM's previous line."""

from __future__ import annotations

import gzip

from collector.exporter import build_registry
from collector.exposition import render_text
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.sampler import Sampler


def _families(store, clock, vms: int):
    fake = FakeHypervisor(Topology().add_vms(vms, vcpus=2, memory_mib=4096), clock=clock, host="hv1")
    s = Sampler([fake], store, clock=clock, interval_s=60)
    s.poll_once()
    clock.advance(60)
    s.poll_once()
    return list(build_registry(lambda: s.snapshot).collect())


def test_consecutive_per_vm_families_list_the_vms_in_opposite_orders(store, clock):
    fams = [f for f in _families(store, clock, 30) if len(f.samples) > 1]
    orders = [[smp.labels["uuid"] for smp in f.samples] for f in fams if "uuid" in f.samples[0].labels]
    assert len(orders) > 10
    same_vms = [(before, after) for before, after in zip(orders, orders[1:], strict=False) if set(before) == set(after)]
    assert len(same_vms) > 10, orders
    for before, after in same_vms:
        assert after == before[::-1]


def test_alternating_order_makes_the_gzip_response_smaller(store, clock):
    fams = _families(store, clock, 600)  # one family of 600 VMs is far more than deflate's 32 KiB window
    alternating = gzip.compress(render_text(fams), 6)
    for fam in fams:
        fam.samples.sort(key=lambda smp: smp.labels.get("uuid", ""))
    one_order = gzip.compress(render_text(fams), 6)
    assert len(alternating) < 0.95 * len(one_order)
