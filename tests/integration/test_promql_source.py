"""The fleet topology on real engines: agents scraped by Prometheus and by vmagent, a central PromQL source.

Everything binds 127.0.0.1 on free ports and runs from a temporary directory: ``serve --role agent`` processes on
two libvirt test-driver fleets and on qemu:///system (the session guests), VictoriaMetrics + vmagent, Prometheus,
and the central role reading either engine. The Bitbrains equality uses a few trace files (the full 40-VM figure
is bench/promql_equality.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from engines import Engine, free_port, import_prometheus_text, start_prometheus, start_victoria_metrics, start_vmagent

from bench.promql_equality import backfill, compare, import_trace, results, run_cli, start_backfilled_prometheus
from collector.errors import RightsizerError
from collector.hypervisor.testfleet import HOST_CPUS, make_fleet, write_fleet
from collector.store.promql_factory import promql_store
from collector.store.sqlite import SqliteStore
from core.settings import load_settings
from dashboard.viewmodel.overview import host_loads_view
from dashboard.viewmodel.vms import vm_rows

pytestmark = pytest.mark.integration

TRACE_FILES = ("1.csv", "2.csv", "3.csv", "4.csv", "5.csv", "6.csv")


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Engine]:
    engine = start_victoria_metrics(tmp_path / "vm")
    yield engine
    engine.stop()


def _agent_env() -> dict[str, str]:
    """The test's environment minus RIGHTSIZER_SHARED_DIR (a test setting, not a rightsizer one)."""
    return {k: v for k, v in os.environ.items() if k != "RIGHTSIZER_SHARED_DIR"}


def _agent(tmp_path: Path, name: str, n: int, seed: int, *, uri: str | None = None
           ) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``serve --role agent`` on ``uri``, by default a new n-domain test-driver fleet; wait until /metrics
    answers (new port if taken)."""
    if uri is None:
        uri = write_fleet(tmp_path / f"{name}.xml", make_fleet(n, prefix=name, seed=seed))
    for _attempt in range(3):
        port = free_port()
        with (tmp_path / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rightsizer", "serve", "--role", "agent", "--uri", uri, "--interval", "1",
                 "--metrics-listen", f"127.0.0.1:{port}", "--db", str(tmp_path / f"{name}.db")],
                stdout=subprocess.DEVNULL, stderr=log, env=_agent_env(),
            )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
                    return proc, f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.2)
        _stop(proc)
    raise RuntimeError(f"agent {name} did not serve /metrics:\n{(tmp_path / f'{name}.log').read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _config(path: Path, url: str, **extra: str) -> Path:
    values = {"kind": '"prometheus"', "url": f'"{url}"', "resolution_s": "1", **extra}
    lines = ["[source]"] + [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


HOSTS = ("hv-a", "hv-b", "hv-real")


def libvirt_host_cpus(uri: str) -> int:
    """The CPU count libvirt's getInfo gives the agent on ``uri`` (read-only connection)."""
    import libvirt

    conn = libvirt.openReadOnly(uri)
    try:
        return int(conn.getInfo()[2])
    finally:
        conn.close()


