"""From one VM's recommendation and its lifecycle to its finding: verdict, saving, risk, options, reasons."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analytics.catalogue import MachineType
from analytics.findings.context import Lifecycle
from analytics.findings.finding import VmFinding
from analytics.findings.headroom import headroom_text
from analytics.findings.lifecycle import DELETE_IS_MANUAL, StoppedVm
from analytics.findings.projection import Projection, project_utilisation
from analytics.findings.regret import Regret, monthly_cost_change
from analytics.findings.risk import NO_CHANGE, Risk, RiskFacts, RiskLevel, assess_risk
from analytics.hourcolumns import HourSeries, replays_lookback
from analytics.idle import IdleFinding
from analytics.rightsizing.base import Finding, Recommendation
from collector.model import VmRecord
from core.units import GIB, SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The parts of a finding the lifecycle rules decide (see :func:`_verdict`)."""

    finding: Finding
    action: str
    target: tuple[str, int, int, float] | None  # machine type, vCPUs, memory bytes, price per hour
    savings: float
    base: float  # what the saving is a share of, per month
    risk: Risk
    options: tuple[Mapping[str, Any], ...]
    reasons: Mapping[str, str]


def _option(t: MachineType, monthly_savings: float, action: str = "resize") -> dict[str, Any]:
    return {"action": action, "machine_type": t.name, "vcpus": t.vcpus, "memory_bytes": t.memory_bytes,
            "price_per_hour": t.price_per_hour, "price_per_month": round(t.price_per_month, 4),
            "monthly_savings": round(monthly_savings, 4)}


def _spec(t: MachineType | None) -> tuple[str, int, int, float] | None:
    return None if t is None else (t.name, t.vcpus, t.memory_bytes, t.price_per_hour)


def _verdict(
    rec: Recommendation, idle: IdleFinding | None, stopped: StoppedVm | None, regret: Regret | None,
    risk: Risk, currency: str,
) -> _Verdict:
    """Lifecycle before size: stopped, then resize regret, then idle, then the strategy's finding.

    A stopped VM is priced as what it still costs (deleting saves it); an idle one as its whole compute
    price (stopping saves it; the downsize stays as the fallback option); an over-provisioned VM whose
    saving is under the threshold is ``below-threshold``, not optimized.
    """
    current = rec.current_type
    month = current.price_per_month if current is not None else 0.0
    reasons = dict(rec.reasons)
    resize_options = tuple(_option(o.machine_type, o.monthly_savings) for o in rec.options)
    if stopped is not None:
        for key in ("cpu", "memory"):
            reasons.pop(key, None)
        reasons["overall"] = f"{stopped.reason(currency)}; no resize advice for a stopped VM"
        reasons["delete"] = DELETE_IS_MANUAL
        saving = stopped.monthly_cost
        options = tuple({"action": a, "monthly_savings": round(saving, 4), "note": DELETE_IS_MANUAL}
                        for a in ("snapshot-then-delete", "delete"))
        stop_risk = Risk(RiskLevel.LOW, 1, (f"not run for {stopped.stopped_days:.1f} days",
                                           "a deleted VM cannot be started again: snapshot first"))
        return _Verdict(Finding.STOPPED, "none", _spec(current), saving, saving, stop_risk, options, reasons)
    if regret is not None:
        extra = monthly_cost_change(regret) or 0.0
        reasons["overall"] = (f"the last resize overran: {regret.proposal} to {regret.target_type or '?'} "
                              f"({regret.target_vcpus} vCPU)")
        reasons["regret"] = regret.evidence()
        target = (regret.target_type, regret.target_vcpus, regret.target_memory_bytes,
                  regret.target_price_per_hour or 0.0)
        option = {"action": "resize", "machine_type": regret.target_type, "vcpus": regret.target_vcpus,
                  "memory_bytes": regret.target_memory_bytes, "price_per_hour": regret.target_price_per_hour,
                  "monthly_savings": round(-extra, 4), "proposal": regret.proposal}
        back = Risk(RiskLevel.VERY_LOW, 0, ("grows the VM to a size that covers what it used",))
        return _Verdict(Finding.RESIZE_REGRET, "resize", target, -extra, month, back, (option,), reasons)
    if idle is not None and rec.is_determined:
        share = idle.cpu_idle_share
        reasons["idle"] = (f"idle: CPU below {idle.cpu_threshold_vcpus:g} vCPU for "
                           f"{'?' if share is None else f'{share:.0%}'} of {idle.observed_days:.1f} running days; "
                           "consider stopping it")
        reasons["overall"] = f"idle: stopping it saves its whole compute price ({month:.2f} {currency}/month)"
        if rec.changes_type and rec.recommended_type is not None:
            reasons["fallback"] = f"if it must keep running: {rec.recommended_type.name} (downsize option)"
        stop = {"action": "stop", "machine_type": None, "monthly_savings": round(month, 4),
                "note": "stop only; " + DELETE_IS_MANUAL}
        downsizes = resize_options if rec.changes_type else ()
        idle_risk = Risk(RiskLevel.LOW, 1, ("stopping ends whatever the VM still serves",
                                           f"idle {'?' if share is None else f'{share:.0%}'} of its running time"))
        return _Verdict(Finding.IDLE, "stop", _spec(current), month, month, idle_risk, (stop, *downsizes), reasons)
    finding = rec.finding
    if (finding is Finding.OPTIMIZED and rec.options and current is not None
            and rec.options[0].machine_type.price_per_month < month):
        finding = Finding.BELOW_THRESHOLD
    chosen = rec.recommended_type if not rec.excluded else current
    saving = (current.price_per_month - chosen.price_per_month) if (current and chosen and not rec.excluded) else 0.0
    action = "resize" if rec.changes_type else "none"
    return _Verdict(finding, action, _spec(chosen), saving if math.isfinite(saving) else 0.0, month,
                    risk if action == "resize" else NO_CHANGE, resize_options, reasons)


def _while_shut_off(v: _Verdict, off: StoppedVm, rec: Recommendation, currency: str) -> _Verdict:
    """A VM off now, for less than ``stopped_after``: its size advice is kept for information only.

    Nothing is counted as saved while it is off (its compute is not billed then) and no step is planned;
    its options show the sizes its history fits, for when it runs again.
    """
    when = (f"since {off.last_running:%Y-%m-%d %H:%M} UTC" if off.last_running is not None
            else "not seen running in the data read")
    reasons = dict(v.reasons)
    reasons["overall"] = (f"shut off for {off.stopped_days:.1f} days ({when}), less than [rightsizing] "
                          f"stopped_after: advice informational, no saving counted while it is off; "
                          f"when running: {rec.reasons.get('overall', v.finding.value)}")
    options = tuple(_option(o.machine_type, o.monthly_savings) for o in rec.options)
    current = _spec(rec.current_type)
    return replace(v, action="none", target=current, savings=0.0, risk=NO_CHANGE, options=options,
                   reasons=reasons)


def _leftover_max_memory(vm: VmRecord, current: MachineType | None, v: _Verdict, excluded: bool) -> bool | None:
    """None when the VM's persistent maximum memory is not above its memory (or the verdict resizes it anyway);
    else whether a plan step can lower it: the VM is exactly its type's size and nothing else is planned."""
    if current is None or vm.max_memory_bytes <= vm.memory_bytes or v.action == "resize":
        return None
    return (v.action == "none" and not excluded
            and (current.vcpus, current.memory_bytes) == (vm.vcpus, vm.memory_bytes))


def _max_memory_note(vm: VmRecord, type_name: str, steppable: bool) -> str:
    """Why a persistent maximum above the memory matters, and how it gets lowered."""
    how = (f"the plan's step to {type_name} at this size lowers it at next restart (persistent config)"
           if steppable else "lower <memory> in its persistent config (takes effect at next restart)")
    return (f"persistent max memory {vm.max_memory_bytes / GIB:.2f} GiB is above its {vm.memory_bytes / GIB:.2f} "
            f"GiB (left by an earlier downsize?): the guest can balloon beyond {type_name}; {how}")


