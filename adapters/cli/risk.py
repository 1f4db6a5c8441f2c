"""`posbus risk`, `posbus halt`, `posbus resume`: the risk supervisor of the running stack."""

from __future__ import annotations

import argparse
import json
import time

from posbus.adapters.cli.command import EXIT_OK, SubParsers, UsageError, add_command
from posbus.adapters.cli.stack_options import add_stack_options
from posbus.adapters.cli.time_text import moment_text


def register(subparsers: SubParsers) -> None:
    """Add `posbus risk`, `posbus halt` and `posbus resume`."""
    risk = add_command(
        subparsers,
        "risk",
        summary="show the risk state, metrics and limits of the running stack",
        description=(
            "Ask the risk worker for its full state (risk.inspect). With several accounts:\n"
            "the firm-wide state and metrics first (when [firm.risk] sets limits), then\n"
            "each account's; an order must pass its account's limits and the firm's.\n"
        ),
        examples=(
            "  posbus risk\n  posbus risk --account hedge\n  posbus risk --json | jq .state\n"
        ),
        handler=run_risk,
    )
    risk.add_argument("--account", help="show this account only (a stack with several)")
    risk.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(risk)
    halt = add_command(
        subparsers,
        "halt",
        summary="the kill switch: refuse new risk until 'posbus resume'",
        description=(
            "Halt trading (journaled by the risk worker before it answers). Without\n"
            "--account the whole stack halts (with several accounts: every account);\n"
            "with it, that account only. Risk-reducing orders still pass a halt.\n"
        ),
        examples=(
            '  posbus halt --reason "exchange incident"\n'
            '  posbus halt --account hedge --reason "venue maintenance"\n'
        ),
        handler=run_halt,
    )
    halt.add_argument("--reason", default="manual halt from the CLI")
    halt.add_argument("--account", help="halt this account only (a stack with several)")
    halt.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(halt)
    resume = add_command(
        subparsers,
        "resume",
        summary="lift a manual halt (never an unexpired cool-down)",
        description="Resume after 'posbus halt' (of the stack, or of --account).\n",
        examples="  posbus resume\n  posbus resume --account hedge\n",
        handler=run_resume,
    )
    resume.add_argument("--account", help="resume this account only (a stack with several)")
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
    accounts = dict(state.get("accounts") or {})
    if args.account is not None:
        if args.account not in accounts:
            known = ", ".join(accounts) or "(one account: leave --account out)"
            raise UsageError(
                f"--account: {args.account!r} is not an account of the stack; known: {known}"
            )
        state = accounts[args.account]
        accounts = {}
    if args.json:
        print(json.dumps(state, indent=2, sort_keys=True))
        return EXIT_OK
    now_ns = time.time_ns()
    title = "firm" if accounts else f"account {state['account']}" if state.get("account") else ""
    _print_scope(title, state, now_ns)
    for name, view in accounts.items():
        _print_scope(f"account {name}", view, now_ns)
    return EXIT_OK


def _print_scope(title: str, state: dict[str, object], now_ns: int) -> None:
    """One supervisor's state line and metrics (a stack without firm limits has none)."""
    head = f"{title}: " if title else ""
    if state.get("limits") is None and "metrics" not in state:
        print(f"{head}state {state.get('state')} (the worst account's; no firm-wide limits)")
        return
    print(f"{head}state {state.get('state')}  halt reason {state.get('halt_reason') or '-'}")
    metrics = state.get("metrics")
    for key, value in sorted(dict(metrics if isinstance(metrics, dict) else {}).items()):
        print(f"  {key:<28} {_shown(key, value, now_ns)}")


def _shown(key: str, value: object, now_ns: int) -> object:
    """A metric as printed: timestamps (`*_ns` keys) in ISO 8601 UTC."""
    if key.endswith("_ns") and value not in (None, ""):
        return moment_text(int(str(value)), now_ns)
    return value


def _switch(args: argparse.Namespace, name: str, body: dict[str, str | int]) -> int:
    from posbus.adapters.launcher_client import StackClient
    from posbus.bus.errors import CommandFailed

    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        try:
            result = client.call("risk", name, {**body, "ts_ns": time.time_ns()})
        except CommandFailed as exc:
            if exc.error_type == "InvalidArgument":  # an account the stack does not have
                raise UsageError(str(exc).removeprefix("InvalidArgument: ")) from exc
            raise
    finally:
        client.close()
    print(json.dumps(result, sort_keys=True) if args.json else f"risk state {result.get('state')}")
    return EXIT_OK


def run_halt(args: argparse.Namespace) -> int:
    """Handler of `posbus halt`."""
    return _switch(args, "risk.halt", {"reason": args.reason, **_account(args)})


def run_resume(args: argparse.Namespace) -> int:
    """Handler of `posbus resume`."""
    return _switch(args, "risk.resume", _account(args))


def _account(args: argparse.Namespace) -> dict[str, str]:
    return {} if args.account is None else {"account": args.account}
