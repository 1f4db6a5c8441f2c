"""`posbus orders` and the running-stack listing of `posbus positions`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options

_POSITION_COLUMNS = ("symbol", "status", "qty", "avg_entry_price", "realized_pnl", "unrealized_pnl")


def register(subparsers: SubParsers) -> None:
    """Add `posbus orders`."""
    parser = add_command(
        subparsers,
        "orders",
        summary="list the orders of the running stack",
        description=(
            "Ask every positions shard for its orders (every order of every position: id,\n"
            "client order id, side, qty, filled qty, status, reason, timestamps).\n"
        ),
        examples="  posbus orders\n  posbus orders --json\n",
        handler=run_orders,
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(parser)


def list_positions(args: argparse.Namespace) -> int:
    """`posbus positions [--json]`: the positions of every shard of the running stack."""
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(getattr(args, "config", None), getattr(args, "run_dir", None))
    try:
        client.require_stack()
        positions = client.call_all_shards("positions.list", "positions")
    finally:
        client.close()
    positions.sort(key=lambda p: (str(p.get("account")), str(p.get("symbol"))))
    if args.json:
        print(json.dumps({"positions": positions}, indent=2, sort_keys=True))
        return EXIT_OK
    _table(positions, ("account", *_POSITION_COLUMNS))
    return EXIT_OK


def run_orders(args: argparse.Namespace) -> int:
    """Handler of `posbus orders`."""
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        orders = client.call_all_shards("positions.orders", "orders")
    finally:
        client.close()
    if args.json:
        print(json.dumps({"orders": orders}, indent=2, sort_keys=True))
        return EXIT_OK
    _table(orders, ("order_id", "side", "qty", "filled_qty", "status", "reason"))
    return EXIT_OK


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
