"""The libvirt error edge: ``libvirtError`` codes become ``collector.errors`` classes here, and only here."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import libvirt

from collector.errors import (
    ConnectionFailedError,
    HypervisorError,
    OperationInvalidError,
    OperationUnsupportedError,
    VmNotFoundError,
    VmShutOffError,
)

# Most specific class per libvirt error code; refined by message/domain in ``translate_libvirt_error``.
ERROR_CLASSES: Mapping[int, type[HypervisorError]] = {
    libvirt.VIR_ERR_NO_DOMAIN: VmNotFoundError,
    libvirt.VIR_ERR_OPERATION_INVALID: OperationInvalidError,
    libvirt.VIR_ERR_INVALID_ARG: OperationInvalidError,  # e.g. flags the driver refuses together
    libvirt.VIR_ERR_NO_SUPPORT: OperationUnsupportedError,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED: OperationUnsupportedError,
    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED: OperationUnsupportedError,
    libvirt.VIR_ERR_SYSTEM_ERROR: ConnectionFailedError,
    libvirt.VIR_ERR_NO_CONNECT: ConnectionFailedError,
    libvirt.VIR_ERR_INVALID_CONN: ConnectionFailedError,
    libvirt.VIR_ERR_RPC: ConnectionFailedError,
    libvirt.VIR_ERR_AUTH_FAILED: ConnectionFailedError,
}
# Errors raised by the RPC layer itself mean the connection is gone, e.g. after libvirtd restarts:
# "Cannot write data: Broken pipe" (SYSTEM_ERROR) then "client socket is closed" (INTERNAL_ERROR).
_CONNECTION_ERROR_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})

#: Codes a daemon answers with when it does not know a flag (e.g. NOWAIT before libvirt 4.5).
FLAG_REJECTED = frozenset(
    {
        libvirt.VIR_ERR_INVALID_ARG,
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    }
)


@functools.cache
def silence_libvirt_stderr() -> None:
    """Stop libvirt printing every error to stderr (we raise them instead); runs once per process."""
    libvirt.registerErrorHandler(lambda *_: None, None)


def translate_libvirt_error(exc: libvirt.libvirtError, what: str) -> HypervisorError:
    """Return the most specific ``HypervisorError`` for ``exc``; ``what`` names the failed call."""
    code = exc.get_error_code()
    domain = exc.get_error_domain()
    message = exc.get_error_message() or str(exc)
    cls: type[HypervisorError] = ERROR_CLASSES.get(code or 0, HypervisorError)
    if code == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        cls = VmShutOffError
    elif code == libvirt.VIR_ERR_INTERNAL_ERROR and (
        domain in _CONNECTION_ERROR_DOMAINS or "socket is closed" in message
    ):
        cls = ConnectionFailedError
    elif code == libvirt.VIR_ERR_SYSTEM_ERROR and domain and domain not in _CONNECTION_ERROR_DOMAINS:
        # A system error outside the RPC layer is a host problem (a file, a process), not the connection.
        cls = HypervisorError
    hint = ""
    if cls is ConnectionFailedError:
        hint = "; check that libvirtd is running and the URI is right (scripts/libvirtd-up.sh starts it)"
    return cls(f"{what}: {message} (libvirt error code {code}){hint}")


@contextlib.contextmanager
def map_libvirt_errors(what: str = "libvirt call") -> Iterator[None]:
    """Translate any ``libvirtError`` raised inside into our error classes (``raise ... from exc``)."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate_libvirt_error(exc, what) from exc


def close_quietly(conn: Any) -> None:
    """Close a libvirt connection, ignoring the errors of one that is already broken."""
    if conn is not None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
