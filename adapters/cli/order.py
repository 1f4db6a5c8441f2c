"""`posbus order`, `posbus close`, `posbus cancel`: order commands to the positions shards.

Each is one command, sent once, through the broker to the positions shard
owning the account + symbol (CRC-32 sharding, posbus.actors.sharding). Its
reply is the order id (ACCOUNT:SYMBOL:SEQ) once the intent is journaled; the
command then waits (at most --timeout) for the risk decision and the venue's
answer and prints the outcome: exit 0 only when the venue accepted the order
(or the cancel took effect), 1 when it was refused or rejected (with the
reason) or the outcome is not known yet, 2 on bad input. --no-wait prints
the order id once journaled and returns. Nothing is ever re-sent: after a
timeout, look the order up with `posbus orders`.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.adapters.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    SubParsers,
    UsageError,
    add_command,
)
from posbus.adapters.cli.order_outcome import ACCEPTED, REFUSED, Outcome, wait_for_order
from posbus.adapters.cli.stack_options import add_stack_options

CANCELLED = frozenset({"Cancelled"})
CANCEL_ENDS = frozenset({"Cancelled", "Filled", "Rejected", "Expired", "Error"})
"""A cancel's wait ends when the order ends, however."""

WAIT_S = 5.0
"""Default --timeout: how long order, close and cancel wait for the outcome."""

_CLOSE_ALL = "1000000000"

_BAD_INPUT = frozenset({"OrderValidationError", "InvalidArgument"})
"""Refusals of the order as given: exit 2, nothing was journaled."""


def register(subparsers: SubParsers) -> None:
    """Add `posbus order`, `posbus close` and `posbus cancel`."""
    order = add_command(
        subparsers,
        "order",
        summary="place an order (buy or sell) through the running stack",
        description=(
            "Send an order intent to the positions shard of ACCOUNT + SYMBOL. It is journaled,\n"
            "checked by the risk supervisor and sent to the account's gateway; the command\n"
            "waits for the outcome and prints it. Exit 0: the venue accepted the order; 1:\n"
            "refused by risk, rejected by the venue, or no outcome within --timeout (look it\n"
            "up with 'posbus orders'; it is never re-sent); 2: bad input (an account or symbol\n"
            "the stack does not trade, named with the one meant; nothing is sent).\n"
        ),
        examples=(
            "  posbus order buy BTC/USDT 0.1\n"
            "  posbus order sell ETH/USDT 2 --limit 3100.5 --json\n"
            "  posbus order buy BTC/USDT 0.05 --account hedge\n"
        ),
        handler=run_order,
    )
    order.add_argument("side", choices=["buy", "sell"])
    order.add_argument("symbol", metavar="SYMBOL")
    order.add_argument("qty", metavar="QTY")
    order.add_argument("--limit", metavar="PRICE", help="limit price (default: market order)")
    order.add_argument(
        "--account", metavar="NAME", help="the account (default: the stack's first account)"
    )
    order.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_wait_options(order)
    add_stack_options(order)

    close = add_command(
        subparsers,
        "close",
        summary="close the position in SYMBOL (reduce-only market order)",
        description=(
            "Send a reduce-only market intent for the whole open quantity of SYMBOL (a sell\n"
            "for a long position, a buy for a short one) and wait for the outcome, as\n"
            "'posbus order' does. A flat position has nothing to close: exit 1, no order.\n"
        ),
        examples="  posbus close BTC/USDT\n  posbus close SOL/USDT --account hedge\n",
        handler=run_close,
    )
    close.add_argument("symbol", metavar="SYMBOL")
    close.add_argument(
        "--account", metavar="NAME", help="the account (default: the stack's first account)"
    )
    close.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_wait_options(close)
    add_stack_options(close)

    cancel = add_command(
        subparsers,
        "cancel",
        summary="cancel an order by its id (ACCOUNT:SYMBOL:SEQ)",
        description=(
            "Journal a cancel request for ORDER_ID, send it to the exchange and wait until the\n"
            "order is cancelled (exit 0). Exit 1 when the order ended otherwise (filled first)\n"
            "or is still open after --timeout.\n"
        ),
        examples="  posbus cancel default:BTC/USDT:3\n",
        handler=run_cancel,
    )
    cancel.add_argument("order_id", metavar="ORDER_ID")
    cancel.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_wait_options(cancel)
    add_stack_options(cancel)


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=WAIT_S,
        metavar="S",
        help=f"wait at most S seconds for the outcome ({WAIT_S:g} s)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the intent is journaled, without waiting for the outcome",
    )


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
        acc = client.account(account)
        service = client.shard_service(acc, symbol)
        if body.get("reduce_only") and body.get("side") is None:
            body = {**body, "side": _closing_side(client, service, acc, symbol)}
        body = {"account": acc, "symbol": symbol, **body}
        result = _call_refusing_bad_input(client, service, "positions.order", body)
        order_id = str(result.get("order_id"))
        if args.no_wait:
            _print(args, result, f"order {order_id} journaled ({result.get('stream')})")
            return EXIT_OK
        outcome = _wait(args, client, service, result, ACCEPTED | REFUSED)
    finally:
        client.close()
    return _report(args, result, outcome, f"order {order_id}", accepted=ACCEPTED)


