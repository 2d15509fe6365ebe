"""report.html: one self-contained page (plotly.js inline, works offline) with charts and tables.

Every text that comes from the fleet (VM names, labels, hosts) is HTML-escaped in tables, and the chart
data is JSON with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc., so no name can close a tag.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from analytics.findings.risk import legend_text
from analytics.reports.base import Report, VmReportRow, register
from analytics.reports.frontier_chart import frontier_figure

GIB = 1024**3
TOP_N = 20


def _safe_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.2f} {currency}"


def _bar(x: Sequence[Any], y: Sequence[Any], *, name: str, horizontal: bool = False) -> dict[str, Any]:
    trace: dict[str, Any] = {"type": "bar", "name": name}
    if horizontal:
        trace.update(x=list(y), y=list(x), orientation="h")
    else:
        trace.update(x=list(x), y=list(y))
    return trace


#: Names on a bar axis are categories: plotly would read "2013-8" (a dataset) as a date and "10" as a number.
_CATEGORY = {"type": "category"}


def _label(text: str) -> str:
    # plotly renders a small HTML subset in labels and decodes entities, so escaped text displays as typed
    return html.escape(text, quote=False)


def figures(report: Report) -> list[tuple[str, str, dict[str, Any]]]:
    """The charts as (id, title, plotly figure dict); pure, for tests and other front ends."""
    cur = report.currency
    figs: list[tuple[str, str, dict[str, Any]]] = []
    if report.label_key and report.spend_by_label:
        groups = report.spend_by_label
        figs.append(("spend-label", f"Spend by {report.label_key}", {
            "data": [_bar([_label(g.key) for g in groups], [round(g.cost, 4) for g in groups], name="cost")],
            "layout": {"xaxis": _CATEGORY, "yaxis": {"title": {"text": cur}}, "margin": {"t": 30}},
        }))
    if report.spend_by_host:
        groups = report.spend_by_host
        figs.append(("spend-host", "Spend by host", {
            "data": [_bar([_label(g.key) for g in groups], [round(g.cost, 4) for g in groups], name="cost")],
            "layout": {"xaxis": _CATEGORY, "yaxis": {"title": {"text": cur}}, "margin": {"t": 30}},
        }))
    savers = sorted((v for v in report.vms if (v.monthly_savings or 0) > 0),
                    key=lambda v: -(v.monthly_savings or 0))[:TOP_N]
    if savers:
        figs.append(("top-savings", f"Top savings per month ({cur})", {
            "data": [_bar([_label(f"{v.name} → {v.recommended_type}") for v in reversed(savers)],
                          [round(v.monthly_savings or 0, 2) for v in reversed(savers)],
                          name="savings", horizontal=True)],
            "layout": {"xaxis": {"title": {"text": f"{cur} per month"}}, "yaxis": _CATEGORY,
                       "margin": {"t": 30, "l": 220}},
        }))
    top = sorted(report.vms, key=lambda v: -v.cost)[:TOP_N]
    if top:
        names = [_label(v.name) for v in top]
        figs.append(("util-cpu", f"CPU: allocated vs used (top {len(top)} VMs by cost)", {
            "data": [
                _bar(names, [v.vcpus for v in top], name="allocated vCPUs"),
                _bar(names, [None if v.cpu_p95_vcpus is None else round(v.cpu_p95_vcpus, 3) for v in top],
                     name="used, P95 of hourly P95 (vCPU)"),
            ],
            "layout": {"barmode": "group", "xaxis": _CATEGORY, "yaxis": {"title": {"text": "vCPU"}},
                       "margin": {"t": 30}},
        }))
        figs.append(("util-memory", f"Memory: allocated vs used (top {len(top)} VMs by cost)", {
            "data": [
                _bar(names, [round(v.memory_bytes / GIB, 2) for v in top], name="allocated GiB"),
                _bar(names, [None if v.memory_used_max_bytes is None else round(v.memory_used_max_bytes / GIB, 2)
                             for v in top], name="used, max (GiB)"),
            ],
            "layout": {"barmode": "group", "xaxis": _CATEGORY, "yaxis": {"title": {"text": "GiB"}},
                       "margin": {"t": 30}},
        }))
    if report.frontier is not None and report.frontier.points:
        f = report.frontier
        figs.append(("savings-risk", f"Savings vs risk: the stored history, trained on the first "
                     f"{f.train_days:.1f} days and scored on the last {f.eval_days:.1f} ({f.vms_evaluated} VMs)",
                     frontier_figure(f.points, f.chosen)))
    return figs


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: frozenset[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(r)
        ) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _vm_table(vms: Sequence[VmReportRow], currency: str) -> str:
    rows = [
        (v.name, v.host, f"{v.machine_type or '-'} ({v.type_source})",
         "-" if v.price_per_hour is None else f"{v.price_per_hour:.5f}", f"{v.running_hours:.1f}",
         f"{v.cost:.2f}", v.finding or "-",
         "-" if v.cpu_need_vcpus is None else f"{v.cpu_need_vcpus:.2f}",
         v.recommended_type or "-",
         "-" if v.monthly_savings is None else f"{v.monthly_savings:.2f}",
         "-" if v.savings_pct is None else f"{v.savings_pct:.0f} %",
         "-" if v.risk is None else v.risk, v.idle_status or "-", v.backup_urgency or "-")
        for v in vms
    ]
    statistic = next((v.cpu_need_statistic for v in vms if v.cpu_need_statistic), "")
    need_head = f"CPU need, vCPU ({statistic} + headroom)" if statistic else "CPU need, vCPU"
    table = _table(
        ["VM", "host", "machine type (how chosen)", f"price/h ({currency})", "running h", f"cost ({currency})",
         "finding", need_head, "recommended", f"savings/month ({currency})", "savings %", "risk", "idle",
         "backup urgency"],
        rows, numeric=frozenset({3, 4, 5, 7, 9, 10}),
    )
    legend = "<p class='note'>Risk legend: " + _e(legend_text()) + "</p>"
    return table + legend


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;font-size:0.85em;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}td.num{text-align:right}
th{background:#f3f3f3}.kpi{display:inline-block;margin:0 24px 12px 0}.kpi b{display:block;font-size:1.4em}
.note{color:#8a5a00}.chart{width:100%;max-width:1100px;height:380px}
"""


