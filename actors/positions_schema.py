"""The commands of a positions shard ("positions.I"), declared once: arguments, replies, errors.

`PositionsCommands` (positions_commands.py) handles them with the typed
arguments these Structs give; docs/commands.md is generated from them.
Declarations only: no handler, no I/O.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from posbus.actors.model.order import OrderStatus
from posbus.actors.model.side import Side
from posbus.bus.command_schema import Arguments, CommandSpec, Doc, Example, ServiceSchema
from posbus.bus.constraints import MAX_TEXT_LEN, Id, Positive

# positions.orders answers the newest this many orders unless asked for more
# (at most the MAX: about 1 KiB each, a reply stays under the 1 MiB frame limit).
ORDERS_LIMIT = 200
ORDERS_LIMIT_MAX = 500
# positions.list answers at most this many positions a page (~300 bytes each).
POSITIONS_PAGE = 1000

_POSITION_SUMMARY = (
    "a list of {account, symbol, status, qty, avg_entry_price, realized_pnl, "
    "unrealized_pnl, fees, mark, orders, fills} (and `error` for a position whose "
    "journal stream is corrupt)"
)


class ListArgs(Arguments, frozen=True, kw_only=True):
    """One page of positions."""

    after: Annotated[
        Id | None, Doc("the stream the page starts after: the previous page's `next`")
    ] = None
    limit: Annotated[int, Meta(ge=1, le=POSITIONS_PAGE), Doc("at most this many positions")] = (
        POSITIONS_PAGE
    )


class OrderArgs(Arguments, frozen=True, kw_only=True):
    """An order intent."""

    account: Annotated[
        Id | None, Doc("one of the stack's accounts (default: the stack's first account)")
    ] = None
    symbol: Annotated[Id, Doc("the symbol, e.g. BTC/USDT")]
    side: Annotated[Side, Doc("buy or sell")]
    qty: Annotated[Positive, Doc("the quantity, in the base currency")]
    limit_price: Annotated[
        Positive | None, Doc("the limit price; absent or null: a market order")
    ] = None
    reduce_only: Annotated[bool, Doc("true: may only shrink the position")] = False
    reason: Annotated[
        str,
        Meta(min_length=1, max_length=MAX_TEXT_LEN),
        Doc("why, as journaled and shown with the order"),
    ] = "command"
    intent_id: Annotated[
        Id | None, Doc("the caller's id of the intent (default: cli-<ns timestamp>)")
    ] = None


class CancelArgs(Arguments, frozen=True, kw_only=True):
    """The order to cancel."""

    order_id: Annotated[Id, Doc("the order's id, ACCOUNT:SYMBOL:SEQ")]


class OrdersArgs(Arguments, frozen=True, kw_only=True):
    """Which orders of the shard to answer."""

    status: Annotated[
        list[OrderStatus] | None, Doc("keep only orders in these states (default: all)")
    ] = None
    symbol: Annotated[Id | None, Doc("keep only this symbol's orders")] = None
    limit: Annotated[
        int, Meta(ge=1, le=ORDERS_LIMIT_MAX), Doc("answer the newest this many matches")
    ] = ORDERS_LIMIT


class PositionArgs(Arguments, frozen=True, kw_only=True):
    """The position to inspect."""

    actor: Annotated[Id, Doc("the position's stream, position/ACCOUNT/SYMBOL")]


_CORRUPT = "the position's journal stream is corrupt: the account is halted until it is repaired"

LIST = CommandSpec(
    "positions.list",
    "One page of the shard's positions, in stream order.",
    ListArgs,
    reply={
        "positions": _POSITION_SUMMARY,
        "next": "the `after` of the next page; null after the last page",
    },
    example=Example(
        args={"limit": 1},
        reply={
            "positions": [
                {
                    "account": "default",
                    "symbol": "BTC/USDT",
                    "status": "Open",
                    "qty": "0.5",
                    "avg_entry_price": "64000.1",
                    "realized_pnl": "0",
                    "unrealized_pnl": "12.4",
                    "fees": "0.0320",
                    "mark": "64024.9",
                    "orders": 1,
                    "fills": 2,
                }
            ],
            "next": "position/default/BTC/USDT",
        },
    ),
)

ORDER = CommandSpec(
    "positions.order",
    "Journal an order intent on its position's stream and hand it to the position; "
    "risk then decides whether it becomes an order.",
    OrderArgs,
    reply={
        "order_id": "the order's id, ACCOUNT:SYMBOL:SEQ",
        "stream": "the position's journal stream",
        "seq": "the intent's sequence number in that stream",
    },
    errors={
        "WorkerError": _CORRUPT,
        "OrderValidationError": "the intent is not a valid order, names an account the "
        "stack does not have or a symbol it does not trade (the message names the spelling "
        "meant, e.g. BTCUSDT: BTC/USDT), or has a qty or limit price off the account's "
        "venue's grid (the message names the nearest); nothing was journaled",
    },
    example=Example(
        args={
            "account": "default",
            "symbol": "BTC/USDT",
            "side": "buy",
            "qty": "0.5",
            "limit_price": "64000",
            "reason": "rebalance",
        },
        reply={
            "order_id": "default:BTC/USDT:3",
            "stream": "position/default/BTC/USDT",
            "seq": 3,
        },
    ),
)

CANCEL = CommandSpec(
    "positions.cancel",
    "Journal a cancel request for an order and hand it to its position.",
    CancelArgs,
    reply={
        "order_id": "the order's id",
        "stream": "the position's journal stream",
        "seq": "the cancel request's sequence number in that stream",
    },
    errors={
        "OrderValidationError": "the id is not ACCOUNT:SYMBOL:SEQ, or the shard has no such order",
        "WorkerError": _CORRUPT,
    },
    example=Example(
        args={"order_id": "default:BTC/USDT:3"},
        reply={"order_id": "default:BTC/USDT:3", "stream": "position/default/BTC/USDT", "seq": 5},
    ),
)

ORDERS = CommandSpec(
    "positions.orders",
    "The shard's orders, filtered, the newest `limit` of them, oldest first.",
    OrdersArgs,
    reply={
        "orders": "a list of orders: order_id, side, qty, limit_price, filled_qty, status, ...",
        "total": "how many orders matched",
        "truncated": "true when older matches were left out",
    },
    example=Example(
        args={"status": ["Accepted", "PartiallyFilled"], "limit": 50},
        reply={
            "orders": [
                {
                    "order_id": "default:BTC/USDT:3",
                    "side": "buy",
                    "qty": "0.5",
                    "limit_price": "64000",
                    "filled_qty": "0",
                    "status": "Accepted",
                    "reason": "rebalance",
                }
            ],
            "total": 1,
            "truncated": False,
        },
    ),
)

INSPECT = CommandSpec(
    "positions.inspect",
    "The full state of one position actor of the shard.",
    PositionArgs,
    reply={"(the position's state)": "account, symbol, qty, P&L, orders, trade ids, mark, ..."},
    errors={"WorkerError": "the shard has no position of that stream"},
    example=Example(
        args={"actor": "position/default/BTC/USDT"},
        reply={
            "account": "default",
            "symbol": "BTC/USDT",
            "status": "Open",
            "qty": "0.5",
            "realized_pnl": "0",
        },
    ),
)

POSITIONS = ServiceSchema(
    service="positions.I",
    summary="The positions of shard I of N: orders, cancels and what they hold.",
    reached=(
        "the broker's `commands` endpoint, service `positions.I` (the shard that owns "
        "crc32(ACCOUNT NUL SYMBOL) mod N; `posbus status --json` lists each worker's service)"
    ),
    commands=(LIST, ORDER, CANCEL, ORDERS, INSPECT),
)