@pytest.mark.guests
def test_two_agents_through_prometheus_and_vmagent_reach_the_central_role(tmp_path, victoria, libvirtd, guests):
    """Two test-driver agents plus one agent on qemu:///system with the session guests (busy, idle, disk)."""
    agents = [_agent(tmp_path, "a", 6, 1), _agent(tmp_path, "b", 4, 2), _agent(tmp_path, "real", 0, 0, uri=libvirtd)]
    targets = {addr: {"host": host} for (_p, addr), host in zip(agents, HOSTS, strict=True)}
    busy, idle = guests["busy"].name, guests["idle"].name
    engines: list[Engine] = []
    try:
        engines.append(start_vmagent(tmp_path / "vmagent", targets, victoria.url + "/api/v1/write"))
        prom = start_prometheus(tmp_path / "prom", targets)
        engines.append(prom)
        for engine in (victoria, prom):
            engine.wait_for("rightsizer_vm_info", timeout_s=180, count=10 + len(guests))
            engine.wait_for("rightsizer_vm_vcpus", timeout_s=180, count=10 + len(guests))
            # the real guest's CPU counter needs a few scrapes before a rate exists
            engine.wait_for(f'rate(rightsizer_vm_cpu_seconds_total{{vm="{busy}",host="hv-real"}}[10s])',
                            timeout_s=60)
        for engine in (victoria, prom):
            cfg = _config(tmp_path / f"central-{engine.name}.toml", engine.url)
            code, out, err = run_cli(["recommend", "--config", str(cfg), "--db", str(tmp_path / "central.db"),
                                      "--output", "json", "--now", "wall"])
            assert code == 0, err
            found = json.loads(out)
            assert len([f for f in found if f["host"] != "hv-real"]) == 10
            assert {f["host"] for f in found} == set(HOSTS)
            assert {g.name for g in guests.values()} <= {f["name"] for f in found if f["host"] == "hv-real"}
            _dashboard_lists_every_host(tmp_path, cfg, busy, idle, libvirtd)
        _central_apply_acts_on_the_mapped_host(tmp_path, victoria.url)
    finally:
        for engine in engines:
            engine.stop()
        for proc, _addr in agents:
            _stop(proc)


def _dashboard_lists_every_host(tmp_path: Path, cfg: Path, busy: str, idle: str, real_uri: str) -> None:
    """The dashboard's VM list over the central source: every host's VMs, the real guests' CPU use, and each
    host's CPU count (overcommit)."""
    from analytics.catalogue import load_catalogue
    from dashboard.app import dashboard_data
    from dashboard.views import Filters
    from rightsizer.webapp import build_web_app

    settings = load_settings(cfg, overrides={"store": {"path": str(tmp_path / "central.db")}})
    store = promql_store(settings, SqliteStore(tmp_path / "central.db"))
    try:
        app = build_web_app(settings, store, load_catalogue(settings.costs.catalogue), data_mode="central")
        data = dashboard_data(app)
        data.wait_for_refresh(180)
        rows = vm_rows(data, Filters())
        assert {r["host"] for r in rows} == set(HOSTS)
        assert len([r for r in rows if r["host"] != "hv-real"]) == 10
        real = {r["name"]: r for r in rows if r["host"] == "hv-real"}
        # TCG guests share 2 host cores with every test run on the machine: under load the busy loop gets as
        # little as 0.2-0.4 of a core in its first seconds; the idle guest stays near 0.01
        busy_cpu, idle_cpu = real[busy]["cpu_p95_vcpus"], real[idle]["cpu_p95_vcpus"]
        assert busy_cpu is not None and 0.15 < busy_cpu < 1.3, real[busy]
        assert idle_cpu is not None and idle_cpu < 0.1 and busy_cpu > 3 * idle_cpu, real[idle]
        # each agent's libvirt getInfo CPU count, through rightsizer_host_cpus: the Hosts section's overcommit
        real_cpus = libvirt_host_cpus(real_uri)
        assert store.host_cpus() == {"hv-a": HOST_CPUS, "hv-b": HOST_CPUS, "hv-real": real_cpus}
        loads = {h.host: h for h in host_loads_view(data)}
        assert loads["hv-a"].host_cpus == HOST_CPUS and loads["hv-real"].host_cpus == real_cpus, loads
        assert loads["hv-a"].overcommit == pytest.approx(loads["hv-a"].vcpus_allocated / HOST_CPUS)
        data.wait_for_refresh(180)
    finally:
        store.close()


