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
provides. The arguments are declared once, in risk_schema.py and
gateway_schema.py; decoding parses them there and raises `RemoteMessageError`
(permanent) for anything refused; it never executes anything it receives.

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
from posbus.actors.gateway_schema import (
    CANCEL,
    CANCEL_SPEC,
    SUBMIT,
    SUBMIT_SPEC,
    CancelArgs,
    SubmitArgs,
)
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.exchange_reports import NewOrder
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskDecision
from posbus.actors.risk_schema import (
    CHECK,
    CHECK_ORDER,
    EXPOSURE,
    EXPOSURE_SPEC,
    HALT,
    HALT_SPEC,
    RESUME,
    RESUME_SPEC,
    TICK,
    TICK_SPEC,
    CheckArgs,
    ExposureArgs,
    HaltArgs,
    ResumeArgs,
    TimeArgs,
)
from posbus.bus.command_schema import CommandSpec
from posbus.bus.errors import InvalidArgument
from posbus.bus.messages import Command, Message, Reply
from posbus.bus.topics import exposure_topic

# A check's arguments carry the ordering position's exposure under this prefix.
EXPOSURE_PREFIX = "exposure."
_ZERO = Decimal(0)

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


def _exposure_args(message: ExposureChanged) -> ExposureArgs:
    e = message.exposure
    return ExposureArgs(
        account=e.account,
        symbol=e.symbol,
        qty=e.qty,
        mark=e.mark,
        mark_ts_ns=e.mark_ts_ns,
        realized_pnl=e.realized_pnl,
        unrealized_pnl=e.unrealized_pnl,
        group=e.group,
        correlation=e.correlation,
        ts_ns=message.ts_ns,
        # Left out when no order works: such a frame is the one it always was.
        working_buy_qty=e.working_buy_qty if e.has_working else None,
        working_buy_notional=e.working_buy_notional if e.has_working else None,
        working_sell_qty=e.working_sell_qty if e.has_working else None,
        working_sell_notional=e.working_sell_notional if e.has_working else None,
    )


def _check_args(message: CheckOrder) -> CheckArgs:
    r = message.request
    changed = message.exposure
    e = None if changed is None else changed.exposure
    working = e is not None and e.has_working
    return CheckArgs(
        account=r.account,
        symbol=r.symbol,
        side=r.side,
        qty=r.qty,
        price=r.price,
        order_id=r.order_id,
        ts_ns=r.ts_ns,
        exposure_account=None if e is None else e.account,
        exposure_symbol=None if e is None else e.symbol,
        exposure_qty=None if e is None else e.qty,
        exposure_mark=None if e is None else e.mark,
        exposure_mark_ts_ns=None if e is None else e.mark_ts_ns,
        exposure_realized_pnl=None if e is None else e.realized_pnl,
        exposure_unrealized_pnl=None if e is None else e.unrealized_pnl,
        exposure_group=None if e is None else e.group,
        exposure_correlation=None if e is None else e.correlation,
        exposure_ts_ns=None if changed is None else changed.ts_ns,
        exposure_working_buy_qty=e.working_buy_qty if e is not None and working else None,
        exposure_working_buy_notional=e.working_buy_notional if e is not None and working else None,
        exposure_working_sell_qty=e.working_sell_qty if e is not None and working else None,
        exposure_working_sell_notional=e.working_sell_notional
        if e is not None and working
        else None,
    )


def to_command(message: ControlMessage, request_id: str | None = None) -> Command:
    """The Command that carries `message` across processes (arguments as declared)."""
    rid = request_id if request_id is not None else new_request_id()
    if isinstance(message, CheckOrder):
        return Command(CHECK_ORDER, CHECK.encode(_check_args(message)), rid)
    if isinstance(message, ExposureChanged):
        return Command(EXPOSURE, EXPOSURE_SPEC.encode(_exposure_args(message)), rid)
    if isinstance(message, Halt):
        return Command(
            HALT,
            HALT_SPEC.encode(
                HaltArgs(reason=message.reason, ts_ns=message.ts_ns, account=message.account)
            ),
            rid,
        )
    if isinstance(message, Resume):
        resume_args = ResumeArgs(ts_ns=message.ts_ns, account=message.account)
        return Command(RESUME, RESUME_SPEC.encode(resume_args), rid)
    if isinstance(message, Tick):
        return Command(TICK, TICK_SPEC.encode(TimeArgs(ts_ns=message.ts_ns)), rid)
    if isinstance(message, SubmitOrder):
        o = message.order
        submit = SubmitArgs(
            client_order_id=o.client_order_id,
            account=o.account,
            symbol=o.symbol,
            side=o.side,
            qty=o.qty,
            limit_price=o.limit_price,
            ts_ns=o.ts_ns,
            order_id=message.order_id,
            stream=message.stream,
        )
        return Command(SUBMIT, SUBMIT_SPEC.encode(submit), rid)
    if isinstance(message, CancelOrder):
        cancel = CancelArgs(
            client_order_id=message.client_order_id,
            order_id=message.order_id,
            stream=message.stream,
            ts_ns=message.ts_ns,
        )
        return Command(CANCEL, CANCEL_SPEC.encode(cancel), rid)
    raise TypeError(f"no wire form for {type(message).__name__}")


# -- decode: from the typed arguments the schema gives ------------------------------


