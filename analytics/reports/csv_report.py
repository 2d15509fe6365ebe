"""findings.csv: one row per VM in the one findings schema (``FINDING_CSV_COLUMNS``), spreadsheet-safe.

The same columns as the dashboard's CSV export and ``rightsizer recommend --output csv``.
"""

from __future__ import annotations

from analytics.findings.finding import FINDING_CSV_COLUMNS
from analytics.reports.base import Report, register
from core.textsafe import findings_csv


class CsvFormatter:
    """One row per VM: finding, current, need and target sizes, prices, savings, risk, schedule, storage."""

    name = "csv"
    filename = "findings.csv"

    def render(self, report: Report) -> str:
        return findings_csv([f.csv_row() for f in report.findings], FINDING_CSV_COLUMNS)


register(CsvFormatter())