def _central_apply_acts_on_the_mapped_host(tmp_path: Path, url: str) -> None:
    """The central role resizes a VM on the URI its host maps to, through the same plan/apply/verify path."""
    from analytics.catalogue import load_catalogue
    from rightsizer.service import make_apply_hook

    db = tmp_path / "actions.db"
    catalogue = load_catalogue()
    cfg = _config(tmp_path / "actions.toml", url)
    for mapping, expect in (({"hv-a": "test:///nonexistent/fleet.xml"}, "nonexistent"),
                            ({"hv-a": f"test://{tmp_path / 'a.xml'}"}, "applied")):
        settings = load_settings(cfg, overrides={"store": {"path": str(db)},
                                                 "actions": {"enabled": True, "host_uris": mapping}})
        store = promql_store(settings, SqliteStore(db))
        try:
            vm = next(v for v in store.vms() if v.host == "hv-a" and v.state.value == "running"
                      and v.labels.get("rightsizer_exclude") != "true")
            assert vm.uri == mapping["hv-a"]
            hook = make_apply_hook(settings, store, catalogue)
            try:
                outcome = hook(vm.uuid, "g1.1", actor="central-test")
            except RightsizerError as exc:  # the refusal text is what the dashboard shows
                outcome = str(exc)
            assert expect in outcome, outcome
        finally:
            store.close()
    audit = SqliteStore(db)
    try:
        assert any(e.result == "applied" and e.actor == "central-test" for e in audit.audit())
    finally:
        audit.close()


def test_a_window_over_many_chunks_keeps_every_column(tmp_path, victoria):
    """Hourly rollups over 30 days in 24-hour chunks, the data in the last hour only: the same rows and values
    as a window of that hour alone (empty chunks must not drop a column's values)."""
    hour = int(time.time()) // 3600 * 3600 - 3600  # the last complete hour
    lab = 'vm="one",uuid="u-one",host="hv"'
    lines = []
    for k in range(0, 600, 10):
        ts = (hour + k) * 1000
        lines += [f"rightsizer_vm_info{{{lab}}} 1 {ts}", f"rightsizer_vm_vcpus{{{lab}}} 2 {ts}",
                  f"rightsizer_vm_running{{{lab}}} 1 {ts}", f"rightsizer_vm_memory_bytes{{{lab}}} {2**30} {ts}",
                  f"rightsizer_vm_memory_used_bytes{{{lab}}} {2**29} {ts}",
                  f"rightsizer_vm_cpu_usage_vcpus{{{lab}}} {0.5 + (k % 30) / 100} {ts}"]
    import_prometheus_text(victoria, lines)
    cfg = _config(tmp_path / "c.toml", victoria.url, resolution_s="10", max_points_per_series="24")
    store = promql_store(load_settings(cfg), SqliteStore(tmp_path / "c.db"))
    try:
        from datetime import UTC, datetime, timedelta

        end = datetime.fromtimestamp(hour + 3600, tz=UTC)
        short = store.frame(end - timedelta(hours=1), end)
        chunks_before = store.stats.chunks
        long = store.frame(end - timedelta(days=30), end)
        assert store.stats.chunks - chunks_before > 1
        assert len(short) == len(long) == 1
        for col in ("samples", "vcpus", "memory_bytes", "memory_used_max_bytes", "cpu_mean_vcpus", "cpu_max_vcpus"):
            assert long[col].iloc[0] == pytest.approx(short[col].iloc[0]), col
        assert long["cpu_max_vcpus"].iloc[0] == pytest.approx(0.7)
    finally:
        store.close()


@pytest.fixture
def trace_subset(bitbrains_dir: Path, tmp_path: Path) -> Path:
    subset = tmp_path / "trace"
    subset.mkdir()
    for name in TRACE_FILES:
        shutil.copy(bitbrains_dir / name, subset / name)
    return subset


def test_recommend_on_backfilled_bitbrains_equals_sqlite(tmp_path, victoria, trace_subset):
    db = tmp_path / "trace.db"
    import_trace(trace_subset, db)
    assert backfill(db, victoria) > 0
    cfg = _config(tmp_path / "central.toml", victoria.url, resolution_s="300", history_days="400")
    sq, sq_costs, _, _ = results(db, None)
    pq, pq_costs, _, _ = results(tmp_path / "central.db", cfg)
    cmp_ = compare(sq, pq, sq_costs, pq_costs)
    assert cmp_.vms == len(TRACE_FILES)
    assert cmp_.same_type == cmp_.vms, cmp_.differences
    assert cmp_.cost_diff_pct <= 0.5
    # the hourly rollups themselves are the same numbers
    sqlite = SqliteStore(db)
    store = promql_store(load_settings(cfg), SqliteStore(tmp_path / "central.db"))
    try:
        span = sqlite.time_range()
        assert span is not None and store.time_range() == span
        # through the newest sample: the embedded store re-aggregates the newest hour from raw rows before ``end``
        end = span[1] + timedelta(seconds=1)
        a = sqlite.frame(span[0], end)
        b = store.frame(span[0], end)
        assert len(a) == len(b)
        for col in ("running_s", "vcpus", "memory_bytes", "cpu_mean_vcpus", "cpu_p95_vcpus", "cpu_max_vcpus",
                    "memory_used_max_bytes"):
            assert (a[col].fillna(-1) - b[col].fillna(-1)).abs().max() < 1e-6, col
    finally:
        sqlite.close()
        store.close()


