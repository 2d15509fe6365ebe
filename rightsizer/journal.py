"""Log lines for journald when systemd runs the service (``JOURNAL_STREAM`` set): stdout, no timestamp of our own
(the journal stamps each line), and the sd-daemon ``<N>`` prefix so each line keeps its priority. Control characters
in a message (a VM named with an escape sequence) are shown as escapes either way."""

from __future__ import annotations

import logging
import os
import sys

from core.textsafe import TerminalSafeFormatter

#: syslog priorities (sd-daemon(3)) per logging level.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(TerminalSafeFormatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>" + super().format(record).replace("\n", f"\n<{priority}>")


def under_journald() -> bool:
    """True when stdout or stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``)."""
    return bool(os.environ.get("JOURNAL_STREAM"))


def configure_logging(level: int) -> None:
    """Log to the journal through stdout when systemd runs us, else to stderr with timestamps."""
    if under_journald():
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TerminalSafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
