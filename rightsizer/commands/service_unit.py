"""``rightsizer service-unit agent|central``: print a systemd unit shipped in the package, with this install's paths."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

ROLES = ("agent", "central")
DEFAULT_CONFIG = "/etc/rightsizer/rightsizer.toml"

DESCRIPTION = """\
Print the systemd unit for a role, with ExecStart pointing at this install's rightsizer and --config at
--config-path. agent: one per hypervisor, samples libvirt and serves /metrics (Type=notify: READY once the
first cycle is stored, WATCHDOG after every cycle). central: reads the agents' history from Prometheus or
VictoriaMetrics ([source] in the config) and serves the dashboard. Both run as the user 'rightsizer' (in
the libvirt group) with the store in /var/lib/rightsizer. Install with:
  rightsizer service-unit agent > /etc/systemd/system/rightsizer-agent.service
See docs/service.md.
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``service-unit``."""
    p = sub.add_parser("service-unit", parents=[parent], help="print the systemd unit for the agent or central role",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", choices=ROLES, help="agent (per hypervisor) or central (dashboard over Prometheus)")
    p.add_argument("--config-path", metavar="FILE", default=DEFAULT_CONFIG,
                   help=f"config file the unit passes to rightsizer (default {DEFAULT_CONFIG})")
    p.add_argument("--executable", metavar="PATH", default=None,
                   help="rightsizer executable the unit runs (default: the one next to this Python)")
    p.set_defaults(func=run)


def unit_text(role: str, *, executable: str, config_path: str) -> str:
    """The unit file for ``role`` with its ``@RIGHTSIZER@`` and ``@CONFIG@`` placeholders filled in."""
    from importlib.resources import files

    from collector.errors import InputError

    for flag, value in (("--executable", executable), ("--config-path", config_path)):
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise InputError(f"{flag} {value!r} must be an absolute path without spaces; pass one")
    template = files("rightsizer").joinpath("units", f"rightsizer-{role}.service").read_text(encoding="utf-8")
    return template.replace("@RIGHTSIZER@", executable).replace("@CONFIG@", config_path)


def default_executable() -> str:
    """The ``rightsizer`` script of the running interpreter's environment (the venv it was installed in)."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "rightsizer"
    if beside.is_file():
        return str(beside)
    found = shutil.which("rightsizer")
    return str(Path(found).resolve()) if found else "/usr/local/bin/rightsizer"


def run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.out.stream.write(unit_text(args.role, executable=args.executable or default_executable(),
                                   config_path=args.config_path))
    return 0
