from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.exposition import generate_latest

from collector.exporter import EconomicsView, VmEconomics, build_registry, serve_metrics
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.sampler import Sampler, Snapshot

GIB = 1024**3


@pytest.fixture
def sampled(store, clock):
    topo = (Topology()
            .add_vm("web", vcpus=4, cpu_vcpus=1.0, memory_mib=8192, labels={"team": "payments", "env": "prod"})
            .add_vm("nob", memory_used_bytes=None))
    fake = FakeHypervisor(topo, clock=clock, host="hv1")
    s = Sampler([fake], store, clock=clock, interval_s=60)
    s.poll_once()
    clock.advance(30)
    s.poll_once()
    return s, fake


def test_metrics_from_snapshot(sampled):
    sampler, fake = sampled
    web = fake.vm("web")
    econ = EconomicsView({web.uuid: VmEconomics("g1.4", 0.15, "EUR", finding="over-provisioned",
                                                current_type="g1.4", recommended_type="g1.2",
                                                monthly_savings=54.0)})
    reg = build_registry(lambda: sampler.snapshot, lambda: econ)
    base = {"vm": "web", "uuid": web.uuid, "host": "hv1"}
    assert reg.get_sample_value("rightsizer_vm_vcpus", base) == 4
    assert reg.get_sample_value("rightsizer_vm_cpu_seconds_total", base) == pytest.approx(30.0)
    assert reg.get_sample_value("rightsizer_vm_memory_bytes", base) == 8 * GIB
    assert reg.get_sample_value("rightsizer_vm_memory_used_bytes", base) == 2 * GIB
    assert reg.get_sample_value("rightsizer_vm_hourly_cost", {"vm": "web", "uuid": web.uuid, "currency": "EUR"}) \
        == 0.15
    assert reg.get_sample_value("rightsizer_vm_potential_monthly_savings",
                                {"vm": "web", "uuid": web.uuid, "currency": "EUR"}) == 54.0
    assert reg.get_sample_value("rightsizer_vm_recommendation_info", {
        "vm": "web", "uuid": web.uuid, "finding": "over-provisioned", "current_type": "g1.4",
        "recommended_type": "g1.2"}) == 1
    info = {"vm": "web", "uuid": web.uuid, "host": "hv1", "uri": "fake:///default", "state": "running",
            "machine_type": "g1.4", "label_team": "payments", "label_env": "prod"}
    assert reg.get_sample_value("rightsizer_vm_info", info) == 1
    assert reg.get_sample_value("rightsizer_up", {"uri": "fake:///default"}) == 1
    assert reg.get_sample_value("rightsizer_collector_cycles_total") == 2


def test_unknown_guest_memory_is_absent_not_zero(sampled):
    sampler, fake = sampled
    nob = fake.vm("nob")
    reg = build_registry(lambda: sampler.snapshot)
    base = {"vm": "nob", "uuid": nob.uuid, "host": "hv1"}
    assert reg.get_sample_value("rightsizer_vm_memory_used_bytes", base) is None
    assert reg.get_sample_value("rightsizer_vm_memory_bytes", base) == 4 * GIB


def test_scrape_never_calls_the_hypervisor(sampled):
    sampler, fake = sampled
    cycles = fake.cycles
    reg = build_registry(lambda: sampler.snapshot)
    for _ in range(3):
        generate_latest(reg)
    assert fake.cycles == cycles


def test_empty_snapshot_exposes_health_only():
    text = generate_latest(build_registry(Snapshot)).decode()
    assert "rightsizer_collector_cycle_seconds 0.0" in text
    assert "rightsizer_vm_vcpus{" not in text


def test_http_endpoint_serves_text_format(sampled):
    sampler, _ = sampled
    server, thread = serve_metrics(build_registry(lambda: sampler.snapshot), "127.0.0.1", 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        assert 'rightsizer_vm_vcpus{host="hv1",uuid=' in body or "rightsizer_vm_vcpus{" in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_promtool_check_metrics_is_clean(sampled):
    sampler, fake = sampled
    econ = EconomicsView({fake.vm("web").uuid: VmEconomics("g1.4", 0.15, "EUR", "over-provisioned", "g1.4",
                                                           "g1.2", 54.0)})
    text = generate_latest(build_registry(lambda: sampler.snapshot, lambda: econ))
    proc = subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == "" and proc.stderr.decode().strip() == ""


def _promtool() -> str:
    """Path of Debian's promtool; `make test` installs it, so its absence is a failure, not a skip."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `bash scripts/install-system.sh test` (Debian package prometheus)")
    return path


def test_defect11_colliding_and_identity_named_labels_are_all_kept(store, clock, caplog):
    labels = {"a-b": "dash", "a_b": "underscore", "a.b": "dot", "vm": "label-vm", "uuid": "label-uuid"}
    topo = Topology().add_vm("lab", labels=labels)
    fake = FakeHypervisor(topo, clock=clock, host="hv1")
    sampler = Sampler([fake], store, clock=clock, interval_s=60)
    sampler.poll_once()
    reg = build_registry(lambda: sampler.snapshot)
    with caplog.at_level("WARNING", logger="collector.exporter"):
        [info] = [s for m in reg.collect() if m.name == "rightsizer_vm" for s in m.samples]
        list(reg.collect())  # a second scrape does not warn again
    lab = fake.vm("lab")
    assert info.labels["vm"] == "lab" and info.labels["uuid"] == lab.uuid  # identity untouched
    assert info.labels["label_vm"] == "label-vm" and info.labels["label_uuid"] == "label-uuid"
    assert info.labels["label_a_b"] == "underscore"  # the key already in Prometheus form keeps the name
    assert {info.labels["label_a_b_conflict1"], info.labels["label_a_b_conflict2"]} == {"dash", "dot"}
    warnings = [r for r in caplog.records if "label_a_b" in r.getMessage()]
    assert len(warnings) == 1
