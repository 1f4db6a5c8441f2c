"""`posbus web` against a real stack: the token guards every route, and the documents it serves
and pushes agree with what `posbus positions`, `orders`, `risk` and `status` print.

The stack and the dashboard are real processes; the tests talk HTTP as a
script would (urllib's http.client) and compare with the CLI's JSON, never
with the dashboard's own modules. Waits are bounded polls or reads of the
event stream under a deadline.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, posbus, wait_for
from web_process import Events, WebProcess

# The shown precision of the simulated venue's defaults: [exchange] price_tick = 0.01
# (prices, and P&L and fees in the quote currency), qty_step = 0.0001.
PRICE_PLACES = 2
QTY_PLACES = 4
MONEY = ("realized_pnl", "unrealized_pnl", "fees")


def at(text: str, places: int) -> str:
    """`text` rounded half-even to `places` places, as the page shows amounts (no "-0")."""
    value = Decimal(text).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return format(abs(value) if value.is_zero() else value, "f")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # Few quotes a second: a mark then holds long enough for two readers to see the same one.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=2)
        s.up()
        try:
            s.json("order", "buy", "BTC/USDT", "0.1")
            s.json("order", "sell", "SOL/USDT", "3")
            # Far below the market: it stays working.
            s.json("order", "buy", "ETH/USDT", "1", "--limit", "100")
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def web(stack: Stack) -> Iterator[WebProcess]:
    process = WebProcess(stack)
    try:
        process.wait_url()
        yield process
    finally:
        process.stop()


def _row(document: dict[str, Any], symbol: str) -> dict[str, Any] | None:
    return next((p for p in document["positions"] or [] if p["symbol"] == symbol), None)


def _agreeing(web: WebProcess, stack: Stack) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The dashboard document and `posbus positions --json` once both saw the same marks."""
    cli = stack.positions()
    document = web.snapshot()
    for symbol, position in cli.items():
        row = _row(document, symbol)
        if row is None or row["status"] != position["status"] or row["fills"] != position["fills"]:
            return None
        for key in ("qty", "avg_entry_price", "mark", *MONEY):
            if Decimal(row["exact"][key]) != Decimal(position[key]):
                return None
    if len(document["positions"]) != len(cli):
        return None
    return document, cli


def test_every_route_refuses_a_missing_token_401_and_a_wrong_one_403(web: WebProcess) -> None:
    wrong = "x" * len(web.token)
    for path in ("/", "/static/dashboard.js", "/api/snapshot", "/api/events"):
        missing = web.get(path)
        assert missing.status == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert web.get(path, token=wrong).status == 403, path
        assert web.get(path, cookie=f"posbus_web_{web.port}={wrong}").status == 403, path
    assert web.get(f"/?token={wrong}").status == 403
    # The token in a query is taken on the page only, never on the API.
    assert web.get(f"/api/snapshot?token={web.token}").status == 401


def test_the_right_token_opens_every_route(web: WebProcess) -> None:
    page = web.get("/", token=web.token)
    assert page.status == 200
    assert b"/static/dashboard.js" in page.body
    script = web.get("/static/dashboard.js", token=web.token)
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert web.get("/api/snapshot", token=web.token).status == 200
    events = Events(web)
    try:
        assert events.status == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        assert events.next()["schema"] == 1
    finally:
        events.close()
    # Every answer forbids other origins' scripts, framing, caching and referrers.
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_printed_url_trades_the_token_for_a_session_cookie(web: WebProcess) -> None:
    opened = web.get(f"/?token={web.token}")
    assert opened.status == 303
    assert opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"posbus_web_{web.port}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert web.token not in cookie
    session = cookie.split(";")[0]
    assert web.get("/", cookie=session).status == 200
    assert web.get("/api/snapshot", cookie=session).status == 200


def test_positions_and_totals_agree_with_posbus_positions_json(
    web: WebProcess, stack: Stack
) -> None:
    document, cli = wait_for(
        "the dashboard and posbus positions --json to see the same marks",
        lambda: _agreeing(web, stack),
    )
    assert set(cli) == {"BTC/USDT", "SOL/USDT", "ETH/USDT"}
    for symbol, position in cli.items():
        row = _row(document, symbol)
        assert row is not None
        assert row["account"] == position["account"] == "default"
        assert row["qty"] == at(position["qty"], QTY_PLACES)
        assert row["avg_entry_price"] == at(position["avg_entry_price"], PRICE_PLACES)
        assert row["mark"] == at(position["mark"], PRICE_PLACES)
        for key in MONEY:
            assert row[key] == at(position[key], PRICE_PLACES), (symbol, key)
    assert Decimal(cli["BTC/USDT"]["qty"]) == Decimal("0.1")
    assert Decimal(cli["SOL/USDT"]["qty"]) == Decimal("-3")
    (usdt,) = document["totals"]
    assert usdt["currency"] == "USDT"
    assert usdt["positions"] == 3 and usdt["open"] == 2
    for key in MONEY:
        total = sum((Decimal(p[key]) for p in cli.values()), Decimal(0))
        assert Decimal(usdt["exact"][key]) == total, key
        assert usdt[key] == at(str(total), PRICE_PLACES), key
    realized = sum((Decimal(p["realized_pnl"]) for p in cli.values()), Decimal(0))
    unrealized = sum((Decimal(p["unrealized_pnl"]) for p in cli.values()), Decimal(0))
    assert Decimal(usdt["exact"]["total_pnl"]) == realized + unrealized
    (account,) = document["accounts"]
    assert account["account"] == "default"
    assert account["gateway"]["state"] == "up"
    assert account["pnl"] == document["totals"]


