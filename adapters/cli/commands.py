"""`posbus commands`: every command of the stack's services and admin sockets, from the code.

The catalogue (`SERVICES`) is the declarations the workers dispatch with
(actors/*_schema.py, bus/*_schema.py); this module only renders it: a text
listing, JSON (`--json`) or the markdown of docs/commands.md (`--markdown`,
which a test compares with the file). It needs no running stack and must
never describe a command any other way than its declaration does.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command

_DESCRIPTION = """\
Print every command a client can send to a posbus stack, read from the
declarations the workers check commands against: each service (the
positions shards, risk, the gateway, the broker), the admin socket of every
process and the commands published on the event bus; each command's
arguments (type, required or default, meaning), its reply's fields, the
errors it may answer and an example. No stack needs to run.
--markdown prints docs/commands.md.
"""

_EXAMPLES = """\
  posbus commands
  posbus commands --json | jq '.services[].commands[].name'
  posbus commands --markdown > docs/commands.md
"""

#: What every command may answer, whatever its service.
COMMON_ERRORS = {
    "UnknownCommand": "the service (or admin socket) declares no command of that name; "
    "the message lists the ones it does. Nothing was done",
    "InvalidArgument": "an argument is unknown, missing or not of its declared type; "
    "the message names it and says what was expected. Nothing was done",
    "WireError": "the frame is not a valid command envelope (request id `unknown`)",
}
#: What a command sent through the broker may answer besides.
BROKER_ERRORS = {
    "UnknownService": "no worker ever offered the service",
    "ServiceUnavailable": "every worker of the service is gone; not delivered (transient)",
    "UnknownOutcome": "the worker died holding the request: it may or may not have run",
    "ReplyTooLarge": "the reply would exceed the message size limit: ask for less",
}


def services() -> tuple[Any, ...]:
    """Every service's declaration, in the order the docs list them."""
    from posbus.actors.gateway_schema import GATEWAY
    from posbus.actors.positions_schema import POSITIONS
    from posbus.actors.risk_schema import PUBLISHED, RISK
    from posbus.bus.admin_schema import ADMIN
    from posbus.bus.broker_schema import BROKER

    return (POSITIONS, RISK, GATEWAY, BROKER, ADMIN, PUBLISHED)


def register(subparsers: SubParsers) -> None:
    """Add `posbus commands`."""
    parser = add_command(
        subparsers,
        "commands",
        summary="list every command of the stack, its arguments and replies (no stack needed)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="print as JSON")
    shape.add_argument("--markdown", action="store_true", help="print docs/commands.md")


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus commands`."""
    if args.json:
        print(json.dumps(catalogue(), indent=2))
    elif args.markdown:
        print(markdown(), end="")
    else:
        print(_text(), end="")
    return EXIT_OK


def catalogue() -> dict[str, Any]:
    """Every service and command as JSON-ready values."""
    return {
        "errors": {"every command": COMMON_ERRORS, "through the broker": BROKER_ERRORS},
        "services": [
            {
                "service": schema.service,
                "summary": schema.summary,
                "reached": schema.reached,
                "commands": [_command(spec) for spec in schema.commands],
            }
            for schema in services()
        ],
    }


def _command(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "summary": spec.summary,
        "arguments": [
            {
                "name": arg.name,
                "type": arg.type,
                "required": arg.required,
                "default": arg.default,
                "description": arg.description,
            }
            for arg in spec.argument_docs()
        ],
        "reply": dict(spec.reply),
        "errors": dict(spec.errors),
        "example": {"request": _request(spec), "reply": _reply(spec)},
    }


def _request(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "args": dict(spec.example.args), "request_id": "r-1"}


def _reply(spec: Any) -> dict[str, Any]:
    return {"request_id": "r-1", "ok": True, "result": dict(spec.example.reply), "error": None}


def _text() -> str:
    lines: list[str] = []
    for schema in services():
        lines.append(f"{schema.service}: {schema.summary}")
        for spec in schema.commands:
            lines.append(f"  {spec.name}: {spec.summary}")
            for arg in spec.argument_docs():
                need = "required" if arg.required else f"default {json.dumps(arg.default)}"
                lines.append(f"      {arg.name} ({arg.type}; {need}): {arg.description}")
        lines.append("")
    return "\n".join(lines)


# -- docs/commands.md ---------------------------------------------------------------------

_HEADER = """\
<!-- Generated by `posbus commands --markdown > docs/commands.md`; edit the declarations
     (actors/*_schema.py, bus/*_schema.py), not this file. -->
# Commands

Every command a client can send to a posbus stack, generated from the
declarations the workers check each command against. A command is a
`command` envelope (`name`, `args`, `request_id`; [wire-format.md](wire-format.md))
and is answered by a `reply` envelope with the same `request_id`: `ok`,
`result` (the reply fields below) or `error` (`type`, `message`,
`transient`). Through the broker a command travels as the frames
`[b"PBC1", SERVICE, ENVELOPE]` on the `commands` endpoint
([bus.md](bus.md)); an admin command is one frame on a process's admin
socket. `posbus status --json` lists the endpoints (`bus`) and each
worker's service and admin socket; `posbus commands --json` prints this
page's content as JSON.

Arguments are checked before anything is done: a decimal is a plain decimal
string (`"0.5"`, never `0.5`, `5` or `"5e-1"`), an int is an int (never
`"5"`), a bool a bool (never `"yes"`), and an argument a command does not
declare is refused rather than ignored. An argument shown with a default
may be left out (or sent as null when its type allows null).
"""


def markdown() -> str:
    """docs/commands.md."""
    out = [_HEADER]
    out.append("## Errors every command may answer\n")
    out += _table(("Error", "When"), [(f"`{k}`", v) for k, v in COMMON_ERRORS.items()])
    out.append("\nThrough the broker, besides:\n")
    out += _table(("Error", "When"), [(f"`{k}`", v) for k, v in BROKER_ERRORS.items()])
    out.append("")
    for schema in services():
        out.append(f"## {schema.service}\n")
        out.append(f"{schema.summary} Reached through {schema.reached}.\n")
        out.append("Commands: " + ", ".join(f"`{spec.name}`" for spec in schema.commands) + ".\n")
        for spec in schema.commands:
            out += _section(schema, spec)
    return "\n".join(out).rstrip() + "\n"


def _section(schema: Any, spec: Any) -> list[str]:
    out = [f"### {schema.service}: {spec.name}\n", f"{spec.summary}\n"]
    args = spec.argument_docs()
    if args:
        out += _table(
            ("Argument", "Type", "Required", "Meaning"),
            [
                (
                    f"`{a.name}`",
                    a.type,
                    "yes" if a.required else f"no, default `{json.dumps(a.default)}`",
                    a.description,
                )
                for a in args
            ],
        )
    else:
        out.append("No arguments.")
    out.append("")
    if spec.reply:
        out += _table(("Reply field", "Meaning"), [(f"`{k}`", v) for k, v in spec.reply.items()])
    else:
        out.append("The reply's result is empty.")
    out.append("")
    if spec.errors:
        out.append("Errors besides the common ones:\n")
        out += [f"- `{name}`: {when}" for name, when in spec.errors.items()]
        out.append("")
    out.append("Example:\n")
    out.append("```json")
    out.append(json.dumps(_request(spec)))
    out.append(json.dumps(_reply(spec)))
    out.append("```\n")
    return out


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return lines
