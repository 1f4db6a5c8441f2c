"""The messages posbus actors and processes exchange: immutable, versioned values.

Five kinds travel on the bus (docs/wire-format.md has the byte layout):

- ``market_update``: MarketUpdate, a top-of-book quote.
- ``execution_signal``: the life of an order, one Struct per signal type
  (OrderIntent, OrderSubmit, OrderAck, OrderFill, CancelRequest,
  OrderCancelled, OrderRejected, OrderExpired), told apart by ``SIGNAL``.
- ``risk_event``: RiskEvent, what the risk supervisor decided or noticed.
- ``command`` and ``reply``: Command and Reply, the control plane.

Each class is a frozen msgspec Struct carrying its wire kind (``KIND``) and
schema version (``VERSION``). A field's annotation is its constraint (the
aliases of bus/constraints.py, declared once). msgspec enforces them on
decode but not in ``__init__``, so ``__post_init__`` runs the same declared
checks (bus/schema.py: one msgspec conversion plus the decimal and enum
rules, about 0.7 us for a MarketUpdate) and the cross-field rules: an invalid
message never exists, built in-process or decoded. Decoded messages go
through the same constructor (one construction path; the repeated check is
about 0.7 us of a 5 us decode). Field order is the wire's positional order:
never reorder fields without bumping ``VERSION``. A field added later is
trailing, defaults to None and is named in ``ADDED`` with the version that
added it: a frame carries it only when it is set, and is then of that version
(bus/schema.py `MessageSchema.version_of`).

Pure values: no I/O, no clocks; timestamps (ns since the epoch) are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, TypedDict

from msgspec import Struct

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.bus.constraints import (
    MAX_TEXT_LEN,
    CommandArg,
    CommandArgs,
    DecimalStrings,
    Id,
    NonNegative,
    Positive,
    Result,
    Signed,
    Text,
    Uint63,
    check_result,
)
from posbus.bus.schema import validate
from posbus.bus.wire_error import WireError

__all__ = [
    "EXECUTION_SIGNALS",
    "EXECUTION_SIGNAL_VERSION",
    "MESSAGE_TYPES",
    "CancelRequest",
    "Command",
    "CommandArg",
    "ExecutionSignal",
    "Liquidity",
    "MarketUpdate",
    "Message",
    "OrderAck",
    "OrderCancelled",
    "OrderExpired",
    "OrderFill",
    "OrderIntent",
    "OrderRejected",
    "OrderSubmit",
    "Reply",
    "ReplyErrorInfo",
    "RiskEvent",
]

_TWO = Decimal(2)  # a Decimal divisor: an int one is converted on every mid

#: Schema version shared by every signal type of ``execution_signal``: the
#: version of a signal without any field added later (``ADDED``).
EXECUTION_SIGNAL_VERSION = 1


class Liquidity(StrEnum):
    """Whether a fill added liquidity (maker) or took it (taker), as on the wire."""

    MAKER = "maker"
    TAKER = "taker"


class _Message(Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Validates every declared field on construction; subclasses add cross-field rules."""

    #: Trailing fields added after ``VERSION``, each with the version that added it.
    ADDED: ClassVar[Mapping[str, int]] = {}

    def __post_init__(self) -> None:
        validate(self)


# -- market_update ------------------------------------------------------------


class MarketUpdate(_Message, frozen=True, gc=False):
    """A top-of-book quote for one symbol.

    `bid` and `ask` are finite and > 0 with bid <= ask: a crossed quote
    (bid > ask) is refused, a locked one (bid == ask) is allowed. `last` is
    the last trade price (> 0) when known; sizes are >= 0 when known.
    """

    KIND: ClassVar[str] = "market_update"
    VERSION: ClassVar[int] = 1

    symbol: Id
    bid: Positive
    ask: Positive
    last: Positive | None
    bid_size: NonNegative | None
    ask_size: NonNegative | None
    ts_ns: Uint63

    def __post_init__(self) -> None:
        validate(self)
        if self.bid > self.ask:
            raise WireError(
                f"market_update.bid: crossed quote, bid {self.bid} > ask {self.ask}",
                field="market_update.bid",
                symbol=self.symbol,
                ts_ns=self.ts_ns,
            )

    def mid(self) -> Decimal:
        """(bid + ask) / 2: the mark positions and the risk supervisor price at.

        In the thread's decimal context, which posbus never changes from the
        default (28 digits, half-even): every reader gets the same Decimal.
        """
        return (self.bid + self.ask) / _TWO


