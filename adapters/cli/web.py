"""`posbus web`: serve a read-only live dashboard of the running stack on loopback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posbus.adapters.cli.command import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    UsageError,
    add_command,
)
from posbus.adapters.cli.stack_options import add_stack_options

DEFAULT_PORT = 8780

_DESCRIPTION = """\
Serve a dashboard of the stack running in the run directory, for a browser
on this machine: accounts, positions (qty, average entry, mark, realized and
unrealized P&L, at the venue's price and quantity precision), P&L totals per
currency, the risk state and how much of each limit is used, working orders,
recent risk events and fills, the latest quotes, and each worker's health.
The page updates itself (server-sent events): at once when a fill or a risk
event is published on the bus, and every --interval seconds.

It only reads: it sends no command that changes anything. It listens on a
loopback address only (--host, --port; use an SSH tunnel to look from
elsewhere) and every request needs the access token: a fresh one is made at
each start, unless --token-file names an owner-only (0600) file holding one.
The URL to open, with the token, is printed on stdout, and nowhere else: the
token is never logged. Opening it sets a session cookie and drops the token
from the address bar. Scripts may send `Authorization: Bearer TOKEN` to
/api/snapshot (JSON) or /api/events (event stream).

Runs until Ctrl-C or SIGTERM. Exit code 2 when no stack is running (as
`posbus status`), for a bad option or token file; 1 when the port cannot be
bound.
"""

_EXAMPLES = """\
  posbus web
  posbus web --port 9000 --interval 0.5
  posbus web --token-file var/web.token
  ssh -L 8780:127.0.0.1:8780 trading-host   # then open the printed URL here
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus web`."""
    parser = add_command(
        subparsers,
        "web",
        summary="serve a read-only live dashboard of the running stack (loopback, token)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="loopback address to listen on: 127.0.0.1, ::1 or localhost (127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port; 0 picks a free one (the URL printed says which) ({DEFAULT_PORT})",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the access token from FILE (mode 0600, 20-256 characters of "
        "A-Z a-z 0-9 _ . ~ -) instead of making a new one",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="read the stack every S seconds besides at each fill or risk event (1 s)",
    )
    parser.add_argument(
        "--admin-timeout",
        type=float,
        default=0.5,
        metavar="S",
        help="wait at most S for each worker's admin answer (0.5 s)",
    )
    add_stack_options(parser)


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus web`."""
    from posbus.adapters.launcher_client import StackClient
    from posbus.adapters.log_format import configure_logging
    from posbus.adapters.web.access_token import TokenError, new_token, read_token_file
    from posbus.adapters.web.server import WebSettings, loopback_address, serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.interval <= 0:
        raise UsageError(f"--interval must be positive, got {args.interval}")
    if args.admin_timeout <= 0:
        raise UsageError(f"--admin-timeout must be positive, got {args.admin_timeout}")
    try:
        loopback_address(args.host)
    except ValueError:
        raise UsageError(
            f"--host {args.host}: the dashboard listens on a loopback address only "
            "(127.0.0.1, ::1, localhost); reach it from elsewhere through an SSH tunnel"
        ) from None
    client = StackClient(args.config, args.run_dir)
    client.run_info()  # NoStack (exit 2) before anything listens
    try:
        token = read_token_file(Path(args.token_file)) if args.token_file else new_token()
    except TokenError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    configure_logging(client.config.log.level, client.config.log.format)
    settings = WebSettings(
        host=args.host, port=args.port, interval=args.interval, admin_timeout=args.admin_timeout
    )

    def announce(url: str) -> None:
        print(url, flush=True)
        print(
            f"posbus: dashboard of {client.run_dir.root}: open the URL above "
            "(it carries the access token); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    serve(client, token, settings, announce)
    return EXIT_OK
