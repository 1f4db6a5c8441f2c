"""`posbus risk`, `posbus halt`, `posbus resume`: the risk supervisor of the running stack."""

from __future__ import annotations

import argparse
import json
import time

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options
from posbus.adapters.cli.time_text import moment_text


def register(subparsers: SubParsers) -> None:
    """Add `posbus risk`, `posbus halt` and `posbus resume`."""
    risk = add_command(
        subparsers,
        "risk",
        summary="show the risk state, metrics and limits of the running stack",
        description="Ask the risk worker for its full state (risk.inspect).\n",
        examples="  posbus risk\n  posbus risk --json | jq .state\n",
        handler=run_risk,
    )
    risk.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(risk)
    halt = add_command(
        subparsers,
        "halt",
        summary="the kill switch: refuse new risk until 'posbus resume'",
        description="Halt trading (journaled by the risk worker before it answers).\n",
        examples='  posbus halt --reason "exchange incident"\n',
        handler=run_halt,
    )
    halt.add_argument("--reason", default="manual halt from the CLI")
    halt.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(halt)
    resume = add_command(
        subparsers,
        "resume",
        summary="lift a manual halt (never an unexpired cool-down)",
        description="Resume after 'posbus halt'.\n",
        examples="  posbus resume\n",
        handler=run_resume,
    )
    resume.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(resume)


def run_risk(args: argparse.Namespace) -> int:
    """Handler of `posbus risk`."""
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        state = client.call("risk", "risk.inspect")
    finally:
        client.close()
    if args.json:
        print(json.dumps(state, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"state {state.get('state')}  halt reason {state.get('halt_reason') or '-'}")
    now_ns = time.time_ns()
    for key, value in sorted(dict(state.get("metrics", {})).items()):
        print(f"  {key:<28} {_shown(key, value, now_ns)}")
    return EXIT_OK


def _shown(key: str, value: object, now_ns: int) -> object:
    """A metric as printed: timestamps (`*_ns` keys) in ISO 8601 UTC."""
    if key.endswith("_ns") and value not in (None, ""):
        return moment_text(int(str(value)), now_ns)
    return value


def _switch(args: argparse.Namespace, name: str, body: dict[str, str | int]) -> int:
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        result = client.call("risk", name, {**body, "ts_ns": time.time_ns()})
    finally:
        client.close()
    print(json.dumps(result, sort_keys=True) if args.json else f"risk state {result.get('state')}")
    return EXIT_OK


def run_halt(args: argparse.Namespace) -> int:
    """Handler of `posbus halt`."""
    return _switch(args, "risk.halt", {"reason": args.reason})


def run_resume(args: argparse.Namespace) -> int:
    """Handler of `posbus resume`."""
    return _switch(args, "risk.resume", {})
