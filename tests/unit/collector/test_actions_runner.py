from __future__ import annotations

from collector.actions.runner import run_plan, single_step_plan
from collector.model import VmRef
from core.plan import SizeSpec
from core.settings import ActionSettings

GIB = 1024**3


def test_trace_vms_are_skipped_without_opening_libvirt(tmp_path):
    opened: list[str] = []
    plan = single_step_plan(VmRef("trace://bitbrains/2013-8", "u1", "bb-1"), SizeSpec(2, 8 * GIB, "g1.2"),
                            SizeSpec(1, 4 * GIB, "g1.1"), price_before=0.0758, price_after=0.0379, currency="EUR")
    (result,) = run_plan(plan, ActionSettings(), store=None, apply=True, actor="t",
                         control_for=lambda uri: opened.append(uri))
    assert result.result == "skipped" and "no libvirt domain" in result.reason
    assert opened == []
    assert plan.plan_id.startswith("plan-") and plan.steps[0].target.machine_type == "g1.1"
