"""A real stack from the CLI: up, orders, fills in positions and admin inspect, down; kill -9."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from stack_harness import Stack, wait_for, where

from posbus.adapters.launcher_layout import pid_alive


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack shared by the tests that only add orders on different symbols."""
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=50)
        s.up()
        try:
            yield s
        finally:
            s.close()


def _filled(stack: Stack, symbol: str, qty: Decimal) -> dict[str, object] | None:
    position = stack.positions().get(symbol)
    if position is None or Decimal(str(position["qty"])) != qty:
        return None
    return position


def test_status_json_lists_every_worker_with_its_endpoints(stack: Stack) -> None:
    doc = stack.status()
    names = sorted(w["name"] for w in doc["workers"])
    assert names == ["broker", "feed", "gateway.default", "positions.0", "risk"]
    positions = stack.worker("positions.0")
    assert positions["role"] == "positions"
    assert positions["shard"] == "0/1"
    assert positions["command"] == "positions.0"
    assert positions["admin"] == f"ipc://{stack.run_dir}/admin/positions.0.sock"
    assert positions["restarts"] == 0
    assert positions["alive"] and positions["serving"]
    assert doc["launcher"]["alive"]


def test_order_is_filled_and_shows_in_positions_and_admin_inspect(stack: Stack) -> None:
    reply = stack.json("order", "buy", "BTC/USDT", "0.1")
    assert reply["order_id"] == "default:BTC/USDT:1"
    # The CLI answered once the venue took the order.
    assert reply["settled"] is True
    assert reply["status"] in ("Accepted", "PartiallyFilled", "Filled")
    position = wait_for("BTC/USDT filled", lambda: _filled(stack, "BTC/USDT", Decimal("0.1")))
    assert position["status"] == "Open"
    assert position["fills"] == 1
    state = stack.admin("positions.0", "inspect", "position/default/BTC/USDT")
    assert Decimal(state["qty"]) == Decimal("0.1")
    # Fees are charged in realized P&L when a fill is applied (docs/accounting.md):
    # one opening fill, so realized = -fee exactly.
    assert Decimal(state["realized_pnl"]) == -Decimal(state["fees"])
    orders = stack.json("orders")["orders"]
    assert [o["status"] for o in orders] == ["Filled"]


def test_halt_refuses_new_orders_until_resume(stack: Stack) -> None:
    assert stack.json("halt", "--reason", "test")["state"] == "Halted"
    # The CLI waits for the risk decision: the refusal is its answer, exit 1.
    refused = stack.cli("order", "buy", "ETH/USDT", "1", check=False)
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.startswith("order default:ETH/USDT:")
    assert ": Rejected: " in refused.stdout and "halted" in refused.stdout
    order = next(o for o in stack.json("orders")["orders"] if o["status"] == "Rejected")
    assert "halted" in order["reason"]
    assert stack.json("resume")["state"] == "Normal"
    assert stack.json("risk")["state"] == "Normal"


def test_admin_restart_makes_the_supervisor_restart_an_actor_that_recovers(stack: Stack) -> None:
    stack.json("order", "buy", "SOL/USDT", "5")
    wait_for("SOL/USDT filled", lambda: _filled(stack, "SOL/USDT", Decimal("5")))
    name = "position/default/SOL/USDT"
    before = stack.admin("positions.0", "inspect", name)
    stack.admin("positions.0", "restart", name)

    def restarted() -> dict[str, object] | None:
        actors = {a["name"]: a for a in stack.admin("positions.0", "actors")["actors"]}
        return where(actors[name], lambda a: a["restarts"] == 1 and a["state"] == "running")

    wait_for("the actor restarted by its supervisor", restarted)
    after = stack.admin("positions.0", "inspect", name)
    keys = ("qty", "avg_entry_price", "realized_pnl", "fees", "trade_ids", "journal_seq")
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}
    assert after["replayed"] == before["journal_seq"]


