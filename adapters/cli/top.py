"""`posbus top`: a live terminal dashboard of the running stack (rich)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options

_DESCRIPTION = """\
A live view of the stack, refreshed every --interval seconds: positions and
their P&L, the risk state and its metrics, each worker (pid, uptime, launcher
restarts), each worker's actors (state, mailbox, restarts) and message rates
(from each worker's admin `metrics`). Ctrl-C quits; --once prints one frame.
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus top`."""
    parser = add_command(
        subparsers,
        "top",
        summary="live dashboard: positions, P&L, risk, workers, actors, rates",
        description=_DESCRIPTION,
        examples="  posbus top\n  posbus top --once\n",
        handler=run,
    )
    parser.add_argument("--interval", type=float, default=1.0, metavar="S", help="(1 s)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    add_stack_options(parser)


def _gather(client: Any) -> dict[str, Any]:
    from posbus.actors.model.errors import PosbusError
    from posbus.adapters.cli.status import collect

    doc = collect(client, 0.3)
    frame: dict[str, Any] = {"status": doc, "positions": [], "risk": {}, "actors": {}, "rates": {}}
    try:
        frame["positions"] = client.call_all_shards("positions.list", "positions", timeout=1.0)
        frame["risk"] = client.call("risk", "risk.inspect", timeout=1.0)
    except PosbusError as exc:
        frame["error"] = str(exc)
    for worker in doc["workers"]:
        if not worker["serving"]:
            continue
        name = worker["name"]
        try:
            actors = client.admin(name, "actors", timeout=0.5)
            metrics = client.admin(name, "metrics", timeout=0.5)
        except PosbusError:
            continue
        if actors.ok:
            frame["actors"][name] = actors.result.get("actors", [])
        if metrics.ok:
            frame["rates"][name] = metrics.result
    return frame


def _render(frame: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.table import Table

    positions = Table(title="positions", expand=True)
    for col in (
        "account",
        "symbol",
        "status",
        "qty",
        "avg entry",
        "realized",
        "unrealized",
        "mark",
    ):
        positions.add_column(col)
    for p in frame["positions"]:
        positions.add_row(
            *(
                str(p.get(k) if p.get(k) is not None else "-")
                for k in (
                    "account",
                    "symbol",
                    "status",
                    "qty",
                    "avg_entry_price",
                    "realized_pnl",
                    "unrealized_pnl",
                    "mark",
                )
            )
        )
    risk = frame.get("risk") or {}
    risk_table = Table(title=f"risk: {risk.get('state', '?')}", expand=True)
    risk_table.add_column("metric")
    risk_table.add_column("value")
    for key, value in sorted(dict(risk.get("metrics", {})).items()):
        risk_table.add_row(key, str(value))
    workers = Table(title="workers", expand=True)
    for col in ("worker", "role", "pid", "up", "uptime s", "restarts", "msgs in/s", "actors"):
        workers.add_column(col)
    for w in frame["status"]["workers"]:
        rates = frame["rates"].get(w["name"], {})
        rate = sum(float(v.get("rate", 0)) for v in dict(rates.get("in", {})).values())
        actors = frame["actors"].get(w["name"], [])
        restarts = sum(int(a.get("restarts", 0)) for a in actors)
        workers.add_row(
            w["name"],
            str(w["role"]),
            str(w["pid"]),
            "yes" if w["serving"] else ("alive" if w["alive"] else "DOWN"),
            str(w["uptime_s"]),
            f"{w['restarts']} (actors {restarts})",
            f"{rate:.0f}",
            str(len(actors)),
        )
    parts: list[Any] = [positions, risk_table, workers]
    if frame.get("error"):
        parts.append(f"[red]{frame['error']}[/red]")
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus top`."""
    from rich.console import Console
    from rich.live import Live

    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    console = Console()
    try:
        if args.once:
            console.print(_render(_gather(client)))
            return EXIT_OK
        with Live(_render(_gather(client)), console=console, screen=False) as live:
            try:
                while True:
                    time.sleep(args.interval)
                    live.update(_render(_gather(client)))
            except KeyboardInterrupt:
                pass
    finally:
        client.close()
    return EXIT_OK
