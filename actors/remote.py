"""Wire forms of the in-process control messages, and the remote references that send them.

Inside one process, actors talk with `tell`/`ask` and the frozen values of
posbus.actors.control. Across processes the same requests travel as
`bus.messages.Command` (decimals as plain decimal strings) and answers as
`Reply`. This module is the one place that maps between the two:

    CheckOrder      <-> command "risk.check"     (asked; reply: a RiskDecision)
    ExposureChanged <-> command "risk.exposure"  (told; published as an event)
    Halt / Resume   <-> commands "risk.halt" / "risk.resume" (asked; reply: the state)
    Tick            <-> command "risk.tick"
    SubmitOrder     <-> command "gateway.submit" (told)
    CancelOrder     <-> command "gateway.cancel" (told)

`RemoteRisk` and `RemoteGateway` have the `tell`/`ask` surface a position
actor already uses for its in-process peers, so a PositionActor runs
unchanged in a positions worker; they only need a `Link` (send a command and
wait for its reply, or fire one and forget) which the worker's transport
provides. Decoding validates every argument and raises `RemoteMessageError`
(permanent); it never executes anything it receives.

This module must never retry a state-changing request on its own: a timed out
submit is the gateway's problem to resolve by client order id.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from posbus.actors.control import (
    CancelOrder,
    CheckOrder,
    ExposureChanged,
    Halt,
    Resume,
    SubmitOrder,
    Tick,
)
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.exchange_reports import NewOrder
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskDecision
from posbus.actors.model.side import Side
from posbus.bus.constraints import format_decimal, parse_decimal
from posbus.bus.messages import Command, CommandArg, Message, Reply
from posbus.bus.topics import exposure_topic
from posbus.bus.wire_error import WireError

CHECK_ORDER = "risk.check"
EXPOSURE = "risk.exposure"
# A check's arguments carry the ordering position's exposure under this prefix.
EXPOSURE_PREFIX = "exposure."
HALT = "risk.halt"
RESUME = "risk.resume"
TICK = "risk.tick"
SUBMIT = "gateway.submit"
CANCEL = "gateway.cancel"

ControlMessage = CheckOrder | ExposureChanged | Halt | Resume | Tick | SubmitOrder | CancelOrder


class RemoteMessageError(PosbusError):
    """A command's arguments do not describe a valid control message (permanent)."""


