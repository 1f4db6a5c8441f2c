"""One `posbus up` stack trading three accounts: two simulated venues and ccxt to Binance.

Every process is real, and so is ccxt.binance, talking HTTP to the Binance
emulator in this process. The ccxt account's gateway is the market: its
quotes reach the simulated venues, the positions and risk over the bus. Each
account has its own gateway worker; the two positions shards hold every
account's positions.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from stack_harness import posbus, wait_for, where

from posbus.adapters.launcher_client import StackClient
from posbus.adapters.simulation.binance_emulator import BinanceEmulator
from posbus.bus.errors import CommandFailed

ACCOUNTS = ("main", "hedge", "venue")
SYMBOL = "BTC/USDT"
QTY = Decimal("0.01")

CONFIG = """\
run_dir = "{run_dir}"

[accounts.main.exchange]
reject_rate = 0.0
partial_fill_rate = 0.0

[accounts.hedge]
starting_equity = "50000"

[accounts.hedge.exchange]
seed = 11
taker_fee_rate = "0.0005"
reject_rate = 0.0
partial_fill_rate = 0.0

[accounts.venue.exchange]
kind = "ccxt"
exchange_id = "binance"
timeout_ms = 2000
enable_rate_limit = false
poll_interval_s = 0.1
reconcile_interval_s = 0

[accounts.venue.exchange.urls]
public = "{public}"
private = "{private}"
v1 = "{v1}"

[symbols."BTC/USDT"]
price = "60000"
order_qty = "0.01"

[bus]
heartbeat_interval_s = 0.2
# 2 s of silence before a worker counts as dead: slack for a loaded CI machine.
liveness = 10

[workers]
position_shards = 2
tick_s = 0.5

[launcher]
max_restarts = 5
period_s = 30
stop_timeout_s = 10
"""


class Desk:
    """The stack of CONFIG, driven through the CLI."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def cli(self, *args: str, check: bool = True) -> Any:
        return posbus(*args, "--config", str(self.config), check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["name"]: w for w in self.json("status")["workers"]}

    def held(self, account: str) -> Decimal:
        """The account's BTC/USDT quantity (0 with no position)."""
        for position in self.json("positions")["positions"]:
            if (position["account"], position["symbol"]) == (account, SYMBOL):
                return Decimal(str(position["qty"]))
        return Decimal(0)

    def order_status(self, order_id: str) -> dict[str, Any] | None:
        """The order once it is filled or rejected, else None."""
        orders = self.json("orders")["orders"]
        order = next((o for o in orders if o["order_id"] == order_id), None)
        return order if order is not None and order["status"] in ("Filled", "Rejected") else None

    def buy(self, account: str) -> None:
        """Buy QTY on `account` until it fills (before the first quote, it is refused)."""
        before = self.held(account)

        def bought() -> bool:
            placed = self.json("order", "buy", SYMBOL, str(QTY), "--account", account)
            assert placed["order_id"].startswith(f"{account}:{SYMBOL}:")
            order = wait_for("the order settled", lambda: self.order_status(placed["order_id"]))
            if order["status"] == "Rejected":
                # Only before the first quote reached risk or the venue: try again.
                if not any(why in str(order["reason"]) for why in ("mark", "no market yet")):
                    pytest.fail(f"order refused: {order}")
                return False
            return True

        wait_for(f"an order on {account} filled", bought, timeout=60, every=0.5)
        wait_for(
            f"{account}'s position grown by the fill",
            lambda: self.held(account) == before + QTY or None,
        )


@pytest.fixture(scope="module")
def venue() -> Iterator[BinanceEmulator]:
    with BinanceEmulator() as emu, pytest.MonkeyPatch.context() as patch:
        # Inherited by `posbus up` and every worker it starts (the ccxt account's keys).
        patch.setenv("POSBUS_API_KEY", emu.api_key)
        patch.setenv("POSBUS_API_SECRET", emu.secret)
        yield emu