def _risk_and_projection(
    rec: Recommendation, series: HourSeries, *, lookback_days: float, end_s: float, peak_ratio: float | None = None,
    replay: Projection | None = None,
) -> tuple[Risk, Projection | None]:
    """Replay the lookback's hourly peaks on the recommended type and score the move's risk.

    ``peak_ratio`` is the VM's max / p95 of hourly CPU peaks over the same lookback when known already
    (:func:`fleet_peak_ratios`); ``replay`` the projection when made already (:func:`fleet_replays`).
    """
    target = rec.recommended_type
    if not replays_lookback(rec) or target is None or rec.evidence is None:
        return NO_CHANGE, None
    # the lookback's rows, worked out only when the fleet-wide replay or peak ratio is not given
    keep = series.ts_s >= end_s - lookback_days * SECONDS_PER_DAY if replay is None or peak_ratio is None else None
    projection = replay if replay is not None else project_utilisation(
        series.ts_s[keep], series.cpu_max[keep], series.mem_max[keep], target_vcpus=target.vcpus,
        target_memory_bytes=target.memory_bytes)
    ev = rec.evidence
    if peak_ratio is None:
        cpu = series.cpu_max[keep]
        cpu = cpu[~np.isnan(cpu)]
        p95 = float(np.percentile(cpu, 95)) if len(cpu) else math.nan
        peak_ratio = float(cpu.max()) / p95 if len(cpu) and p95 > 0 else math.nan
    ratio = peak_ratio
    growing = any(t is not None and t.growing for t in (ev.cpu_trend, ev.memory_trend))
    facts = RiskFacts(hours=projection.hours, hours_over=projection.hours_over, growing=growing,
                      span_days=ev.span_days, cpu_peak_to_p95=ratio, memory_known=projection.memory_known)
    return assess_risk(facts), projection


def make_finding(
    vm: VmRecord, strategy: str, rec: Recommendation, source: str, idle: IdleFinding | None, *,
    series: HourSeries, lookback_days: float, end_s: float, lifecycle: Lifecycle, peak_ratio: float | None = None,
    pattern: str = "unknown", replay: Projection | None = None,
) -> VmFinding:
    current = rec.current_type
    priced = current if current is not None else rec.recommended_type
    currency = priced.currency if priced is not None else ""
    risk, projection = _risk_and_projection(rec, series, lookback_days=lookback_days, end_s=end_s,
                                            peak_ratio=peak_ratio, replay=replay)
    v = _verdict(rec, idle, lifecycle.stopped.get(vm.uuid), lifecycle.regrets.get(vm.uuid), risk, currency)
    off = lifecycle.shut_off.get(vm.uuid)
    if off is not None and v.finding is not Finding.STOPPED:
        v = _while_shut_off(v, off, rec, currency)
    steppable = _leftover_max_memory(vm, current, v, rec.excluded)
    if steppable is not None and current is not None:
        v = replace(v, reasons={**v.reasons, "max_memory": _max_memory_note(vm, current.name, steppable)})
    ev = rec.evidence
    return VmFinding(
        uuid=vm.uuid,
        name=vm.name,
        uri=vm.uri,
        host=vm.host,
        strategy=strategy,
        finding=v.finding,
        current_type=current.name if current else None,
        current_type_source=source,
        current_vcpus=vm.vcpus,
        current_memory_bytes=vm.memory_bytes,
        need_vcpus=rec.target_vcpus,
        need_memory_bytes=rec.target_memory_bytes,
        target_type=v.target[0] if v.target else None,
        target_vcpus=v.target[1] if v.target else None,
        target_memory_bytes=v.target[2] if v.target else None,
        price_before_per_hour=current.price_per_hour if current else None,
        price_after_per_hour=(0.0 if v.action == "stop" else v.target[3]) if v.target else None,
        currency=currency,
        monthly_savings=v.savings,
        risk=v.risk.level,
        excluded=rec.excluded,
        reasons=v.reasons,
        options=v.options,
        recommendation=rec,
        idle=idle,
        action=v.action if not rec.excluded else "none",
        savings_pct=100.0 * v.savings / v.base if v.base > 0 else 0.0,
        risk_reasons=v.risk.reasons,
        need_cpu_statistic=ev.cpu.statistic if ev is not None and ev.cpu is not None else "",
        need_memory_statistic=ev.memory.statistic if ev is not None and ev.memory is not None else "",
        need_headroom=headroom_text(rec),
        projection=projection if v.finding in (Finding.OVER_PROVISIONED, Finding.UNDER_PROVISIONED) else None,
        stopped=lifecycle.stopped.get(vm.uuid),
        regret=lifecycle.regrets.get(vm.uuid),
        lowers_max_memory=bool(steppable),
        pattern=pattern,
    )
