"""Per-VM headroom calibrated on the fleet: the statistics, the conformal margin, no evaluation leak, words."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from analytics.backtest import run_backtest
from analytics.catalogue import CsvPriceCatalogue, MachineType
from analytics.frontier import RISK_STRATEGY, Frontier, knob_settings
from analytics.rightsizing import get_strategy
from analytics.rightsizing.base import UsageHistory
from analytics.rightsizing.calibrated import (
    CPU_BASES,
    Shape,
    calibrate,
    calibrate_dimension,
    conformal_margin,
    headroom_words,
    row_percentiles,
    shape,
)
from analytics.rightsizing.settings import RightsizerSettings
from analytics.traces import BITBRAINS_COLUMNS, read_bitbrains_dir

GIB = 1024**3
KIB = 1024
T0 = 1375308000
HEADER = ";\t".join(label for label, _ in BITBRAINS_COLUMNS)
TRAIN_DAYS = 10
DAYS = 16
RISKY = {"cpu_risk_pct": 2.0, "memory_risk_pct": 0.5}


def test_row_percentiles_match_numpy_on_ragged_rows() -> None:
    rng = np.random.default_rng(7)
    block = rng.gamma(2.0, 1.0, (5, 40))
    block[1, 13:] = np.nan
    block[2, :] = np.nan
    block[3, ::3] = np.nan
    got = row_percentiles(block, (0.0, 50.0, 90.0, 99.0, 100.0))
    for i, row in enumerate(block):
        values = row[~np.isnan(row)]
        if len(values) == 0:
            assert np.isnan(got[i]).all()
        else:
            np.testing.assert_allclose(got[i], np.percentile(values, [0, 50, 90, 99, 100]), rtol=0, atol=1e-12)


def test_conformal_margin_is_the_finite_sample_quantile() -> None:
    scores = np.arange(1.0, 100.0)  # 99 scores 1..99
    # rank ceil(100 x 0.9) = 90 -> the 90th smallest; at most 9 of 99 scores (9.1 %) lie above it
    assert conformal_margin(scores, 10.0) == 90.0
    assert conformal_margin(scores, 0.0) == 99.0  # no overrun allowed: the largest score
    assert conformal_margin(np.array([-5.0, -4.0]), 50.0) == -1.0  # clipped to the median at most
    assert conformal_margin(np.empty(0), 1.0) is None


def _iid_series(rng: np.random.Generator, n_vms: int, hours: int) -> list[tuple[np.ndarray, np.ndarray]]:
    t = 3600.0 * np.arange(hours)
    # each VM its own level and spikiness: steady ones and bursty ones in one fleet
    return [(t, rng.uniform(0.2, 2.0) * rng.lognormal(0.0, rng.uniform(0.05, 0.8), hours)) for _ in range(n_vms)]


def test_calibrated_margin_meets_the_risk_on_fresh_exchangeable_data() -> None:
    rng = np.random.default_rng(20261206)
    series = _iid_series(rng, 200, 14 * 24)
    cal = calibrate_dimension(series, 5.0, CPU_BASES)
    assert cal is not None and cal.base_percentile in CPU_BASES
    over = total = 0
    for t, values in series:
        # the need from the VM's whole window, judged on the next two weeks drawn the same way
        s = shape(values, base_percentile=cal.base_percentile)
        assert s is not None
        sigma = np.std(np.log(values))
        future = np.exp(np.mean(np.log(values))) * rng.lognormal(0.0, sigma, len(t))
        over += int(np.count_nonzero(future > s.need(cal.margin)))
        total += len(future)
    assert over / total <= 0.05 + 0.01  # the target, with sampling slack
    assert over / total >= 0.01  # and not bought with a needlessly wide margin


def test_spiky_vm_gets_more_headroom_than_a_steady_one_in_words() -> None:
    hours = 14 * 24
    t = float(T0) + 3600.0 * np.arange(hours)
    rng = np.random.default_rng(3)
    steady = rng.normal(1.0, 0.01, hours)
    spiky = rng.normal(0.3, 0.01, hours)
    bursts = rng.random(hours) < 0.03
    spiky[bursts] = rng.uniform(0.8, 2.0, int(bursts.sum()))  # bursts of random height, a few a day
    histories = [UsageHistory.from_arrays(t, cpu, np.full(hours, GIB), vcpus=4, memory_bytes=8 * GIB,
                                          interval_s=3600.0) for cpu in (steady, spiky)]
    settings = calibrate(histories, RightsizerSettings.model_validate({"cpu_risk_pct": 1.0}))
    # later bursts outgrow earlier ones in the held-out parts, so the 1 % margin is above the base
    assert settings.cpu_margin is not None and settings.cpu_margin > 0 and settings.cpu_base_percentile is not None
    estimate = get_strategy("rightsizer").estimate
    steady_need, spiky_need = (estimate(h, settings).cpu for h in histories)
    assert "(steady CPU: " in steady_need.statistic and "(spiky CPU: " in spiky_need.statistic
    assert spiky_need.headroom_fraction > steady_need.headroom_fraction
    assert headroom_words(steady_need) == f"steady: {steady_need.headroom_fraction:.0%} headroom"
    assert Shape(2.0, 0.3, 1.74).need(-1.0) == pytest.approx(0.26)


def _catalogue() -> CsvPriceCatalogue:
    return CsvPriceCatalogue([
        MachineType("s.1", 1, GIB, 0.01, "EUR"),
        MachineType("s.2", 2, 2 * GIB, 0.02, "EUR"),
        MachineType("m.2", 2, 8 * GIB, 0.06, "EUR"),
        MachineType("m.4", 4, 8 * GIB, 0.09, "EUR"),
        MachineType("l.4", 4, 16 * GIB, 0.12, "EUR"),
    ])


def _write_fleet(d: Path, *, perturb_evaluation: bool) -> None:
    """Six 4-core, 16 GiB VMs, 5-minute rows over 16 days; ``perturb_evaluation`` shuffles and rescales
    every value after the training split (the first 10 days stay byte for byte the same)."""
    d.mkdir()
    step, n = 300, DAYS * 288
    split = TRAIN_DAYS * 288
    for vm in range(6):
        rng = np.random.default_rng(vm)
        level, spread = 0.2 + 0.3 * vm, 0.1 + 0.15 * vm
        cpu = np.clip(level * rng.lognormal(0.0, spread, n), 0.0, 4.0)
        used = np.clip((0.5 + 0.4 * vm) * rng.lognormal(0.0, 0.05 * vm + 0.01, n), 0.05, 16.0)
        if perturb_evaluation:
            late = np.random.default_rng(100 + vm)
            cpu[split:] = np.clip(late.permutation(cpu[split:]) * late.uniform(0.3, 3.0), 0.0, 4.0)
            used[split:] = np.clip(late.permutation(used[split:]) * late.uniform(0.3, 3.0), 0.05, 16.0)
        rows = [";\t".join(str(v) for v in (T0 + step * i, 4, 4 * 2600.0, c * 2600.0, 100 * c / 4,
                                             16 * GIB / KIB, u * GIB / KIB, 0.0, 0.0, 0.0, 0.0))
                for i, (c, u) in enumerate(zip(cpu, used, strict=True))]
        (d / f"{vm + 1}.csv").write_text("\n".join([HEADER, *rows]) + "\n")


def test_shuffling_the_evaluation_window_changes_no_recommendation(tmp_path: Path) -> None:
    _write_fleet(tmp_path / "a", perturb_evaluation=False)
    _write_fleet(tmp_path / "b", perturb_evaluation=True)
    catalogue = _catalogue()
    settings = RightsizerSettings.model_validate(RISKY)
    strategy = get_strategy("rightsizer")
    fronts = [Frontier(read_bitbrains_dir(tmp_path / x), catalogue, train_days=TRAIN_DAYS) for x in ("a", "b")]
    # the evaluation windows really differ ...
    pairs = zip(fronts[0].splits, fronts[1].splits, strict=True)
    assert not all(np.array_equal(a[1].cpu_vcpus, b[1].cpu_vcpus) for a, b in pairs)
    # ... yet the calibration and every recommendation are the same
    calibrated = [strategy.fleet_settings([sp.history for _, sp in f.splits], settings) for f in fronts]
    assert calibrated[0] == calibrated[1] and calibrated[0].cpu_margin is not None
    assert calibrated[0].memory_margin is not None
    recs = [f.recommendations("rightsizer", settings) for f in fronts]
    assert [r.recommended_type for r in recs[0]] == [r.recommended_type for r in recs[1]]
    assert [(r.target_vcpus, r.target_memory_bytes, r.reasons) for r in recs[0]] == \
        [(r.target_vcpus, r.target_memory_bytes, r.reasons) for r in recs[1]]
    # the fleet backtest calibrates once over the same training windows as the frontier does
    [bt] = run_backtest(read_bitbrains_dir(tmp_path / "a"), [strategy], catalogue, train_days=TRAIN_DAYS,
                        settings={"rightsizer": settings})
    assert [r.recommended_type for r in bt.per_vm] == [r.recommended_type.name for r in recs[0]
                                                       if r.recommended_type is not None]
    # and the sweep's risk curve is this method at its knob
    point = fronts[0].score("rightsizer", knob_settings("rightsizer", "risk_pct", 2.0))
    assert point.vms_evaluated == 6 and RISK_STRATEGY == "rightsizer-risk"


def test_a_policy_percentile_keeps_the_percentile_rule() -> None:
    from analytics.rightsizing.policy import apply_overrides

    base = RightsizerSettings.model_validate(RISKY)
    cpu_only = apply_overrides(base, {"cpu_percentile": 90.0})
    assert cpu_only.cpu_risk_pct is None and cpu_only.memory_risk_pct == 0.5
    mem_only = apply_overrides(base, {"memory_headroom_fraction": 0.3})
    assert mem_only.memory_risk_pct is None and mem_only.cpu_risk_pct == 2.0


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package + "."):
            out.add(node.module.removeprefix(package + ".").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module == package:
            out.update(a.name for a in node.names)
    return out


def test_rightsizing_modules_import_each_other_without_a_cycle() -> None:
    root = Path(__file__).resolve().parents[3] / "analytics" / "rightsizing"
    modules = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(root / f"{m}.py", "analytics.rightsizing") & modules for m in modules}
    assert "batch" not in graph["base"] and "base" in graph["batch"]
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*path, m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, [*path, m])
        state[m] = 2

    for m in sorted(modules):
        visit(m, [])
