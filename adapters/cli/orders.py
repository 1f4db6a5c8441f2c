"""`posbus orders` and the running-stack listing of `posbus positions`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, add_command
from posbus.adapters.cli.decimal_text import format_decimal
from posbus.adapters.cli.stack_options import add_stack_options
from posbus.adapters.display_precision import Precision
from posbus.adapters.portfolio_view import position_row, totals

if TYPE_CHECKING:
    from posbus.bus.messages import CommandArg

_POSITION_COLUMNS = ("symbol", "status", "qty", "avg_entry_price", "realized_pnl", "unrealized_pnl")
#: The totals rows of `posbus positions`: one per account and quote currency, then the firm's.
_TOTAL_COLUMNS = (
    "totals",
    "currency",
    "positions",
    "open",
    "realized_pnl",
    "unrealized_pnl",
    "total_pnl",
    "fees",
)

#: The decimal fields of positions and orders, by how a table shows them: quantities
#: at the venue's quantity step, prices at its tick, quote amounts at the tick too.
_SHOWN_AS = {
    "qty": "qty",
    "filled_qty": "qty",
    "avg_entry_price": "price",
    "avg_fill_price": "price",
    "limit_price": "price",
    "mark": "price",
    "realized_pnl": "money",
    "unrealized_pnl": "money",
    "fees": "money",
    "total_pnl": "money",
}


def register(subparsers: SubParsers) -> None:
    """Add `posbus orders`."""
    parser = add_command(
        subparsers,
        "orders",
        summary="list the orders of the running stack",
        description=(
            "Ask every positions shard for its orders (id, client order id, side, qty,\n"
            "filled qty, status, reason, timestamps), the newest --limit of each shard,\n"
            "oldest first. A shard that has more matching orders says so (stderr; in\n"
            "--json: `truncated` and `total` per shard).\n"
        ),
        examples=(
            "  posbus orders\n  posbus orders --working\n"
            "  posbus orders --symbol BTC/USDT --status Filled --limit 500 --json\n"
        ),
        handler=run_orders,
    )
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATE",
        help="only orders in this state (repeatable: PendingOrder, AwaitingFill, Accepted, "
        "PartiallyFilled, CancelRequested, Filled, Cancelled, Rejected, Expired, Error)",
    )
    parser.add_argument(
        "--working", action="store_true", help="only orders that may still change (not final)"
    )
    parser.add_argument("--symbol", help="only this symbol's orders")
    parser.add_argument(
        "--limit", type=int, default=200, help="newest orders per shard, 1..500 (200)"
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    add_stack_options(parser)


def list_positions(args: argparse.Namespace) -> int:
    """`posbus positions [--json]`: the positions of every shard of the running stack."""
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(getattr(args, "config", None), getattr(args, "run_dir", None))
    try:
        client.require_stack()
        positions = client.positions()
    finally:
        client.close()
    positions.sort(key=lambda p: (str(p.get("account")), str(p.get("symbol"))))
    account = getattr(args, "account", None)
    if account is not None:
        positions = [p for p in positions if p.get("account") == account]
    precision = Precision.of_config(client.config)
    rows = [position_row(p, precision) for p in positions]
    names = sorted({str(r["account"]) for r in rows})
    by_account = {n: totals([r for r in rows if r["account"] == n], precision) for n in names}
    firm = totals(rows, precision)
    if args.json:
        doc = {
            "positions": [_normalised(p) for p in positions],
            "accounts": {n: [_exact_total(t) for t in ts] for n, ts in by_account.items()},
            "firm": [_exact_total(t) for t in firm],
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_OK
    _table(positions, ("account", *_POSITION_COLUMNS), precision)
    if rows:
        print()
        lines = [{"totals": n, **t} for n, ts in by_account.items() for t in ts]
        lines += [{"totals": "firm", **t} for t in firm] if len(names) > 1 else []
        _table(lines, _TOTAL_COLUMNS, precision)
    return EXIT_OK


def _exact_total(total: dict[str, Any]) -> dict[str, Any]:
    """A totals row of one currency for JSON: exact amounts, written the CLI's one way."""
    exact = {key: format_decimal(Decimal(value)) for key, value in total["exact"].items()}
    return {
        "currency": total["currency"],
        "positions": total["positions"],
        "open": total["open"],
    } | exact


def run_orders(args: argparse.Namespace) -> int:
    """Handler of `posbus orders`."""
    from posbus.actors.model.order import TERMINAL_STATES, OrderStatus
    from posbus.adapters.launcher_client import StackClient

    working = [s.value for s in OrderStatus if s not in TERMINAL_STATES]
    query: dict[str, CommandArg] = {"limit": args.limit}
    statuses = list(args.status or []) + (working if args.working else [])
    if statuses:
        query["status"] = sorted(set(statuses))
    if args.symbol:
        query["symbol"] = args.symbol
    client = StackClient(args.config, args.run_dir)
    orders: list[dict[str, Any]] = []
    shards: dict[str, dict[str, Any]] = {}
    try:
        client.require_stack()
        for service in client.position_services():
            result = client.call(service, "positions.orders", query)
            orders.extend(result["orders"])
            shards[service] = {"total": result["total"], "truncated": result["truncated"]}
    finally:
        client.close()
    if args.json:
        rows = [_normalised(o) for o in orders]
        print(json.dumps({"orders": rows, "shards": shards}, indent=2, sort_keys=True))
        return EXIT_OK
    _table(
        orders,
        ("order_id", "side", "qty", "filled_qty", "status", "reason"),
        Precision.of_config(client.config),
    )
    for service, shard in sorted(shards.items()):
        if shard["truncated"]:
            print(
                f"{service}: the newest {args.limit} of {shard['total']} orders shown "
                "(--limit, --status, --symbol to see others)",
                file=sys.stderr,
            )
    return EXIT_OK


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its decimal fields written by the CLI's one rule (exact, no trailing zeros)."""
    out = dict(row)
    for key in _SHOWN_AS:
        value = out.get(key)
        # A text that is no number (a placeholder) is passed through as it is.
        if isinstance(value, str):
            with contextlib.suppress(InvalidOperation, ValueError):
                out[key] = format_decimal(Decimal(value))
    return out


def _cell(row: dict[str, Any], column: str, precision: Precision) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    shown_as = _SHOWN_AS.get(column)
    if shown_as is None:
        return str(value)
    show: Callable[[str], str] = getattr(precision, shown_as)
    return show(str(value))


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...], precision: Precision) -> None:
    cells = [[_cell(r, c, precision) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
