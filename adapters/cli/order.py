"""`posbus order`, `posbus close`, `posbus cancel`: order commands to the positions shards.

Each is one command, sent once, through the broker to the positions shard
owning the account + symbol (crc32 sharding, posbus.actors.sharding). The
reply is the order id (ACCOUNT:SYMBOL:SEQ) once the intent is journaled; the
pre-trade risk check and the exchange answer follow asynchronously (see
`posbus orders`). A timeout is reported as an unknown outcome (exit 1) and is
never re-sent: look the order up with `posbus orders` first.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, UsageError, add_command
from posbus.adapters.cli.stack_options import add_stack_options

_CLOSE_ALL = "1000000000"


def register(subparsers: SubParsers) -> None:
    """Add `posbus order`, `posbus close` and `posbus cancel`."""
    order = add_command(
        subparsers,
        "order",
        summary="place an order (buy or sell) through the running stack",
        description=(
            "Send an order intent to the positions shard of ACCOUNT + SYMBOL. It is journaled,\n"
            "checked by the risk supervisor and sent to the gateway. Prints the order id.\n"
        ),
        examples=(
            "  posbus order buy BTC/USDT 0.1\n"
            "  posbus order sell ETH/USDT 2 --limit 3100.5 --json\n"
        ),
        handler=run_order,
    )
    order.add_argument("side", choices=["buy", "sell"])
    order.add_argument("symbol", metavar="SYMBOL")
    order.add_argument("qty", metavar="QTY")
    order.add_argument("--limit", metavar="PRICE", help="limit price (default: market order)")
    order.add_argument("--account", help="account (default: account of the config)")
    order.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_stack_options(order)

    close = add_command(
        subparsers,
        "close",
        summary="close the position in SYMBOL (reduce-only market order)",
        description="Send a reduce-only intent for the whole open quantity of SYMBOL.\n",
        examples="  posbus close BTC/USDT\n",
        handler=run_close,
    )
    close.add_argument("symbol", metavar="SYMBOL")
    close.add_argument("--account", help="account (default: account of the config)")
    close.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_stack_options(close)

    cancel = add_command(
        subparsers,
        "cancel",
        summary="cancel an order by its id (ACCOUNT:SYMBOL:SEQ)",
        description="Journal a cancel request for ORDER_ID and send it to the exchange.\n",
        examples="  posbus cancel default:BTC/USDT:3\n",
        handler=run_cancel,
    )
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cancel.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_stack_options(cancel)


def _decimal(text: str, what: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise UsageError(f"{what}: not a number: {text!r}") from exc
    if not value.is_finite() or value <= 0:
        raise UsageError(f"{what}: must be a positive number, got {text!r}")
    return format(value, "f")


def _send(args: argparse.Namespace, symbol: str, account: str | None, body: dict[str, Any]) -> int:
    from posbus.adapters.launcher_client import StackClient

    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        acc = account or client.config.account
        body = {"account": acc, "symbol": symbol, **body}
        result = client.call(client.shard_service(acc, symbol), "positions.order", body)
    finally:
        client.close()
    _print(args, result, f"order {result.get('order_id')} journaled ({result.get('stream')})")
    return EXIT_OK


def _print(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result, sort_keys=True) if args.json else text)


def run_order(args: argparse.Namespace) -> int:
    """Handler of `posbus order`."""
    body: dict[str, Any] = {"side": args.side, "qty": _decimal(args.qty, "QTY")}
    if args.limit is not None:
        body["limit_price"] = _decimal(args.limit, "--limit")
    return _send(args, args.symbol, args.account, body)


def run_close(args: argparse.Namespace) -> int:
    """Handler of `posbus close`: a reduce-only intent, clamped to the open quantity."""
    body = {"side": "sell", "qty": _CLOSE_ALL, "reduce_only": True, "reason": "close"}
    return _send(args, args.symbol, args.account, body)


def run_cancel(args: argparse.Namespace) -> int:
    """Handler of `posbus cancel`."""
    from posbus.adapters.launcher_client import StackClient

    head, _, seq = args.order_id.rpartition(":")
    account, _, symbol = head.partition(":")
    if not account or not symbol or not seq.isdigit():
        raise UsageError(f"ORDER_ID must be ACCOUNT:SYMBOL:SEQ, got {args.order_id!r}")
    client = StackClient(args.config, args.run_dir)
    try:
        client.require_stack()
        result = client.call(
            client.shard_service(account, symbol), "positions.cancel", {"order_id": args.order_id}
        )
    finally:
        client.close()
    _print(args, result, f"cancel of {args.order_id} journaled")
    return EXIT_OK
