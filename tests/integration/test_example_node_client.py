"""The Node.js example client (examples/node-client) against a real stack.

The client is written from docs/wire-format.md, docs/bus.md and
docs/commands.md alone; these tests drive it as a user would, as a
subprocess given `posbus status --json`, and check what it prints against
the posbus CLI: events it subscribed to, positions page by page, a resting
limit order and its cancel, a refused argument. A second stack runs over tcp
with CURVE, which the client joins with its own listed key.

node and npm are required: without them these tests fail, they never skip.
The client's packages come from `npm ci` in examples/node-client (CI runs
it before the tests); when they are missing or differ from the lockfile, the
first test here runs `npm ci` itself.
"""

from __future__ import annotations

import json
import queue
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, posbus, wait_for

CLIENT_DIR = Path(__file__).resolve().parents[2] / "examples" / "node-client"
SYMBOL = "BTC/USDT"
DECIMAL_FIELDS = ("qty", "avg_entry_price", "realized_pnl", "fees")
DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
COMPARED = ("account", "symbol", "status", *DECIMAL_FIELDS, "orders", "fills")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is required for the Node.js example client's tests"
    return path


def _installed() -> bool:
    """Whether node_modules holds exactly the versions package-lock.json names."""
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text(encoding="utf-8"))
    for where, entry in lock["packages"].items():
        if not where:
            continue
        manifest = CLIENT_DIR / where / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text(encoding="utf-8"))["version"] != entry["version"]:
            return False
    return True


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the client's packages installed (npm ci when they are not)."""
    npm = _tool("npm")
    node = _tool("node")
    if not _installed():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True, timeout=240
        )
    assert _installed()
    return node


