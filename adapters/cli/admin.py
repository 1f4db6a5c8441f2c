"""`posbus admin WORKER COMMAND ...`: one admin command to one worker's admin socket."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from posbus.adapters.cli.command import EXIT_FAILURE, EXIT_OK, SubParsers, UsageError, add_command
from posbus.adapters.cli.stack_options import add_stack_options

# The positional argument each command takes, as its key in the request.
_POSITIONAL = {"inspect": "actor", "restart": "actor", "log-level": "level"}

_DESCRIPTION = """\
Send COMMAND to WORKER's admin socket (ipc in RUN_DIR/admin, owner only) and
print the reply as JSON. Commands every worker answers:

  status              name, role, shard, pid, uptime, broker connection
  actors              each actor: name, state, mailbox depth, restarts,
                      age of its last message
  inspect ACTOR       one actor's full state
  metrics             message counts and rates, latency percentiles,
                      restarts, rejects
  restart ACTOR       make ACTOR fail; its supervisor restarts it and it
                      recovers from its journal
  snapshot            flush the journal and report its size
  log-level LEVEL     DEBUG, INFO, WARNING, ERROR or CRITICAL

Extra KEY=VALUE arguments are passed as strings. Exit code 1 when the worker
answers with an error.
"""

_EXAMPLES = """\
  posbus admin positions.0 actors
  posbus admin positions.0 inspect position/default/BTC/USDT
  posbus admin risk metrics
  posbus admin gateway.default log-level DEBUG
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus admin`."""
    parser = add_command(
        subparsers,
        "admin",
        summary="send an admin command to one worker (status, actors, inspect, ...)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument("worker", metavar="WORKER")
    parser.add_argument("command", metavar="COMMAND")
    parser.add_argument("rest", nargs="*", metavar="ARG")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S", help="(5 s)")
    add_stack_options(parser)


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus admin`."""
    from posbus.adapters.launcher_client import StackClient

    body: dict[str, str | int | bool | list[str] | None] = {}
    for item in args.rest:
        key, sep, value = item.partition("=")
        if sep:
            body[key] = value
        elif args.command in _POSITIONAL and _POSITIONAL[args.command] not in body:
            body[_POSITIONAL[args.command]] = item
        else:
            raise UsageError(f"unexpected argument {item!r}; use KEY=VALUE")
    client = StackClient(args.config, args.run_dir)
    try:
        _check_worker(client, args.worker)
        reply = client.admin(args.worker, args.command, body, timeout=args.timeout)
    finally:
        client.close()
    if not reply.ok:
        assert reply.error is not None
        print(f"posbus: error: {reply.error['type']}: {reply.error['message']}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(reply.result, indent=2, sort_keys=True))
    return EXIT_OK


def _check_worker(client: Any, name: str) -> None:
    """UsageError when the stack's launcher runs here and has no worker `name`.

    A worker started by hand (`posbus worker`, another host's layout) has no
    launcher's run.json to check against; its admin socket is simply tried.
    """
    from posbus.adapters.launcher_layout import pid_alive

    data = client.run_dir.read_run()
    if data is None or not pid_alive(int(data.get("launcher_pid", 0))):
        return
    workers = sorted(data.get("workers", {}))
    if name not in workers:
        raise UsageError(f"no worker {name!r} in this stack; its workers: {', '.join(workers)}")