def test_down_stops_every_process_and_clears_the_run_file(short_tmp: Path) -> None:
    s = Stack(short_tmp)
    s.up()
    pids = s.pids()
    try:
        s.cli("down")
    finally:
        s.close()
    assert not (s.run_dir / "run.json").exists()
    # pid_alive: a reaped-late zombie (no init reaping in a container) counts as gone.
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_kill_9_positions_worker_under_load_comes_back_with_its_positions(short_tmp: Path) -> None:
    # Load: 200 market steps/s over 3 symbols (600 market_update/s) while orders trade.
    s = Stack(short_tmp, steps_per_s=200)
    s.up()
    try:
        s.json("order", "buy", "BTC/USDT", "0.1")
        s.json("order", "sell", "ETH/USDT", "2")
        s.json("order", "buy", "SOL/USDT", "40")
        wait_for("SOL/USDT filled", lambda: _filled(s, "SOL/USDT", Decimal("40")))
        wait_for("ETH/USDT filled", lambda: _filled(s, "ETH/USDT", Decimal("-2")))
        wait_for("BTC/USDT filled", lambda: _filled(s, "BTC/USDT", Decimal("0.1")))
        keys = ("qty", "avg_entry_price", "realized_pnl", "fees", "fills")
        before = {sym: {k: p[k] for k in keys} for sym, p in s.positions().items()}
        old_pid = s.worker("positions.0")["pid"]

        os.kill(old_pid, signal.SIGKILL)

        restarted = wait_for(
            "positions.0 restarted by the launcher",
            lambda: where(s.worker("positions.0"), lambda w: w["pid"] != old_pid and w["serving"]),
        )
        assert restarted["restarts"] == 1
        recovered = wait_for(
            "positions recovered",
            lambda: where(
                s.admin("positions.0", "status"), lambda st: st["recovered"]["state"] == "done"
            ),
        )
        assert recovered["gaps_unrepaired"] == 0
        after = {sym: {k: p[k] for k in keys} for sym, p in s.positions().items()}
        assert after == before
        # And it keeps trading.
        s.json("close", "BTC/USDT")
        wait_for("BTC/USDT closed", lambda: _filled(s, "BTC/USDT", Decimal("0")))
    finally:
        s.close()


def test_launcher_gives_up_loudly_when_a_worker_keeps_dying(short_tmp: Path) -> None:
    # Restart intensity 1 in 30 s: the first kill -9 is repaired, the second is one too many.
    s = Stack(short_tmp, max_restarts=1)
    s.up()
    try:
        pids = s.pids()
        first = s.worker("positions.0")["pid"]
        os.kill(first, signal.SIGKILL)
        second = wait_for(
            "positions.0 restarted once",
            lambda: where(s.worker("positions.0"), lambda w: w["pid"] != first and w["serving"]),
        )
        os.kill(second["pid"], signal.SIGKILL)
        wait_for("the whole stack stopped", lambda: not any(pid_alive(p) for p in pids))
        log = (s.run_dir / "logs" / "launcher.out").read_text(encoding="utf-8")
        assert "worker positions.0 exited 2 times within 30.0 s" in log
        assert "giving up" in log
    finally:
        s.close()


def test_the_risk_worker_prices_positions_from_the_market_data_it_subscribes_to(
    short_tmp: Path,
) -> None:
    s = Stack(short_tmp, steps_per_s=50)
    s.up()
    try:
        s.json("order", "buy", "BTC/USDT", "0.1")
        wait_for("BTC/USDT filled", lambda: _filled(s, "BTC/USDT", Decimal("0.1")))
        # The position tells risk only its fill; the gross of 0.1 BTC follows the quotes
        # the risk worker hears itself (`[positions] risk_marks = "market"`, the default).
        grosses: set[str] = set()

        def moved() -> bool:
            grosses.add(s.json("risk")["metrics"]["gross"])
            return len(grosses - {"0"}) >= 3

        wait_for("risk's gross to follow the market", moved)
        received = s.admin("risk", "metrics")["in"]
        assert received["market_update"]["count"] > 0
    finally:
        s.close()


def test_a_resting_limit_order_is_accepted_then_cancel_waits_for_the_cancellation(
    stack: Stack,
) -> None:
    # Far below the market: the venue accepts it and it rests.
    placed = stack.json("order", "buy", "SOL/USDT", "1", "--limit", "1")
    assert (placed["settled"], placed["status"]) == (True, "Accepted")
    cancelled = stack.cli("cancel", placed["order_id"])
    assert cancelled.stdout.strip() == f"cancel of {placed['order_id']}: Cancelled"


def test_a_cancel_of_an_order_its_position_does_not_hold_is_bad_input_and_harms_nothing(
    stack: Stack,
) -> None:
    placed = stack.json("order", "buy", "SOL/USDT", "1", "--limit", "1")
    before = stack.admin("positions.0", "inspect", "position/default/SOL/USDT")
    for unknown in ("default:SOL/USDT:999", "default:DOT/USDT:1"):
        refused = stack.cli("cancel", unknown, check=False)
        assert refused.returncode == 2, refused.stderr
        assert f"unknown order {unknown!r}" in refused.stderr
    after = stack.admin("positions.0", "inspect", "position/default/SOL/USDT")
    assert after["journal_seq"] == before["journal_seq"]
    # The position still answers after a restart: nothing unreplayable was journaled.
    stack.admin("positions.0", "restart", "position/default/SOL/USDT")
    assert stack.cli("cancel", placed["order_id"]).returncode == 0


