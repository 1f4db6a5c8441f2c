"""Wire forms of the control messages (posbus.actors.remote) and the remote references."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from posbus.actors.control import (
    CancelOrder,
    CheckOrder,
    ExposureChanged,
    Halt,
    Resume,
    SubmitOrder,
    Tick,
)
from posbus.actors.model.exchange_reports import NewOrder
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskDecision
from posbus.actors.model.side import Side
from posbus.actors.remote import (
    RemoteCallFailed,
    RemoteGateway,
    RemoteMessageError,
    RemoteRisk,
    decision_from_result,
    decision_result,
    from_command,
    to_command,
)
from posbus.bus.codec import decode, encode
from posbus.bus.messages import Command, Message, Reply

REQUEST = OrderRequest(
    account="acc",
    symbol="BTC/USDT",
    side=Side.BUY,
    qty=Decimal("0.1"),
    price=Decimal("60000.5"),
    order_id="acc:BTC/USDT:3",
    ts_ns=42,
)
EXPOSURE = PositionExposure(
    account="acc",
    symbol="ETH/USDT",
    qty=Decimal("-2"),
    mark=Decimal("3000.25"),
    mark_ts_ns=7,
    realized_pnl=Decimal("-1.5"),
    unrealized_pnl=Decimal("10.00000001"),
    group="majors",
    correlation=Decimal("0.85"),
)
WORKING = replace(
    EXPOSURE,
    working_buy_qty=Decimal("1.5"),
    working_buy_notional=Decimal("4500"),
    working_sell_qty=Decimal(0),
    working_sell_notional=Decimal(0),
)
ORDER = NewOrder("pbabc1", "acc", "BTC/USDT", Side.SELL, Decimal("0.25"), None, 99)

MESSAGES = [
    CheckOrder(REQUEST),
    CheckOrder(REQUEST, ExposureChanged(replace(EXPOSURE, symbol="BTC/USDT"), 41)),
    ExposureChanged(EXPOSURE, 123),
    ExposureChanged(WORKING, 124),
    CheckOrder(REQUEST, ExposureChanged(replace(WORKING, symbol="BTC/USDT"), 41)),
    Halt("exchange incident", 5),
    Resume(6),
    Tick(7),
    SubmitOrder(ORDER, "acc:BTC/USDT:3", "position/acc/BTC/USDT"),
    CancelOrder("pbabc1", "acc:BTC/USDT:3", "position/acc/BTC/USDT", 8),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_control_message_survives_the_wire_exactly(message: Any) -> None:
    command = to_command(message, "req-1")
    wire = encode(command, seq=1, sender="test", ts_ns=1)
    decoded = decode(wire).message
    assert isinstance(decoded, Command)
    assert from_command(decoded) == message


def test_decimals_travel_as_plain_strings() -> None:
    command = to_command(ExposureChanged(EXPOSURE, 1), "r")
    assert command.args["unrealized_pnl"] == "10.00000001"
    assert command.args["qty"] == "-2"


def test_an_exposure_without_working_orders_travels_as_it_always_did() -> None:
    """No working figure is sent when none works: such a frame is the older frame,
    and a frame from an older sender (without them) means no working order."""
    command = to_command(ExposureChanged(EXPOSURE, 1), "r")
    assert not any(key.startswith("working_") for key in command.args)
    check = to_command(
        CheckOrder(REQUEST, ExposureChanged(replace(EXPOSURE, symbol="BTC/USDT"), 1))
    )
    assert not any("working" in key for key in check.args)
    decoded = from_command(command)
    assert isinstance(decoded, ExposureChanged)
    assert decoded.exposure.working_buy_notional == decoded.exposure.working_sell_notional == 0


def test_a_negative_working_figure_is_refused_naming_it() -> None:
    args = dict(to_command(ExposureChanged(WORKING, 1), "r").args)
    assert args["working_buy_notional"] == "4500"
    args["working_sell_qty"] = "-1"
    with pytest.raises(RemoteMessageError, match="working_sell_qty"):
        from_command(Command("risk.exposure", args, "r"))


def test_unknown_command_is_refused_with_its_name() -> None:
    with pytest.raises(RemoteMessageError, match="nope"):
        from_command(Command("nope", {}, "r"))


def test_bad_decimal_argument_is_refused_naming_the_argument() -> None:
    args = dict(to_command(CheckOrder(REQUEST), "r").args)
    args["qty"] = "1e5"
    with pytest.raises(RemoteMessageError, match="qty"):
        from_command(Command("risk.check", args, "r"))


def test_non_positive_qty_is_refused() -> None:
    args = dict(to_command(CheckOrder(REQUEST), "r").args)
    args["qty"] = "0"
    with pytest.raises(RemoteMessageError):
        from_command(Command("risk.check", args, "r"))


def test_risk_decision_round_trips_through_a_reply_result() -> None:
    decision = RiskDecision(False, "too big", "order_notional", {"notional": "30000"}, True)
    assert decision_from_result(decision_result(decision)) == decision


class _Link:
    """Records what a remote reference sends; answers requests with `reply`."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply
        self.sent: list[tuple[str, Any, Any]] = []
        self.outcomes: list[Callable[[str | None], None] | None] = []

    def request(self, service: str, command: Command, timeout: float) -> Reply:
        self.sent.append(("request", service, command))
        assert self.reply is not None
        return self.reply

    def send(
        self,
        service: str,
        command: Command,
        on_outcome: Callable[[str | None], None] | None = None,
    ) -> None:
        self.sent.append(("send", service, command))
        self.outcomes.append(on_outcome)

    def publish(self, topic: bytes, message: Message) -> None:
        self.sent.append(("publish", topic, message))


