"""The central role when agents export only the CPU counter (no ``rightsizer_vm_cpu_usage_vcpus``) at 300-s samples
and ``[source] resolution_s`` is not set: CPU from the counter's rate, the interval measured from the data, the
same recommendations as the embedded store; an explicit ``resolution_s`` that does not fit is warned about."""

from __future__ import annotations

import logging
import shutil

import pytest
from doctor_helpers import run_doctor

from bench.promql_equality import (
    CPU_GAUGE,
    _store_lines,
    backfill,
    compare,
    import_trace,
    measure,
    promql_config,
    results,
)
from collector.store.promql_factory import promql_store
from collector.store.sqlite import SqliteStore
from core.settings import load_settings
from tests.integration.engines import import_prometheus_text, start_victoria_metrics

pytestmark = pytest.mark.integration


def test_bitbrains_with_only_the_counter_and_no_resolution_matches_sqlite(bitbrains_dir, tmp_path):
    cmp_, _times = measure(bitbrains_dir, tmp_path, counter_only=True, measured_interval=True)
    assert cmp_.vms == 40
    assert cmp_.same_type >= 38, cmp_.differences
    assert cmp_.cost_diff_pct <= 0.5


def test_warnings_name_the_missing_gauge_and_the_resolution_that_does_not_fit(bitbrains_dir, tmp_path, caplog):
    trace = tmp_path / "trace"
    trace.mkdir()
    for name in ("1.csv", "2.csv", "3.csv"):
        shutil.copy(bitbrains_dir / name, trace / name)
    db = tmp_path / "trace.db"
    import_trace(trace, db)
    engine = start_victoria_metrics(tmp_path / "vm")
    try:
        backfill(db, engine, counter_only=True)
        measured = promql_config(tmp_path / "measured.toml", engine.url, resolution=False)
        store = promql_store(load_settings(measured, env={}), SqliteStore(tmp_path / "central.db"))
        try:
            with caplog.at_level(logging.INFO, logger="collector.store.promql"):
                span = store.time_range()
                assert span is not None
                hours = store.frame(span[0], span[1])
            assert store.resolution_s == 300 and store.measured_interval_s == 300
            assert hours["cpu_p95_vcpus"].notna().sum() > 0.9 * len(hours)
            assert hours["running_s"].max() == 3600
            text = caplog.text
            assert "series rightsizer_vm_cpu_usage_vcpus is absent: CPU is computed from the rate of " \
                   "rightsizer_vm_cpu_seconds_total" in text
            assert "sample interval 300 s measured on rightsizer_vm_cpu_seconds_total; using it" in text
        finally:
            store.close()
        caplog.clear()
        explicit = tmp_path / "explicit.toml"
        explicit.write_text(measured.read_text() + "resolution_s = 60\n", encoding="utf-8")
        store = promql_store(load_settings(explicit, env={}), SqliteStore(tmp_path / "central2.db"))
        try:
            with caplog.at_level(logging.WARNING, logger="collector.store.promql"):
                span = store.time_range()
                assert span is not None
                store.frame(span[0], span[1])
            assert store.resolution_s == 60
            assert "[source] resolution_s = 60 but rightsizer_vm_cpu_seconds_total is sampled every 300 s " \
                   "(measured)" in caplog.text
        finally:
            store.close()
        # doctor: the explicit value that does not fit fails, the unset one passes
        code, lines = run_doctor(tmp_path, explicit)
        assert code == 1
        assert "FAIL sample interval: measured 300 s but resolution_s = 60; set resolution_s = 300" in "\n".join(lines)
        assert any(line.startswith("WARN prometheus: ") and "rightsizer_vm_cpu_usage_vcpus absent" in line
                   for line in lines), lines
        code, lines = run_doctor(tmp_path, measured)
        assert code == 0, lines
        assert "OK   sample interval: measured 300 s; resolution_s not set, so 300 is used" in lines
        assert any(line.startswith("OK   machine types: 3 VM(s) priced") for line in lines), lines
    finally:
        engine.stop()


