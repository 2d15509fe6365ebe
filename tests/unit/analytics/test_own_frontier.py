"""The own-fleet frontier: train on the first half of the stored lookback, score on the second half."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from analytics.own_frontier import own_fleet_frontier
from tests.helpers.catalogues import small_catalogue
from tests.helpers.ten_days import HOURS, NOW, T0, hourly_points, running_vm


def test_own_frontier_scores_the_second_half_and_marks_the_profile(store) -> None:
    # steady-1 is flat at 0.5 vCPU; burst-1 is flat at 0.5 in the first 5 days, then 1.5 vCPU for 20 hours.
    steady, burst = running_vm("steady-1", 4, 16), running_vm("burst-1", 4, 16)
    flat = np.full(HOURS, 0.5)
    late = flat.copy()
    late[HOURS - 30:HOURS - 10] = 1.5
    store.write_history([steady, burst], hourly_points(steady, flat) + hourly_points(burst, late))
    frame = store.frame(datetime.fromtimestamp(T0, tz=UTC), NOW, resolution="hour")
    own = own_fleet_frontier(frame, [steady, burst], small_catalogue(), now=NOW, lookback_days=10,
                             profile="conservative")
    assert own.train_days == pytest.approx(5.0) and own.eval_days == pytest.approx(5.0)
    assert own.vms_evaluated == 2
    chosen = own.chosen
    assert chosen is not None and chosen.value == "conservative"
    # every percentile rule moves both VMs from l.4 (0.12/h) to s.2 (0.02/h, 2 vCPU); the 1.5 vCPU burst
    # fits 2 vCPUs, so nothing overruns, and the savings are (0.12 - 0.02) / 0.12.
    for p in own.points:
        if p.knob == "risk_pct":
            continue
        assert p.savings_pct == pytest.approx(100 * 0.10 / 0.12)
        assert p.cpu_overrun_pct == 0.0 and p.mem_overrun_pct == 0.0
    # the calibrated per-VM headroom sees two flat training halves (every held-out score 0: margin 0), so it
    # sizes both at their own level: s.1 (0.01/h, 1 vCPU, 1 GiB holds the 1 GiB used), and the burst's 20
    # hours above 1 vCPU overrun, of 2 x 120 evaluated hours
    risk = [p for p in own.points if p.knob == "risk_pct"]
    assert [p.value for p in risk] == [0.3, 1.0, 3.0, 10.0]  # the risk-target curve, in its knob's order
    for p in risk:
        assert p.strategy == "rightsizer-risk"  # the name backtest --sweep gives the same curve
        assert p.savings_pct == pytest.approx(100 * 0.11 / 0.12)
        assert p.cpu_overrun_pct == pytest.approx(100 * 20 / 240) and p.mem_overrun_pct == 0.0
    # memory from the daily peaks' spread at KRR's P95: the same s.2 here (1 GiB used every day)
    peaks = [p.value for p in own.points if p.strategy == "rightsizer-peaks-risk"]
    assert peaks == [1.0, 10.0]
    strategies = {p.strategy for p in own.points}
    assert strategies == {"rightsizer", "rightsizer-risk", "rightsizer-peaks-risk", "aws", "krr", "vpa"}


def test_own_frontier_counts_overruns_on_peak_hours(store) -> None:
    # 0.3 vCPU in training, 1.6 vCPU for 12 of the 120 evaluated hours: s.1 (1 vCPU) overruns 10 %.
    vm = running_vm("grow-1", 4, 16)
    cpu = np.full(HOURS, 0.3)
    cpu[HOURS - 12:] = 1.6
    store.write_history([vm], hourly_points(vm, cpu, used_gib=0.5))
    frame = store.frame(datetime.fromtimestamp(T0, tz=UTC), NOW, resolution="hour")
    own = own_fleet_frontier(frame, [vm], small_catalogue(), now=NOW, lookback_days=10)
    krr = next(p for p in own.points if p.strategy == "krr")
    assert krr.cpu_overrun_pct == pytest.approx(100 * 12 / 120)
    with pytest.raises(ValueError, match="train_fraction"):
        own_fleet_frontier(frame, [vm], small_catalogue(), now=NOW, lookback_days=10, train_fraction=1.0)
