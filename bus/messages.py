"""The messages posbus actors and processes exchange: immutable, versioned values.

Five kinds travel on the bus (docs/wire-format.md has the byte layout):

- ``market_update``: MarketUpdate, a top-of-book quote.
- ``execution_signal``: the life of an order, one dataclass per signal type
  (OrderIntent, OrderSubmit, OrderAck, OrderFill, CancelRequest,
  OrderCancelled, OrderRejected, OrderExpired), told apart by ``SIGNAL``.
- ``risk_event``: RiskEvent, what the risk supervisor decided or noticed.
- ``command`` and ``reply``: Command and Reply, the control plane.

Each class carries its wire kind (``KIND``) and schema version (``VERSION``)
as class attributes. Constructors validate every field against the wire
schema and raise WireError naming the field, so an invalid message never
exists, whether built in-process or decoded from bytes. Field order is the
wire's positional order: never reorder fields without bumping ``VERSION``.

Pure values: no I/O, no clocks; timestamps (ns since the epoch) are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, TypedDict

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.bus.constraints import (
    MAX_TEXT_LEN,
    check_bool,
    check_command_args,
    check_decimal_strings,
    check_finite,
    check_id,
    check_member,
    check_non_negative,
    check_non_negative_int64,
    check_optional_id,
    check_positive,
    check_reply_error,
    check_result,
    check_text,
)
from posbus.bus.wire_error import WireError

_TWO = Decimal(2)  # a Decimal divisor: an int one is converted on every mid

#: Schema version shared by every signal type of ``execution_signal``.
EXECUTION_SIGNAL_VERSION = 1


class Liquidity(StrEnum):
    """Whether a fill added liquidity (maker) or took it (taker), as on the wire."""

    MAKER = "maker"
    TAKER = "taker"


# -- market_update ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """A top-of-book quote for one symbol.

    `bid` and `ask` are finite and > 0 with bid <= ask: a crossed quote
    (bid > ask) is refused, a locked one (bid == ask) is allowed. `last` is
    the last trade price (> 0) when known; sizes are >= 0 when known.
    """

    KIND: ClassVar[str] = "market_update"
    VERSION: ClassVar[int] = 1

    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal | None
    bid_size: Decimal | None
    ask_size: Decimal | None
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.symbol, "market_update.symbol")
        check_positive(self.bid, "market_update.bid")
        check_positive(self.ask, "market_update.ask")
        if self.last is not None:
            check_positive(self.last, "market_update.last")
        if self.bid_size is not None:
            check_non_negative(self.bid_size, "market_update.bid_size")
        if self.ask_size is not None:
            check_non_negative(self.ask_size, "market_update.ask_size")
        check_non_negative_int64(self.ts_ns, "market_update.ts_ns")
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


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A strategy or an operator wants a position change; risk decides whether it becomes an order.

    `limit_price` None means a market order. `reduce_only` intents may only
    shrink a position (the ones cool-down still lets through).
    """

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "intent"

    account: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    intent_id: str
    reduce_only: bool
    reason: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.account, "execution_signal.intent.account")
        check_id(self.symbol, "execution_signal.intent.symbol")
        check_member(self.side, Side, "execution_signal.intent.side")
        check_positive(self.qty, "execution_signal.intent.qty")
        if self.limit_price is not None:
            check_positive(self.limit_price, "execution_signal.intent.limit_price")
        check_id(self.intent_id, "execution_signal.intent.intent_id")
        check_bool(self.reduce_only, "execution_signal.intent.reduce_only")
        check_text(self.reason, "execution_signal.intent.reason")
        check_non_negative_int64(self.ts_ns, "execution_signal.intent.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderSubmit:
    """An order was sent to a gateway. `limit_price` None means a market order."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "submit"

    order_id: str
    client_order_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.submit.order_id")
        check_id(self.client_order_id, "execution_signal.submit.client_order_id")
        check_id(self.account, "execution_signal.submit.account")
        check_id(self.symbol, "execution_signal.submit.symbol")
        check_member(self.side, Side, "execution_signal.submit.side")
        check_positive(self.qty, "execution_signal.submit.qty")
        if self.limit_price is not None:
            check_positive(self.limit_price, "execution_signal.submit.limit_price")
        check_non_negative_int64(self.ts_ns, "execution_signal.submit.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderAck:
    """The exchange accepted an order and gave it its own id."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "ack"

    order_id: str
    client_order_id: str
    exchange_order_id: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.ack.order_id")
        check_id(self.client_order_id, "execution_signal.ack.client_order_id")
        check_id(self.exchange_order_id, "execution_signal.ack.exchange_order_id")
        check_non_negative_int64(self.ts_ns, "execution_signal.ack.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderFill:
    """One execution against an order, as reported by the exchange: the wire form of a Fill.

    `qty` and `price` are finite and > 0; `fee` is finite and may be negative
    (a maker rebate). Convert with `to_fill()` and `OrderFill.from_fill()`.
    """

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "fill"

    order_id: str
    client_order_id: str
    trade_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.fill.order_id")
        check_id(self.client_order_id, "execution_signal.fill.client_order_id")
        check_id(self.trade_id, "execution_signal.fill.trade_id")
        check_id(self.account, "execution_signal.fill.account")
        check_id(self.symbol, "execution_signal.fill.symbol")
        check_member(self.side, Side, "execution_signal.fill.side")
        check_positive(self.qty, "execution_signal.fill.qty")
        check_positive(self.price, "execution_signal.fill.price")
        check_finite(self.fee, "execution_signal.fill.fee")
        check_id(self.fee_currency, "execution_signal.fill.fee_currency")
        check_member(self.liquidity, Liquidity, "execution_signal.fill.liquidity")
        check_non_negative_int64(self.ts_ns, "execution_signal.fill.ts_ns")

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
        )

    @classmethod
    def from_fill(cls, fill: Fill, *, client_order_id: str, liquidity: Liquidity) -> OrderFill:
        """The signal for a domain Fill; raises WireError if the fill has no order_id."""
        return cls(
            order_id=fill.order_id,
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
        )


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Someone asked for an order to be cancelled; it is not cancelled until OrderCancelled."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "cancel_request"

    order_id: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.cancel_request.order_id")
        check_non_negative_int64(self.ts_ns, "execution_signal.cancel_request.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The exchange confirmed an order is cancelled (its unfilled rest is gone)."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "cancelled"

    order_id: str
    reason: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.cancelled.order_id")
        check_text(self.reason, "execution_signal.cancelled.reason")
        check_non_negative_int64(self.ts_ns, "execution_signal.cancelled.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """An order was refused (by risk, validation or the exchange) and never worked."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "reject"

    order_id: str
    reason: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.reject.order_id")
        check_text(self.reason, "execution_signal.reject.reason")
        check_non_negative_int64(self.ts_ns, "execution_signal.reject.ts_ns")


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """An order's time in force ran out on the exchange."""

    KIND: ClassVar[str] = "execution_signal"
    VERSION: ClassVar[int] = EXECUTION_SIGNAL_VERSION
    SIGNAL: ClassVar[str] = "expired"

    order_id: str
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.order_id, "execution_signal.expired.order_id")
        check_non_negative_int64(self.ts_ns, "execution_signal.expired.ts_ns")


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


@dataclass(frozen=True, slots=True)
class RiskEvent:
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

    event: str
    state: str
    previous_state: str | None
    reason: str
    account: str | None
    symbol: str | None
    values: dict[str, str]
    ts_ns: int

    def __post_init__(self) -> None:
        check_id(self.event, "risk_event.event")
        check_id(self.state, "risk_event.state")
        check_optional_id(self.previous_state, "risk_event.previous_state")
        check_text(self.reason, "risk_event.reason")
        check_optional_id(self.account, "risk_event.account")
        check_optional_id(self.symbol, "risk_event.symbol")
        check_decimal_strings(self.values, "risk_event.values")
        check_non_negative_int64(self.ts_ns, "risk_event.ts_ns")


# -- command and reply --------------------------------------------------------

#: The value of one command argument.
CommandArg = str | int | bool | None | list[str]


@dataclass(frozen=True, slots=True)
class Command:
    """A control request (from the CLI, a strategy, an operator) to a named endpoint.

    `request_id` is chosen by the sender and echoed by the Reply. Commands
    carry no timestamp of their own: the envelope's ts_ns is the send time.
    Treat `args` as read-only.
    """

    KIND: ClassVar[str] = "command"
    VERSION: ClassVar[int] = 1

    name: str
    args: dict[str, CommandArg]
    request_id: str

    def __post_init__(self) -> None:
        check_id(self.name, "command.name")
        check_command_args(self.args, "command.args")
        check_id(self.request_id, "command.request_id")


class ReplyErrorInfo(TypedDict):
    """Why a command failed: the error's class name, its message, and whether a retry may help."""

    type: str
    message: str
    transient: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a Command with the same request_id.

    `ok` True: `result` holds the answer and `error` is None. `ok` False:
    `error` says why and `result` is usually empty. `result` is JSON-like
    (str, int64, bool, None, list, map with str keys; no floats, decimals as
    strings), nested at most 8 deep. Treat `result` as read-only.
    """

    KIND: ClassVar[str] = "reply"
    VERSION: ClassVar[int] = 1

    request_id: str
    ok: bool
    result: dict[str, Any]
    error: ReplyErrorInfo | None

    def __post_init__(self) -> None:
        check_id(self.request_id, "reply.request_id")
        check_bool(self.ok, "reply.ok")
        check_result(self.result, "reply.result")
        if self.error is not None:
            check_reply_error(self.error, "reply.error")
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