# -- execution_signal ---------------------------------------------------------
# On the wire a signal's body starts with its type: the Struct tag (SIGNAL).


class OrderIntent(_Message, frozen=True, gc=False, tag="intent"):
    """A strategy or an operator wants a position change; risk decides whether it becomes an order.

    `limit_price` None means a market order. `reduce_only` intents may only
    shrink a position (the ones cool-down still lets through).
    """

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "intent"

    account: Id
    symbol: Id
    side: Side
    qty: Positive
    limit_price: Positive | None
    intent_id: Id
    reduce_only: bool
    reason: Text
    ts_ns: Uint63


class OrderSubmit(_Message, frozen=True, gc=False, tag="submit"):
    """An order was sent to a gateway. `limit_price` None means a market order."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "submit"

    order_id: Id
    client_order_id: Id
    account: Id
    symbol: Id
    side: Side
    qty: Positive
    limit_price: Positive | None
    ts_ns: Uint63


class OrderAck(_Message, frozen=True, gc=False, tag="ack"):
    """The exchange accepted an order and gave it its own id."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "ack"

    order_id: Id
    client_order_id: Id
    exchange_order_id: Id
    ts_ns: Uint63


class OrderFill(_Message, frozen=True, gc=False, tag="fill"):
    """One execution against an order, as reported by the exchange: the wire form of a Fill.

    `qty` and `price` are finite and > 0; `fee` is finite and may be negative
    (a maker rebate). `fee_mark` is the fill's conversion mark, the price of
    one `fee_currency` in the symbol's quote currency at the fill's time
    (> 0), or None: added in execution_signal version 2, a fill carrying it
    travels as a version 2 frame, one without it as the version 1 frame it
    always was. Convert with `to_fill()` and `OrderFill.from_fill()`.
    """

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "fill"
    ADDED: ClassVar[Mapping[str, int]] = {"fee_mark": 2}

    order_id: Id
    client_order_id: Id
    trade_id: Id
    account: Id
    symbol: Id
    side: Side
    qty: Positive
    price: Positive
    fee: Signed
    fee_currency: Id
    liquidity: Liquidity
    ts_ns: Uint63
    fee_mark: Positive | None = None

    def to_fill(self) -> Fill:
        """The domain Fill this signal reports (drops client_order_id and liquidity)."""
        return Fill(
            trade_id=self.trade_id,
            account=self.account,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            price=self.price,
            fee=self.fee,
            fee_currency=self.fee_currency,
            ts_ns=self.ts_ns,
            order_id=self.order_id,
            fee_mark=self.fee_mark,
        )

    @classmethod
    def from_fill(cls, fill: Fill, *, client_order_id: str, liquidity: Liquidity) -> OrderFill:
        """The signal for a domain Fill; raises WireError if the fill has no order_id."""
        return cls(
            order_id=fill.order_id,  # the check refuses a Fill's empty order_id
            client_order_id=client_order_id,
            trade_id=fill.trade_id,
            account=fill.account,
            symbol=fill.symbol,
            side=fill.side,
            qty=fill.qty,
            price=fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=liquidity,
            ts_ns=fill.ts_ns,
            fee_mark=fill.fee_mark,
        )


class CancelRequest(_Message, frozen=True, gc=False, tag="cancel_request"):
    """Someone asked for an order to be cancelled; it is not cancelled until OrderCancelled."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "cancel_request"

    order_id: Id
    ts_ns: Uint63


class OrderCancelled(_Message, frozen=True, gc=False, tag="cancelled"):
    """The exchange confirmed an order is cancelled (its unfilled rest is gone)."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "cancelled"

    order_id: Id
    reason: Text
    ts_ns: Uint63


class OrderRejected(_Message, frozen=True, gc=False, tag="reject"):
    """An order was refused (by risk, validation or the exchange) and never worked."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "reject"

    order_id: Id
    reason: Text
    ts_ns: Uint63


class OrderExpired(_Message, frozen=True, gc=False, tag="expired"):
    """An order's time in force ran out on the exchange."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "expired"

    order_id: Id
    ts_ns: Uint63


ExecutionSignal = (
    OrderIntent
    | OrderSubmit
    | OrderAck
    | OrderFill
    | CancelRequest
    | OrderCancelled
    | OrderRejected
    | OrderExpired
)

#: Every signal type of ``execution_signal``, in the order the docs list them.
EXECUTION_SIGNALS: tuple[type[ExecutionSignal], ...] = (
    OrderIntent,
    OrderSubmit,
    OrderAck,
    OrderFill,
    CancelRequest,
    OrderCancelled,
    OrderRejected,
    OrderExpired,
)


# -- risk_event ---------------------------------------------------------------


class RiskEvent(_Message, frozen=True):
    """Something the risk supervisor decided or noticed.

    `event` names what happened ("state_change", "order_rejected",
    "limit_warning", "worker_down", "breaker_state", "reconciliation", ...);
    `state` is the risk state after it ("Normal", "Warning", "CoolDown",
    "Halted"; for "breaker_state" the breaker's state) and `previous_state`
    the one before, when it changed. `values` holds the numbers behind the
    decision as exact decimal strings ({"daily_pnl": "-1250.50", ...}).
    """

    KIND: ClassVar[str] = "risk_event"
    VERSION: ClassVar[int] = 1

    event: Id
    state: Id
    previous_state: Id | None
    reason: Text
    account: Id | None
    symbol: Id | None
    values: DecimalStrings
    ts_ns: Uint63


# -- command and reply --------------------------------------------------------
# Both hold caller-built maps, so they keep msgspec's cycle collection (gc=True).


class Command(_Message, frozen=True):
    """A control request (from the CLI, a strategy, an operator) to a named endpoint.

    `request_id` is chosen by the sender and echoed by the Reply. Commands
    carry no timestamp of their own: the envelope's ts_ns is the send time.
    Treat `args` as read-only.
    """

    KIND: ClassVar[str] = "command"
    VERSION: ClassVar[int] = 1

    name: Id
    args: CommandArgs
    request_id: Id


class ReplyErrorInfo(TypedDict):
    """Why a command failed: the error's class name, its message, and whether a retry may help."""

    type: Id
    message: Text
    transient: bool


class Reply(_Message, frozen=True):
    """The answer to a Command with the same request_id.

    `ok` True: `result` holds the answer and `error` is None. `ok` False:
    `error` says why and `result` is usually empty. `result` is JSON-like
    (str, int64, bool, None, list, map with str keys; no floats, decimals as
    strings), nested at most 8 deep. Treat `result` as read-only.
    """

    KIND: ClassVar[str] = "reply"
    VERSION: ClassVar[int] = 1

    request_id: Id
    ok: bool
    result: Result
    error: ReplyErrorInfo | None

    def __post_init__(self) -> None:
        validate(self)
        check_result(self.result, "reply.result")
        if self.ok != (self.error is None):
            raise WireError(
                "reply.error: must be None exactly when ok is true", field="reply.error"
            )

    @classmethod
    def success(cls, request_id: str, result: dict[str, Any] | None = None) -> Reply:
        """A successful reply carrying `result` (empty when None)."""
        return cls(
            request_id=request_id, ok=True, result={} if result is None else result, error=None
        )

    @classmethod
    def failure(cls, request_id: str, error: BaseException) -> Reply:
        """A failed reply describing `error`; transient only for a transient PosbusError."""
        info = ReplyErrorInfo(
            type=type(error).__name__,
            # str() of a PosbusError includes its context (order id, symbol...).
            message=str(error)[:MAX_TEXT_LEN],
            transient=isinstance(error, PosbusError) and error.transient,
        )
        return cls(request_id=request_id, ok=False, result={}, error=info)


#: Anything the codec can put on the wire.
Message = MarketUpdate | ExecutionSignal | RiskEvent | Command | Reply

#: Every message class, in the order the docs list them.
MESSAGE_TYPES: tuple[type[Message], ...] = (
    MarketUpdate,
    *EXECUTION_SIGNALS,
    RiskEvent,
    Command,
    Reply,
)