def test_a_fleet_of_old_and_new_agents_gets_cpu_for_every_vm(bitbrains_dir, tmp_path, caplog):
    """One VM's agent exports no gauge (an older version), the others do: per VM, the gauge or the counter."""
    trace = tmp_path / "trace"
    trace.mkdir()
    for name in ("1.csv", "2.csv", "3.csv"):
        shutil.copy(bitbrains_dir / name, trace / name)
    db = tmp_path / "trace.db"
    import_trace(trace, db)
    old = 'vm="bitbrains-trace-2"'  # the import names VMs after the folder and file
    engine = start_victoria_metrics(tmp_path / "vm")
    try:
        lines = (line for line in _store_lines(db, openmetrics=False)
                 if not (line.startswith(CPU_GAUGE) and old in line))
        assert import_prometheus_text(engine, lines) > 0
        cfg = promql_config(tmp_path / "central.toml", engine.url, resolution=False)
        with caplog.at_level(logging.WARNING, logger="collector.store.promql"):
            sq, sq_costs, _, _ = results(db, None)
            pq, pq_costs, _, _ = results(tmp_path / "central.db", cfg)
        assert "series rightsizer_vm_cpu_usage_vcpus is absent for 1 of 3 VMs (bitbrains-trace-2): their CPU is " \
               "computed from the rate of rightsizer_vm_cpu_seconds_total" in caplog.text
        cmp_ = compare(sq, pq, sq_costs, pq_costs)
        assert cmp_.vms == 3 and cmp_.same_type == 3, cmp_.differences
        assert all(f["finding"] != "insufficient-data" for f in pq)
        store = promql_store(load_settings(cfg, env={}), SqliteStore(tmp_path / "central2.db"))
        try:
            span = store.time_range()
            assert span is not None
            hours = store.frame(span[0], span[1])
            by_vm = hours.groupby("vm")["cpu_p95_vcpus"].count()
            assert len(by_vm) == 3 and by_vm.min() > 0.9 * by_vm.max(), by_vm
        finally:
            store.close()
    finally:
        engine.stop()


def _counter_lines(vm: str, *, step_s: int, hours: float, end: int, scrape_s: int | None = None,
                   busy: bool = True) -> list[str]:
    """A CPU counter collected every ``step_s`` (scraped every ``scrape_s``, repeating its value in between)."""
    lab = f'vm="{vm}",uuid="u-{vm}",host="hv"'
    scrape = scrape_s or step_s
    start = end - int(hours * 3600)
    out = []
    for t in range(start, end + 1, scrape):
        cycles = (t - start) // step_s
        out.append(f"rightsizer_vm_cpu_seconds_total{{{lab}}} {cycles * step_s * 0.5 if busy else 0.0} {t * 1000}")
        out.append(f"rightsizer_vm_vcpus{{{lab}}} 2 {t * 1000}")
    return out


@pytest.mark.parametrize(("case", "expected"), [("young 60 s", 60.0), ("300 s with an idle VM", 300.0),
                                                ("60 s scraped every 15 s", 60.0)])
def test_the_sample_interval_is_measured_from_the_counter(tmp_path, case, expected):
    import time

    end = int(time.time()) // 60 * 60 - 60
    if case == "young 60 s":  # the fleet's history began two hours ago: no VM covers the 6-hour window
        lines = _counter_lines("a", step_s=60, hours=2, end=end) + _counter_lines("b", step_s=60, hours=1.5, end=end)
    elif case == "300 s with an idle VM":
        lines = _counter_lines("a", step_s=300, hours=30, end=end + 17) + \
            _counter_lines("b", step_s=300, hours=30, end=end, busy=False) + \
            _counter_lines("c", step_s=300, hours=3, end=end)  # a VM created three hours ago
    else:
        lines = _counter_lines("a", step_s=60, hours=8, end=end, scrape_s=15)
    engine = start_victoria_metrics(tmp_path / "vm")
    try:
        import_prometheus_text(engine, lines)
        cfg = promql_config(tmp_path / "c.toml", engine.url, resolution=False)
        store = promql_store(load_settings(cfg, env={}), SqliteStore(tmp_path / "c.db"))
        try:
            assert store.sample_interval_s() == expected, case
        finally:
            store.close()
    finally:
        engine.stop()
