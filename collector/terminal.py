"""Text printed to a terminal: user-controlled strings (VM names, labels, trace file names) shown, not obeyed."""

from __future__ import annotations

import logging
import re

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