class RemoteCallFailed(PosbusError):
    """The remote side answered a request with an error reply; carries the remote error type."""

    def __init__(self, message: str, *, remote_type: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type


class RemoteCallRetryable(RemoteCallFailed):
    """The remote side failed with a transient error: a retry may help (if it changes nothing)."""

    transient = True


_ids = itertools.count(1)
_PID = os.getpid()


def new_request_id(prefix: str = "r") -> str:
    """A request id unique in this process (pid + counter): replies are matched on it."""
    return f"{prefix}-{_PID}-{next(_ids)}"


# -- encode -------------------------------------------------------------------------


def _dec(value: Decimal, where: str) -> str:
    return format_decimal(value, where)


def _opt_dec(value: Decimal | None, where: str) -> str | None:
    return None if value is None else format_decimal(value, where)


def to_command(message: ControlMessage, request_id: str | None = None) -> Command:
    """The Command that carries `message` across processes."""
    rid = request_id if request_id is not None else new_request_id()
    args: dict[str, CommandArg]
    if isinstance(message, CheckOrder):
        r = message.request
        args = {
            "account": r.account,
            "symbol": r.symbol,
            "side": r.side.value,
            "qty": _dec(r.qty, "qty"),
            "price": _opt_dec(r.price, "price"),
            "order_id": r.order_id,
            "ts_ns": r.ts_ns,
        }
        if message.exposure is not None:
            args |= _exposure_args(message.exposure, EXPOSURE_PREFIX)
        return Command(CHECK_ORDER, args, rid)
    if isinstance(message, ExposureChanged):
        return Command(EXPOSURE, _exposure_args(message, ""), rid)
    if isinstance(message, Halt):
        return Command(HALT, {"reason": message.reason, "ts_ns": message.ts_ns}, rid)
    if isinstance(message, Resume):
        return Command(RESUME, {"ts_ns": message.ts_ns}, rid)
    if isinstance(message, Tick):
        return Command(TICK, {"ts_ns": message.ts_ns}, rid)
    if isinstance(message, SubmitOrder):
        o = message.order
        args = {
            "client_order_id": o.client_order_id,
            "account": o.account,
            "symbol": o.symbol,
            "side": o.side.value,
            "qty": _dec(o.qty, "qty"),
            "limit_price": _opt_dec(o.limit_price, "limit_price"),
            "ts_ns": o.ts_ns,
            "order_id": message.order_id,
            "stream": message.stream,
        }
        return Command(SUBMIT, args, rid)
    if isinstance(message, CancelOrder):
        args = {
            "client_order_id": message.client_order_id,
            "order_id": message.order_id,
            "stream": message.stream,
            "ts_ns": message.ts_ns,
        }
        return Command(CANCEL, args, rid)
    raise TypeError(f"no wire form for {type(message).__name__}")


# -- decode -------------------------------------------------------------------------


class _Args:
    """Typed, validating access to a command's arguments."""

    def __init__(self, command: Command) -> None:
        self.name = command.name
        self.args = command.args

    def _fail(self, key: str, problem: str) -> RemoteMessageError:
        return RemoteMessageError(f"command {self.name!r}: argument {key!r} {problem}")

    def text(self, key: str) -> str:
        value = self.args.get(key)
        if type(value) is not str or not value:
            raise self._fail(key, "must be a non-empty string")
        return value

    def integer(self, key: str) -> int:
        value = self.args.get(key)
        if type(value) is not int or value < 0:
            raise self._fail(key, "must be a non-negative integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.args.get(key) is None else self.integer(key)

    def decimal(self, key: str) -> Decimal:
        try:
            return parse_decimal(self.args.get(key), key)
        except WireError as exc:
            raise self._fail(key, "must be a plain decimal string") from exc

    def opt_decimal(self, key: str) -> Decimal | None:
        return None if self.args.get(key) is None else self.decimal(key)

    def side(self, key: str) -> Side:
        value = self.args.get(key)
        for side in Side:
            if side.value == value:
                return side
        raise self._fail(key, f"must be one of {[s.value for s in Side]}")


def _exposure_args(message: ExposureChanged, prefix: str) -> dict[str, CommandArg]:
    e = message.exposure
    args: dict[str, CommandArg] = {
        "account": e.account,
        "symbol": e.symbol,
        "qty": _dec(e.qty, "qty"),
        "mark": _opt_dec(e.mark, "mark"),
        "mark_ts_ns": e.mark_ts_ns,
        "realized_pnl": _dec(e.realized_pnl, "realized_pnl"),
        "unrealized_pnl": _dec(e.unrealized_pnl, "unrealized_pnl"),
        "group": e.group,
        "correlation": _dec(e.correlation, "correlation"),
        "ts_ns": message.ts_ns,
    }
    return {prefix + key: value for key, value in args.items()}


def _exposure_from(a: _Args, prefix: str) -> ExposureChanged:
    exposure = PositionExposure(
        account=a.text(prefix + "account"),
        symbol=a.text(prefix + "symbol"),
        qty=a.decimal(prefix + "qty"),
        mark=a.opt_decimal(prefix + "mark"),
        mark_ts_ns=a.opt_integer(prefix + "mark_ts_ns"),
        realized_pnl=a.decimal(prefix + "realized_pnl"),
        unrealized_pnl=a.decimal(prefix + "unrealized_pnl"),
        group=a.text(prefix + "group"),
        correlation=a.decimal(prefix + "correlation"),
    )
    return ExposureChanged(exposure, a.integer(prefix + "ts_ns"))


def from_command(command: Command) -> ControlMessage:
    """The control message a Command carries; raises RemoteMessageError when it is not one."""
    a = _Args(command)
    try:
        if command.name == CHECK_ORDER:
            request = OrderRequest(
                account=a.text("account"),
                symbol=a.text("symbol"),
                side=a.side("side"),
                qty=a.decimal("qty"),
                price=a.opt_decimal("price"),
                order_id=a.text("order_id"),
                ts_ns=a.integer("ts_ns"),
            )
            with_exposure = EXPOSURE_PREFIX + "account" in command.args
            exposure = _exposure_from(a, EXPOSURE_PREFIX) if with_exposure else None
            if exposure is not None and (
                exposure.exposure.account,
                exposure.exposure.symbol,
            ) != (request.account, request.symbol):
                raise RemoteMessageError(
                    f"{CHECK_ORDER}: the exposure is not the ordering position's"
                )
            return CheckOrder(request, exposure)
        if command.name == EXPOSURE:
            return _exposure_from(a, "")
        if command.name == HALT:
            return Halt(a.text("reason"), a.integer("ts_ns"))
        if command.name == RESUME:
            return Resume(a.integer("ts_ns"))
        if command.name == TICK:
            return Tick(a.integer("ts_ns"))
        if command.name == SUBMIT:
            order = NewOrder(
                client_order_id=a.text("client_order_id"),
                account=a.text("account"),
                symbol=a.text("symbol"),
                side=a.side("side"),
                qty=a.decimal("qty"),
                limit_price=a.opt_decimal("limit_price"),
                ts_ns=a.integer("ts_ns"),
            )
            return SubmitOrder(order, a.text("order_id"), a.text("stream"))
        if command.name == CANCEL:
            return CancelOrder(
                a.text("client_order_id"), a.text("order_id"), a.text("stream"), a.integer("ts_ns")
            )
    except RemoteMessageError:
        raise
    except (ValueError, PosbusError) as exc:  # a domain value refused the numbers
        raise RemoteMessageError(f"command {command.name!r}: {exc}") from exc
    raise RemoteMessageError(f"unknown control command {command.name!r}")


def decision_result(decision: RiskDecision) -> dict[str, Any]:
    """A RiskDecision as a Reply result."""
    return {
        "approved": decision.approved,
        "reason": decision.reason,
        "check": decision.check,
        "values": dict(decision.values),
        "risk_reducing": decision.risk_reducing,
    }


def decision_from_result(result: dict[str, Any]) -> RiskDecision:
    """The RiskDecision of a "risk.check" reply; raises RemoteMessageError when malformed."""
    approved = result.get("approved")
    reason = result.get("reason")
    check = result.get("check")
    values = result.get("values", {})
    reducing = result.get("risk_reducing", False)
    if (
        type(approved) is not bool
        or type(reason) is not str
        or type(check) is not str
        or type(values) is not dict
        or type(reducing) is not bool
    ):
        raise RemoteMessageError(f"malformed risk decision: {result!r}"[:512])
    return RiskDecision(
        approved, reason, check, {str(k): str(v) for k, v in values.items()}, reducing
    )


# -- remote references --------------------------------------------------------------------


class Link(Protocol):
    """How a remote reference reaches another role (provided by the worker's transport).

    `request` sends a command to `service` and returns its Reply, raising a
    PosbusError (UnknownOutcome when no answer came in `timeout` s);
    `send` fires a command at `service` without waiting (`on_outcome(reason)`
    runs, in any thread, once the send is over: the reason when it provably
    never reached the service, else None); `publish` puts a
    message on the event bus under `topic` (a bus.topics frame prefix).
    All three are callable from any thread.
    """

    def request(self, service: str, command: Command, timeout: float) -> Reply: ...

    def send(
        self,
        service: str,
        command: Command,
        on_outcome: Callable[[str | None], None] | None = None,
    ) -> None: ...

    def publish(self, topic: bytes, message: Message) -> None: ...


def _raise_for(reply: Reply) -> dict[str, Any]:
    if reply.ok:
        return reply.result
    error = reply.error
    assert error is not None  # Reply guarantees it when not ok
    cls = RemoteCallRetryable if error["transient"] else RemoteCallFailed
    raise cls(f"{error['type']}: {error['message']}", remote_type=error["type"])


class RemoteRisk:
    """The risk supervisor of another process, with the surface a PositionActor uses.

    `ask(CheckOrder)` is a "risk.check" request to service "risk" (returns a
    RiskDecision); `tell(ExposureChanged)` publishes a "risk.exposure" event
    (topic ``xp|ACCOUNT|SYMBOL|``); `ask(Halt | Resume)` returns the new state. Called from
    actor threads.
    """

    service = "risk"

    def __init__(self, link: Link) -> None:
        self.link = link

    def tell(self, message: object) -> None:
        """Publish an exposure change (fire and forget)."""
        if isinstance(message, ExposureChanged):
            e = message.exposure
            self.link.publish(exposure_topic(e.account, e.symbol), to_command(message))
        elif isinstance(message, Tick):
            self.link.send(self.service, to_command(message))
        else:
            raise TypeError(f"RemoteRisk cannot tell {type(message).__name__}")

    def ask(self, message: object, *, timeout: float | None = None) -> Any:
        """Request a decision or a state change and wait for the answer."""
        if not isinstance(message, CheckOrder | Halt | Resume):
            raise TypeError(f"RemoteRisk cannot ask {type(message).__name__}")
        reply = self.link.request(self.service, to_command(message), timeout or 5.0)
        result = _raise_for(reply)
        if isinstance(message, CheckOrder):
            return decision_from_result(result)
        return str(result.get("state", ""))


@dataclass(slots=True)
class _Sends:
    """The submits of one order through a RemoteGateway (under its lock)."""

    in_flight: int = 0
    maybe_delivered: bool = False


class RemoteGateway:
    """The gateway of an account in another process: `tell(SubmitOrder | CancelOrder)`.

    Each becomes a command to service "gateway.ACCOUNT", sent without waiting:
    the answer comes back as journaled execution signals, never as the reply.

    An order whose every submit provably never reached the gateway (no
    broker, no gateway worker) is handed to `not_sent(submit, reason)` (any
    thread), so it does not wait forever for an answer that cannot come. A
    position re-sends a submit after a restart or on a resync (`resend`): an
    earlier send, maybe by an earlier incarnation of this process, may have
    been delivered and filled, so a re-sent order is never given up; nor is
    one while any send of it is in flight, or one may have been delivered.
    """

    def __init__(
        self,
        link: Link,
        account: str,
        not_sent: Callable[[SubmitOrder, str], None] | None = None,
    ) -> None:
        self.link = link
        self.service = f"gateway.{account}"
        self.not_sent = not_sent
        self._lock = threading.Lock()
        self._sends: dict[str, _Sends] = {}  # order id -> its submits

    def tell(self, message: object) -> None:
        """Send a submit or cancel (fire and forget)."""
        if isinstance(message, SubmitOrder) and self.not_sent is not None:
            with self._lock:
                sends = self._sends.setdefault(message.order_id, _Sends())
                sends.in_flight += 1
                sends.maybe_delivered = sends.maybe_delivered or message.resend
            self.link.send(
                self.service, to_command(message), lambda reason: self._over(message, reason)
            )
        elif isinstance(message, SubmitOrder | CancelOrder):
            self.link.send(self.service, to_command(message))
        else:
            raise TypeError(f"RemoteGateway cannot tell {type(message).__name__}")

    def _over(self, submit: SubmitOrder, reason: str | None) -> None:
        with self._lock:
            sends = self._sends[submit.order_id]
            sends.in_flight -= 1
            sends.maybe_delivered = sends.maybe_delivered or reason is None
            if sends.in_flight:
                return
            del self._sends[submit.order_id]
            if sends.maybe_delivered:
                return
        assert self.not_sent is not None and reason is not None
        self.not_sent(submit, reason)