@pytest.fixture(scope="module")
def desk(venue: BinanceEmulator) -> Iterator[Desk]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        config = root / "posbus.toml"
        urls = venue.ccxt_urls()
        config.write_text(CONFIG.format(run_dir=root / "var", **urls), encoding="utf-8")
        stack = Desk(config)
        stack.cli("up", "--detach")
        try:
            wait_for(
                "every worker serving",
                lambda: all(w["serving"] for w in stack.workers().values()),
                timeout=60,
            )
            yield stack
        finally:
            stack.cli("down", "--timeout", "30", check=False)


def test_status_lists_a_gateway_per_account(desk: Desk) -> None:
    workers = desk.workers()
    gateways = {n: w for n, w in workers.items() if w["role"] == "gateway"}
    assert sorted(gateways) == sorted(f"gateway.{a}" for a in ACCOUNTS)
    for account in ACCOUNTS:
        gateway = gateways[f"gateway.{account}"]
        assert gateway["account"] == account
        assert gateway["command"] == f"gateway.{account}"
        assert gateway["serving"]
    # The positions shards are the stack's, shared by every account.
    assert sorted(n for n, w in workers.items() if w["role"] == "positions") == [
        "positions.0",
        "positions.1",
    ]
    assert {w["account"] for w in workers.values() if w["role"] != "gateway"} == {None}


def test_an_order_on_each_account_fills_and_positions_total_each_account_and_the_firm(
    desk: Desk, venue: BinanceEmulator
) -> None:
    venue_orders = len(venue.orders(SYMBOL))
    for account in ACCOUNTS:
        desk.buy(account)
    # Only the ccxt account's order reached the Binance venue, once.
    assert len(venue.orders(SYMBOL)) == venue_orders + 1
    doc = desk.json("positions")
    held = doc["positions"]
    assert sorted(p["account"] for p in held) == sorted(ACCOUNTS)
    assert all(Decimal(str(p["qty"])) > 0 for p in held)
    keys = ("realized_pnl", "unrealized_pnl", "fees")
    # Recomputed here from the listed positions: every symbol quotes in USDT.
    for account in ACCOUNTS:
        mine = [p for p in held if p["account"] == account]
        (total,) = doc["accounts"][account]
        assert total["currency"] == "USDT"
        assert (total["positions"], total["open"]) == (len(mine), len(mine))
        for key in keys:
            assert Decimal(total[key]) == sum((Decimal(p[key]) for p in mine), Decimal(0)), key
        expected = Decimal(total["realized_pnl"]) + Decimal(total["unrealized_pnl"])
        assert Decimal(total["total_pnl"]) == expected
    (firm,) = doc["firm"]
    assert (firm["currency"], firm["positions"], firm["open"]) == ("USDT", len(held), len(held))
    for key in (*keys, "total_pnl"):
        by_account = sum((Decimal(doc["accounts"][a][0][key]) for a in ACCOUNTS), Decimal(0))
        assert Decimal(firm[key]) == by_account, key
    # Each venue charged its own fee: hedge's taker rate is half main's.
    fees = {p["account"]: Decimal(p["fees"]) for p in held}
    assert fees["hedge"] < fees["main"]


@pytest.mark.parametrize(
    "command",
    [
        ("order", "buy", SYMBOL, "0.01", "--account", "hegde"),
        ("close", SYMBOL, "--account", "Hedge"),
        ("cancel", f"hedg:{SYMBOL}:1"),
    ],
    ids=["order", "close", "cancel"],
)
def test_an_unknown_account_is_bad_input_and_journals_nothing(
    desk: Desk, command: tuple[str, ...]
) -> None:
    before = desk.json("orders")["orders"]
    result = desk.cli(*command, check=False)
    assert result.returncode == 2, result.stderr
    assert "unknown account" in result.stderr
    assert "did you mean 'hedge'?" in result.stderr
    assert result.stdout == ""
    assert desk.json("orders")["orders"] == before
    for misspelt in ("hegde", "Hedge", "hedg"):
        found = desk.cli(
            "journal", "export", "--json", "--stream", f"position/{misspelt}/{SYMBOL}", check=False
        )
        assert found.returncode == 2, found.stdout
        assert "no stream" in found.stderr


def test_a_shard_refuses_an_order_for_an_account_the_stack_does_not_have(desk: Desk) -> None:
    """A client other than the CLI is refused too, before anything is journaled."""
    before = desk.json("orders")["orders"]
    client = StackClient(str(desk.config))
    try:
        for shard in client.position_services():
            with pytest.raises(CommandFailed) as refused:
                client.call(
                    shard,
                    "positions.order",
                    {"account": "hegde", "symbol": SYMBOL, "side": "buy", "qty": "0.01"},
                )
            assert refused.value.error_type == "OrderValidationError"
            assert "unknown account 'hegde'; did you mean 'hedge'?" in str(refused.value)
    finally:
        client.close()
    assert desk.json("orders")["orders"] == before


def test_a_gateway_worker_of_an_account_the_config_does_not_have_is_bad_usage(
    desk: Desk,
) -> None:
    for how in (("--role", "gateway", "--account", "hegde"), ("--instance", "gateway-hegde")):
        result = desk.cli("worker", *how, check=False)
        assert result.returncode == 2, result.stderr
        assert "unknown account 'hegde'; the accounts: main, hedge, venue" in result.stderr


def test_a_killed_gateway_leaves_the_other_accounts_trading_and_is_restarted(desk: Desk) -> None:
    killed = desk.workers()["gateway.hedge"]
    os.kill(int(killed["pid"]), signal.SIGKILL)
    # The other accounts trade on, whether or not hedge's gateway is back yet.
    desk.buy("main")
    desk.buy("venue")
    restarted = wait_for(
        "hedge's gateway restarted by the launcher",
        lambda: where(
            desk.workers()["gateway.hedge"],
            lambda w: w["restarts"] == killed["restarts"] + 1 and w["serving"],
        ),
        timeout=60,
    )
    assert restarted["pid"] != killed["pid"]
    desk.buy("hedge")
    assert all(w["serving"] for w in desk.workers().values())


def test_the_demo_without_a_config_trades_two_accounts_on_two_simulated_venues() -> None:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        run_dir = ("--run-dir", str(Path(name) / "var"))
        posbus("up", "--demo", "--detach", *run_dir, timeout=120)
        try:

            def gateways() -> list[str] | None:
                doc = json.loads(posbus("status", "--json", *run_dir).stdout)
                serving = all(w["serving"] for w in doc["workers"])
                names = [w["name"] for w in doc["workers"] if w["role"] == "gateway"]
                return sorted(names) if serving else None

            assert wait_for("every worker serving", gateways, timeout=60) == [
                "gateway.hedge",
                "gateway.main",
            ]
            written = (Path(name) / "var" / "demo.toml").read_text(encoding="utf-8")
            assert "[accounts.main]" in written and "[accounts.hedge]" in written

            def accounts() -> set[str] | None:
                doc = json.loads(posbus("positions", "--json", *run_dir).stdout)
                return set(doc["accounts"]) if len(doc["accounts"]) == 2 else None

            # The demo's signal sources trade both accounts.
            assert wait_for("positions on both accounts", accounts, timeout=60) == {
                "main",
                "hedge",
            }
            # An order names the demo's first account when it names none.
            placed = json.loads(
                posbus("order", "buy", SYMBOL, "0.01", "--no-wait", "--json", *run_dir).stdout
            )
            assert placed["order_id"].startswith(f"main:{SYMBOL}:")
        finally:
            posbus("down", "--timeout", "30", *run_dir, check=False, timeout=60)