def _call_refusing_bad_input(
    client: Any, service: str, command: str, body: dict[str, Any]
) -> dict[str, Any]:
    """`command`; its refusal of the input as given (unknown symbol or order): UsageError."""
    from posbus.bus.errors import CommandFailed

    try:
        result: dict[str, Any] = client.call(service, command, body)
    except CommandFailed as exc:
        if exc.error_type in _BAD_INPUT:
            raise UsageError(str(exc).removeprefix(f"{exc.error_type}: ")) from exc
        raise
    return result


def _closing_side(client: Any, service: str, account: str, symbol: str) -> str:
    """The side that closes the open position of `account` + `symbol`; CommandError if flat."""
    from posbus.actors.model.symbol_names import unknown_symbol_message
    from posbus.actors.position_actor import position_stream
    from posbus.bus.errors import CommandFailed

    try:
        state = client.call(
            service, "positions.inspect", {"actor": position_stream(account, symbol)}
        )
        qty = Decimal(str(state.get("qty") or "0"))
    except CommandFailed as exc:
        if exc.error_type != "WorkerError":
            raise
        qty = Decimal(0)  # the shard has no such position
    if qty == 0 and symbol not in client.config.symbols:
        raise UsageError(unknown_symbol_message(symbol, client.config.symbols))
    if qty == 0:
        raise CommandError(f"no open position in {symbol} ({account}): nothing to close")
    return "sell" if qty > 0 else "buy"


def _wait(
    args: argparse.Namespace,
    client: Any,
    service: str,
    result: dict[str, Any],
    ended: frozenset[str],
) -> Outcome:
    return wait_for_order(
        client,
        service,
        str(result.get("stream")),
        str(result.get("order_id")),
        args.timeout,
        ended=ended,
    )


def _report(
    args: argparse.Namespace,
    result: dict[str, Any],
    outcome: Outcome,
    what: str,
    *,
    accepted: frozenset[str],
) -> int:
    ok = outcome.settled and outcome.status in accepted
    if args.json:
        print(
            json.dumps(
                {
                    **result,
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "settled": outcome.settled,
                },
                sort_keys=True,
            )
        )
    elif not outcome.settled:
        print(
            f"{what}: no outcome within {args.timeout:g} s (status {outcome.status or 'unknown'}); "
            "it is not re-sent: see 'posbus orders'"
        )
    elif ok:
        print(f"{what}: {outcome.status}")
    else:
        print(f"{what}: {outcome.status}: {outcome.reason or 'no reason given'}")
    return EXIT_OK if ok else EXIT_FAILURE


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
    body = {"qty": _CLOSE_ALL, "reduce_only": True, "reason": "close"}
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
        client.account(account)
        service = client.shard_service(account, symbol)
        result = _call_refusing_bad_input(
            client, service, "positions.cancel", {"order_id": args.order_id}
        )
        if args.no_wait:
            _print(args, result, f"cancel of {args.order_id} journaled")
            return EXIT_OK
        outcome = _wait(args, client, service, result, CANCEL_ENDS)
    finally:
        client.close()
    return _report(args, result, outcome, f"cancel of {args.order_id}", accepted=CANCELLED)
