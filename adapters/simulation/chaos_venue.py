"""The exchange of an emulator chaos run: the Binance emulator, its moving prices and its faults.

`ChaosVenue` starts a `BinanceEmulator` (real HTTP on 127.0.0.1, an
ephemeral port) with one spot market per chaos symbol at the seeded
config's prices, writes its random API key and secret to a 0600 credentials
file for the stack's ccxt gateway, and runs one thread ("the market
thread") that moves every symbol's touch along a seeded random walk at the
configured rate, so resting limit orders fill at the exchange whenever the
walk crosses them (also while the gateway is dead).

Exchange faults (`inject`) go through the emulator's fault API at the
moments the chaos driver draws: a request held past the client's timeout
(before or after it executes), a 5xx (JSON or a proxy's HTML page), a
response lost after the request executed, myTrades listing every trade
twice for a while, a 429 with Retry-After (and 418 inside the ban), a
short maintenance window, and on the user-data stream (the gateway reads
fills from it): every connection dropped without a close frame, every
connection gone silent, events sent twice, and events swapped pairwise.
Faults that last are switched off by the market thread; `calm` clears them
all.

This module must never log or print the credentials, and never bind
anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from posbus.adapters.simulation.binance_emulator import BinanceEmulator, EmulatedTrade, SymbolSpec
from posbus.adapters.simulation.random_walk import RandomWalkMarket

QUOTE = "USDT"
TICK = Decimal("0.01")

EXCHANGE_FAULTS = (
    "exchange.timeout",
    "exchange.5xx",
    "exchange.lost_response",
    "exchange.duplicate_trades",
    "exchange.rate_limit",
    "exchange.maintenance",
    "exchange.stream_drop",
    "exchange.stream_stall",
    "exchange.stream_duplicates",
    "exchange.stream_reorder",
)
"""The exchange faults a chaos run injects (the keys of its report's `faults`)."""

# The endpoints the gateway's order path calls (tickers are left to maintenance
# and rate limits: a lost quote is replaced by the next one).
_ORDER_ENDPOINTS = (
    "POST /api/v3/order",
    "GET /api/v3/order",
    "DELETE /api/v3/order",
    "GET /api/v3/openOrders",
    "GET /api/v3/myTrades",
)
_LOSABLE_ENDPOINTS = ("POST /api/v3/order", "DELETE /api/v3/order", "GET /api/v3/order")


@dataclass(frozen=True, slots=True)
class VenueAccess:
    """What the stack's configuration needs to trade at the venue (no secret in it)."""

    urls: Mapping[str, str]
    credentials_file: Path


class ChaosVenue:
    """The emulator, its market thread and its fault injection (see the module docstring).

    `start` and `close` run on the caller's thread; `inject`, `calm`,
    `stop_market` and the readers may be called from any thread while it runs.
    """

    def __init__(
        self,
        prices: Mapping[str, Decimal],
        *,
        seed: int,
        steps_per_s: float,
        volatility: float,
        timeout_s: float,
        credentials_file: Path,
        stream_liveness_s: float = 2.0,
    ) -> None:
        self.symbols = tuple(prices)
        specs = {
            name: SymbolSpec(name.split("/")[0], QUOTE, price - TICK, price + TICK)
            for name, price in prices.items()
        }
        balances = {QUOTE: Decimal(100_000_000)} | {
            s.base: Decimal(1_000_000) for s in specs.values()
        }
        self.emulator = BinanceEmulator(
            symbols=specs,
            balances=balances,
            api_key=secrets.token_hex(16),
            secret=secrets.token_hex(32),
            keep_requests=10_000,
        )
        self._market = RandomWalkMarket(dict(prices), seed=seed, volatility=volatility, tick=TICK)
        self._interval_s = 1.0 / steps_per_s
        self._timeout_s = timeout_s
        self._stream_liveness_s = stream_liveness_s
        self._credentials_file = credentials_file
        self._later: list[tuple[float, Callable[[], None]]] = []
        self._later_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-market", daemon=True)
        #: The newest mid of every symbol (replaced whole after each step).
        self.marks: dict[str, Decimal] = dict(prices)
        self.steps = 0
        self.touches = 0

    # -- lifecycle (caller's thread) ----------------------------------------------------

    def start(self) -> VenueAccess:
        """Listen, write the credentials file (0600) and start moving prices."""
        self.emulator.start()
        fd = os.open(self._credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f'api_key = "{self.emulator.api_key}"\nsecret = "{self.emulator.secret}"\n')
        self._thread.start()
        return VenueAccess(self.emulator.ccxt_urls(websocket=True), self._credentials_file)

    def stop_market(self) -> None:
        """Stop moving prices (the touches stay where they are)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def close(self) -> None:
        """Stop the market thread and the emulator."""
        self.stop_market()
        self.emulator.stop()

    # -- faults (any thread) --------------------------------------------------------------

    def inject(self, fault: str, rng: random.Random) -> float:
        """Inject `fault` (one of EXCHANGE_FAULTS) now; returns seconds until it has passed."""
        emulator = self.emulator
        times = rng.randint(1, 3)
        if fault == "exchange.timeout":
            hold = self._timeout_s + 0.5
            after = rng.random() < 0.5
            emulator.hang(rng.choice(_ORDER_ENDPOINTS), hold, times=times, after=after)
            return hold * times + 1.0
        if fault == "exchange.5xx":
            status = rng.choice((500, 502, 503, 504))
            html = rng.random() < 0.3
            emulator.fail(rng.choice(_ORDER_ENDPOINTS), status, times=times, html=html)
            return 1.0
        if fault == "exchange.lost_response":
            emulator.drop_response(rng.choice(_LOSABLE_ENDPOINTS), times=times)
            return 1.0
        if fault == "exchange.duplicate_trades":
            lasts = rng.uniform(1.0, 4.0)
            emulator.set_duplicate_trades(True)
            self._after(lasts, lambda: emulator.set_duplicate_trades(False))
            return lasts
        if fault == "exchange.rate_limit":
            emulator.rate_limit("*", retry_after_s=1, times=1)
            return 2.0
        if fault == "exchange.maintenance":
            lasts = rng.uniform(0.5, 2.0)
            emulator.set_maintenance(True)
            self._after(lasts, lambda: emulator.set_maintenance(False))
            return lasts
        if fault == "exchange.stream_drop":
            emulator.drop_user_streams()
            return 1.0
        if fault == "exchange.stream_stall":
            emulator.stall_user_streams()
            # Past the gateway's liveness bound it reconnects and reconciles.
            return self._stream_liveness_s + 1.0
        if fault == "exchange.stream_duplicates":
            emulator.duplicate_user_stream_events(rng.randint(1, 10))
            return 1.0
        if fault == "exchange.stream_reorder":
            emulator.reorder_user_stream_events(rng.randint(1, 5))
            return 1.0
        raise ValueError(f"unknown exchange fault {fault!r}")

    def calm(self) -> None:
        """Clear every fault (pending rules, maintenance, bans, duplicate trades)."""
        with self._later_lock:
            self._later.clear()
        self.emulator.clear_faults()
        self.emulator.set_duplicate_trades(False)

    def _after(self, delay_s: float, fn: Callable[[], None]) -> None:
        with self._later_lock:
            self._later.append((time.monotonic() + delay_s, fn))

    # -- reading (any thread) ---------------------------------------------------------------

    def trades(self) -> list[EmulatedTrade]:
        """Every execution at the venue, oldest first."""
        return self.emulator.trades()

    # -- the market thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_step = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._later_lock:
                due = [fn for at, fn in self._later if at <= now]
                self._later = [(at, fn) for at, fn in self._later if at > now]
            for fn in due:
                fn()
            if now >= next_step:
                self._step()
                next_step += self._interval_s
                if next_step < now:  # fell behind (a loaded machine): do not catch up in a burst
                    next_step = now + self._interval_s
            self._stop.wait(max(0.0, min(next_step - time.monotonic(), 0.05)))

    def _step(self) -> None:
        marks = dict(self.marks)
        for update in self._market.step(time.time_ns()):
            self.emulator.set_touch(update.symbol, update.bid, update.ask)
            marks[update.symbol] = self._market.mid(update.symbol)
            self.touches += 1
        self.marks = marks
        self.steps += 1
