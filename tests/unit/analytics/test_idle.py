from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from analytics.idle import find_idle
from collector.store.base import HOUR_COLUMNS, RAW_COLUMNS
from core.settings import IdleSettings

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SETTINGS = IdleSettings()  # 0.03 vCPU, 97 %, 10 kB/s disk and net, 3 days


def _hours(vm: str, cpu_max: list[float], *, running_s: float = 3600.0, disk_bytes: float = 0.0,
           net_bytes: float = 0.0) -> pd.DataFrame:
    n = len(cpu_max)
    frame = pd.DataFrame({c: np.full(n, np.nan) for c in HOUR_COLUMNS})
    frame["vm"] = vm
    frame["ts"] = pd.date_range(T0, periods=n, freq="h", tz="UTC")
    frame["running_s"] = running_s
    frame["cpu_max_vcpus"] = cpu_max
    frame["disk_read_bytes"] = disk_bytes / 2
    frame["disk_write_bytes"] = disk_bytes / 2
    frame["net_rx_bytes"] = net_bytes
    frame["net_tx_bytes"] = 0.0
    return frame


def test_idle_at_exactly_97_percent_of_hours() -> None:
    # 100 h (4.17 days): 97 quiet hours, 3 busy -> 97 % idle, meets the share
    frame = _hours("quiet", [0.01] * 97 + [0.5] * 3)
    found = find_idle(frame, SETTINGS)
    assert set(found) == {"quiet"}
    f = found["quiet"]
    assert f.is_idle and f.resolution == "hour"
    assert f.cpu_idle_share == pytest.approx(0.97)
    assert f.disk_idle_share == 1.0 and f.net_idle_share == 1.0
    assert f.observed_days == pytest.approx(100 / 24)


def test_one_more_busy_hour_makes_it_active() -> None:
    frame = _hours("busy", [0.01] * 96 + [0.5] * 4)
    assert find_idle(frame, SETTINGS) == {}
    f = find_idle(frame, SETTINGS, include_all=True)["busy"]
    assert f.status == "active" and f.cpu_idle_share == pytest.approx(0.96)
    assert any("96.0%" in r for r in f.reasons)


def test_cpu_threshold_is_strict() -> None:
    frame = _hours("edge", [0.03] * 100)  # peak equal to the threshold is not below it
    assert find_idle(frame, SETTINGS, include_all=True)["edge"].cpu_idle_share == 0.0


def test_disk_or_network_traffic_blocks_idle() -> None:
    # 10 kB/s limit: 3600 s x 10_000 B/s = 36 MB per hour; 40 MB every hour is above it
    disk = _hours("disk", [0.0] * 100, disk_bytes=40e6)
    net = _hours("net", [0.0] * 100, net_bytes=40e6)
    quiet = _hours("ok", [0.0] * 100, disk_bytes=30e6, net_bytes=30e6)
    found = find_idle(pd.concat([disk, net, quiet]), SETTINGS, include_all=True)
    assert found["disk"].status == "active" and found["disk"].disk_idle_share == 0.0
    assert found["net"].status == "active" and found["net"].net_idle_share == 0.0
    assert found["ok"].status == "idle"


def test_too_little_running_time_is_insufficient() -> None:
    # 100 hours seen, but running only 30 min of each: 50 h = 2.08 days < 3
    frame = _hours("short", [0.0] * 100, running_s=1800.0)
    f = find_idle(frame, SETTINGS, include_all=True)["short"]
    assert f.status == "insufficient-data"
    assert f.observed_days == pytest.approx(50 / 24)


def test_stopped_hours_do_not_count() -> None:
    frame = pd.concat([_hours("s", [0.0] * 80), _hours("s", [np.nan] * 100, running_s=0.0)])
    f = find_idle(frame, SETTINGS, include_all=True)["s"]
    assert f.observed_days == pytest.approx(80 / 24) and f.is_idle


def test_settings_change_the_verdict() -> None:
    frame = _hours("v", [0.04] * 100)
    assert find_idle(frame, SETTINGS) == {}
    assert set(find_idle(frame, IdleSettings(cpu_vcpus_below=0.05))) == {"v"}


def test_missing_network_data_is_reported_not_blocking() -> None:
    frame = _hours("nonet", [0.0] * 100)
    frame["net_rx_bytes"] = np.nan
    frame["net_tx_bytes"] = np.nan
    f = find_idle(frame, SETTINGS)["nonet"]
    assert f.net_idle_share is None and "network: no data" in f.reasons


def test_raw_frame_weighted_by_interval() -> None:
    n = 4 * 24 * 12  # 4 days of 5-minute samples
    raw = pd.DataFrame({c: np.full(n, np.nan) for c in RAW_COLUMNS})
    raw["vm"] = "r"
    raw["ts"] = pd.date_range(T0, periods=n, freq="5min", tz="UTC")
    raw["state"] = "running"
    raw["interval_s"] = 300.0
    raw["gap"] = False
    cpu = np.full(n, 0.01)
    cpu[: int(n * 0.02)] = 1.0  # 2 % busy
    raw["cpu_vcpus"] = cpu
    raw["disk_read_bps"] = 0.0
    raw["disk_write_bps"] = 0.0
    f = find_idle(raw, SETTINGS)["r"]
    assert f.resolution == "raw"
    assert f.cpu_idle_share == pytest.approx(1 - int(n * 0.02) / n)
    assert f.observed_days == pytest.approx(4.0)


def test_frame_without_cpu_column_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu_max_vcpus"):
        find_idle(pd.DataFrame({"vm": ["a"]}), SETTINGS)


def test_idle_vms_are_the_idle_ones_of_the_full_judgement() -> None:
    # CPU-quiet VMs whose disk or network is busy, CPU-busy VMs with quiet I/O, gaps, short histories,
    # rows out of order: judging disk and network only where CPU allows idle changes no verdict or figure
    rng = np.random.default_rng(4)
    parts = []
    for i in range(60):
        hours = int(rng.integers(40, 200))
        cpu = np.where(rng.random(hours) < rng.uniform(0.9, 1.0), 0.01, 0.5)
        cpu[rng.random(hours) < 0.05] = np.nan
        part = _hours(f"vm-{i:02d}", cpu.tolist(), disk_bytes=float(rng.choice([0.0, 1e9])),
                      net_bytes=float(rng.choice([0.0, 1e9])))
        part.loc[rng.random(hours) < 0.1, "running_s"] = 0.0
        parts.append(part)
    frame = pd.concat(parts).sample(frac=1.0, random_state=1)
    every = find_idle(frame, SETTINGS, include_all=True)
    idle = find_idle(frame, SETTINGS)
    assert idle == {uuid: f for uuid, f in every.items() if f.is_idle}
    assert 0 < len(idle) < len(every) == 60