def test_recommend_on_promtool_backfilled_prometheus_equals_sqlite(tmp_path, trace_subset):
    """The same trace as OpenMetrics -> promtool blocks -> Prometheus: recommend and costs equal SQLite's."""
    db = tmp_path / "trace.db"
    import_trace(trace_subset, db)
    prom, lines = start_backfilled_prometheus(db, tmp_path / "prom")
    try:
        assert lines > 0
        cfg = _config(tmp_path / "central.toml", prom.url, resolution_s="300", history_days="400")
        sq, sq_costs, _, _ = results(db, None)
        pq, pq_costs, _, _ = results(tmp_path / "central.db", cfg)
        store = promql_store(load_settings(cfg), SqliteStore(tmp_path / "central.db"))
        sqlite = SqliteStore(db)
        try:
            assert store.time_range() == sqlite.time_range()
        finally:
            sqlite.close()
            store.close()
    finally:
        prom.stop()
    cmp_ = compare(sq, pq, sq_costs, pq_costs)
    assert cmp_.vms == len(TRACE_FILES)
    assert cmp_.same_type == cmp_.vms, cmp_.differences
    assert cmp_.cost_diff_pct <= 0.5


def test_bad_sources_exit_2_naming_url_or_query(tmp_path, victoria, caplog):
    db = str(tmp_path / "central.db")
    # nothing matches: an empty answer names the URL and the matchers to check
    cfg = _config(tmp_path / "empty.toml", victoria.url, matchers='\'cluster="nowhere"\'')
    code, _out, err = run_cli(["recommend", "--config", str(cfg), "--db", db])
    assert code == 2 and victoria.url in err and "matchers" in err and len(err.strip().splitlines()) == 1
    # a server that is not Prometheus-compatible: an agent's own /metrics listener
    proc, addr = _agent(tmp_path, "c", 2, 3)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, _out, err = run_cli(["costs", "--prometheus-url", f"http://{addr}", "--db", db])
            if "cannot reach" not in err:
                break
            time.sleep(0.2)
        assert code == 2 and f"http://{addr}" in err and "Prometheus-compatible" in err
    finally:
        _stop(proc)
    # series without uuid: a named warning, the good series still answer
    now_ms = int(time.time() * 1000)
    import_prometheus_text(victoria, [
        f'rightsizer_vm_info{{vm="orphan",host="hv"}} 1 {now_ms}',
        f'rightsizer_vm_vcpus{{vm="orphan",host="hv"}} 2 {now_ms}',
        f'rightsizer_vm_info{{vm="ok",uuid="u-ok",host="hv"}} 1 {now_ms}',
        f'rightsizer_vm_vcpus{{vm="ok",uuid="u-ok",host="hv"}} 2 {now_ms}',
        f'rightsizer_vm_memory_bytes{{vm="ok",uuid="u-ok",host="hv"}} 4294967296 {now_ms}',
    ])
    store = promql_store(load_settings(_config(tmp_path / "ok.toml", victoria.url)), SqliteStore(db))
    try:
        with caplog.at_level("WARNING"):
            vms = store.vms()
        assert [v.name for v in vms] == ["ok"]
        assert any("no 'uuid' label" in r.getMessage() and victoria.url in r.getMessage() for r in caplog.records)
    finally:
        store.close()
    assert not (tmp_path / "out").exists()


