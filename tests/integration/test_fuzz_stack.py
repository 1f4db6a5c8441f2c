"""Fuzzing every socket of a real stack: the command router, each admin socket, the event bus.

One stack (broker, gateway, risk, positions, demo feed without trading) for
the module, with one filled position. Each test feeds hypothesis-generated
bad input into one socket from this process and checks, for every case:
an error reply where the socket has a reply path, the matching counter in
the receiving process's `metrics` (exactly as many as cases sent), no crash
(every process alive with the same pid and no restart) and no state change
(`positions.list`, `positions.orders` and the risk state are identical to
before; marks and P&L that move with market data are left out).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stack_harness import Stack, wait_for, where

from posbus.actors.model.side import Side
from posbus.bus.codec import decode, encode
from posbus.bus.messages import Command, CommandArg, Liquidity, MarketUpdate, OrderFill, Reply
from posbus.bus.topics import risk_topic, split_frame
from posbus.bus.wire_error import WireError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REPLY_TIMEOUT_MS = 5_000
SYMBOL = "BTC/USDT"
ACCOUNT = "default"

#: Quantities and prices that must never be accepted (as command args: strings or other types).
BAD_NUMBERS: list[CommandArg] = [
    "NaN",
    "nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-1",
    "-0.1",
    "0",
    "-0",
    "0.000",
    "",
    "abc",
    "1,5",
    "1e",
    "0x10",
    " 1",
    "1" * 200,
    1,
    -1,
    0,
    True,
    None,
    ["1"],
]
#: Signed 64-bit and beyond: the codec refuses what msgpack cannot carry, the rest must be refused.
HUGE_INTS = [2**63 - 1, -(2**63), 2**64 - 1]


# -- the stack and what must not change ----------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pbf-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=20)
        s.up()
        try:
            s.json("order", "buy", SYMBOL, "0.1")
            wait_for("the first fill", lambda: where(s.positions(), _has_fill))
            yield s
        finally:
            s.close()


def _has_fill(positions: dict[str, dict[str, Any]]) -> bool:
    p = positions.get(SYMBOL)
    return p is not None and Decimal(str(p["qty"])) == Decimal("0.1")


@pytest.fixture
def context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


LEDGER_KEYS = ("account", "symbol", "status", "qty", "avg_entry_price", "realized_pnl", "fees")
RISK_KEYS = ("state", "halt_reason", "cooldown_until_ns", "decisions_since_start", "limits")


def ledger(stack: Stack) -> dict[str, Any]:
    """What bad input must never change: positions, orders, risk state (not marks or P&L)."""
    positions = {
        sym: {k: p.get(k) for k in (*LEDGER_KEYS, "orders", "fills")}
        for sym, p in stack.positions().items()
    }
    risk = stack.json("risk")
    return {
        "positions": positions,
        "orders": stack.json("orders")["orders"],
        "risk": {k: risk.get(k) for k in RISK_KEYS},
    }


def processes(stack: Stack) -> dict[str, tuple[int, int]]:
    """Each worker's (pid, restarts), once every worker serves."""
    doc = wait_for("every worker serving", stack.all_serving)
    return {w["name"]: (w["pid"], w["restarts"]) for w in doc["workers"]}


def counters(stack: Stack, worker: str) -> Counter[str]:
    """The named counters of `posbus admin WORKER metrics`."""
    return Counter(stack.admin(worker, "metrics")["counters"])


@dataclass
class Snapshot:
    """Processes and ledger before a fuzz run, compared after it."""

    procs: dict[str, tuple[int, int]]
    state: dict[str, Any]

    @classmethod
    def take(cls, stack: Stack) -> Snapshot:
        return cls(processes(stack), ledger(stack))

    def assert_unchanged(self, stack: Stack) -> None:
        assert processes(stack) == self.procs
        assert ledger(stack) == self.state


def envelope(message: Any, *, seq: int = 0, sender: str = "fuzz") -> bytes:
    return encode(message, seq=seq, sender=sender, ts_ns=time.time_ns())


def command(name: str, args: dict[str, CommandArg] | None = None) -> bytes:
    return envelope(Command(name, args or {}, uuid.uuid4().hex))


