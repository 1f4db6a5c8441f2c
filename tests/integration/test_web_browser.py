"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver,
driven by selenium through /usr/bin/chromedriver, so nothing is downloaded) opens the URL
`posbus web` prints, shows the stack's positions as `posbus positions --json` lists them, and
shows a new fill without being reloaded.

Without Chromium or its driver the test installs Debian's packages when it runs as root
with apt-get (as CI and a fresh Debian machine do), else it fails naming them; it never skips.
Waits are WebDriverWait on the page's DOM or bounded polls of the CLI; no sleeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from stack_harness import Stack, wait_for
from web_process import WebProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30
# The simulated venue's default [exchange] price_tick 0.01 and qty_step 0.0001.
PRICE_PLACES = 2
QTY_PLACES = 4


def at(text: str, places: int) -> str:
    """`text` rounded half-even to `places` places, as the page shows amounts (no "-0")."""
    value = Decimal(text).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return format(abs(value) if value.is_zero() else value, "f")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=2)
        s.up()
        try:
            s.json("order", "buy", "BTC/USDT", "0.1")
            s.json("order", "sell", "ETH/USDT", "2")
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


def _install_chromium() -> None:
    """Debian's chromium and chromium-driver from the distribution's archive."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
    ):
        subprocess.run(command, env=env, capture_output=True, check=True, timeout=600)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        _install_chromium()
        missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    assert not missing, (
        f"{', '.join(missing)} not found: install Debian's packages "
        "(apt-get install -y chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1400",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: webdriver.Chrome, selector: str) -> str | None:
    """The text of the element `selector` finds, None when there is none.

    Read in one script call: the page replaces its table rows at each update,
    so an element found by one WebDriver call may be gone by the next.
    """
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        selector,
    )
    return None if text is None else str(text)


def _cell(driver: webdriver.Chrome, symbol: str, field: str) -> str | None:
    """The text of a positions-table cell, None while the row is not there."""
    return _text(driver, f'#positions tr[data-symbol="{symbol}"] td[data-field="{field}"]')


def _shows(driver: webdriver.Chrome, position: dict[str, str]) -> bool:
    """Whether the page's row of `position` shows its fields at the venue's precision."""
    symbol = position["symbol"]
    expected = {
        "account": position["account"],
        "status": position["status"],
        "qty": at(position["qty"], QTY_PLACES),
        "avg_entry_price": at(position["avg_entry_price"], PRICE_PLACES),
        "realized_pnl": at(position["realized_pnl"], PRICE_PLACES),
        "fees": at(position["fees"], PRICE_PLACES),
        "fills": str(position["fills"]),
    }
    return all(_cell(driver, symbol, field) == text for field, text in expected.items())


def _marked_alike(driver: webdriver.Chrome, stack: Stack) -> bool | None:
    """True once the page shows the mark and unrealized P&L `posbus positions` just printed."""
    cli = stack.positions()["BTC/USDT"]
    return (
        _cell(driver, "BTC/USDT", "mark") == at(cli["mark"], PRICE_PLACES)
        and _cell(driver, "BTC/USDT", "unrealized_pnl") == at(cli["unrealized_pnl"], PRICE_PLACES)
    ) or None


def test_the_page_shows_the_positions_and_a_new_fill_without_reloading(
    browser: webdriver.Chrome, web: WebProcess, stack: Stack
) -> None:
    browser.get(web.url)
    # The token was traded for a session cookie and left the address bar.
    assert browser.current_url == f"http://{web.host}:{web.port}/"
    wait = WebDriverWait(browser, WAIT_S)
    positions = stack.positions()
    assert set(positions) == {"BTC/USDT", "ETH/USDT"}
    for position in positions.values():
        wait.until(lambda d, p=position: _shows(d, p))
    assert _cell(browser, "ETH/USDT", "qty") == "-2.0000"
    wait_for(
        "the page and the CLI to show the same BTC/USDT mark", lambda: _marked_alike(browser, stack)
    )
    risk_state = stack.json("risk")["state"]
    wait.until(lambda d: _text(d, "#risk-state") == f"risk {risk_state}")
    assert _text(browser, "#connection") == "live"

    # A mark only a reload would clear, then a fill on a symbol the page does not show yet.
    browser.execute_script("window.notReloaded = true;")
    assert _cell(browser, "SOL/USDT", "qty") is None
    reply = stack.json("order", "buy", "SOL/USDT", "5")
    wait.until(lambda d: _cell(d, "SOL/USDT", "qty") == "5.0000")
    sol = stack.positions()["SOL/USDT"]
    wait.until(lambda d: _shows(d, sol))
    fill = f'#fills tr[data-order="{reply["order_id"]}"] td[data-field="qty"]'
    wait.until(lambda d: _text(d, fill) == "5.0000")
    assert browser.execute_script("return window.notReloaded === true;")
    # No script error, refused resource or CSP violation on the way.
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
