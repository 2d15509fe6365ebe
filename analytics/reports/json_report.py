"""report.json: the whole report as one JSON document."""

from __future__ import annotations

import json

from analytics.reports.base import Report, register, to_plain


class JsonFormatter:
    """Every value of the report, plus the total monthly savings."""

    name = "json"
    filename = "report.json"

    def render(self, report: Report) -> str:
        doc = to_plain(report)
        doc["total_monthly_savings"] = report.total_monthly_savings
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"


register(JsonFormatter())
