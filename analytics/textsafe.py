"""Make user-controlled text (VM names, labels) safe for the places it is written to."""

from __future__ import annotations

from typing import Any

#: Spreadsheets run a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula (= + - @ TAB CR) with a single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
