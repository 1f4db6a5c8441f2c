"""`posbus status`: the workers of the running stack: pids, uptimes, restarts, endpoints."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options

_DESCRIPTION = """\
List each worker of the stack running in the run directory: name, role,
shard, account (each account has its gateway, gateway.NAME), pid, whether it
is alive and serving (its admin socket answers),
uptime, restarts by the launcher, its command service and admin endpoint,
and the bus endpoints a client connects to (`bus`: events_in to publish,
events_out to subscribe, commands to send commands; `curve` when tcp needs
CURVE keys). Exit code 2 when no stack is running. --json prints exactly the
shape in the README ("posbus status --json"); scripts rely on it.
"""

_EXAMPLES = """\
  posbus status
  posbus status --json | jq '.workers[] | {name, pid, restarts}'
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus status`."""
    parser = add_command(
        subparsers,
        "status",
        summary="list the workers of the running stack",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    add_stack_options(parser)
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.add_argument(
        "--admin-timeout", type=float, default=0.5, metavar="S", help="per worker (0.5 s)"
    )


def collect(client: Any, admin_timeout: float) -> dict[str, Any]:
    """The status document of the stack `client` points at (NoStack when none runs)."""
    from posbus.actors.model.errors import PosbusError
    from posbus.adapters.launcher_layout import pid_alive

    data = client.run_info()
    now = time.time_ns()
    workers = []
    for name, w in sorted(data.get("workers", {}).items()):
        pid = int(w.get("pid", 0))
        alive = pid_alive(pid)
        serving = False
        if alive:
            try:
                serving = client.admin(name, "status", timeout=admin_timeout).ok
            except PosbusError:
                serving = False
        workers.append(
            {
                "name": name,
                "role": w.get("role"),
                "shard": w.get("shard"),
                # A gateway's account (one gateway per account); None for other roles.
                "account": w.get("account"),
                "pid": pid,
                "alive": alive,
                "serving": serving,
                "uptime_s": round((now - int(w.get("started_ns", now))) / 1e9, 3)
                if alive
                else None,
                "restarts": int(w.get("restarts", 0)),
                "command": w.get("command"),
                "admin": w.get("admin"),
                "log": w.get("log"),
            }
        )
    return {
        "run_dir": data.get("run_dir"),
        "launcher": {
            "pid": data.get("launcher_pid"),
            "alive": pid_alive(int(data.get("launcher_pid", 0))),
            "uptime_s": round((now - int(data.get("started_ns", now))) / 1e9, 3),
        },
        # A stack started by an older launcher wrote no bus entry.
        "bus": data.get("bus"),
        "workers": workers,
    }


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus status`."""
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    try:
        doc = collect(client, args.admin_timeout)
    finally:
        client.close()
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"run dir {doc['run_dir']}  launcher pid {doc['launcher']['pid']}")
    bus = doc["bus"]
    if bus is not None:
        print(
            f"bus {bus['transport']}{' (CURVE)' if bus['curve'] else ''}: "
            f"commands {bus['commands']}  events_out {bus['events_out']}  "
            f"events_in {bus['events_in']}"
        )
    print(
        f"{'worker':<20} {'role':<10} {'shard':<6} {'pid':>7} {'up':<6} {'uptime':>9} "
        f"{'restarts':>8}  admin"
    )
    for w in doc["workers"]:
        state = "yes" if w["serving"] else ("alive" if w["alive"] else "DOWN")
        uptime = "-" if w["uptime_s"] is None else f"{w['uptime_s']:.0f}s"
        print(
            f"{w['name']:<20} {w['role']:<10} {w['shard'] or '-':<6} {w['pid']:>7} {state:<6} "
            f"{uptime:>9} {w['restarts']:>8}  {w['admin']}"
        )
    return EXIT_OK
