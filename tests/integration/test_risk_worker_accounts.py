"""The risk worker of a stack with several accounts: each account's limits and the firm's.

A real broker and risk worker (in-process, real sockets), configured from a
TOML-shaped document with two accounts and firm-wide limits. Exposures
arrive as `risk.exposure` frames, checks and halts as commands over the
broker, as the positions workers and the CLI send them. Expected outcomes
are worked out by hand in each test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import zmq
from inprocess_workers import InProcessBus, in_process_bus
from stack_harness import wait_for

from posbus.actors.control import CheckOrder, ExposureChanged
from posbus.actors.delivery import decode_record
from posbus.actors.model.risk import OrderRequest, PositionExposure
from posbus.actors.model.side import Side
from posbus.actors.remote import to_command
from posbus.actors.risk_scope import risk_scopes
from posbus.actors.risk_worker import RiskWorker
from posbus.adapters.config import config_from_dict
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.client import CommandClient
from posbus.bus.envelope import Envelope
from posbus.bus.errors import CommandFailed
from posbus.bus.messages import RiskEvent
from posbus.bus.subscriber import Received
from posbus.bus.topics import exposure_topic

BTC = "BTC/USDT"
PRICE = Decimal(60_000)
# Each account: 100,000 of equity and the default daily loss limit of 2,000 (warning
# from 1,600). The firm: 200,000 in all, and a daily loss limit of 1,500.
DOCUMENT: dict[str, Any] = {
    "accounts": {"main": {}, "hedge": {"exchange": {"seed": 11}}},
    "firm": {"risk": {"daily_loss_limit": 1500}},
}


@contextmanager
def desk() -> Iterator[tuple[InProcessBus, RiskWorker, MemoryJournal, CommandClient]]:
    """A risk worker judging the two accounts and the firm, and a client of the broker."""
    config = config_from_dict(DOCUMENT)
    scopes = risk_scopes(
        {name: (a.risk, a.starting_equity) for name, a in config.accounts().items()},
        config.firm.limits,
        per_account=True,
    )
    with in_process_bus() as bus:
        journal = MemoryJournal()
        worker = RiskWorker(
            bus.settings("risk", "risk"), journal=journal, clock=bus.clock, scopes=scopes
        )
        bus.start(worker)
        context = zmq.Context()
        client = CommandClient(context, bus.endpoints.commands, sender="test")
        try:
            yield bus, worker, journal, client
        finally:
            client.close()
            context.term()


def exposure(account: str, qty: str, realized: str, now: int) -> ExposureChanged:
    held = PositionExposure(
        account, BTC, Decimal(qty), PRICE, now, Decimal(realized), Decimal(0),
        "majors", Decimal(1),
    )  # fmt: skip
    return ExposureChanged(held, now)


def tell_exposures(worker: RiskWorker, *changes: ExposureChanged) -> None:
    """Hand the worker `risk.exposure` frames as its subscriber would."""
    batch = []
    for seq, change in enumerate(changes, start=1):
        command = to_command(change)
        envelope = Envelope(
            command.KIND, command.VERSION, seq, time.time_ns(), "positions.0", command
        )
        batch.append(Received(exposure_topic(change.exposure.account, BTC), envelope))
    worker.on_events(batch)


def check(client: CommandClient, account: str, side: Side, qty: str, held: str) -> dict[str, Any]:
    """Ask risk.check for a market order of `account`, its position holding `held` BTC."""
    now = time.time_ns()
    request = OrderRequest(account, BTC, side, Decimal(qty), None, f"{account}:{BTC}:1", now)
    command = to_command(CheckOrder(request, exposure(account, held, "0", now)))
    result: dict[str, Any] = client.call("risk", "risk.check", command.args, timeout=5)
    return result


def inspect(client: CommandClient) -> dict[str, Any]:
    result: dict[str, Any] = client.call("risk", "risk.inspect", {}, timeout=5)
    return result


def test_a_firm_wide_daily_loss_puts_every_account_in_cooldown_though_each_is_within_its_own() -> (
    None
):
    with desk() as (_, worker, journal, client):
        now = time.time_ns()
        # 800 lost on each account: 99,200 each, within 2,000 (and short of the 1,600
        # warning); the firm has lost 1,600 of 200,000: past its limit of 1,500.
        tell_exposures(
            worker, exposure("main", "0", "-800", now), exposure("hedge", "0", "-800", now)
        )

        def firm_cooling() -> dict[str, Any] | None:
            state = inspect(client)
            return state if state["state"] == "CoolDown" else None

        state = wait_for("the firm in CoolDown", firm_cooling)
        assert state["metrics"]["equity"] == "198400"
        assert {name: view["state"] for name, view in state["accounts"].items()} == {
            "main": "Normal",
            "hedge": "Normal",
        }
        assert state["accounts"]["main"]["metrics"]["equity"] == "99200"
        # Every account's risk-adding order is refused, and says the limit is the firm's.
        for account in ("main", "hedge"):
            refused = check(client, account, Side.BUY, "0.01", held="0")
            assert refused["approved"] is False
            assert refused["check"] == "cooldown"
            assert refused["reason"].startswith("firm-wide: ")
        # The change was journaled on the firm's stream with no account: it concerns all.
        changes = [
            r.message
            for r in _records(journal, "risk")
            if isinstance(r.message, RiskEvent) and r.message.event == "state_change"
        ]
        assert [(e.state, e.account) for e in changes] == [("CoolDown", None)]
        assert _records(journal, "risk.main") == _records(journal, "risk.hedge") == []


def test_one_accounts_halt_leaves_the_other_trading_and_a_firm_halt_stops_both() -> None:
    with desk() as (_, worker, journal, client):
        now = time.time_ns()
        tell_exposures(
            worker, exposure("main", "0.1", "0", now), exposure("hedge", "0.1", "0", now)
        )
        assert check(client, "hedge", Side.BUY, "0.01", held="0.1")["approved"] is True

        halted = client.call(
            "risk", "risk.halt", {"reason": "venue maintenance", "account": "hedge", "ts_ns": now}
        )
        assert halted == {"state": "Halted"}
        refused = check(client, "hedge", Side.BUY, "0.01", held="0.1")
        assert (refused["approved"], refused["check"]) == (False, "halted")
        assert not refused["reason"].startswith("firm-wide")
        assert check(client, "main", Side.BUY, "0.01", held="0.1")["approved"] is True
        # Reducing the halted account's long still passes: exits are never blocked.
        exit_ = check(client, "hedge", Side.SELL, "0.05", held="0.1")
        assert (exit_["approved"], exit_["risk_reducing"]) == (True, True)
        state = inspect(client)
        assert (state["state"], state["accounts"]["hedge"]["state"]) == ("Normal", "Halted")
        hedge_events = [r.message for r in _records(journal, "risk.hedge")]
        assert [(e.state, e.account) for e in hedge_events if isinstance(e, RiskEvent)] == [
            ("Halted", "hedge")
        ]

        assert client.call("risk", "risk.resume", {"account": "hedge", "ts_ns": now + 1}) == {
            "state": "Normal"
        }
        assert check(client, "hedge", Side.BUY, "0.01", held="0.1")["approved"] is True

        # Without an account the firm halts: every account's new risk is refused.
        client.call("risk", "risk.halt", {"reason": "incident", "ts_ns": now + 2})
        for account in ("main", "hedge"):
            refused = check(client, account, Side.BUY, "0.01", held="0.1")
            assert (refused["approved"], refused["check"]) == (False, "halted")
            assert refused["reason"].startswith("firm-wide: ")
        assert check(client, "main", Side.SELL, "0.1", held="0.1")["approved"] is True


def test_an_account_the_stack_does_not_have_is_refused() -> None:
    with desk() as (_, _worker, _journal, client):
        refused = check(client, "ghost", Side.BUY, "0.01", held="0")
        assert (refused["approved"], refused["check"]) == (False, "unknown_account")
        assert "main, hedge" in refused["reason"]
        with pytest.raises(CommandFailed) as caught:
            client.call("risk", "risk.halt", {"reason": "x", "account": "ghost", "ts_ns": 1})
        assert caught.value.error_type == "InvalidArgument"
        assert inspect(client)["accounts"]["main"]["state"] == "Normal"


def test_each_account_is_judged_by_its_own_limits() -> None:
    # hedge may hold at most 10,000 of BTC; main keeps the default 250,000.
    document = {**DOCUMENT, "accounts": {"main": {}, "hedge": {"risk": {
        "max_total_exposure": 10000, "max_group_exposure": 10000}}}}  # fmt: skip
    config = config_from_dict(document)
    scopes = risk_scopes(
        {name: (a.risk, a.starting_equity) for name, a in config.accounts().items()},
        config.firm.limits,
        per_account=True,
    )
    with in_process_bus() as bus:
        worker = RiskWorker(
            bus.settings("risk", "risk"), journal=MemoryJournal(), clock=bus.clock, scopes=scopes
        )
        bus.start(worker)
        context = zmq.Context()
        client = CommandClient(context, bus.endpoints.commands, sender="test")
        try:
            # 0.2 BTC at 60,000 is 12,000: within main's limits, past hedge's 10,000.
            assert check(client, "main", Side.BUY, "0.2", held="0")["approved"] is True
            refused = check(client, "hedge", Side.BUY, "0.2", held="0")
            assert refused["approved"] is False
            assert refused["check"] in ("group_exposure", "total_exposure")
            assert not refused["reason"].startswith("firm-wide")
        finally:
            client.close()
            context.term()


def _records(journal: MemoryJournal, stream: str) -> list[Any]:
    return [decode_record(record) for record in journal.read(stream)]