def test_central_role_reads_each_hosts_cpu_count(tmp_path, victoria):
    """``rightsizer_host_cpus{host}`` as agents export it: the newest count per host, over what the central
    store's own meta holds; a host with no series keeps its meta entry."""
    from collector.store.jsonmeta import HOST_CPUS_KEY, merge_json_meta, stored_host_cpus

    now_ms = int(time.time() * 1000)
    import_prometheus_text(victoria, [
        f'rightsizer_host_cpus{{host="hv-1",instance="a:9178"}} 8 {now_ms - 120_000}',
        f'rightsizer_host_cpus{{host="hv-1",instance="a:9178"}} 16 {now_ms}',  # a CPU hot-add: the newest counts
        f'rightsizer_host_cpus{{host="hv-2",instance="b:9178"}} 2 {now_ms}',
    ])
    local = SqliteStore(tmp_path / "central.db")
    merge_json_meta(local, HOST_CPUS_KEY, {"hv-1": 4, "hv-old": 32})
    store = promql_store(load_settings(_config(tmp_path / "c.toml", victoria.url)), local)
    try:
        deadline = time.monotonic() + 30
        while store.host_cpus() != {"hv-1": 16, "hv-2": 2} and time.monotonic() < deadline:
            time.sleep(0.5)  # VictoriaMetrics makes imported rows searchable within a second or so
        assert store.host_cpus() == {"hv-1": 16, "hv-2": 2}
        assert stored_host_cpus(store) == {"hv-1": 16, "hv-2": 2, "hv-old": 32}
    finally:
        store.close()


def test_go_libvirt_exporter_series_through_the_mapping(tmp_path, victoria):
    """Months of libvirt_domain_* history become VMs with labels, machine types and hourly CPU rollups."""
    end = int(time.time()) // 3600 * 3600
    lines = []
    for k in range(0, 2 * 3600 + 1, 60):  # two hours at a 60 s scrape interval
        ts = (end - 2 * 3600 + k) * 1000
        for name, uuid, rate in (("web-1", "u-web", 0.5), ("db-1", "u-db", 1.5)):
            lab = f'domain="{name}",uuid="{uuid}",instance="hv9:9177"'
            lines += [
                f"libvirt_domain_info_virtual_cpus{{{lab}}} 4 {ts}",
                f"libvirt_domain_info_maximum_memory_bytes{{{lab}}} {8 * 1024**3} {ts}",
                f"libvirt_domain_info_cpu_time_seconds_total{{{lab}}} {rate * k} {ts}",
                f"libvirt_domain_memory_stats_available_bytes{{{lab}}} {6 * 1024**3} {ts}",
                f"libvirt_domain_memory_stats_usable_bytes{{{lab}}} {4 * 1024**3} {ts}",
            ]
    import_prometheus_text(victoria, lines)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[[vm]]\nmatch = "web-1"\nmachine_type = "g1.2"\nlabels = { team = "shop" }\n')
    cfg = _config(tmp_path / "lv.toml", victoria.url, series='"libvirt-exporter"', resolution_s="60",
                  mapping_file=f'"{mapping}"')
    store = promql_store(load_settings(cfg), SqliteStore(tmp_path / "c.db"))
    try:
        vms = {v.name: v for v in store.vms()}
        assert set(vms) == {"web-1", "db-1"}
        assert vms["web-1"].labels == {"team": "shop", "machine_type": "g1.2"}
        assert vms["db-1"].host == "hv9:9177" and vms["db-1"].vcpus == 4
        span = store.time_range()
        assert span is not None
        from datetime import UTC, datetime

        frame = store.frame(datetime.fromtimestamp(end - 3600, tz=UTC), datetime.fromtimestamp(end, tz=UTC))
        by_vm = frame.set_index("vm")
        assert by_vm.loc["u-web", "cpu_mean_vcpus"] == pytest.approx(0.5, rel=1e-6)
        assert by_vm.loc["u-db", "cpu_p95_vcpus"] == pytest.approx(1.5, rel=1e-6)
        assert by_vm.loc["u-db", "memory_used_max_bytes"] == pytest.approx(2 * 1024**3)
    finally:
        store.close()
