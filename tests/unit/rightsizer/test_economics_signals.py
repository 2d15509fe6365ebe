"""serve's economics view carries the analysis' contention and memory-pressure signals to /metrics."""

from __future__ import annotations

from dataclasses import replace

from core.settings import Settings
from rightsizer.service import compute_economics
from tests.helpers.catalogues import small_catalogue
from tests.helpers.ten_days import NOW, host_vm, signal_points


def test_contended_and_pressured_vms_are_flagged_and_others_are_not(store) -> None:
    hot, swapping, calm = host_vm("hot", 2, 2, host="hv-7"), host_vm("swapping", 2, 8), host_vm("calm", 2, 2)
    burst = signal_points(swapping, 0.5, 1.0, swap_in_bps=0.0, swap_out_bps=0.0, major_faults_ps=0.0)
    burst[-5] = replace(burst[-5], swap_in_bps=4 * 2**20, major_faults_ps=900.0)
    store.write_history([hot, swapping, calm], signal_points(hot, 1.95, 1.0, cpu_delay_vcpus=0.8) + burst
                        + signal_points(calm, 1.0, 1.0, cpu_delay_vcpus=0.01, swap_in_bps=0.0, swap_out_bps=0.0,
                                  major_faults_ps=0.0))
    view = compute_economics(store, small_catalogue(), Settings(), NOW).by_vm
    assert (view[hot.uuid].contended, view[hot.uuid].finding) == (True, "contention")
    assert (view[swapping.uuid].memory_pressure, view[swapping.uuid].contended) == (True, False)
    assert (view[calm.uuid].contended, view[calm.uuid].memory_pressure) == (False, False)
