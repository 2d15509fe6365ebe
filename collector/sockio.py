"""Non-blocking socket reads shared by the event loops of the /metrics server and the dashboard port."""

from __future__ import annotations

import socket


def try_recv(sock: socket.socket, size: int) -> bytes | None:
    """Up to ``size`` bytes from a non-blocking ``sock``; None when none are there yet, ``b""`` when the peer
    closed its side or the connection broke (either way nothing more will come)."""
    try:
        return sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
