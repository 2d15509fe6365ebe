from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.exposition import generate_latest

from collector.exporter import EconomicsView, RightsizerCollector, VmEconomics, build_registry
from collector.exposition import ExpositionCache, render_text
from collector.hypervisor.fake import FakeHypervisor, Topology
from collector.metrics_server import BACKLOG, serve_exposition
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
                                                monthly_savings=54.0, risk="low", pattern="office-hours",
                                                schedule_monthly_savings=12.5)})
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
        "recommended_type": "g1.2", "risk": "low", "pattern": "office-hours"}) == 1
    assert reg.get_sample_value("rightsizer_vm_schedule_monthly_savings",
                                {"vm": "web", "uuid": web.uuid, "currency": "EUR"}) == 12.5
    info = {"vm": "web", "uuid": web.uuid, "host": "hv1", "uri": "fake:///default", "state": "running",
            "machine_type": "g1.4", "label_team": "payments", "label_env": "prod"}
    assert reg.get_sample_value("rightsizer_vm_info", info) == 1
    assert reg.get_sample_value("rightsizer_up", {"uri": "fake:///default"}) == 1
    assert reg.get_sample_value("rightsizer_collector_cycles_total") == 2


def test_signal_gauge_carries_contention_and_pressure_and_is_absent_when_unknown(sampled):
    sampler, fake = sampled
    web, nob = fake.vm("web"), fake.vm("nob")
    econ = EconomicsView({web.uuid: VmEconomics("g1.4", 0.15, "EUR", finding="contention", contended=True,
                                                memory_pressure=False),
                          nob.uuid: VmEconomics("g1.1", 0.05, "EUR", finding="insufficient-data")})
    reg = build_registry(lambda: sampler.snapshot, lambda: econ)
    signal = {"vm": "web", "uuid": web.uuid}
    assert reg.get_sample_value("rightsizer_vm_signal", {**signal, "signal": "contention"}) == 1
    assert reg.get_sample_value("rightsizer_vm_signal", {**signal, "signal": "memory-pressure"}) == 0
    assert reg.get_sample_value("rightsizer_vm_signal", {"vm": "nob", "uuid": nob.uuid, "signal": "contention"}) \
        is None


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


def test_every_error_kind_is_exported_at_zero_before_its_first_error():
    from collector.hypervisor.base import ERROR_KINDS

    reg = build_registry(lambda: Snapshot(errors_total={"no-data": 3}))
    assert {"connection", "not-found", "hypervisor"} <= set(ERROR_KINDS)
    for kind in ERROR_KINDS:
        want = 3.0 if kind == "no-data" else 0.0
        assert reg.get_sample_value("rightsizer_collector_errors_total", {"kind": kind}) == want


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read(), dict(resp.headers)