def a_fill(*, trade_id: str, qty: str = "5", symbol: str = SYMBOL) -> OrderFill:
    return OrderFill(
        order_id=f"{ACCOUNT}:{symbol}:999",
        client_order_id="forged-coid",
        trade_id=trade_id,
        account=ACCOUNT,
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal("100"),
        fee=Decimal("0"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=time.time_ns(),
    )


def dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def reply_of(sock: zmq.Socket[bytes]) -> Reply:
    """The next reply on `sock` (its last frame is the envelope); fails after REPLY_TIMEOUT_MS."""
    assert sock.poll(REPLY_TIMEOUT_MS, zmq.POLLIN), "no reply to a bad request"
    message = decode(sock.recv_multipart()[-1]).message
    assert isinstance(message, Reply)
    return message


# -- the command socket (broker frontend ROUTER) ------------------------------------------------

random_frames = st.lists(st.binary(max_size=64), min_size=1, max_size=5)
bad_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"positions.\xed\xa0\x80"])
numbers = st.sampled_from(BAD_NUMBERS)


@st.composite
def bad_commands(draw: st.DrawFn) -> tuple[list[bytes], str]:
    """(frames a client sends, the counter the broker or the worker must bump)."""
    service = draw(st.sampled_from(["positions.0", "risk", "gateway.default"]))
    case = draw(st.integers(0, 7))
    if case == 0:  # random multipart that is not [PBC1, service, body]
        frames = draw(random_frames.filter(lambda f: len(f) != 3 or f[0] != b"PBC1"))
        return frames, "broker.malformed"
    if case == 1:  # right framing, garbage body
        return [b"PBC1", service.encode(), draw(st.binary(max_size=128))], "broker.malformed"
    if case == 2:  # a service name that is not UTF-8
        return [b"PBC1", draw(bad_utf8), command("positions.list")], "broker.malformed"
    if case == 3:  # a valid envelope of the wrong kind
        quote = MarketUpdate(SYMBOL, Decimal("1"), Decimal("2"), None, None, None, 1)
        wrong = draw(st.sampled_from([quote, a_fill(trade_id="t"), Reply.success("r")]))
        return [b"PBC1", service.encode(), envelope(wrong)], "broker.malformed"
    if case == 4:  # an unknown service
        name = "nope." + draw(st.text("abcdefgh", min_size=1, max_size=8))
        return [b"PBC1", name.encode(), command("x")], "broker.unroutable_requests"
    if case == 5:  # an unknown command of a real service
        name = "fuzz." + draw(st.text("abcdefgh", min_size=1, max_size=8))
        return [b"PBC1", b"positions.0", command(name)], "positions.0.rejects"
    if case == 6:  # an order with a bad quantity or limit price (wrong types, NaN, inf, <= 0)
        args: dict[str, CommandArg] = {
            "symbol": draw(st.sampled_from([SYMBOL, "ETH/USDT", "", 7, None])),
            "side": draw(st.sampled_from(["buy", "sell", "BUY", "", 1, None])),
            "qty": draw(numbers),
        }
        if draw(st.booleans()):
            args["limit_price"] = draw(numbers)
            args["qty"] = draw(st.sampled_from([*BAD_NUMBERS]))
        return [b"PBC1", b"positions.0", command("positions.order", args)], "positions.0.rejects"
    # a cancel of an order that is not there, with a forged or malformed id
    order_id = draw(st.sampled_from(["", "x", "nope:ETH/BTC:1", "a:b", 5, None, ["x"]]))
    return (
        [b"PBC1", b"positions.0", command("positions.cancel", {"order_id": order_id})],
        "positions.0.rejects",
    )


def _counter_totals(stack: Stack) -> Counter[str]:
    out: Counter[str] = Counter()
    for worker in ("broker", "positions.0", "risk", "gateway.default"):
        for name, n in counters(stack, worker).items():
            out[f"{worker}.{name}"] = n
    return out


