"""Make user-controlled text (VM names, labels, trace file names) safe for the places it is written to: CSV cells
and spreadsheets, terminals and log lines."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Spreadsheets run a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula (= + - @ TAB CR) with a single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def findings_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text under ``columns`` (header first); text cells made formula-safe, numbers left as numbers,
    None as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else csv_safe(row.get(c)) for c in columns])
    return buf.getvalue()


#: Characters a terminal acts on instead of showing: C0/C1 controls and DEL (escape sequences, line breaks),
#: line/paragraph separators and the bidirectional overrides that reorder what follows them.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as its escape (ESC -> ``\\x1b``, newline -> ``\\n``), so a
    VM name or label printed in a CLI table cannot move the cursor, retitle the window or forge a row."""
    return _TERMINAL_UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TerminalSafeFormatter(logging.Formatter):
    """A log formatter that shows control characters in a record's message as escapes (a VM named with an
    escape sequence in ``schedule stop evil...`` lines); the traceback of an exception keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = terminal_safe(record.message)
        return super().formatMessage(record)
