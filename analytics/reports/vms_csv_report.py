"""vms.csv: one row per VM with its cost, utilisation, finding, idle and backup state; spreadsheet-safe."""

from __future__ import annotations

import csv
import io
from typing import Any

from analytics.reports.base import Report, VmReportRow, register
from core.textsafe import csv_safe

COLUMNS: tuple[str, ...] = (
    "vm", "uuid", "host", "labels", "machine_type", "type_source", "price_per_hour", "running_hours", "cost",
    "currency", "vcpus", "memory_bytes", "cpu_p95_vcpus", "memory_used_max_bytes", "finding",
    "recommended_type", "monthly_savings", "risk", "recommendation_reason", "idle", "backup_status",
    "backup_urgency", "backup_reason", "savings_pct", "cpu_need_vcpus", "cpu_need_statistic",
)
def _row(v: VmReportRow, currency: str) -> list[Any]:
    labels = ";".join(f"{k}={val}" for k, val in sorted(v.labels.items()))
    values: list[Any] = [
        v.name, v.vm_uuid, v.host, labels, v.machine_type or "", v.type_source,
        "" if v.price_per_hour is None else f"{v.price_per_hour:.8g}", f"{v.running_hours:.2f}",
        f"{v.cost:.4f}", currency, v.vcpus, v.memory_bytes,
        "" if v.cpu_p95_vcpus is None else f"{v.cpu_p95_vcpus:.4f}",
        "" if v.memory_used_max_bytes is None else f"{v.memory_used_max_bytes:.0f}",
        v.finding or "", v.recommended_type or "",
        "" if v.monthly_savings is None else f"{v.monthly_savings:.2f}",
        "" if v.risk is None else v.risk, v.recommendation_reason, v.idle_status or "",
        v.backup_status or "", v.backup_urgency or "", v.backup_reason,
        "" if v.savings_pct is None else f"{v.savings_pct:.2f}",
        "" if v.cpu_need_vcpus is None else f"{v.cpu_need_vcpus:.4f}", v.cpu_need_statistic,
    ]
    # only text cells can carry a formula; numbers we formatted ourselves stay numbers
    return [csv_safe(x) if isinstance(x, str) and i not in _NUMERIC else x for i, x in enumerate(values)]


_NUMERIC = frozenset(COLUMNS.index(c) for c in (
    "price_per_hour", "running_hours", "cost", "cpu_p95_vcpus", "memory_used_max_bytes", "monthly_savings",
    "savings_pct", "cpu_need_vcpus",
))


class VmsCsvFormatter:
    """One row per VM with cost, right-sizing, idle and backup columns."""

    name = "vms-csv"
    filename = "vms.csv"

    def render(self, report: Report) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for v in report.vms:
            writer.writerow(_row(v, report.currency))
        return buf.getvalue()


register(VmsCsvFormatter())
