"""Non-blocking socket reads shared by the event loops of the /metrics server and the dashboard port."""

from __future__ import annotations

import socket
import ssl


def try_recv(sock: socket.socket, size: int) -> bytes | None:
    """Up to ``size`` bytes from a non-blocking ``sock``; None when none are there yet, ``b""`` when the peer
    closed its side or the connection broke (either way nothing more will come).

    On a TLS socket (``ssl.SSLSocket`` wrapped with ``do_handshake_on_connect=False``, handshake done) a read
    that needs more bytes from the network is None too, and the bytes OpenSSL already decrypted and holds
    (``pending``) are taken in the same call: epoll would not report them.
    """
    try:
        data = sock.recv(size)
    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError:
        return b""
    if data and isinstance(sock, ssl.SSLSocket):
        while len(data) < size and (more := sock.pending()):
            try:
                data += sock.recv(min(more, size - len(data)))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError:
                break
    return data
