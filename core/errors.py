"""The base of the project's exceptions; the packages above add their own kinds beneath these."""

from __future__ import annotations


class RightsizerError(Exception):
    """Base of every error the CLI reports as one line (exit 1)."""


class InputError(RightsizerError):
    """Bad user input: config, catalogue, trace, plan, flag value. The CLI exits 2."""


class ConfigError(InputError):
    """The configuration file or an environment override is invalid."""
