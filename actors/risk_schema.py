"""The commands of the risk service ("risk") and the commands published as events, declared once.

The positions ask `risk.check` before every order; operators `risk.halt`,
`risk.resume` and `risk.inspect`. `risk.exposure` (a position's exposure, on
``xp|ACCOUNT|SYMBOL|``) and `positions.resync` (risk asking the positions to
re-send them, on ``rk|resync|``) are commands published on the event bus:
they are never answered. actors/remote.py maps the arguments to and from the
control messages. Declarations only: no handler, no I/O.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, field

from posbus.actors.model.side import Side
from posbus.bus.command_schema import (
    Arguments,
    CommandSpec,
    Doc,
    Example,
    NoArguments,
    ServiceSchema,
)
from posbus.bus.constraints import MAX_TEXT_LEN, Id, NonNegative, Positive, Signed, Uint63

CHECK_ORDER = "risk.check"
EXPOSURE = "risk.exposure"
HALT = "risk.halt"
RESUME = "risk.resume"
TICK = "risk.tick"
INSPECT = "risk.inspect"
RESYNC = "positions.resync"

_TS = "the sender's time, ns since the epoch"
_SCOPE = "one account of a stack with several; null: the whole stack (firm-wide)"
_WORKING = "of its working orders, remaining quantity; absent: none works (all four come together)"
_WORKING_NOTIONAL = "at their limit prices (market orders at the mark); absent: 0"


class ExposureArgs(Arguments, frozen=True, kw_only=True):
    """A position's exposure, as risk counts it."""

    account: Annotated[Id, Doc("the position's account")]
    symbol: Annotated[Id, Doc("the position's symbol")]
    qty: Annotated[Signed, Doc("the signed quantity held (negative: short)")]
    mark: Annotated[Signed | None, Doc("the mark it is priced at; null before the first")] = None
    mark_ts_ns: Annotated[Uint63 | None, Doc("the mark's own timestamp, ns")] = None
    realized_pnl: Annotated[Signed, Doc("realized P&L, quote currency")]
    unrealized_pnl: Annotated[Signed, Doc("unrealized P&L at the mark")]
    group: Annotated[Id, Doc("the correlation group of the symbol")]
    correlation: Annotated[Signed, Doc("the symbol's correlation weight in its group")]
    ts_ns: Annotated[Uint63, Doc(_TS)]
    working_buy_qty: Annotated[NonNegative | None, Doc("buys " + _WORKING)] = None
    working_buy_notional: Annotated[
        NonNegative | None, Doc("the working buys " + _WORKING_NOTIONAL)
    ] = None
    working_sell_qty: Annotated[NonNegative | None, Doc("sells " + _WORKING)] = None
    working_sell_notional: Annotated[
        NonNegative | None, Doc("the working sells " + _WORKING_NOTIONAL)
    ] = None


class CheckArgs(Arguments, frozen=True, kw_only=True):
    """An order to check, and the ordering position's exposure as it is when it asks.

    The `exposure.*` arguments come all together or not at all.
    """

    account: Annotated[Id, Doc("the order's account")]
    symbol: Annotated[Id, Doc("the order's symbol")]
    side: Annotated[Side, Doc("buy or sell")]
    qty: Annotated[Positive, Doc("the order's quantity")]
    price: Annotated[Positive | None, Doc("the limit price; null: a market order")] = None
    order_id: Annotated[Id, Doc("the order's id, ACCOUNT:SYMBOL:SEQ")]
    ts_ns: Annotated[Uint63, Doc("the order's timestamp, ns since the epoch")]
    exposure_account: Annotated[Id | None, Doc("the exposure's account (as `account`)")] = field(
        default=None, name="exposure.account"
    )
    exposure_symbol: Annotated[Id | None, Doc("the exposure's symbol (as `symbol`)")] = field(
        default=None, name="exposure.symbol"
    )
    exposure_qty: Annotated[Signed | None, Doc("the position's signed quantity")] = field(
        default=None, name="exposure.qty"
    )
    exposure_mark: Annotated[Signed | None, Doc("the position's mark")] = field(
        default=None, name="exposure.mark"
    )
    exposure_mark_ts_ns: Annotated[Uint63 | None, Doc("the mark's timestamp, ns")] = field(
        default=None, name="exposure.mark_ts_ns"
    )
    exposure_realized_pnl: Annotated[Signed | None, Doc("the position's realized P&L")] = field(
        default=None, name="exposure.realized_pnl"
    )
    exposure_unrealized_pnl: Annotated[Signed | None, Doc("its unrealized P&L")] = field(
        default=None, name="exposure.unrealized_pnl"
    )
    exposure_group: Annotated[Id | None, Doc("its correlation group")] = field(
        default=None, name="exposure.group"
    )
    exposure_correlation: Annotated[Signed | None, Doc("its correlation weight")] = field(
        default=None, name="exposure.correlation"
    )
    exposure_ts_ns: Annotated[Uint63 | None, Doc("when the exposure was taken, ns")] = field(
        default=None, name="exposure.ts_ns"
    )
    exposure_working_buy_qty: Annotated[NonNegative | None, Doc("its working buys' qty")] = field(
        default=None, name="exposure.working_buy_qty"
    )
    exposure_working_buy_notional: Annotated[
        NonNegative | None, Doc("its working buys' notional")
    ] = field(default=None, name="exposure.working_buy_notional")
    exposure_working_sell_qty: Annotated[NonNegative | None, Doc("its working sells' qty")] = field(
        default=None, name="exposure.working_sell_qty"
    )
    exposure_working_sell_notional: Annotated[
        NonNegative | None, Doc("its working sells' notional")
    ] = field(default=None, name="exposure.working_sell_notional")


