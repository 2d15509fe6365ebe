"""The project's own exceptions. Third-party errors are translated at the edge with ``raise ... from``."""

from __future__ import annotations

# The base classes live in core (settings raise them too); collector's kinds below extend them.
from core.errors import ConfigError, InputError, RightsizerError

__all__ = ["ConfigError", "InputError", "RightsizerError"]


class HypervisorError(RightsizerError):
    """A libvirt call failed."""


class ConnectionFailedError(HypervisorError):
    """The URI could not be opened or the connection broke."""


class VmNotFoundError(HypervisorError):
    """The domain does not exist (any more)."""


class VmShutOffError(HypervisorError):
    """The operation needs a running domain."""


class NoDataError(HypervisorError):
    """The domain exists but the hypervisor returned no stats for it."""


class OperationUnsupportedError(HypervisorError):
    """The driver does not support this call (e.g. bulk stats on some drivers)."""


class OperationInvalidError(HypervisorError):
    """libvirt refused the operation as invalid for the domain's state or arguments."""


class StoreError(RightsizerError):
    """The time-series store could not be read or written."""


class StoreRefusedError(StoreError, InputError):
    """The file given as the store is not one: another program's database, empty, or damaged (exit 2)."""


class StoreLockedError(StoreError):
    """Another process already writes to this store (one writer per store)."""


class ActionError(RightsizerError):
    """Base for resize action failures."""


class ActionSkipped(ActionError):  # noqa: N818 - a skip is an outcome, named as in watcher
    """A pre-condition says the action should not run (VM gone, excluded, resized recently)."""


class ActionFailed(ActionError):  # noqa: N818
    """The action could not be applied (target too large for host, libvirt error)."""
