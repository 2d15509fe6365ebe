"""``rightsizer catalogue check FILE``: validate a machine-type catalogue or block-storage price list."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rightsizer.context import Context

DESCRIPTION = """\
check FILE: read a price file and print every problem on one line naming its row (line number) and column;
exit 0 when it is usable, 1 when it has errors, 2 when it cannot be read. Machine-type catalogues (CSV or
TOML; set [costs] catalogue = "FILE" to use one) and block-storage price lists are recognised by their
header. The format: docs/catalogue.md; an example: rightsizer/examples/prices.example.csv in the package.
"""


def add_parser(sub: argparse._SubParsersAction[Any], parent: argparse.ArgumentParser) -> None:
    """Register ``catalogue``."""
    p = sub.add_parser("catalogue", parents=[parent], help="check your own price list",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("check",), help="check: validate FILE")
    p.add_argument("file", metavar="FILE", help="catalogue CSV/TOML or block-storage price CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    import sys

    from analytics.catalogue_check import check_file

    result = check_file(args.file)
    if args.output == "json":
        ctx.out.emit({"file": str(result.path), "kind": result.kind, "rows": result.rows,
                      "currency": result.currency, "ok": not result.errors, "errors": list(result.errors),
                      "notes": list(result.notes)}, "json")
    else:
        for line in result.errors:
            print(f"error: {line}", file=sys.stderr)
        for line in result.notes:
            print(f"note: {line}", file=sys.stderr)
        verdict = f"{len(result.errors)} error(s)" if result.errors else "ok"
        ctx.out.stream.write(f"{result.path}: {result.kind}, {result.rows} row(s), currency "
                             f"{result.currency or '?'}: {verdict}\n")
    return 1 if result.errors else 0
