"""The anchor strategies compute their published statistics (hand-computed expectations)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.rightsizing import aws, krr, vpa
from analytics.rightsizing.base import UsageHistory
from analytics.rightsizing.settings import AwsSettings, KrrSettings, VpaSettings

GIB = 1024**3
T0 = 1_700_006_400.0  # UTC midnight
DAY = 86400.0


def _history(cpu: np.ndarray, mem: np.ndarray | None, step: float = 300.0) -> UsageHistory:
    ts = T0 + np.arange(len(cpu)) * step
    return UsageHistory.from_arrays(ts, cpu, mem, vcpus=8, memory_bytes=32 * GIB, interval_s=step)


def test_aws_uses_p99_5_plus_20_percent_and_memory_max_plus_20_percent() -> None:
    # 1,000 samples: 995 at 0.5 vCPU, 5 at 2.0. Rank 0.995 x 999 = 994.005 sits between sorted[994] = 0.5
    # and sorted[995] = 2.0, so P99.5 = 0.5 + 0.005 x 1.5 = 0.5075 and the need is 0.5075 x 1.2 = 0.609.
    cpu = np.r_[np.full(995, 0.5), np.full(5, 2.0)]
    mem = np.r_[np.full(999, 1.0), 3.0] * GIB
    need = aws.estimate(_history(cpu, mem), AwsSettings())
    assert need.cpu.observed == pytest.approx(0.5075)
    assert need.cpu.value == pytest.approx(0.609)
    assert need.cpu.peak == 2.0
    assert need.memory.value == pytest.approx(3.6 * GIB)


def test_krr_uses_p95_without_headroom_and_memory_max_plus_15_percent() -> None:
    # 0..99 vCPU/100: P95 rank 0.95 x 99 = 94.05 -> 0.94 + 0.05 x 0.01 = 0.9405
    cpu = np.arange(100) / 100.0
    mem = np.linspace(1, 2, 100) * GIB
    need = krr.estimate(_history(cpu, mem), KrrSettings())
    assert need.cpu.value == pytest.approx(0.9405)
    assert need.memory.value == pytest.approx(2.3 * GIB)
    assert krr.estimate(_history(cpu, None), KrrSettings()).memory is None


def test_vpa_bucket_starts_follow_the_exponential_scheme() -> None:
    starts = vpa.bucket_starts(0.01, 0.05, 1000.0)
    # start(n) = 0.01 x (1.05**n - 1) / 0.05
    assert starts[0] == 0.0
    assert starts[1] == pytest.approx(0.01)
    assert starts[2] == pytest.approx(0.0205)
    assert starts[-1] >= 1000.0 > starts[-2]


def test_vpa_percentile_returns_the_end_of_the_bucket_reaching_the_weight() -> None:
    # One sample of 1.0 vCPU now (weight 2**0 = 1) and nine of 0.1 vCPU one day ago (weight 2**-1 each,
    # 4.5 in total). Total 5.5; P90 threshold 4.95 > 4.5, so the percentile lands in 1.0's bucket.
    # 1.0 falls in bucket floor(log(1.0 x 0.05 / 0.01 + 1) / log 1.05) = floor(36.72) = 36, whose end is
    # start(37) = 0.2 x (1.05**37 - 1).
    values = np.r_[np.full(9, 0.1), 1.0]
    times = np.r_[np.full(9, -DAY), 0.0]
    got = vpa.decaying_percentile(values, times, q=90, reference_s=0.0, half_life_s=DAY, first_bucket=0.01,
                                  growth=0.05, max_value=1000.0)
    assert got == pytest.approx(0.2 * (1.05**37 - 1))
    # Without decay the 1.0 sample weighs 1 of 10 and P90 falls in 0.1's bucket:
    # floor(log(0.1 x 5 + 1) / log 1.05) = floor(8.31) = 8, end = start(9) = 0.2 x (1.05**9 - 1).
    flat = vpa.decaying_percentile(values, np.zeros(10), q=90, reference_s=0.0, half_life_s=DAY,
                                   first_bucket=0.01, growth=0.05, max_value=1000.0)
    assert flat == pytest.approx(0.2 * (1.05**9 - 1))


def test_vpa_memory_uses_daily_peaks_and_cpu_gets_the_margin() -> None:
    # 3 days of 5-minute samples at 0.5 vCPU; memory 1 GiB with one 4 GiB spike on the oldest day.
    n = 3 * 288
    cpu = np.full(n, 0.5)
    mem = np.full(n, 1.0 * GIB)
    mem[10] = 4.0 * GIB
    need = vpa.estimate(_history(cpu, mem), VpaSettings())
    # CPU: all samples in bucket floor(log(0.5 x 5 + 1) / log 1.05) = 25 -> end start(26) = 0.2 x (1.05**26 - 1)
    assert need.cpu.observed == pytest.approx(0.2 * (1.05**26 - 1))
    assert need.cpu.value == pytest.approx(0.2 * (1.05**26 - 1) * 1.15)
    # Memory peaks per day, stamped at each day's start (3, 2 and 1 days before the end): 4 GiB (weight
    # 1/8), 1 GiB (1/4), 1 GiB (1/2). P90 of 7/8 is 0.7875 > 0.75, so it lands in the 4 GiB bucket.
    ratio = 1.05
    bucket = math.floor(math.log(4 * GIB * 0.05 / 1e7 + 1) / math.log(ratio))
    end = 1e7 * (ratio ** (bucket + 1) - 1) / 0.05
    assert need.memory.observed == pytest.approx(end)
    assert need.memory.value == pytest.approx(end * 1.15)


def test_vpa_has_published_minimums() -> None:
    need = vpa.estimate(_history(np.zeros(1000), np.zeros(1000)), VpaSettings())
    assert need.cpu.value == pytest.approx(0.025)
    assert need.memory.value == pytest.approx(250 * 1024**2)
