"""Policy overrides from [rightsizing] policies_file reach every place findings are made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.analysis import AnalysisOptions, analyse_fleet, configured_policies
from analytics.catalogue import load_catalogue
from analytics.rightsizing.settings import load_policies
from collector.errors import InputError
from collector.model import VmRecord, VmState
from collector.store.base import RAW_COLUMNS
from core.settings import load_settings

T0 = datetime(2026, 10, 1, tzinfo=UTC)
GIB = 1024**3


def _seed(store) -> None:
    vms, frames = [], []
    for name, team in (("web-1", "web"), ("db-1", "data")):
        uuid = f"uuid-{name}"
        vms.append(VmRecord(uuid, name, "qemu:///system", "h1", VmState.RUNNING, 8, 8, 32 * GIB, 32 * GIB,
                            {"team": team}, T0, T0 + timedelta(days=14)))
        n = 14 * 24
        f = pd.DataFrame({c: np.full(n, np.nan) for c in RAW_COLUMNS})
        f["vm"], f["state"], f["gap"] = uuid, "running", False
        f["ts"] = pd.date_range(T0, periods=n, freq="1h", tz="UTC")
        f["vcpus"], f["memory_bytes"], f["interval_s"] = 8.0, 32.0 * GIB, 3600.0
        f["cpu_vcpus"], f["memory_used_bytes"] = 0.5, 2.0 * GIB  # far below 8 vCPU / 32 GiB
        frames.append(f)
    store.write_history(vms, pd.concat(frames))


def test_policies_file_from_settings_excludes_matching_vms(store, tmp_path):
    _seed(store)
    policy = tmp_path / "policies.toml"
    policy.write_text('[[policy]]\nlabels = { team = "data" }\nexclude = true\n')
    catalogue = load_catalogue()
    plain = {f.name: f for f in analyse_fleet(store, catalogue, AnalysisOptions.from_settings(
        load_settings(env={}), catalogue)).findings}
    settings = load_settings(env={}, overrides={"rightsizing": {"policies_file": str(policy)}})
    with_policy = {f.name: f for f in analyse_fleet(store, catalogue, AnalysisOptions.from_settings(
        settings, catalogue)).findings}
    assert plain["db-1"].finding == "over-provisioned" and not plain["db-1"].excluded
    assert with_policy["db-1"].excluded
    assert with_policy["web-1"].finding == "over-provisioned" and not with_policy["web-1"].excluded


def test_bad_policy_file_names_entry_field_and_value(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('[[policy]]\nvm = "web-1"\ncpu_percentile = 250\n')
    with pytest.raises(InputError, match=r"policy\[0\] field 'cpu_percentile' value 250"):
        load_policies(bad)
    settings = load_settings(env={}, overrides={"rightsizing": {"policies_file": str(tmp_path / "none.toml")}})
    with pytest.raises(InputError, match="not found"):
        configured_policies(settings)