def test_working_orders_are_those_of_posbus_orders_working(web: WebProcess, stack: Stack) -> None:
    cli = stack.json("orders", "--working")["orders"]
    document = web.snapshot()
    assert [o["order_id"] for o in document["orders"]] == [o["order_id"] for o in cli]
    (order,) = document["orders"]
    assert order["order_id"] == "default:ETH/USDT:1"
    assert order["status"] == cli[0]["status"]
    assert order["limit_price"] == at(cli[0]["limit_price"], PRICE_PLACES) == "100.00"
    assert order["qty"] == at(cli[0]["qty"], QTY_PLACES) == "1.0000"


def test_workers_are_those_of_posbus_status(web: WebProcess, stack: Stack) -> None:
    status = stack.status()
    document = web.snapshot()
    shown = {w["name"]: (w["pid"], w["role"], w["state"]) for w in document["workers"]}
    assert shown == {w["name"]: (w["pid"], w["role"], "up") for w in status["workers"]}


def test_the_risk_state_and_limits_are_those_of_posbus_risk(web: WebProcess, stack: Stack) -> None:
    cli = stack.json("risk")
    risk = web.snapshot()["risk"]
    assert risk["state"] == cli["state"] == "Normal"
    limits = {row["name"]: row for row in risk["limits"]}
    pairs = {
        "daily loss": "daily_loss_limit",
        "drawdown": "max_drawdown",
        "leverage": "max_leverage",
        "total exposure": "max_total_exposure",
        "majors exposure": "max_group_exposure",
        "alts exposure": "max_group_exposure",
    }
    for name, key in pairs.items():
        assert Decimal(limits[name]["limit"]) == Decimal(cli["limits"][key]), name
        assert limits[name]["level"] in ("ok", "warning", "limit")
    decided = {d["order_id"] for d in cli["recent_decisions"]}
    assert {d["order_id"] for d in risk["decisions"]} == decided


def test_a_fill_and_a_risk_event_are_pushed_on_the_event_stream(
    web: WebProcess, stack: Stack
) -> None:
    before = Decimal(stack.positions()["BTC/USDT"]["qty"])
    events = Events(web)
    try:
        events.next()
        reply = stack.json("order", "buy", "BTC/USDT", "0.05")
        # The reading and the bus are two paths: a reading may show the new quantity
        # before the fill is drained from the bus; a later document shows both.
        pushed = events.until(
            "the new BTC/USDT quantity and its fill",
            lambda d: (
                Decimal(_row(d, "BTC/USDT")["exact"]["qty"]) == before + Decimal("0.05")
                and reply["order_id"] in {f["order_id"] for f in d["fills"]}
            ),
        )
        (fill,) = [f for f in pushed["fills"] if f["order_id"] == reply["order_id"]]
        assert (fill["side"], fill["qty"]) == ("buy", "0.0500")
        after = stack.positions()["BTC/USDT"]
        assert Decimal(after["qty"]) == before + Decimal("0.05")
        assert after["fills"] == _row(pushed, "BTC/USDT")["fills"]

        stack.json("halt", "--reason", "dashboard test")
        try:
            halted = events.until(
                "the Halted state", lambda d: d["risk"] and d["risk"]["state"] == "Halted"
            )
        finally:
            stack.json("resume")
        assert halted["risk"]["halt_reason"] == "dashboard test"
        heard = events.until(
            "the Halted state change among the risk events",
            lambda d: any(e["state"] == "Halted" for e in d["risk_events"]),
        )
        change = next(e for e in heard["risk_events"] if e["state"] == "Halted")
        assert change["event"] == "state_change"
        assert "dashboard test" in change["reason"]
    finally:
        events.close()


def test_the_token_is_printed_once_and_never_logged(stack: Stack) -> None:
    process = WebProcess(stack)
    try:
        url = process.wait_url()
        assert process.get(f"/?token={process.token}").status == 303
        assert process.get("/api/snapshot", token=process.token).status == 200
        assert process.get("/?token=not-the-right-token-at-all").status == 403
    finally:
        code = process.stop()
    assert code == 0, process.stderr
    assert process.token in url
    assert "dashboard serving" in process.stderr
    assert process.token not in process.stderr


def test_a_token_file_readable_by_its_owner_only_is_used(stack: Stack, tmp_path: Path) -> None:
    secret = "a-token-kept-in-a-file-0123456789"
    path = tmp_path / "web.token"
    path.write_text(secret + "\n", encoding="utf-8")
    os.chmod(path, 0o644)
    refused = posbus("web", "--token-file", str(path), "--config", str(stack.config), check=False)
    assert refused.returncode == 2
    assert "chmod 600" in refused.stderr and secret not in refused.stderr
    os.chmod(path, 0o600)
    process = WebProcess(stack, "--token-file", str(path))
    try:
        process.wait_url()
        assert process.token == secret
        assert process.get("/api/snapshot", token=secret).status == 200
    finally:
        process.stop()


def test_without_a_running_stack_it_says_so_and_exits_2(tmp_path: Path) -> None:
    result = posbus("web", "--run-dir", str(tmp_path / "var"), "--port", "0", check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no stack is running" in result.stderr


def test_a_host_that_is_not_loopback_is_refused_exit_2() -> None:
    result = posbus("web", "--host", "0.0.0.0", check=False)
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_help_explains_the_token_and_the_options() -> None:
    result = posbus("web", "--help")
    for words in ("token", "loopback", "--port", "--token-file", "--interval", "read"):
        assert words in result.stdout, words
