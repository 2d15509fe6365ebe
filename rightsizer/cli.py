"""The ``rightsizer`` command: parse flags, load settings once, run one subcommand.

Exit codes: 0 ok, 1 runtime failure, 2 bad input (one line naming the problem and what to do).
Subcommand modules keep their module-level imports light; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from collector.errors import InputError, RightsizerError

#: Subcommands in the order --help lists them; each is rightsizer.commands.<module>.
COMMANDS: tuple[str, ...] = (
    "serve", "collect", "import_", "costs", "recommend", "report", "apply", "backtest", "schedule", "digest",
    "dismiss", "doctor", "store", "catalogue", "service_unit",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags in one line and exits 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def common_flags() -> argparse.ArgumentParser:
    """Flags every subcommand accepts."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", help="TOML config file (env: RIGHTSIZER_CONFIG)")
    p.add_argument("--db", metavar="PATH", help="SQLite store (default: var/rightsizer.db)")
    p.add_argument("--output", choices=("table", "json", "csv"), default="table", help="output format")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rightsizer",
        description="Per-VM hourly cost, right-sizing and safe resizes for libvirt/KVM hosts.",
    )
    from rightsizer import __version__

    parser.add_argument("--version", action="version", version=f"rightsizer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    parent = common_flags()
    for name in COMMANDS:
        module = importlib.import_module(f"rightsizer.commands.{name}")
        module.add_parser(sub, parent)
    return parser


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, Any] = {}
    if getattr(args, "db", None):
        over.setdefault("store", {})["path"] = args.db
    from rightsizer.commands.sourceflags import source_overrides

    if source := source_overrides(args):
        over["source"] = source
    hook = getattr(args, "settings_overrides", None)
    if hook is not None:
        for section, values in hook(args).items():
            over.setdefault(section, {}).update(values)
    return over


def main(argv: Sequence[str] | None = None) -> int:
    from collector.heap import retain_freed_memory
    from core.settings import load_settings
    from rightsizer.context import Context
    from rightsizer.output import Output

    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    if args.command == "serve":
        level = min(level, logging.INFO)
    from rightsizer.journal import configure_logging

    configure_logging(level)  # stderr with timestamps; under systemd, stdout for journald
    long_running = args.command == "serve" or (args.command == "collect" and not args.once)
    if not long_running and not args.verbose:
        # one-shot commands report connection problems as their own one-line error
        logging.getLogger("collector.hypervisor").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one INFO line per job run is noise
    if not long_running:
        # a one-shot analytics run over a large fleet reuses freed arrays' pages instead of faulting in new
        # ones; a long-running serve keeps glibc's defaults, so memory freed after a refresh goes back
        retain_freed_memory()
    ctx: Context | None = None
    try:
        settings = load_settings(args.config, overrides=_settings_overrides(args))
        ctx = Context(settings=settings, out=Output(args.output), command=args.command)
        code: int = args.func(args, ctx)
        sys.stdout.flush()  # a full disk under a redirected stdout fails here, inside the handlers below
        return code
    except InputError as exc:
        print(f"rightsizer {args.command}: {exc}", file=sys.stderr)
        return 2
    except RightsizerError as exc:
        print(f"rightsizer {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()  # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        return 1
    except OSError as exc:
        from collector.store.faults import is_io_fault

        if not is_io_fault(exc):
            raise
        _quiet_stdout()  # what is still buffered would fail again at exit
        print(f"rightsizer {args.command}: cannot write the output: {exc.strerror}; free space or check the disk "
              "it goes to, then run again", file=sys.stderr)
        return 1
    finally:
        if ctx is not None:
            ctx.close()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of buffered output cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
