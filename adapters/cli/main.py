"""`posbus`: the command-line entry point (console script `posbus`).

Builds an argparse parser from a registry of command modules (each provides
`register(subparsers)`, see adapters/cli/command.py), parses, and dispatches
to the chosen command's handler on the main thread. To add a command, write a
module with a `register` function and add it to `COMMANDS`.

Exit codes: 0 success, 1 the command failed, 2 bad usage or bad input (a
missing or invalid config file included). Errors are printed on stderr, one
line, `posbus: error: ...`; stdout carries only results; a reader that goes
away (`| head`) ends the command quietly with 0. This module must never
swallow an error it does not understand: anything that is not a posbus or
command error propagates with its traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from posbus.actors.model.errors import PosbusError
from posbus.adapters.cli import (
    admin,
    backtest,
    chaos,
    commands,
    demo,
    down,
    journal,
    keys,
    order,
    orders,
    positions,
    risk,
    status,
    top,
    up,
    web,
    worker,
)
from posbus.adapters.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    HelpFormatter,
    Registrar,
    UsageError,
)

COMMANDS: tuple[Registrar, ...] = (
    demo.register,
    up.register,
    down.register,
    status.register,
    functools.partial(positions.register, list_handler=orders.list_positions),
    orders.register,
    order.register,
    risk.register,
    admin.register,
    commands.register,
    top.register,
    web.register,
    keys.register,
    worker.register,
    backtest.register,
    chaos.register,
    journal.register,
)
"""Every top-level command's `register`, in the order `posbus --help` lists them.

`posbus positions` (no subcommand) lists the running stack's positions through
`orders.list_positions`, plugged in with `functools.partial`.
"""

_DESCRIPTION = """\
posbus: an actor-model position manager for crypto trading desks.
Run `posbus COMMAND --help` for a command's options and examples.
"""

_EPILOG = """\
examples:
  posbus up --demo
  posbus status --json
  posbus demo
  posbus demo --duration 5 --json
  posbus positions rebuild --trades examples/trades.csv --mark BTC-USDT=64000
  posbus positions rebuild --help
  posbus backtest --data examples/data/btc_quotes.csv --strategy ma_crossover
"""


def build_parser(commands: Sequence[Registrar] | None = None) -> argparse.ArgumentParser:
    """The `posbus` parser with every command in `commands` (default: `COMMANDS`) registered."""
    parser = argparse.ArgumentParser(
        prog="posbus",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMANDS if commands is None else commands:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `posbus` with `argv` (default: the process arguments) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help, --version and usage errors; return the code instead.
        return _exit_code(exc)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
        # Inside the try: a closed pipe shows here, not in the interpreter's exit flush.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`posbus orders | head -3`): what it wanted it got.
        _silence_stdout()
        return EXIT_OK
    except UsageError as exc:
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.print_usage(sys.stderr)
        print(f"{command_parser.prog}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except CommandError as exc:
        print(f"posbus: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except PosbusError as exc:
        print(f"posbus: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if _is_config_error(exc) else EXIT_FAILURE
    return code


def _is_config_error(exc: PosbusError) -> bool:
    """A missing or invalid config file is bad input: nothing was done (exit 2)."""
    # Imported here: the config module pulls in the actors, too slow for `posbus --help`.
    from posbus.adapters.config import ConfigError

    return isinstance(exc, ConfigError)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's exit flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    return EXIT_FAILURE


def _version() -> str:
    try:
        return version("posbus")
    except PackageNotFoundError:
        return "unknown (not installed)"


if __name__ == "__main__":
    raise SystemExit(main())
