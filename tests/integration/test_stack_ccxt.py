"""`posbus up` with `[exchange] kind = "ccxt"`: the gateway worker trades through real ccxt.

The stack's processes are real, and so is ccxt.binance, talking HTTP to the
Binance emulator in this process. The gateway worker is the market too: its
ccxt client polls the emulator's book and publishes the quotes on the bus.
Credentials reach the workers through the environment, as in production.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from binance_emulator import BinanceEmulator
from stack_harness import posbus, wait_for

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