@pytest.fixture
def served(sampled):
    sampler, fake = sampled
    cache = ExpositionCache(build_registry(lambda: sampler.snapshot))
    cache.refresh()
    server, thread = serve_exposition(cache, "127.0.0.1", 0)
    try:
        yield server.server_address[1], cache, sampler, fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_endpoint_serves_text_and_gzip(served):
    port, cache, _, _ = served
    body, headers = _get(port, "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    assert "Content-Encoding" not in headers
    assert body == cache.current().text and b"rightsizer_vm_vcpus{" in body
    zipped, headers = _get(port, "/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == body and len(zipped) < len(body)


def test_scrapes_serve_the_rendered_bytes_until_the_next_refresh(served):
    port, cache, sampler, fake = served
    before, _ = _get(port, "/metrics")
    fake.set_usage("web", vcpus=8)
    sampler.poll_once()
    assert _get(port, "/metrics")[0] == before  # nothing re-rendered by a scrape
    cache.refresh()
    after, _ = _get(port, "/metrics")
    assert b'rightsizer_vm_vcpus{host="hv1",uuid="' + fake.vm("web").uuid.encode() + b'",vm="web"} 8.0' in after


def test_name_filter_returns_only_the_named_families(served):
    port, _, _, _ = served
    body, _ = _get(port, "/metrics?name[]=rightsizer_vm_vcpus&name[]=rightsizer_collector_cycles_total")
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines() if not line.startswith("#")}
    assert names == {"rightsizer_vm_vcpus", "rightsizer_collector_cycles_total"}


def test_unknown_path_is_404(served):
    port = served[0]
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(port, "/nope")
    assert err.value.code == 404
    err.value.close()


def test_listen_backlog_is_deep(served):
    port = served[0]
    assert BACKLOG >= 128
    # 200 connections opened before any is accepted must all be queued, not refused
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
    for s in socks:
        s.close()


def test_describe_lists_every_family_and_restricted_registry_works(sampled):
    sampler, _ = sampled
    reg = build_registry(lambda: sampler.snapshot)
    described = {m.name for c in [RightsizerCollector(lambda: sampler.snapshot)] for m in c.describe()}
    assert {"rightsizer_vm", "rightsizer_vm_vcpus", "rightsizer_vm_cpu_delay_seconds", "rightsizer_up",
            "rightsizer_vm_storage_hourly_cost", "rightsizer_vm_backup_age_seconds", "rightsizer_vm_idle"} <= described
    restricted = reg.restricted_registry(["rightsizer_vm_vcpus", "rightsizer_vm_cpu_delay_seconds_total"])
    text = generate_latest(restricted).decode()
    assert "rightsizer_vm_vcpus{" in text and "rightsizer_vm_cpu_delay_seconds_total{" in text
    assert "rightsizer_vm_memory_bytes" not in text


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


def test_cpu_usage_gauge_carries_the_cycle_rate_and_time(sampled, clock):
    sampler, fake = sampled
    web = fake.vm("web")
    text = generate_latest(build_registry(lambda: sampler.snapshot)).decode()
    line = next(x for x in text.splitlines()
                if x.startswith("rightsizer_vm_cpu_usage_vcpus{") and web.uuid in x)
    _labels, value, stamp_ms = line.rsplit(" ", 2)
    point = sampler.snapshot.points[web.uuid]
    assert float(value) == pytest.approx(1.0)
    assert int(stamp_ms) == int(point.ts.timestamp() * 1000)


def test_agent_without_economics_exports_the_domain_machine_type(store, clock):
    topo = Topology().add_vm("db", labels={"machine_type": "c1.2"})
    fake = FakeHypervisor(topo, clock=clock, host="hv2")
    s = Sampler([fake], store, clock=clock, interval_s=60)
    s.poll_once()
    reg = build_registry(lambda: s.snapshot)
    [info] = [x for m in reg.collect() if m.name == "rightsizer_vm" for x in m.samples]
    assert info.labels["uuid"] == fake.vm("db").uuid and info.labels["machine_type"] == "c1.2"


def test_fast_renderer_writes_what_generate_latest_writes(sampled):
    sampler, fake = sampled
    fake.set_usage("web", labels={"team": 'pay"ments\\x', "note": "two\nlines"})
    sampler.poll_once()
    econ = EconomicsView({fake.vm("web").uuid: VmEconomics("g1.4", 0.15, "EUR", "over-provisioned", "g1.4",
                                                           "g1.2", -68.12, storage_hourly_cost=0.0123,
                                                           backup_age_seconds=3.5e9, backup_overdue=True,
                                                           idle=False)})
    reg = build_registry(lambda: sampler.snapshot, lambda: econ)
    assert render_text(reg.collect()) == generate_latest(reg)


def test_keep_alive_connection_serves_several_scrapes(served):
    import http.client

    port, cache, _, _ = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Connection") == "keep-alive"
            assert gzip.decompress(resp.read()) == cache.current().text
        conn.request("POST", "/metrics", body=b"x")
        resp = conn.getresponse()
        assert resp.status == 405
        resp.read()
    finally:
        conn.close()


def test_colliding_and_identity_named_labels_are_all_kept(store, clock, caplog):
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


def test_storage_advice_is_exported_as_savings_and_info(sampled):
    sampler, fake = sampled
    web, nob = fake.vm("web"), fake.vm("nob")
    econ = EconomicsView({
        web.uuid: VmEconomics("g1.4", 0.15, "EUR", storage_monthly_savings=12.42,
                              storage_current_class="storage_premium_perf1",
                              storage_recommended_class="storage_premium_perf0", storage_used_source="guest-agent"),
        nob.uuid: VmEconomics("g1.4", 0.15, "EUR"),  # no advice: absent, not 0
    })
    reg = build_registry(lambda: sampler.snapshot, lambda: econ)
    money = {"vm": "web", "uuid": web.uuid, "currency": "EUR"}
    assert reg.get_sample_value("rightsizer_vm_storage_potential_monthly_savings", money) == 12.42
    assert reg.get_sample_value("rightsizer_vm_storage_recommendation_info", {
        "vm": "web", "uuid": web.uuid, "current_class": "storage_premium_perf1",
        "recommended_class": "storage_premium_perf0", "used_source": "guest-agent"}) == 1
    assert reg.get_sample_value("rightsizer_vm_storage_potential_monthly_savings",
                                {**money, "vm": "nob", "uuid": nob.uuid}) is None


def test_each_hosts_cpu_count_is_exported_once_per_host(store, clock):
    """``rightsizer_host_cpus{host}``: what the central role reads for overcommit; absent when unknown."""
    hv1 = FakeHypervisor(Topology().add_vm("a"), uri="fake:///1", host="hv1", clock=clock, host_cpus=8)
    hv2 = FakeHypervisor(Topology().add_vm("b"), uri="fake:///2", host="hv2", clock=clock, host_cpus=2)
    hv3 = FakeHypervisor(Topology().add_vm("c"), uri="fake:///3", host="hv3", clock=clock)  # getInfo unknown
    s = Sampler([hv1, hv2, hv3], store, clock=clock, interval_s=60)
    s.poll_once()
    reg = build_registry(lambda: s.snapshot)
    assert reg.get_sample_value("rightsizer_host_cpus", {"host": "hv1"}) == 8
    assert reg.get_sample_value("rightsizer_host_cpus", {"host": "hv2"}) == 2
    assert reg.get_sample_value("rightsizer_host_cpus", {"host": "hv3"}) is None
    text = generate_latest(reg).decode()
    assert "# TYPE rightsizer_host_cpus gauge" in text
    assert sorted(line.split(" ")[0] for line in text.splitlines() if line.startswith("rightsizer_host_cpus{")) == [
        'rightsizer_host_cpus{host="hv1"}', 'rightsizer_host_cpus{host="hv2"}']