def test_close_of_a_flat_position_has_nothing_to_close_and_sends_nothing(stack: Stack) -> None:
    before = stack.json("orders")["orders"]
    result = stack.cli("close", "ETH/USDT", check=False)
    assert result.returncode == 1
    assert "no open position in ETH/USDT (default): nothing to close" in result.stderr
    assert result.stdout == ""
    assert stack.json("orders")["orders"] == before


@pytest.mark.parametrize(
    "command",
    [("order", "buy", "BTCUSDT", "1"), ("order", "sell", "BTC-USDT", "1"), ("close", "btcusdt")],
    ids=" ".join,
)
def test_a_misspelt_symbol_is_bad_input_naming_the_symbol_meant(
    stack: Stack, command: tuple[str, ...]
) -> None:
    before = stack.json("orders")["orders"]
    result = stack.cli(*command, check=False)
    assert result.returncode == 2, result.stderr
    assert f"unknown symbol {command[-2 if command[0] == 'order' else -1]!r}" in result.stderr
    assert "did you mean 'BTC/USDT'?" in result.stderr
    assert result.stdout == ""
    assert stack.json("orders")["orders"] == before
    assert set(stack.positions()) <= {"BTC/USDT", "ETH/USDT", "SOL/USDT"}


def test_positions_table_shows_the_venues_precision_and_json_every_digit(stack: Stack) -> None:
    stack.json("order", "buy", "BTC/USDT", "0.1")
    position = wait_for("a BTC/USDT position", lambda: stack.positions().get("BTC/USDT"))
    exact = stack.admin("positions.0", "inspect", "position/default/BTC/USDT")
    # JSON: the exact value, written one way (no exponent, no trailing zeros).
    for key in ("qty", "avg_entry_price", "realized_pnl"):
        text = str(position[key])
        assert Decimal(text) == Decimal(exact[key])
        assert "E" not in text and not ("." in text and text.endswith("0")), text
    # The table: the simulated venue's qty_step 0.0001 and price_tick 0.01, half-even.
    table = stack.cli("positions").stdout.splitlines()
    header = table[0].split()
    row = next(line.split() for line in table[1:] if "BTC/USDT" in line)
    shown = dict(zip(header, row, strict=True))
    assert shown["qty"] == format(Decimal(exact["qty"]).quantize(Decimal("0.0001")), "f")
    price = Decimal(exact["avg_entry_price"]).quantize(Decimal("0.01"))
    assert shown["avg_entry_price"] == format(price, "f")


def test_positions_json_totals_each_account_and_the_firm_per_quote_currency(stack: Stack) -> None:
    stack.json("order", "sell", "ETH/USDT", "0.5")
    wait_for("an ETH/USDT position", lambda: stack.positions().get("ETH/USDT"))
    doc = stack.json("positions")
    held = doc["positions"]
    # Recomputed here from the listed positions: every symbol is quoted in USDT.
    expected = {
        key: sum((Decimal(p[key]) for p in held), Decimal(0))
        for key in ("realized_pnl", "unrealized_pnl", "fees")
    }
    (firm,) = doc["firm"]
    assert firm["currency"] == "USDT"
    assert (firm["positions"], firm["open"]) == (
        len(held),
        sum(1 for p in held if Decimal(p["qty"]) != 0),
    )
    for key, value in expected.items():
        assert Decimal(firm[key]) == value, key
    assert Decimal(firm["total_pnl"]) == expected["realized_pnl"] + expected["unrealized_pnl"]
    assert doc["accounts"] == {"default": doc["firm"]}
    assert stack.json("positions", "--account", "nobody") == {
        "positions": [],
        "accounts": {},
        "firm": [],
    }
    table = stack.cli("positions").stdout
    assert "\ntotals" in table and "\ndefault  USDT" in table


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ("order", "buy", "BTC/USDT", "0.00005"),
            "qty 0.00005 is not a multiple of the venue's quantity step 0.0001 (nearest: 0.0001)",
        ),
        (
            ("order", "buy", "BTC/USDT", "0.1", "--limit", "50000.125"),
            "limit price 50000.125 is not a multiple of the venue's price tick 0.01 "
            "(nearest: 50000.12 or 50000.13)",
        ),
    ],
    ids=["qty", "price"],
)
def test_an_order_off_the_venues_grid_is_bad_input_naming_the_nearest_values(
    stack: Stack, command: tuple[str, ...], expected: str
) -> None:
    before = stack.json("orders")["orders"]
    result = stack.cli(*command, check=False)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert stack.json("orders")["orders"] == before
