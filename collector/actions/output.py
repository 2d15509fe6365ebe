"""Render action results for people (a diff per VM) and for JSON/CSV (one flat row per VM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.actions.changes import DIM_NAMES, fmt_dim
from collector.actions.result import ActionResult
from collector.domxml import format_bytes
from core.textsafe import terminal_safe

#: Monthly figures use 720 h, as the price catalogue does (STACKIT publishes monthly = hourly x 720).
HOURS_PER_MONTH = 720.0


def _fmt_price(value: float | None) -> str:
    return "?" if value is None else f"{value:.4f}"


def format_result(res: ActionResult) -> str:
    """Render one step as a human-readable diff: sizes, price and when each change takes effect."""
    s = res.step
    head = terminal_safe(f"{s.vm.name} ({s.vm.uuid}) on {s.vm.uri or '?'}")
    if s.finding:
        head += f" -- {s.finding}"
    lines = [f"{head}  [{res.result}]"]
    rows: list[tuple[str, str, str]] = []
    if res.changes:
        for c in res.changes:
            rows.append((DIM_NAMES[c.dimension], f"{fmt_dim(c.dimension, c.before)} -> "
                         f"{fmt_dim(c.dimension, c.after)}", "unchanged" if c.effect == "unchanged" else c.when))
    else:
        rows.append(("vCPUs", f"{s.current.vcpus} -> {s.target.vcpus}", "-"))
        rows.append(("memory", f"{format_bytes(s.current.memory_bytes)} -> {format_bytes(s.target.memory_bytes)}", "-"))
    if s.current.machine_type or s.target.machine_type:
        rows.append(("type", f"{s.current.machine_type or '?'} -> {s.target.machine_type or '?'}", ""))
    if s.price_before_per_hour is not None or s.price_after_per_hour is not None:
        cur = f" {s.currency}/h" if s.currency else "/h"
        text = f"{_fmt_price(s.price_before_per_hour)} -> {_fmt_price(s.price_after_per_hour)}{cur}"
        note = ""
        if s.price_before_per_hour is not None and s.price_after_per_hour is not None:
            delta = s.price_after_per_hour - s.price_before_per_hour
            verb = "saves" if delta < 0 else "costs"
            note = (f"{verb} {abs(delta):.4f}{cur} ({abs(delta) * HOURS_PER_MONTH:.2f} "
                    f"{s.currency or ''}/month)").replace(" /month", "/month")
        rows.append(("price", text, note))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    for label, value, when in rows:
        lines.append(f"  {label.ljust(w1)}  {value.ljust(w2)}  {when}".rstrip())
    if res.reason:
        lines.append(f"  {terminal_safe(res.reason)}")
    return "\n".join(lines)


def format_results(results: Sequence[ActionResult]) -> str:
    """Render every step's diff, blank-line separated, with a one-line total."""
    if not results:
        return "The plan has no steps: nothing to do.\n"
    counts: dict[str, int] = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    total = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return "\n\n".join(format_result(r) for r in results) + f"\n\n{len(results)} VM(s): {total}\n"


def result_row(res: ActionResult) -> dict[str, Any]:
    """Flatten a result for JSON/CSV output (one row per VM)."""
    s = res.step
    by_dim = {c.dimension: c for c in res.changes}
    vc, mem = by_dim.get("vcpus"), by_dim.get("memory_bytes")
    return {
        "name": s.vm.name,
        "uuid": s.vm.uuid,
        "uri": s.vm.uri,
        "result": res.result,
        "vcpus_before": vc.before if vc else s.current.vcpus,
        "vcpus_after": s.target.vcpus,
        "vcpus_when": vc.when if vc else "",
        "memory_bytes_before": mem.before if mem else s.current.memory_bytes,
        "memory_bytes_after": s.target.memory_bytes,
        "memory_when": mem.when if mem else "",
        "machine_type_before": s.current.machine_type,
        "machine_type_after": s.target.machine_type,
        "price_before_per_hour": s.price_before_per_hour,
        "price_after_per_hour": s.price_after_per_hour,
        "currency": s.currency,
        "finding": s.finding,
        "reason": res.reason,
        "operations": list(res.operations),
        "audit_id": res.audit_id,
    }
