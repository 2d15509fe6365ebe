"""The libvirt error edge: every listed libvirtError code maps to the most specific class."""

from __future__ import annotations

import libvirt
import pytest

from collector.errors import (
    ConnectionFailedError,
    HypervisorError,
    NoDataError,
    OperationInvalidError,
    OperationUnsupportedError,
    VmNotFoundError,
    VmShutOffError,
)
from collector.hypervisor.base import error_kind
from collector.hypervisor.libvirt import ERROR_CLASSES, map_libvirt_errors, translate_libvirt_error


def make_error(code: int, message: str, domain: int = libvirt.VIR_FROM_QEMU) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    # The same tuple virGetLastError() fills in: code, domain, message, level, str1..3, int1, int2.
    exc.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, -1, -1)
    return exc


@pytest.mark.parametrize(
    ("code", "domain", "message", "expected"),
    [
        (
            libvirt.VIR_ERR_NO_DOMAIN,
            libvirt.VIR_FROM_QEMU,
            "Domain not found: no domain with matching uuid",
            VmNotFoundError,
        ),
        (
            libvirt.VIR_ERR_OPERATION_INVALID,
            libvirt.VIR_FROM_QEMU,
            "Requested operation is not valid: domain is not running",
            VmShutOffError,
        ),
        (
            libvirt.VIR_ERR_OPERATION_INVALID,
            libvirt.VIR_FROM_QEMU,
            "Requested operation is not valid: cannot set memory higher than max memory",
            OperationInvalidError,
        ),
        (
            libvirt.VIR_ERR_NO_SUPPORT,
            libvirt.VIR_FROM_TEST,
            "this function is not supported by the connection driver",
            OperationUnsupportedError,
        ),
        (
            libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
            libvirt.VIR_FROM_QEMU,
            "Operation not supported",
            OperationUnsupportedError,
        ),
        (
            libvirt.VIR_ERR_SYSTEM_ERROR,
            libvirt.VIR_FROM_RPC,
            "Cannot write data: Broken pipe",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_SYSTEM_ERROR,
            libvirt.VIR_FROM_RPC,
            "Failed to connect socket to '/var/run/libvirt/libvirt-sock-ro': No such file or directory",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_SYSTEM_ERROR,
            libvirt.VIR_FROM_NONE,
            "End of file while reading data",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_SYSTEM_ERROR,
            libvirt.VIR_FROM_QEMU,
            "Unable to open /var/lib/x.img",
            HypervisorError,
        ),
        (
            libvirt.VIR_ERR_NO_CONNECT,
            libvirt.VIR_FROM_NONE,
            "no connection driver available",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_INVALID_CONN,
            libvirt.VIR_FROM_NONE,
            "invalid connection pointer",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_INTERNAL_ERROR,
            libvirt.VIR_FROM_RPC,
            "internal error: client socket is closed",
            ConnectionFailedError,
        ),
        (
            libvirt.VIR_ERR_INTERNAL_ERROR,
            libvirt.VIR_FROM_QEMU,
            "internal error: unable to execute QEMU command",
            HypervisorError,
        ),
        (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC, "RPC error", ConnectionFailedError),
        (
            libvirt.VIR_ERR_INVALID_ARG,
            libvirt.VIR_FROM_QEMU,
            "invalid argument: unsupported flags",
            OperationInvalidError,
        ),
        (
            libvirt.VIR_ERR_OPERATION_FAILED,
            libvirt.VIR_FROM_QEMU,
            "operation failed: job timed out",
            HypervisorError,
        ),
    ],
)
def test_translate_picks_most_specific_class(
    code: int, domain: int, message: str, expected: type[HypervisorError]
) -> None:
    err = translate_libvirt_error(make_error(code, message, domain), "getAllDomainStats on qemu:///system")

    assert type(err) is expected
    assert message in str(err)
    assert "getAllDomainStats on qemu:///system" in str(err)


def test_map_covers_every_listed_code() -> None:
    listed = {
        libvirt.VIR_ERR_NO_DOMAIN: VmNotFoundError,
        libvirt.VIR_ERR_OPERATION_INVALID: OperationInvalidError,
        libvirt.VIR_ERR_NO_SUPPORT: OperationUnsupportedError,
        libvirt.VIR_ERR_SYSTEM_ERROR: ConnectionFailedError,
        libvirt.VIR_ERR_NO_CONNECT: ConnectionFailedError,
        libvirt.VIR_ERR_RPC: ConnectionFailedError,
    }
    for code, cls in listed.items():
        assert ERROR_CLASSES[code] is cls, f"libvirt code {code} maps to {ERROR_CLASSES.get(code)}"
    assert all(issubclass(cls, HypervisorError) for cls in ERROR_CLASSES.values())


def test_context_manager_chains_the_libvirt_error() -> None:
    original = make_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found")

    with pytest.raises(VmNotFoundError) as info:
        with map_libvirt_errors("lookup of 'web-1'"):
            raise original

    assert info.value.__cause__ is original
    assert str(info.value).startswith("lookup of 'web-1': Domain not found")


def test_connection_errors_tell_what_to_do() -> None:
    err = translate_libvirt_error(
        make_error(libvirt.VIR_ERR_NO_CONNECT, "no driver"), "openReadOnly('x:///')"
    )

    assert "libvirtd is running" in str(err)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (VmNotFoundError("x"), "not-found"),
        (VmShutOffError("x"), "shut-off"),
        (NoDataError("x"), "no-data"),
        (OperationUnsupportedError("x"), "unsupported"),
        (OperationInvalidError("x"), "invalid"),
        (ConnectionFailedError("x"), "connection"),
        (HypervisorError("x"), "hypervisor"),
    ],
)
def test_error_kind_slugs(error: HypervisorError, kind: str) -> None:
    assert error_kind(error) == kind
