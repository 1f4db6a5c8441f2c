"""The commands of an account's gateway ("gateway.ACCOUNT"), declared once.

The positions send `gateway.submit` and `gateway.cancel` without waiting (the
answer comes back as journaled execution signals, never in the reply) and
repair gaps with `gateway.replay` and `gateway.incarnations`. actors/remote.py
maps submit and cancel to and from the control messages. Declarations only:
no handler, no I/O.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from posbus.actors.model.side import Side
from posbus.bus.command_schema import (
    Arguments,
    CommandSpec,
    Doc,
    Example,
    NoArguments,
    ServiceSchema,
)
from posbus.bus.constraints import Id, Positive, Uint63

SUBMIT = "gateway.submit"
CANCEL = "gateway.cancel"
# gateway.replay answers at most this many published records a page.
REPLAY_PAGE = 500

_STREAM = "the position's journal stream, position/ACCOUNT/SYMBOL"


class SubmitArgs(Arguments, frozen=True, kw_only=True):
    """An order for the exchange."""

    client_order_id: Annotated[Id, Doc("the id the exchange knows the order by")]
    account: Annotated[Id, Doc("the account")]
    symbol: Annotated[Id, Doc("the symbol")]
    side: Annotated[Side, Doc("buy or sell")]
    qty: Annotated[Positive, Doc("the quantity")]
    limit_price: Annotated[Positive | None, Doc("the limit price; null: a market order")] = None
    ts_ns: Annotated[Uint63, Doc("the order's timestamp, ns since the epoch")]
    order_id: Annotated[Id, Doc("posbus's order id, ACCOUNT:SYMBOL:SEQ")]
    stream: Annotated[Id, Doc(_STREAM)]


class CancelArgs(Arguments, frozen=True, kw_only=True):
    """An order to cancel at the exchange."""

    client_order_id: Annotated[Id, Doc("the id the exchange knows the order by")]
    order_id: Annotated[Id, Doc("posbus's order id")]
    stream: Annotated[Id, Doc(_STREAM)]
    ts_ns: Annotated[Uint63, Doc("the request's timestamp, ns since the epoch")]


class ReplayArgs(Arguments, frozen=True, kw_only=True):
    """Which published records to answer."""

    after: Annotated[Uint63, Doc("answer records after this seq")] = 0
    limit: Annotated[
        int, Meta(ge=1), Doc(f"at most this many records (never more than {REPLAY_PAGE})")
    ] = REPLAY_PAGE
    sender: Annotated[
        Id | None, Doc("the incarnation whose records to read (default: the current one)")
    ] = None


_TOLD = "an empty result once the gateway actor was told; the outcome comes as execution signals"

SUBMIT_SPEC = CommandSpec(
    SUBMIT,
    "Send an order to the exchange (journaled by the gateway first).",
    SubmitArgs,
    reply={"(empty)": _TOLD},
    errors={"RemoteMessageError": "the arguments do not make a valid order"},
    example=Example(
        args={
            "client_order_id": "pb3f2a1c",
            "account": "default",
            "symbol": "BTC/USDT",
            "side": "buy",
            "qty": "0.5",
            "limit_price": "64000",
            "ts_ns": 1767225600000000000,
            "order_id": "default:BTC/USDT:3",
            "stream": "position/default/BTC/USDT",
        },
        reply={},
    ),
)

CANCEL_SPEC = CommandSpec(
    CANCEL,
    "Cancel an order at the exchange.",
    CancelArgs,
    reply={"(empty)": _TOLD},
    example=Example(
        args={
            "client_order_id": "pb3f2a1c",
            "order_id": "default:BTC/USDT:3",
            "stream": "position/default/BTC/USDT",
            "ts_ns": 1767225600000000000,
        },
        reply={},
    ),
)

REPLAY = CommandSpec(
    "gateway.replay",
    "Published execution signals after a seq, from the gateway's journal (gap repair).",
    ReplayArgs,
    reply={
        "sender": "the incarnation the records are of",
        "current": "the current incarnation's sender name",
        "after": "the seq the page starts after",
        "last_seq": "that incarnation's last published seq",
        "records": "the records, each a hex-encoded envelope, in seq order",
    },
    errors={"WorkerError": "no records of that sender"},
    example=Example(
        args={"after": 41, "limit": 2},
        reply={
            "sender": "gateway.default.4243.117650",
            "current": "gateway.default.4243.117650",
            "after": 41,
            "last_seq": 42,
            "records": ["96b0657865637574696f6e5f7369676e616c..."],
        },
    ),
)

INCARNATIONS = CommandSpec(
    "gateway.incarnations",
    "Every gateway incarnation that published, oldest first.",
    NoArguments,
    reply={"incarnations": "a list of {sender, last_seq}"},
    example=Example(
        args={},
        reply={"incarnations": [{"sender": "gateway.default.4243.117650", "last_seq": 42}]},
    ),
)

INSPECT = CommandSpec(
    "gateway.inspect",
    "The gateway actor's state: working orders, breaker, reconciliation.",
    NoArguments,
    reply={"(the gateway's state)": "its fields as the gateway actor reports them"},
    example=Example(args={}, reply={"account": "default", "working_orders": []}),
)

GATEWAY = ServiceSchema(
    service="gateway.ACCOUNT",
    summary="The gateway of one account: orders to the exchange, its published signals.",
    reached="the broker's `commands` endpoint, service `gateway.ACCOUNT`",
    commands=(SUBMIT_SPEC, CANCEL_SPEC, REPLAY, INCARNATIONS, INSPECT),
)