class HaltArgs(Arguments, frozen=True, kw_only=True):
    """Why trading halts."""

    reason: Annotated[
        str, Meta(min_length=1, max_length=MAX_TEXT_LEN), Doc("why, as journaled and announced")
    ]
    ts_ns: Annotated[Uint63, Doc(_TS)]
    account: Annotated[Id | None, Doc(_SCOPE)] = None


class TimeArgs(Arguments, frozen=True, kw_only=True):
    """Only the sender's time."""

    ts_ns: Annotated[Uint63, Doc(_TS)]


class ResumeArgs(Arguments, frozen=True, kw_only=True):
    """The sender's time, and which account's halt to lift."""

    ts_ns: Annotated[Uint63, Doc(_TS)]
    account: Annotated[Id | None, Doc(_SCOPE)] = None


_STATE_REPLY = {"state": "the risk state after the command: Normal, Warning, CoolDown or Halted"}

CHECK = CommandSpec(
    CHECK_ORDER,
    "Judge an order against the risk limits (the positions ask before every order).",
    CheckArgs,
    reply={
        "approved": "whether the order may go to the exchange",
        "reason": "why, in words",
        "check": "the check that decided (order_notional, daily_loss, ...)",
        "values": "the numbers behind the decision, as decimal strings",
        "risk_reducing": "whether the order shrinks the position",
    },
    errors={"RemoteMessageError": "the exposure is not the ordering position's"},
    example=Example(
        args={
            "account": "default",
            "symbol": "BTC/USDT",
            "side": "buy",
            "qty": "0.5",
            "price": "64000",
            "order_id": "default:BTC/USDT:3",
            "ts_ns": 1767225600000000000,
        },
        reply={
            "approved": True,
            "reason": "ok",
            "check": "all",
            "values": {"order_notional": "32000"},
            "risk_reducing": False,
        },
    ),
)

HALT_SPEC = CommandSpec(
    HALT,
    "Halt trading (one account's, with `account`): every later order that adds risk is "
    "refused until `risk.resume`.",
    HaltArgs,
    reply=_STATE_REPLY,
    errors={"InvalidArgument": "`account` is not an account of the stack"},
    example=Example(
        args={"reason": "exchange incident", "ts_ns": 1767225600000000000},
        reply={"state": "Halted"},
    ),
)

RESUME_SPEC = CommandSpec(
    RESUME,
    "Lift a manual halt (never an unexpired cool-down).",
    ResumeArgs,
    reply=_STATE_REPLY,
    errors={"InvalidArgument": "`account` is not an account of the stack"},
    example=Example(args={"ts_ns": 1767225600000000000}, reply={"state": "Normal"}),
)

TICK_SPEC = CommandSpec(
    TICK,
    "Advance risk's clock (day ends, cool-down ends, stale marks); an empty result.",
    TimeArgs,
    reply={},
    example=Example(args={"ts_ns": 1767225600000000000}, reply={}),
)

INSPECT_SPEC = CommandSpec(
    INSPECT,
    "The risk supervisor's state, metrics, limits and newest decisions.",
    NoArguments,
    reply={
        "name": "risk",
        "state": "Normal, Warning, CoolDown or Halted",
        "halt_reason": "why it is halted, else null",
        "cooldown_until_ns": "when a cool-down ends, else null",
        "metrics": "equity, P&L, exposure and drawdown figures, as decimal strings",
        "limits": "the configured limits",
        "decisions_since_start": "decisions counted by outcome",
        "recent_decisions": "the newest decisions: order_id, state, approved, check, ...",
        "restored_from_seq": "the journal seq its durable state was restored from",
        "recovery": "what start-up recovery did, else null",
    },
    example=Example(
        args={},
        reply={
            "name": "risk",
            "state": "Normal",
            "halt_reason": None,
            "cooldown_until_ns": None,
            "metrics": {"equity": "100000"},
            "limits": {"max_order_notional": "50000"},
            "decisions_since_start": {"approved": 3},
            "recent_decisions": [],
            "restored_from_seq": 0,
            "recovery": None,
        },
    ),
)

RISK = ServiceSchema(
    service="risk",
    summary="The risk supervisor: pre-trade checks, halts, its state.",
    reached="the broker's `commands` endpoint, service `risk`",
    commands=(CHECK, HALT_SPEC, RESUME_SPEC, TICK_SPEC, INSPECT_SPEC),
)

EXPOSURE_SPEC = CommandSpec(
    EXPOSURE,
    "A position's exposure changed (published by its positions worker, heard by risk).",
    ExposureArgs,
    reply={},
    example=Example(
        args={
            "account": "default",
            "symbol": "BTC/USDT",
            "qty": "0.5",
            "mark": "64024.9",
            "mark_ts_ns": 1767225600000000000,
            "realized_pnl": "0",
            "unrealized_pnl": "12.4",
            "group": "majors",
            "correlation": "1",
            "ts_ns": 1767225600000000000,
        },
        reply={},
    ),
)

RESYNC_SPEC = CommandSpec(
    RESYNC,
    "Risk asks every positions worker to publish each position's exposure again.",
    NoArguments,
    reply={},
    example=Example(args={}, reply={}),
)

PUBLISHED = ServiceSchema(
    service="events",
    summary="Commands published on the event bus: one-way, never answered.",
    reached=(
        "the broker's `events_out` endpoint (SUB): `risk.exposure` on topic "
        "xp|ACCOUNT|SYMBOL|, `positions.resync` on rk|resync|"
    ),
    commands=(EXPOSURE_SPEC, RESYNC_SPEC),
)