def exposure_changed(args: ExposureArgs) -> ExposureChanged:
    """The ExposureChanged of a "risk.exposure" command's arguments."""
    exposure = PositionExposure(
        account=args.account,
        symbol=args.symbol,
        qty=args.qty,
        mark=args.mark,
        mark_ts_ns=args.mark_ts_ns,
        realized_pnl=args.realized_pnl,
        unrealized_pnl=args.unrealized_pnl,
        group=args.group,
        correlation=args.correlation,
        working_buy_qty=_zero_if_none(args.working_buy_qty),
        working_buy_notional=_zero_if_none(args.working_buy_notional),
        working_sell_qty=_zero_if_none(args.working_sell_qty),
        working_sell_notional=_zero_if_none(args.working_sell_notional),
    )
    return ExposureChanged(exposure, args.ts_ns)


def _zero_if_none(value: Decimal | None) -> Decimal:
    """A working figure left out of a frame (none works, or an older sender) is 0."""
    return _ZERO if value is None else value


def _check_exposure(args: CheckArgs) -> ExposureChanged | None:
    parts = {
        "account": args.exposure_account,
        "symbol": args.exposure_symbol,
        "qty": args.exposure_qty,
        "realized_pnl": args.exposure_realized_pnl,
        "unrealized_pnl": args.exposure_unrealized_pnl,
        "group": args.exposure_group,
        "correlation": args.exposure_correlation,
        "ts_ns": args.exposure_ts_ns,
    }
    if args.exposure_account is None:
        return None
    missing = [key for key, value in parts.items() if value is None]
    if missing:
        raise InvalidArgument(
            CHECK_ORDER,
            EXPOSURE_PREFIX + missing[0],
            f"required with {EXPOSURE_PREFIX}account (an exposure comes whole)",
        )
    assert args.exposure_symbol is not None and args.exposure_qty is not None
    assert args.exposure_realized_pnl is not None and args.exposure_unrealized_pnl is not None
    assert args.exposure_group is not None and args.exposure_correlation is not None
    assert args.exposure_ts_ns is not None
    if (args.exposure_account, args.exposure_symbol) != (args.account, args.symbol):
        raise RemoteMessageError(f"{CHECK_ORDER}: the exposure is not the ordering position's")
    exposure = PositionExposure(
        account=args.exposure_account,
        symbol=args.exposure_symbol,
        qty=args.exposure_qty,
        mark=args.exposure_mark,
        mark_ts_ns=args.exposure_mark_ts_ns,
        realized_pnl=args.exposure_realized_pnl,
        unrealized_pnl=args.exposure_unrealized_pnl,
        group=args.exposure_group,
        correlation=args.exposure_correlation,
        working_buy_qty=_zero_if_none(args.exposure_working_buy_qty),
        working_buy_notional=_zero_if_none(args.exposure_working_buy_notional),
        working_sell_qty=_zero_if_none(args.exposure_working_sell_qty),
        working_sell_notional=_zero_if_none(args.exposure_working_sell_notional),
    )
    return ExposureChanged(exposure, args.exposure_ts_ns)


def check_order(args: CheckArgs) -> CheckOrder:
    """The CheckOrder of a "risk.check" command's arguments (with its exposure, when sent)."""
    request = OrderRequest(
        account=args.account,
        symbol=args.symbol,
        side=args.side,
        qty=args.qty,
        price=args.price,
        order_id=args.order_id,
        ts_ns=args.ts_ns,
    )
    return CheckOrder(request, _check_exposure(args))


def halt(args: HaltArgs) -> Halt:
    """The Halt of a "risk.halt" command's arguments."""
    return Halt(args.reason, args.ts_ns, args.account)


def resume(args: ResumeArgs) -> Resume:
    """The Resume of a "risk.resume" command's arguments."""
    return Resume(args.ts_ns, args.account)


def tick(args: TimeArgs) -> Tick:
    """The Tick of a "risk.tick" command's arguments."""
    return Tick(args.ts_ns)


def submit_order(args: SubmitArgs) -> SubmitOrder:
    """The SubmitOrder of a "gateway.submit" command's arguments."""
    order = NewOrder(
        client_order_id=args.client_order_id,
        account=args.account,
        symbol=args.symbol,
        side=args.side,
        qty=args.qty,
        limit_price=args.limit_price,
        ts_ns=args.ts_ns,
    )
    return SubmitOrder(order, args.order_id, args.stream)


def cancel_order(args: CancelArgs) -> CancelOrder:
    """The CancelOrder of a "gateway.cancel" command's arguments."""
    return CancelOrder(args.client_order_id, args.order_id, args.stream, args.ts_ns)


_DECODERS: dict[str, tuple[CommandSpec[Any], Callable[[Any], ControlMessage]]] = {
    CHECK_ORDER: (CHECK, check_order),
    EXPOSURE: (EXPOSURE_SPEC, exposure_changed),
    HALT: (HALT_SPEC, halt),
    RESUME: (RESUME_SPEC, resume),
    TICK: (TICK_SPEC, tick),
    SUBMIT: (SUBMIT_SPEC, submit_order),
    CANCEL: (CANCEL_SPEC, cancel_order),
}


def from_command(command: Command) -> ControlMessage:
    """The control message a Command carries; raises RemoteMessageError when it is not one."""
    decoder = _DECODERS.get(command.name)
    if decoder is None:
        raise RemoteMessageError(f"unknown control command {command.name!r}")
    spec, build = decoder
    try:
        return build(spec.parse(command.args))
    except RemoteMessageError:
        raise
    except InvalidArgument as exc:
        raise RemoteMessageError(str(exc)) from exc
    except (ValueError, PosbusError) as exc:  # a domain value refused the numbers
        raise RemoteMessageError(f"command {command.name!r}: {exc}") from exc


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