def test_remote_risk_ask_check_order_returns_the_decision() -> None:
    link = _Link(Reply.success("r", decision_result(RiskDecision(True, "", ""))))
    decision = RemoteRisk(link).ask(CheckOrder(REQUEST), timeout=1.0)
    assert decision == RiskDecision(True, "", "")
    assert link.sent[0][:2] == ("request", "risk")


def test_remote_risk_tell_exposure_publishes_on_the_exposure_topic() -> None:
    link = _Link()
    RemoteRisk(link).tell(ExposureChanged(EXPOSURE, 1))
    kind, topic, message = link.sent[0]
    assert (kind, topic) == ("publish", b"xp|acc|ETH/USDT|")
    assert from_command(message) == ExposureChanged(EXPOSURE, 1)


def test_remote_risk_failure_reply_raises_with_the_remote_type() -> None:
    link = _Link(Reply.failure("r", RemoteMessageError("bad")))
    with pytest.raises(RemoteCallFailed, match="RemoteMessageError"):
        RemoteRisk(link).ask(Halt("x", 1), timeout=1.0)


def test_remote_gateway_tell_sends_to_the_account_service() -> None:
    link = _Link()
    RemoteGateway(link, "acc").tell(SubmitOrder(ORDER, "o", "position/acc/BTC/USDT"))
    assert link.sent[0][:2] == ("send", "gateway.acc")


def _submit(order_id: str = "o", *, resend: bool = False) -> SubmitOrder:
    return SubmitOrder(ORDER, order_id, "position/acc/BTC/USDT", resend)


def _gateway_with_not_sent() -> tuple[_Link, RemoteGateway, list[tuple[str, str]]]:
    link = _Link()
    given_up: list[tuple[str, str]] = []
    gateway = RemoteGateway(link, "acc", lambda s, why: given_up.append((s.order_id, why)))
    return link, gateway, given_up


def _finish(link: _Link, index: int, reason: str | None) -> None:
    outcome = link.outcomes[index]
    assert outcome is not None
    outcome(reason)


def test_remote_gateway_gives_up_an_order_whose_submit_never_reached_the_gateway() -> None:
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit())
    _finish(link, 0, "UnknownService: no worker")
    assert given_up == [("o", "UnknownService: no worker")]


def test_remote_gateway_keeps_an_order_whose_submit_was_delivered() -> None:
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit())
    _finish(link, 0, None)
    assert given_up == []


def test_remote_gateway_keeps_an_order_one_of_whose_submits_may_have_arrived() -> None:
    # A position re-sends a submit after its restart: the first may have arrived.
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit())
    gateway.tell(_submit())
    _finish(link, 1, "BrokerUnavailable: no connection")
    assert given_up == []  # the first send is still in flight
    _finish(link, 0, None)
    assert given_up == []


def test_remote_gateway_gives_up_only_when_every_submit_of_the_order_failed() -> None:
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit())
    gateway.tell(_submit())
    gateway.tell(_submit("other"))
    _finish(link, 0, "no broker")
    assert given_up == []
    _finish(link, 1, "no gateway")
    assert given_up == [("o", "no gateway")]
    _finish(link, 2, None)
    assert given_up == [("o", "no gateway")]


def test_remote_gateway_never_gives_up_a_resent_order() -> None:
    # Re-sent after a restart: the last incarnation's send may have traded.
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit(resend=True))
    _finish(link, 0, "ServiceUnavailable: gateway.acc")
    assert given_up == []


def test_remote_gateway_keeps_a_delivered_order_whose_resync_resend_failed() -> None:
    link, gateway, given_up = _gateway_with_not_sent()
    gateway.tell(_submit())
    _finish(link, 0, None)  # delivered; the order then waits for its ack
    gateway.tell(_submit(resend=True))  # a resync while the gateway restarts
    _finish(link, 1, "ServiceUnavailable: gateway.acc")
    assert given_up == []


def test_remote_gateway_cancels_carry_no_outcome_hook() -> None:
    link, gateway, _ = _gateway_with_not_sent()
    gateway.tell(CancelOrder("c", "o", "position/acc/BTC/USDT", 1))
    assert link.outcomes == [None]


def test_a_check_carrying_another_positions_exposure_is_refused() -> None:
    command = to_command(CheckOrder(REQUEST, ExposureChanged(EXPOSURE, 41)))  # ETH, not BTC
    with pytest.raises(RemoteMessageError, match="not the ordering position's"):
        from_command(command)