class Client:
    """`node client.mjs --status STATUS --json ...` against one stack."""

    def __init__(self, node: str, status: Path, *extra: str) -> None:
        self.base = [node, str(CLIENT_DIR / "client.mjs"), "--status", str(status), *extra]

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, "--json", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def json(self, *args: str, code: int = 0) -> Any:
        """The JSON the client prints; its exit code must be `code`."""
        result = self.run(*args)
        assert result.returncode == code, (
            f"node client {' '.join(args)} exited {result.returncode}, not {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return json.loads(result.stdout)


class Subscription:
    """`client subscribe PREFIX...` running in the background; its events, line by line."""

    def __init__(self, client: Client, *prefixes: str) -> None:
        self.process = subprocess.Popen(
            [*client.base, "--json", "subscribe", *prefixes, "--for", "240"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, what: str, match: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first event (from now on) for which `match(event)` holds; bounded."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {what} among {len(self.seen)} events"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, f"the subscriber ended before {what}: {self.stop()}"
            event: dict[str, Any] = json.loads(line)
            self.seen.append(event)
            if match(event):
                return event

    def stop(self) -> tuple[int, str]:
        """SIGTERM the subscriber (if still running); its exit code and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # A demo stack whose signal source is silent: every order is the test's own.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=20)
        s.up()
        try:
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def client(node: str, stack: Stack) -> Client:
    status = stack.root / "status.json"
    status.write_text(json.dumps(stack.status()), encoding="utf-8")
    return Client(node, status)


def _is_decimal(value: Any) -> bool:
    """A decimal string of the wire grammar (docs/wire-format.md)."""
    return isinstance(value, str) and DECIMAL.fullmatch(value) is not None


def test_the_client_codec_writes_and_reads_the_documented_frames(node: str) -> None:
    # The worked examples of docs/wire-format.md, byte for byte (examples/node-client/test).
    result = subprocess.run(
        [node, "--test", "test/"],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout


def test_subscribe_prints_the_quotes_of_its_prefix_with_decimals_as_strings(
    client: Client,
) -> None:
    result = client.run("subscribe", f"md|{SYMBOL}|", "--count", "3", "--for", "60")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 3
    for event in events:
        assert (event["topic"], event["kind"], event["version"]) == (
            f"md|{SYMBOL}|",
            "market_update",
            1,
        )
        quote = event["body"]
        assert quote["symbol"] == SYMBOL
        assert _is_decimal(quote["bid"]) and _is_decimal(quote["ask"]), quote
        assert Decimal(quote["bid"]) <= Decimal(quote["ask"])
        # ts_ns is past 2^53: exact only if the client kept it a 64-bit int.
        assert isinstance(event["ts_ns"], int) and event["ts_ns"] > 2**53
    assert len({e["sender"] for e in events}) == 1
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


def test_a_limit_order_rests_its_ack_is_published_and_a_cancel_cancels_it(
    stack: Stack, client: Client
) -> None:
    events = Subscription(client, f"md|{SYMBOL}|", "ex|default|")
    try:
        # A quote through the same SUB socket: its subscriptions have reached the broker.
        quote = events.until("a quote", lambda e: e["kind"] == "market_update")["body"]
        limit = str((Decimal(quote["bid"]) / 2).quantize(Decimal(1)))
        placed = client.json("order", "buy", SYMBOL, "0.01", "--limit-price", limit)
        order_id = placed["order_id"]
        assert order_id.startswith(f"default:{SYMBOL}:")
        assert (placed["service"], placed["settled"], placed["status"]) == (
            "positions.0",
            True,
            "Accepted",
        )
        ack = events.until(
            "the order's ack",
            lambda e: e["kind"] == "execution_signal" and e["body"]["order_id"] == order_id,
        )
        assert ack["topic"] == f"ex|default|{SYMBOL}|"
        assert ack["body"]["signal"] == "ack"

        resting = {o["order_id"]: o for o in stack.json("orders")["orders"]}[order_id]
        assert (resting["status"], resting["limit_price"], resting["filled_qty"]) == (
            "Accepted",
            limit,
            "0",
        )

        cancelled = client.json("cancel", order_id)
        assert (cancelled["order_id"], cancelled["settled"], cancelled["status"]) == (
            order_id,
            True,
            "Cancelled",
        )
        signal = events.until(
            "the order's cancelled signal",
            lambda e: (
                e["kind"] == "execution_signal"
                and e["body"]["order_id"] == order_id
                and e["body"]["signal"] != "ack"
            ),
        )
        assert signal["body"]["signal"] == "cancelled"
    finally:
        code, err = events.stop()
    # SIGTERM ends a subscription cleanly.
    assert code == 0, err
    orders = {o["order_id"]: o for o in stack.json("orders")["orders"]}
    assert orders[order_id]["status"] == "Cancelled"
    assert orders[order_id]["filled_qty"] == "0"


def _compared(position: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(position[k]) if k in DECIMAL_FIELDS else position[k] for k in COMPARED}


def test_positions_are_listed_page_by_page_as_posbus_lists_them(
    stack: Stack, client: Client
) -> None:
    fills = {"ETH/USDT": ("sell", "0.5", "-0.5"), "SOL/USDT": ("buy", "2", "2")}
    for symbol, (side, qty, _) in fills.items():
        filled = client.json("order", side, symbol, qty)
        assert (filled["status"], filled["order"]["filled_qty"]) == ("Filled", qty)

    def both_filled() -> dict[str, dict[str, Any]] | None:
        positions = stack.positions()
        held = {s: positions[s]["qty"] for s in fills if s in positions}
        return positions if held == {s: f[2] for s, f in fills.items()} else None

    expected = wait_for("ETH/USDT and SOL/USDT filled", both_filled)
    listed = client.json("positions", "--page-size", "1")
    assert listed["pages"] == {"positions.0": len(expected)}
    got = {p["symbol"]: p for p in listed["positions"]}
    # The client passes the wire's decimal texts on; the CLI writes them its one
    # way (no trailing zeros): the same values.
    assert {s: _compared(p) for s, p in got.items()} == {
        s: _compared(p) for s, p in expected.items()
    }
    for position in got.values():
        assert all(_is_decimal(position[k]) for k in DECIMAL_FIELDS), position
    # One page of all of them, the other way to read the same list.
    whole = client.json("positions")
    assert whole["pages"] == {"positions.0": 1}
    assert sorted(p["symbol"] for p in whole["positions"]) == sorted(expected)


def test_an_unknown_argument_is_refused_with_invalid_argument_naming_it(
    stack: Stack, client: Client
) -> None:
    before = stack.json("orders")["orders"]
    args = json.dumps({"symbol": SYMBOL, "side": "buy", "qty": "0.01", "limit": "1"})
    refused = client.json("raw", "positions", "positions.order", args, code=1)
    assert (refused["service"], refused["ok"]) == ("positions.0", False)
    error = refused["error"]
    assert (error["type"], error["transient"]) == ("InvalidArgument", False)
    assert "argument 'limit': unknown" in error["message"]
    assert "limit_price" in error["message"]
    assert stack.json("orders")["orders"] == before
    # The client itself refuses a float where a decimal string belongs: nothing is sent.
    floats = client.run("raw", "positions", "positions.order", args.replace('"1"', "1.5"))
    assert floats.returncode == 2 and "send a decimal as a string" in floats.stderr


# -- tcp with CURVE ------------------------------------------------------------------------


def _free_base_port() -> int:
    """A base port with 4 free consecutive ports on 127.0.0.1 (checked by binding them)."""
    for _ in range(50):
        base = random.randrange(20_000, 60_000, 4)
        sockets = []
        try:
            for port in range(base, base + 4):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no 4 free consecutive ports")


def test_over_tcp_the_client_needs_its_listed_curve_key(node: str) -> None:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        keys, allowed = root / "keys", root / "allowed"
        for key in ("broker", "workers", "node", "intruder"):
            posbus("keys", "generate", key, "--dir", str(keys))
        allowed.mkdir(mode=0o700)
        for key in ("workers", "node"):
            shutil.copy(keys / f"{key}.key", allowed / f"{key}.key")
        port = _free_base_port()
        s = Stack(
            root,
            steps_per_s=20,
            bus_extra=(
                'transport = "tcp"\n'
                'host = "127.0.0.1"\n'
                'bind = "127.0.0.1"\n'
                f"base_port = {port}\n"
                f'curve_server_secret = "{keys / "broker.key_secret"}"\n'
                f'curve_server_public = "{keys / "broker.key"}"\n'
                f'curve_client_secret = "{keys / "workers.key_secret"}"\n'
                f'allowed_clients = "{allowed}"\n'
            ),
        )
        s.up()
        try:
            doc = s.status()
            assert (doc["bus"]["transport"], doc["bus"]["curve"]) == ("tcp", True)
            assert doc["bus"]["commands"] == f"tcp://127.0.0.1:{port + 2}"
            status = root / "status.json"
            status.write_text(json.dumps(doc), encoding="utf-8")

            def keyed(key: str) -> Client:
                return Client(
                    node,
                    status,
                    "--curve-secret",
                    str(keys / f"{key}.key_secret"),
                    "--curve-server-public",
                    str(keys / "broker.key"),
                    "--timeout",
                    "2",
                )

            listed = keyed("node")
            assert listed.json("positions") == {"positions": [], "pages": {"positions.0": 1}}
            quotes = listed.run("subscribe", "md|", "--count", "1", "--for", "60")
            assert quotes.returncode == 0, quotes.stderr
            assert json.loads(quotes.stdout)["kind"] == "market_update"

            no_keys = Client(node, status).run("positions")
            assert no_keys.returncode == 2 and "--curve-secret" in no_keys.stderr
            # An unlisted key completes no handshake: the command is never sent.
            intruder = keyed("intruder").run("positions")
            assert intruder.returncode == 3 and "not sent" in intruder.stderr
        finally:
            s.close()