def test_bad_commands_get_error_replies_counters_and_change_nothing(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    before = Snapshot.take(stack)
    counts_before = _counter_totals(stack)
    sock = dealer(context, f"ipc://{stack.run_dir / 'bus' / 'commands.sock'}")
    expected: Counter[str] = Counter()

    @FUZZ
    @given(case=bad_commands())
    def run(case: tuple[list[bytes], str]) -> None:
        frames, counter = case
        sock.send_multipart(frames)
        reply = reply_of(sock)
        assert not reply.ok
        expected[counter] += 1

    run()
    counts_after = _counter_totals(stack)
    for counter, n in expected.items():
        assert counts_after[counter] - counts_before[counter] == n, counter
    before.assert_unchanged(stack)


def test_replayed_and_out_of_order_commands_are_answered_each_time(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """A command is answered per request (its seq is ignored), replays included; nothing changes."""
    before = Snapshot.take(stack)
    sock = dealer(context, f"ipc://{stack.run_dir / 'bus' / 'commands.sock'}")
    read = Command("positions.list", {}, "replayed-read")
    bad = Command("positions.order", {"symbol": SYMBOL, "side": "buy", "qty": "-1"}, "replayed")
    for seq in (5, 5, 1, 2**63 - 1, 0, 3):
        for message, ok in ((read, True), (bad, False)):
            sock.send_multipart([b"PBC1", b"positions.0", envelope(message, seq=seq)])
            reply = reply_of(sock)
            assert (reply.request_id, reply.ok) == (message.request_id, ok)
    before.assert_unchanged(stack)


# -- the admin sockets (one per process) ---------------------------------------------------------

ADMIN_WORKERS = ("broker", "gateway.default", "positions.0", "risk")


@st.composite
def bad_admin_requests(draw: st.DrawFn, worker: str) -> tuple[list[bytes], str, bool]:
    """(frames, the admin counter, whether the reply is ok); the broker's admin is read-only."""
    case = draw(st.integers(0, 5))
    if case == 0:
        return [draw(st.binary(max_size=128))], "admin_malformed", False
    if case == 1:  # several frames: the last is the body, the others are echoed as its route
        return (
            draw(st.lists(st.binary(max_size=16), min_size=2, max_size=3)),
            "admin_malformed",
            False,
        )
    if case == 2:
        quote = MarketUpdate(SYMBOL, Decimal("1"), Decimal("2"), None, None, None, 1)
        return (
            [envelope(draw(st.sampled_from([quote, Reply.success("r")])))],
            "admin_malformed",
            False,
        )
    if case == 3:
        name = "fuzz-" + draw(st.text("abcdef", min_size=1, max_size=6))
        return [command(name)], "admin_unknown", False
    if case == 4:  # known commands with bad arguments (never a real actor or level)
        name = draw(st.sampled_from(["inspect", "restart", "log-level"]))
        key = "level" if name == "log-level" else "actor"
        value = draw(st.sampled_from([None, 5, True, ["x"], "", "no-such-actor", "LOUD"]))
        counter = "admin_unknown" if worker == "broker" else "admin_errors"
        return [command(name, {key: value})], counter, False
    # read-only commands are served; with arguments they do not declare, refused
    name = draw(st.sampled_from(["status", "metrics"]))
    junk = draw(st.dictionaries(st.text("xyz", min_size=1, max_size=3), numbers, max_size=3))
    if junk:
        return [command(name, junk)], "admin_errors", False
    return [command(name, junk)], "admin_handled", True


@pytest.mark.parametrize("worker", ADMIN_WORKERS)
def test_bad_admin_requests_get_error_replies_counters_and_change_nothing(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]], worker: str
) -> None:
    before = Snapshot.take(stack)
    sock = dealer(context, f"ipc://{stack.run_dir / 'admin' / f'{worker}.sock'}")
    # Our own probe of the counters is itself one handled request.
    counts_before = counters(stack, worker)
    expected: Counter[str] = Counter({"admin_handled": 1})

    @settings(FUZZ, max_examples=60)
    @given(case=bad_admin_requests(worker))
    def run(case: tuple[list[bytes], str, bool]) -> None:
        frames, counter, ok = case
        sock.send_multipart(frames)
        assert reply_of(sock).ok is ok
        expected[counter] += 1

    run()
    if worker != "broker":
        # The broker process's admin server does not count into its metrics (docs/security.md).
        counts_after = counters(stack, worker)
        for counter, n in expected.items():
            assert counts_after[counter] - counts_before[counter] == n, counter
    before.assert_unchanged(stack)


# -- the event bus (a PUB into the broker's XSUB) -------------------------------------------------


def publisher(ctx: zmq.Context[zmq.Socket[bytes]], stack: Stack) -> zmq.Socket[bytes]:
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 2_000)
    pub.connect(f"ipc://{stack.run_dir / 'bus' / 'events-in.sock'}")
    return pub


def wait_counted(stack: Stack, worker: str, counter: str, at_least: int) -> Counter[str]:
    """The worker's counters once `counter` reached `at_least` (bounded wait)."""
    return wait_for(
        f"{worker} {counter} >= {at_least}",
        lambda: where(counters(stack, worker), lambda c: c[counter] >= at_least),
    )


