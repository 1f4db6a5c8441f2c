"""The contract between `posbus` (adapters/cli/main.py) and its command modules.

A command module exposes `register(subparsers: SubParsers) -> None`, which
calls `add_command` once per (sub)command it provides, adds its arguments and
names its handler. `main` builds the parser from its registry of `register`
functions, parses, and calls the chosen handler with the parsed arguments.

Handlers run on the main thread, print their result on stdout and return an
exit code. They report failures by raising: `UsageError` (bad arguments the
parser could not catch; exit 2, with the command's usage line),
`CommandError` (a failure with a chosen exit code) or any `PosbusError`
(exit 1). `main` turns these into a message on stderr; a handler must not have
written a partial result on stdout before raising.

Keep heavy imports (pyzmq, pykka, ccxt) inside handlers, not at module top,
so `posbus --help` and every other command stay fast to start.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILURE = 1
"""The command ran and failed (an error from posbus or the outside world)."""
EXIT_USAGE = 2
"""Bad invocation or bad input file: nothing was done. Same code argparse uses."""
EXIT_ESCALATED = 3
"""`posbus worker`: the worker's root supervisor gave up (restart intensity exceeded)."""
EXIT_JOURNAL_LOCKED = 4
"""`posbus worker`: another writer holds its journal; no restart helps until it lets go."""

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What `ArgumentParser.add_subparsers()` returns; commands are added to it."""

Handler: TypeAlias = Callable[[argparse.Namespace], int]
"""Runs a parsed command and returns its exit code."""

Registrar: TypeAlias = Callable[[SubParsers], None]
"""A command module's `register`: adds its command(s) to the given subparsers."""


class CommandError(Exception):
    """A command failed; `main` prints `posbus: error: <message>` and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CommandError):
    """Arguments that parse but make no sense together (e.g. a --mark for an unknown symbol).

    `main` prints the command's usage line and the message, and exits 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and examples as written and gives command names a wider column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)
        # argparse measures subcommand names without their extra indent and
        # then wraps them onto their own line; a floor on the column avoids it.
        self._action_max_length = 20


def add_command(
    subparsers: SubParsers,
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    """Add a command named `name` and return its parser so the caller can add arguments.

    `summary` is the one line shown in the parent's command list; the
    command's own --help shows `description` and then `examples` verbatim.
    """
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples.rstrip()}",
        formatter_class=HelpFormatter,
    )
    # The innermost chosen parser's defaults win, so a group's default
    # handler is replaced when one of its subcommands is chosen.
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser
