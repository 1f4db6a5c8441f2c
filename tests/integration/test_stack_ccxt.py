"""`posbus up` with `[exchange] kind = "ccxt"`: the gateway worker trades through real ccxt.

The stack's processes are real, and so is ccxt.binance, talking HTTP to the
Binance emulator in this process. The gateway worker is the market too: its
ccxt client polls the emulator's book and publishes the quotes on the bus.
Credentials reach the workers through the environment, as in production.
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

from posbus.adapters.simulation.binance_emulator import BinanceEmulator

CONFIG = """\
run_dir = "{run_dir}"

[exchange]
kind = "ccxt"
exchange_id = "binance"
timeout_ms = 2000
enable_rate_limit = false
poll_interval_s = 0.1
reconcile_interval_s = 0

[exchange.urls]
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
position_shards = 1
tick_s = 0.5
"""


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[BinanceEmulator]:
    with BinanceEmulator() as emu:
        # Inherited by `posbus up` and every worker it starts.
        monkeypatch.setenv("POSBUS_API_KEY", emu.api_key)
        monkeypatch.setenv("POSBUS_API_SECRET", emu.secret)
        yield emu


def test_stack_trades_through_ccxt_against_the_binance_emulator(
    emulator: BinanceEmulator,
) -> None:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        config = root / "posbus.toml"
        urls = emulator.ccxt_urls()
        config.write_text(CONFIG.format(run_dir=root / "var", **urls), encoding="utf-8")
        cfg = ("--config", str(config))
        posbus("up", "--detach", *cfg, timeout=120)
        try:

            def serving() -> bool:
                doc = json.loads(posbus("status", "--json", *cfg).stdout)
                return all(w["serving"] for w in doc["workers"])

            wait_for("every worker serving", serving, timeout=60)

            def btc() -> dict[str, object] | None:
                doc = json.loads(posbus("positions", "--json", *cfg).stdout)
                return next((p for p in doc["positions"] if p["symbol"] == "BTC/USDT"), None)

            def order_status(order_id: str) -> dict[str, object] | None:
                doc = json.loads(posbus("orders", "--json", *cfg).stdout)
                order = next((o for o in doc["orders"] if o["order_id"] == order_id), None)
                done = order is not None and order["status"] in ("Filled", "Rejected")
                return order if done else None

            def bought() -> bool:
                placed = json.loads(
                    posbus("order", "buy", "BTC/USDT", "0.01", "--json", *cfg).stdout
                )
                order = wait_for("the order settled", lambda: order_status(placed["order_id"]))
                if order["status"] == "Rejected":
                    # Only before the first quote reached risk; anything else is a failure
                    # (pytest.fail, which the polling loop does not swallow).
                    if "without a mark" not in str(order["reason"]):
                        pytest.fail(f"order refused: {order}")
                    return False
                return True

            # The gateway's quotes reach risk over the bus; until they do, a market
            # order is refused for want of a mark (fail safe), so try again.
            wait_for("an order filled", bought, timeout=60, every=0.5)
            filled = btc()
            assert filled is not None
            assert Decimal(str(filled["qty"])) == Decimal("0.01")
            # Exactly one order reached the exchange, and its one fill is in the position.
            orders = emulator.orders("BTC/USDT")
            assert len(orders) == 1
            assert len(emulator.trades("BTC/USDT")) == filled["fills"] == 1
        finally:
            posbus("down", "--timeout", "30", *cfg, check=False, timeout=60)


def test_a_gateway_killed_with_a_resting_order_knows_it_after_its_restart(
    emulator: BinanceEmulator,
) -> None:
    """Found by the chaos run: a gateway worker's journal is not the positions'.

    The restarted gateway rebuilt its ledger from its own journal, which held
    the order's ack but not its submit (journaled by the positions worker, in
    another process and journal): reconciliation then found the resting order
    at the exchange, took it for someone else's and halted the account. The
    gateway now journals the submit on its own stream before it sends it.
    """
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        config = root / "posbus.toml"
        urls = emulator.ccxt_urls()
        config.write_text(CONFIG.format(run_dir=root / "var", **urls), encoding="utf-8")
        cfg = ("--config", str(config))
        posbus("up", "--detach", *cfg, timeout=120)
        try:

            def status() -> dict[str, Any]:
                doc: dict[str, Any] = json.loads(posbus("status", "--json", *cfg).stdout)
                return doc

            def gateway_pid() -> int | None:
                for worker in status()["workers"]:
                    if worker["name"] == "gateway.default" and worker["serving"]:
                        return int(worker["pid"])
                return None

            def order(order_id: str) -> dict[str, Any]:
                doc = json.loads(posbus("orders", "--json", *cfg).stdout)
                found: dict[str, Any] = next(o for o in doc["orders"] if o["order_id"] == order_id)
                return found

            def resting() -> str | None:
                placed = json.loads(
                    posbus(
                        "order", "buy", "BTC/USDT", "0.01", "--limit", "59000", "--json", *cfg
                    ).stdout
                )
                state = wait_for(
                    "the order acknowledged or refused",
                    lambda: where(
                        order(placed["order_id"]), lambda o: o["status"] not in ("PendingOrder",)
                    ),
                )
                if state["status"] == "Rejected" and "mark" in str(state["reason"]):
                    return None  # before the first quote reached risk: try again
                assert state["status"] == "Accepted", state
                return str(placed["order_id"])

            old = wait_for("the gateway serving", gateway_pid, timeout=60)
            order_id = wait_for("a limit order resting", resting, timeout=60, every=0.5)
            assert [o["status"] for o in emulator.orders("BTC/USDT")] == ["NEW"]
            os.kill(old, signal.SIGKILL)
            wait_for(
                "the gateway restarted",
                lambda: where(gateway_pid(), lambda pid: pid is not None and pid != old),
                timeout=60,
            )
            # The walk crosses the resting buy: the restarted gateway's poll finds the fill.
            emulator.set_touch("BTC/USDT", Decimal("58990.00"), Decimal("58990.10"))
            filled = wait_for(
                "the resting order filled after the restart",
                lambda: where(order(order_id), lambda o: o["status"] == "Filled"),
                timeout=60,
            )
            assert Decimal(str(filled["filled_qty"])) == Decimal("0.01")
            risk = json.loads(posbus("risk", "--json", *cfg).stdout)
            assert "halt" not in json.dumps(risk.get("state", "")).lower(), risk
            assert len(emulator.orders("BTC/USDT")) == 1  # never sent twice
        finally:
            posbus("down", "--timeout", "30", *cfg, check=False, timeout=60)


def stream_config(run_dir: Path, emulator: BinanceEmulator) -> str:
    """CONFIG with the user-data stream's URLs too (`[exchange.urls]`, dotted names quoted)."""
    urls = emulator.ccxt_urls(websocket=True)
    text = CONFIG.format(run_dir=run_dir, **{k: v for k, v in urls.items() if "." not in k})
    stream = "".join(f'"{k}" = "{v}"\n' for k, v in urls.items() if "." in k)
    return text.replace("\n[symbols.", f"{stream}\n[symbols.", 1)


# The REST reads that find fills: polling, lookups, trades.
FILL_READS = ("GET /api/v3/openOrders", "GET /api/v3/order", "GET /api/v3/myTrades")


def test_stack_fills_a_resting_order_from_the_user_data_stream_with_polling_paused(
    emulator: BinanceEmulator,
) -> None:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        config = root / "posbus.toml"
        config.write_text(stream_config(root / "var", emulator), encoding="utf-8")
        cfg = ("--config", str(config))
        posbus("up", "--detach", *cfg, timeout=120)
        try:

            def exchange() -> dict[str, Any]:
                reply = posbus("admin", "gateway.default", "inspect", "gateway.default", *cfg)
                found: dict[str, Any] = json.loads(reply.stdout)["network"]["exchange"]
                return found

            def order(order_id: str) -> dict[str, Any]:
                doc = json.loads(posbus("orders", "--json", *cfg).stdout)
                found: dict[str, Any] = next(o for o in doc["orders"] if o["order_id"] == order_id)
                return found

            def resting() -> str | None:
                placed = json.loads(
                    posbus(
                        "order", "buy", "BTC/USDT", "0.01", "--limit", "59000", "--json", *cfg
                    ).stdout
                )
                state = wait_for(
                    "the order acknowledged or refused",
                    lambda: where(
                        order(placed["order_id"]), lambda o: o["status"] not in ("PendingOrder",)
                    ),
                )
                if state["status"] == "Rejected" and "mark" in str(state["reason"]):
                    return None  # before the first quote reached risk: try again
                assert state["status"] == "Accepted", state
                return str(placed["order_id"])

            def fill_reads() -> int:
                return sum(len(emulator.requests(endpoint)) for endpoint in FILL_READS)

            wait_for(
                "the user-data stream trusted",
                lambda: where(exchange(), lambda e: e["user_stream"]["trusted"]),
                timeout=60,
                every=0.5,
            )
            order_id = wait_for("a limit order resting", resting, timeout=60, every=0.5)
            reads = fill_reads()
            paused = exchange()["counts"].get("polls_paused", 0)
            # Ticks of the 0.1 s timer pass with the order working and no polling round.
            wait_for(
                "ticks with polling paused",
                lambda: where(
                    exchange(), lambda e: e["counts"].get("polls_paused", 0) > paused + 5
                ),
            )
            emulator.set_touch("BTC/USDT", Decimal("58990.00"), Decimal("58990.10"))
            filled = wait_for(
                "the resting order filled",
                lambda: where(order(order_id), lambda o: o["status"] == "Filled"),
            )

            assert Decimal(str(filled["filled_qty"])) == Decimal("0.01")
            assert fill_reads() == reads  # nothing read the fill but the stream
            assert exchange()["counts"]["fills_from_stream"] == 1
            assert len(emulator.orders("BTC/USDT")) == 1
        finally:
            posbus("down", "--timeout", "30", *cfg, check=False, timeout=60)