def send_until_counted(
    stack: Stack, pub: zmq.Socket[bytes], frames: list[bytes], worker: str, counter: str
) -> None:
    """Publish `frames` (again, while the PUB connection is still being made) until counted."""
    start = counters(stack, worker)[counter]

    def probe() -> bool:
        for frame in frames:
            pub.send(frame)
        return counters(stack, worker)[counter] > start

    wait_for(f"{worker} counting {counter}", probe, every=0.2)


event_garbage = st.one_of(
    st.binary(max_size=96),
    st.builds(
        lambda t, b: t + b,
        st.sampled_from([b"md|", b"ex|", b"rk|", b"xp|"]),
        st.binary(max_size=96),
    ),
    st.builds(
        lambda b: b"ex|default|BTC/USDT|" + b,
        st.binary(max_size=96),
    ),
)


RESYNC_TOPIC = risk_topic("resync")


def _decodes(frame: bytes) -> bool:
    try:
        decode(split_frame(frame)[1])
    except WireError:
        return False
    return True


def test_garbage_events_are_counted_by_the_subscriber_and_change_nothing(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    before = Snapshot.take(stack)
    pub = publisher(context, stack)
    # Prime: a frame both the broker and the positions worker count, so the connection is up.
    send_until_counted(stack, pub, [b"ex|default|BTC/USDT|\xc1"], "positions.0", "decode_errors")
    positions_before = counters(stack, "positions.0")["decode_errors"]
    sent = 0

    @settings(FUZZ, max_examples=300)
    @given(frame=event_garbage)
    def run(frame: bytes) -> None:
        nonlocal sent
        pub.send(frame)
        # ZeroMQ filters at the PUB: only frames matching a subscription leave this
        # process. The positions worker subscribes md|, ex|default| and rk|resync|.
        if frame.startswith((b"md|", b"ex|default|", RESYNC_TOPIC)) and not _decodes(frame):
            sent += 1

    run()
    wait_counted(stack, "positions.0", "decode_errors", positions_before + sent)
    before.assert_unchanged(stack)


def gateway_sender(stack: Stack) -> str:
    """The publisher name of the gateway's current incarnation."""
    return str(stack.admin("gateway.default", "status")["sender"])


def test_forged_sender_fill_is_not_applied(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """A valid fill published under a name that is not the gateway's changes no position."""
    before = Snapshot.take(stack)
    pub = publisher(context, stack)
    topic = f"ex|{ACCOUNT}|{SYMBOL}|".encode()
    forged = [
        topic + envelope(a_fill(trade_id=f"forged-{i}"), seq=1, sender=f"gateway.default.{i}")
        for i in range(3)
    ]
    send_until_counted(stack, pub, forged, "positions.0", "forged_signals")
    before.assert_unchanged(stack)


def test_replayed_gateway_seq_is_dropped_as_stale(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    before = Snapshot.take(stack)
    sender = gateway_sender(stack)
    pub = publisher(context, stack)
    topic = f"ex|{ACCOUNT}|{SYMBOL}|".encode()
    # The fixture's order made the gateway publish (ack, fill): seq 1 and 2 were seen.
    replayed = [topic + envelope(a_fill(trade_id="replayed"), seq=s, sender=sender) for s in (1, 2)]
    send_until_counted(stack, pub, replayed, "positions.0", "stale")
    before.assert_unchanged(stack)


def test_out_of_order_gateway_seq_is_not_applied_and_loses_nothing(
    stack: Stack, context: zmq.Context[zmq.Socket[bytes]]
) -> None:
    """A frame under the gateway's name ahead of its journal is refused; later fills apply."""
    before = Snapshot.take(stack)
    sender = gateway_sender(stack)
    pub = publisher(context, stack)
    topic = f"ex|{ACCOUNT}|{SYMBOL}|".encode()
    ahead = [topic + envelope(a_fill(trade_id="ahead"), seq=1_000_000, sender=sender)]
    send_until_counted(stack, pub, ahead, "positions.0", "forged_signals")
    before.assert_unchanged(stack)
    # The real gateway's next signals (seq last+1, last+2, ...) are not lost behind the forged seq.
    stack.json("order", "buy", "ETH/USDT", "1")
    wait_for(
        "ETH/USDT filled",
        lambda: where(
            stack.positions(), lambda p: "ETH/USDT" in p and Decimal(str(p["ETH/USDT"]["qty"])) == 1
        ),
    )