class HtmlFormatter:
    """A single HTML page: key figures, charts (plotly, inline) and tables."""

    name = "html"
    filename = "report.html"

    def render(self, report: Report) -> str:
        from plotly.offline import get_plotlyjs

        cur = report.currency
        c = report.costs
        kpis = [
            (f"Cost {report.window_start:%Y-%m-%d %H:%M} – {report.window_end:%Y-%m-%d %H:%M} UTC",
             _money(c.total, cur)),
            ("Month to date", _money(c.month.month_to_date, cur)),
            ("Forecast month end", _money(c.month.forecast_month_end, cur)),
            ("Potential savings per month", _money(report.total_monthly_savings, cur)
             if report.strategy else "not computed"),
            ("Realised savings", _money(sum(s.saving for s in report.realised_savings), cur)),
            ("VMs", str(len(report.vms))),
        ]
        parts: list[str] = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>rightsizer report</title>",
            f"<style>{_CSS}</style>",
            f"<script>{get_plotlyjs()}</script>",
            "</head><body>",
            "<h1>rightsizer fleet report</h1>",
            f"<p>Generated {_e(report.generated_at.isoformat(timespec='seconds'))}. "
            f"Strategy: {_e(report.strategy or 'none')}. Stopped VMs billed as: {_e(report.stopped_vm_billing)} "
            "(the provider does not publish this rule).</p>",
            "<div>" + "".join(f'<div class="kpi">{_e(k)}<b>{_e(v)}</b></div>' for k, v in kpis) + "</div>",
            f"<p>{_e(c.month.forecast_basis)}</p>",
        ]
        parts += [f'<p class="note">{_e(n)}</p>' for n in report.notes]
        figs = figures(report)
        for fig_id, title, _ in figs:
            parts.append(f"<h2>{_e(title)}</h2><div id=\"{_e(fig_id)}\" class=\"chart\"></div>")
        parts.append(f"<h2>VMs ({len(report.vms)})</h2>")
        parts.append(_vm_table(report.vms, cur))
        idle = [i for i in report.idle if i.is_idle]
        names = {v.vm_uuid: v.name for v in report.vms}
        parts.append(f"<h2>Idle VMs ({len(idle)})</h2>")
        if idle:
            parts.append(_table(["VM", "days observed", "CPU idle share", "evidence"], [
                (names.get(i.vm_uuid, i.vm_uuid), f"{i.observed_days:.1f}", f"{(i.cpu_idle_share or 0):.1%}",
                 "; ".join(i.reasons)) for i in idle
            ]))
        else:
            parts.append("<p>None.</p>")
        late = [b for b in report.backups if b.urgency != "none" or b.status == "invalid-policy"]
        parts.append(f"<h2>Backups needing attention ({len(late)})</h2>")
        if late:
            parts.append(_table(["VM", "status", "urgency", "policy", "newest backup", "reason"], [
                (b.vm_name, b.status, b.urgency, f"{b.policy} ({b.policy_source})",
                 b.newest.isoformat(timespec="minutes") if b.newest else "never", b.reason) for b in late
            ]))
        else:
            parts.append("<p>None.</p>")
        if report.realised_savings:
            parts.append("<h2>Realised savings of applied resizes</h2>")
            parts.append(_table(["VM", "applied", "ended", "before/h", "after/h", "hours", f"saving ({cur})"], [
                (s.vm_name, s.applied_at.isoformat(timespec="minutes"),
                 s.ended_at.isoformat(timespec="minutes") if s.ended_at else "in force",
                 f"{s.price_before_per_hour:.5f}", f"{s.price_after_per_hour:.5f}", f"{s.hours:.1f}",
                 f"{s.saving:.2f}") for s in report.realised_savings
            ], numeric=frozenset({3, 4, 5, 6})))
        if figs:
            calls = "\n".join(
                f"Plotly.newPlot({_safe_json(fig_id)}, fig.data, Object.assign({{autosize: true}}, fig.layout), "
                "{responsive: true, displaylogo: false});".replace("fig.", f"FIGS[{i}].")
                for i, (fig_id, _, _) in enumerate(figs)
            )
            parts.append(f"<script>const FIGS = {_safe_json([f for _, _, f in figs])};\n{calls}\n</script>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


register(HtmlFormatter())
