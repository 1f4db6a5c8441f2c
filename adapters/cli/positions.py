"""`posbus positions`: the command group for positions.

`posbus positions [--json]` (no subcommand) lists the positions of a running
stack; that action is pluggable: pass `list_handler` to `register` (main's
registry does). Until a stack client is wired, the default handler says there
is no running stack and exits 2. Subcommands (`rebuild`, ...) are registered
into the group by their own modules' `register` functions.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from posbus.adapters.cli import positions_rebuild
from posbus.adapters.cli.command import (
    EXIT_USAGE,
    CommandError,
    Handler,
    Registrar,
    SubParsers,
    add_command,
)
from posbus.adapters.cli.stack_options import add_stack_options

SUBCOMMANDS: tuple[Registrar, ...] = (positions_rebuild.register,)
"""`register` functions of the `posbus positions ...` subcommands."""

_DESCRIPTION = """\
Show positions. Without a subcommand, list the positions held by the running
stack (started with `posbus up`), by account and symbol, then the P&L totals of
each account and of the firm, one row per quote currency (amounts in different
currencies are never added). Tables show values at the venue's precision; JSON
keeps every digit. With `rebuild`, recompute positions offline from a
trade-history CSV export.
"""

_EXAMPLES = """\
  posbus positions                 # list positions of the running stack
  posbus positions --json          # same, as JSON (positions, accounts, firm)
  posbus positions --account desk-a
  posbus positions rebuild --trades examples/trades.csv --mark BTC-USDT=64000
"""


def no_running_stack(args: argparse.Namespace) -> int:
    """Default `posbus positions` action until a stack client is wired: fail with a hint."""
    raise CommandError(
        "no running stack to list positions from; start one with 'posbus up', "
        "or rebuild offline with 'posbus positions rebuild --trades FILE.csv'",
        EXIT_USAGE,
    )


def register(
    subparsers: SubParsers,
    list_handler: Handler = no_running_stack,
    subcommands: Sequence[Registrar] = SUBCOMMANDS,
) -> None:
    """Add `positions` (run `list_handler` when no subcommand is given) and its subcommands."""
    parser = add_command(
        subparsers,
        "positions",
        summary="list positions, or rebuild them from a trade file",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=list_handler,
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--account", metavar="NAME", help="only this account's positions")
    add_stack_options(parser)
    group = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    for register_subcommand in subcommands:
        register_subcommand(group)
