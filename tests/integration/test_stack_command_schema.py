"""Commands checked against their declarations on a real stack, found from `posbus status --json`.

A demo stack (`posbus up --detach --demo`; its signal source silent, so every
order is the test's own): a command the schema refuses is answered with a
typed error naming what was wrong, and nothing is done or journaled; replies
carry consecutive sequence numbers per sender; a plain pyzmq client finds the
bus endpoints in the status document and talks to them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from stack_harness import Stack, wait_for

from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.client import CommandClient
from posbus.bus.codec import decode, encode
from posbus.bus.command_protocol import CLIENT_PROTOCOL
from posbus.bus.envelope import Envelope
from posbus.bus.messages import Command, CommandArg, Reply
from posbus.bus.topics import split_frame

Ctx = zmq.Context[zmq.Socket[bytes]]
SYMBOL = "BTC/USDT"
ORDER: dict[str, CommandArg] = {"symbol": SYMBOL, "side": "buy", "qty": "0.01"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=20)
        s.up()
        try:
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def bus(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = stack.status()["bus"]
    return found


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def client(ctx: Ctx, bus: dict[str, Any]) -> Iterator[CommandClient]:
    commands = CommandClient(ctx, bus["commands"], sender="schema-test")
    yield commands
    commands.close()


def _refused(client: CommandClient, service: str, name: str, args: dict[str, CommandArg]) -> Any:
    reply = client.request(service, Command(name, args, f"t-{time.time_ns()}"), timeout=10)
    assert not reply.ok and reply.error is not None, reply
    return reply.error


def _intents(stack: Stack) -> list[str]:
    """The position streams of the positions journal (each holds an order intent first)."""
    journal = SqliteJournal(stack.run_dir / "journal" / "positions.0.sqlite", writer=False)
    try:
        return [s for s in journal.streams() if s.startswith("position/")]
    finally:
        journal.close()


def test_status_lists_the_bus_endpoints_and_a_raw_client_uses_them(
    ctx: Ctx, bus: dict[str, Any], stack: Stack
) -> None:
    assert (bus["transport"], bus["curve"]) == ("ipc", False)
    assert bus["commands"] == f"ipc://{stack.run_dir}/bus/commands.sock"
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(bus["commands"])
    ping = encode(Command("ping", {}, "p1"), seq=1, sender="raw", ts_ns=time.time_ns())
    dealer.send_multipart([CLIENT_PROTOCOL, b"broker", ping])
    assert dealer.poll(10_000)
    protocol, service, body = dealer.recv_multipart()
    assert (protocol, service, decode(body).message) == (
        CLIENT_PROTOCOL,
        b"broker",
        Reply.success("p1", {}),
    )
    sub = ctx.socket(zmq.SUB)
    sub.connect(bus["events_out"])
    sub.subscribe(b"md|")
    assert sub.poll(10_000), "no market data on events_out"
    topic, body = split_frame(sub.recv())
    assert topic.startswith(b"md|") and decode(body).kind == "market_update"
    dealer.close(linger=0)
    sub.close(linger=0)


@pytest.mark.parametrize(
    ("args", "argument", "expected"),
    [
        ({**ORDER, "limit": "1"}, "limit", "unknown; it takes account, symbol, side, qty"),
        ({"symbol": SYMBOL, "side": "buy"}, "qty", "required: decimal string > 0"),
        ({**ORDER, "qty": 5}, "qty", "must be decimal string > 0, got 5"),
        ({**ORDER, "reduce_only": "yes"}, "reduce_only", "must be bool, got 'yes'"),
    ],
    ids=["unknown", "missing", "int-for-decimal", "str-for-bool"],
)
def test_a_refused_order_names_its_argument_and_nothing_is_ordered_or_journaled(
    stack: Stack, client: CommandClient, args: dict[str, CommandArg], argument: str, expected: str
) -> None:
    error = _refused(client, "positions.0", "positions.order", args)
    assert error["type"] == "InvalidArgument"
    assert f"argument {argument!r}: {expected}" in error["message"]
    orders = client.call("positions.0", "positions.orders", {}, timeout=10)
    assert (orders["total"], orders["orders"]) == (0, [])
    assert client.call("positions.0", "positions.list", {}, timeout=10)["positions"] == []
    assert _intents(stack) == []


@pytest.mark.parametrize(
    ("symbol", "meant"),
    [("BTCUSDT", "'BTC/USDT'"), ("btc/usdt", "'BTC/USDT'"), ("ETH-USDT", "'ETH/USDT'")],
)
def test_an_order_for_a_misspelt_symbol_names_the_symbol_meant_and_journals_nothing(
    stack: Stack, client: CommandClient, symbol: str, meant: str
) -> None:
    error = _refused(client, "positions.0", "positions.order", {**ORDER, "symbol": symbol})
    assert error["type"] == "OrderValidationError"
    assert f"unknown symbol {symbol!r}; did you mean {meant}?" in error["message"]
    assert client.call("positions.0", "positions.list", {}, timeout=10)["positions"] == []
    assert _intents(stack) == []


def test_an_order_for_a_symbol_the_stack_does_not_trade_lists_the_ones_it_does(
    stack: Stack, client: CommandClient
) -> None:
    error = _refused(client, "positions.0", "positions.order", {**ORDER, "symbol": "DOGE/USDT"})
    assert error["type"] == "OrderValidationError"
    assert "unknown symbol 'DOGE/USDT' (trades: BTC/USDT, ETH/USDT, SOL/USDT)" in error["message"]
    assert _intents(stack) == []


def test_each_service_refuses_bad_arguments_and_unknown_commands_listing_the_known(
    stack: Stack, client: CommandClient
) -> None:
    halt = _refused(client, "risk", "risk.halt", {"reason": "test", "ts_ns": 1, "why": "x"})
    assert halt["type"] == "InvalidArgument" and "argument 'why': unknown" in halt["message"]
    assert client.call("risk", "risk.inspect", {}, timeout=10)["state"] == "Normal"
    replay = _refused(client, "gateway.default", "gateway.replay", {"after": "1"})
    assert replay["type"] == "InvalidArgument" and "argument 'after'" in replay["message"]
    ping = _refused(client, "broker", "ping", {"verbose": True})
    assert ping["type"] == "InvalidArgument" and "argument 'verbose'" in ping["message"]
    for service, known in [
        ("positions.0", "positions.cancel, positions.inspect, positions.list"),
        ("risk", "risk.check, risk.halt, risk.inspect, risk.resume, risk.tick"),
        ("gateway.default", "gateway.cancel, gateway.incarnations, gateway.inspect"),
        ("broker", "known: ping, services, workers"),
    ]:
        error = _refused(client, service, "reboot", {})
        assert error["type"] == "UnknownCommand" and known in error["message"], error
    admin = stack.cli("admin", "risk", "inspect", check=False)
    assert admin.returncode == 1 and "InvalidArgument" in admin.stderr
    assert "argument 'actor': required" in admin.stderr
    unknown = stack.cli("admin", "risk", "reboot", check=False)
    assert "UnknownCommand" in unknown.stderr and "log-level" in unknown.stderr


def test_a_valid_limit_order_is_journaled_and_works(stack: Stack, client: CommandClient) -> None:
    placed = client.call(
        "positions.0", "positions.order", {**ORDER, "limit_price": "1"}, timeout=10
    )
    assert placed["order_id"] == f"default:{SYMBOL}:1"

    def resting() -> list[Any] | None:
        found = client.call("positions.0", "positions.orders", {}, timeout=10)["orders"]
        return found if found and found[0]["status"] in ("Accepted", "Rejected") else None

    (order,) = wait_for("the order acknowledged or refused", resting)
    assert order["limit_price"] == "1"
    assert _intents(stack) == [f"position/default/{SYMBOL}"]


def _raw_requests(ctx: Ctx, endpoint: str, service: bytes, names: list[str]) -> list[Envelope]:
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    replies = []
    for index, name in enumerate(names):
        frame = encode(Command(name, {}, f"s{index}"), seq=index + 1, sender="raw", ts_ns=1)
        dealer.send_multipart([CLIENT_PROTOCOL, service, frame])
        assert dealer.poll(10_000)
        replies.append(decode(dealer.recv_multipart()[2]))
    dealer.close(linger=0)
    return replies


def test_the_replies_of_one_sender_carry_consecutive_seqs(ctx: Ctx, bus: dict[str, Any]) -> None:
    # Nothing else asks risk or the broker here: every reply they send is this client's.
    for service, name in [(b"risk", "risk.inspect"), (b"broker", "ping")]:
        replies = _raw_requests(ctx, bus["commands"], service, [name, name, "reboot", name])
        senders = {reply.sender for reply in replies}
        assert len(senders) == 1, senders
        first = replies[0].seq
        assert first >= 1
        assert [reply.seq for reply in replies] == [first, first + 1, first + 2, first + 3]
