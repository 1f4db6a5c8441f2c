"""A local Binance spot REST emulator: a test and chaos tool, never a trading venue.

The ccxt gateway's tests and `posbus chaos --exchange emulator` run it on
127.0.0.1 so that a real `ccxt.binance` trades with it over real HTTP,
through its `urls` configuration (`BinanceEmulator.ccxt_urls()`; nothing in
ccxt is patched), against an exchange whose faults they control and whose
ledger they audit. It speaks the subset of the spot REST API that ccxt calls
for the gateway's methods, and matches against a top of book per symbol that
the test moves (`set_touch`). Faults are injected and the ledger inspected
through a thread-safe control API. The endpoints, the Binance behaviours it
reproduces and the faults: docs/architecture.md, "Simulated venues". Money
is exact: every amount is a Decimal, rendered as Binance's plain decimal
strings.

Account events (order updates, fills, balances) are pushed over the
user-data stream's websockets (binance_user_stream.py): a listenKey stream
and the WebSocket API subscription that ccxt.pro uses (`ccxt_urls(websocket=True)`).

Threads: `start` serves HTTP from a `ThreadingHTTPServer` thread (a thread
per request) and the websockets from an aiohttp loop on a thread of its
own; the control API may be called from any thread, one lock guards the
state. It holds no real money and must never be pointed at by a
production config; the trading path (gateways, workers, the launcher) must
never import this module: only tests, benchmarks and the chaos run do.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from posbus.adapters.simulation.binance_user_stream import UserStreamServer

API_KEY = "emulator-api-key"
SECRET = "emulator-secret"  # noqa: S105 - the emulator's fixed test secret, guards nothing
_FEE_QUANTUM = Decimal("0.00000001")
_DEFAULT_RECV_WINDOW_MS = 5000
_OUTSIDE_WINDOW = "Timestamp for this request is outside of the recvWindow."
_OVERLOADED = (
    "Server is currently overloaded with other requests. Please try again in a few minutes."
)

PRIVATE = frozenset(
    {
        "POST /api/v3/order",
        "GET /api/v3/order",
        "DELETE /api/v3/order",
        "GET /api/v3/openOrders",
        "GET /api/v3/myTrades",
        "GET /api/v3/account",
    }
)
"""Endpoints that need an API key and a signature."""

USER_STREAM = frozenset(
    {
        "POST /api/v3/userDataStream",
        "PUT /api/v3/userDataStream",
        "DELETE /api/v3/userDataStream",
    }
)
"""The listenKey endpoints: an API key, no signature."""


class EmulatorError(Exception):
    """A request the emulated exchange refuses: becomes Binance's error JSON."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One spot market: its currencies, filters and the touch it starts at."""

    base: str
    quote: str
    bid: Decimal
    ask: Decimal
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.0001")
    min_qty: Decimal = Decimal("0.0001")
    max_qty: Decimal = Decimal(5)

    @property
    def market_id(self) -> str:
        """Binance's id of the market, e.g. BTCUSDT."""
        return self.base + self.quote


def default_symbols() -> dict[str, SymbolSpec]:
    """BTC/USDT and ETH/USDT at round prices."""
    return {
        "BTC/USDT": SymbolSpec("BTC", "USDT", Decimal("60000.00"), Decimal("60000.10")),
        "ETH/USDT": SymbolSpec("ETH", "USDT", Decimal("3000.00"), Decimal("3000.10")),
    }


@dataclass(slots=True)
class _Rule:
    """One injected fault, matched by endpoint ("POST /api/v3/order", or "*")."""

    endpoint: str
    kind: str  # "fail" | "rate_limit" | "hang_before" | "hang_after" | "drop"
    times: int
    status: int = 500
    code: int = -1001
    msg: str = "Internal error; unable to process your request. Please try again."
    html: bool = False
    seconds: float = 0.0

    def matches(self, endpoint: str) -> bool:
        return self.times > 0 and self.endpoint in ("*", endpoint)


@dataclass(slots=True)
class _Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    qty: Decimal
    time_ms: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_ms: int = 0
    trade_ids: list[int] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class EmulatedTrade:
    """One execution on the emulated exchange (what myTrades reports)."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the emulator received: when, what, and how it answered."""

    at: float
    endpoint: str
    params: dict[str, str]
    status: int


def _text(value: Decimal) -> str:
    """A decimal as Binance writes it: plain notation, 8 decimal places."""
    return f"{value:.8f}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class BinanceEmulator:
    """The emulated exchange: an HTTP server on 127.0.0.1 and its state.

    Every public method is thread-safe (one lock guards the state; requests
    are served on their own threads). Use as a context manager, or call
    `start()` and `stop()`. `keep_requests` bounds the request log (a long
    chaos run); None keeps every request, which `wait_for_requests` counts.
    `fee_asset` charges fees in that asset instead of the quote (Binance's
    "pay fees with BNB"): the quote fee converted at the mid of the
    FEE_ASSET/QUOTE touch, which must be one of `symbols`.
    """

    def __init__(
        self,
        *,
        symbols: Mapping[str, SymbolSpec] | None = None,
        balances: Mapping[str, Decimal] | None = None,
        api_key: str = API_KEY,
        secret: str = SECRET,
        taker_fee: Decimal = Decimal("0.001"),
        maker_fee: Decimal = Decimal("0.001"),
        keep_requests: int | None = None,
        fee_asset: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.fee_asset = fee_asset
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._specs: dict[str, SymbolSpec] = dict(symbols or default_symbols())
        self._by_id = {spec.market_id: name for name, spec in self._specs.items()}
        self._touch = {name: (spec.bid, spec.ask) for name, spec in self._specs.items()}
        default_balances = {"USDT": Decimal(1_000_000), "BTC": Decimal(10), "ETH": Decimal(100)}
        self._balances: dict[str, Decimal] = dict(
            default_balances if balances is None else balances
        )
        self._orders: dict[int, _Order] = {}
        # Open limit orders by symbol, in placement order: what a touch may cross
        # (a scan of every order ever placed would grow with a long chaos run).
        self._resting: dict[str, dict[int, _Order]] = {}
        self._trades: list[EmulatedTrade] = []
        self._order_ids = itertools.count(1001)
        self._trade_ids = {name: itertools.count(5001) for name in self._specs}
        self._rules: list[_Rule] = []
        self._latency_s = 0.0
        self._maintenance = False
        self._partial_parts = 1
        self._duplicate_trades = False
        self._banned_until = 0.0
        self._clock_offset_ms = 0
        # The request log (`requests`): every request, or the newest `keep_requests`.
        self._requests: deque[RequestRecord] = deque(maxlen=keep_requests)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._listen_keys: set[str] = set()
        self._refused_streams = 0
        self._user_stream = UserStreamServer(
            ws_api=self._ws_api, listen_key_open=self._listen_key_open
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> BinanceEmulator:
        """Listen on an ephemeral port of 127.0.0.1 (a daemon thread serves requests)."""
        self._user_stream.start()
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are released at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._user_stream.stop()

    def __enter__(self) -> BinanceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, http://127.0.0.1:PORT."""
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def ws_url(self) -> str:
        """The user-data stream's base URL, ws://127.0.0.1:PORT (its own port)."""
        return self._user_stream.url

    def ccxt_urls(self, *, websocket: bool = False) -> dict[str, str]:
        """The entries of ccxt.binance's `urls['api']` that must point here.

        `websocket`: also ccxt.pro's user-data stream entries, each named by
        its path in `urls['api']` ("ws.ws-api.spot").
        """
        urls = {
            "public": f"{self.url}/api/v3",
            "private": f"{self.url}/api/v3",
            "v1": f"{self.url}/api/v1",
        }
        if websocket:
            urls["ws.spot"] = f"{self.ws_url}/ws"
            urls["ws.ws-api.spot"] = f"{self.ws_url}/ws-api/v3"
        return urls

    # -- market ------------------------------------------------------------------

    def set_touch(self, symbol: str, bid: Decimal, ask: Decimal) -> list[EmulatedTrade]:
        """Move the top of book of `symbol`; resting limits it crosses fill as maker."""
        with self._lock:
            self._touch[symbol] = (bid, ask)
            return self._match_resting(symbol)

    def touch(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The current (bid, ask) of `symbol`."""
        with self._lock:
            return self._touch[symbol]

    # -- faults --------------------------------------------------------------------

    def fail(
        self,
        endpoint: str,
        status: int,
        *,
        times: int = 1,
        code: int = -1001,
        msg: str = "Internal error; unable to process your request. Please try again.",
        html: bool = False,
    ) -> None:
        """Answer the next `times` requests to `endpoint` with this error, unprocessed.

        `html=True` sends a proxy-style HTML page instead of Binance's JSON.
        """
        self._add(_Rule(endpoint, "fail", times, status=status, code=code, msg=msg, html=html))

    def rate_limit(self, endpoint: str = "*", *, retry_after_s: int = 1, times: int = 1) -> None:
        """Answer 429 with Retry-After; a request before the ban ends gets 418."""
        self._add(_Rule(endpoint, "rate_limit", times, status=429, seconds=retry_after_s))

    def hang(self, endpoint: str, seconds: float, *, times: int = 1, after: bool = False) -> None:
        """Hold the next `times` requests to `endpoint` for `seconds`.

        Before processing (`after=False`): the request is executed only when
        the hold ends, and only if it is still inside its recvWindow. After
        processing (`after=True`): it is executed at once, the answer is late.
        """
        kind = "hang_after" if after else "hang_before"
        self._add(_Rule(endpoint, kind, times, seconds=seconds))

    def drop_response(self, endpoint: str, *, times: int = 1) -> None:
        """Process the next `times` requests to `endpoint`, then close without answering."""
        self._add(_Rule(endpoint, "drop", times))

    def set_latency(self, seconds: float) -> None:
        """Delay every request by `seconds` before it is processed."""
        with self._lock:
            self._latency_s = seconds

    def set_maintenance(self, on: bool) -> None:
        """While on, every request gets 503 "System is under maintenance."."""
        with self._lock:
            self._maintenance = on

    def set_partial_fills(self, parts: int) -> None:
        """Split every fill into `parts` trades (1: whole fills)."""
        with self._lock:
            self._partial_parts = max(1, parts)

    def set_duplicate_trades(self, on: bool) -> None:
        """While on, myTrades lists every trade twice (an exchange that repeats itself)."""
        with self._lock:
            self._duplicate_trades = on

    def set_clock_offset(self, ms: int) -> None:
        """Stamp orders and trades `ms` off the real time (an exchange clock that is skewed)."""
        with self._lock:
            self._clock_offset_ms = ms

    def drop_user_streams(self) -> int:
        """Close every user-data connection without a close frame; returns how many."""
        return self._user_stream.drop()

    def stall_user_streams(self) -> int:
        """Make every open user-data connection silent (no events, no pongs); returns how many.

        Connections opened afterwards are served normally.
        """
        return self._user_stream.stall()

    def duplicate_user_stream_events(self, times: int) -> None:
        """Push each of the next `times` user-data events twice (a stream that repeats itself)."""
        self._user_stream.duplicate(times)

    def reorder_user_stream_events(self, times: int) -> None:
        """Swap the next `times` pairs of user-data events (a stream out of order)."""
        self._user_stream.reorder(times)

    def refuse_user_streams(self, times: int = 1) -> None:
        """Refuse the next `times` listenKeys and WebSocket API subscriptions."""
        with self._lock:
            self._refused_streams += times

    def user_stream_connections(self) -> int:
        """How many user-data connections are subscribed now."""
        return self._user_stream.connections()

    def clear_faults(self) -> None:
        """Remove every pending rule, the latency, maintenance, any ban and user-stream fault.

        Stalled user-data connections stay silent: their clients reconnect.
        """
        with self._lock:
            self._refused_streams = 0
            self._rules.clear()
            self._latency_s = 0.0
            self._maintenance = False
            self._banned_until = 0.0
        self._user_stream.calm()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    # -- state the tests set or read ---------------------------------------------

    def set_balance(self, asset: str, free: Decimal) -> None:
        """Set a balance behind posbus's back (a deposit, a withdrawal, another bot)."""
        with self._lock:
            self._balances[asset] = free

    def balances(self) -> dict[str, Decimal]:
        """Every balance (a copy)."""
        with self._lock:
            return dict(self._balances)

    def place_order(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal | None = None,
        client_order_id: str = "manual-1",
    ) -> dict[str, Any]:
        """Place an order directly, as another program on the same account would."""
        params = {
            "symbol": self._specs[symbol].market_id,
            "side": side.upper(),
            "type": "MARKET" if price is None else "LIMIT",
            "quantity": str(qty),
            "newClientOrderId": client_order_id,
        }
        if price is not None:
            params.update(price=str(price), timeInForce="GTC")
        with self._lock:
            return self._new_order(params)

    def expire_order(self, client_order_id: str) -> None:
        """End an open order as expired (a time in force ran out, a venue sweep)."""
        self._end_order(client_order_id, "EXPIRED")

    def reject_order(self, client_order_id: str) -> None:
        """End an open order as rejected after it was accepted.

        Binance's stream reports this, e.g. for the new order of a cancel-replace it refused.
        """
        self._end_order(client_order_id, "REJECTED")

    def _end_order(self, client_order_id: str, status: str) -> None:
        with self._lock:
            order = next(
                o
                for o in reversed(self._orders.values())
                if o.client_order_id == client_order_id and o.is_open
            )
            order.status = status
            self._resting.get(order.symbol, {}).pop(order.order_id, None)
            order.update_ms = self._stamp_ms()
            self._report(order, status)

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every order the exchange accepted, oldest first, as Binance's order JSON."""
        with self._lock:
            return [
                self._order_json(o)
                for o in self._orders.values()
                if symbol is None or o.symbol == symbol
            ]

    def trades(self, symbol: str | None = None) -> list[EmulatedTrade]:
        """Every execution, oldest first."""
        with self._lock:
            return [t for t in self._trades if symbol is None or t.symbol == symbol]

    def requests(self, endpoint: str | None = None) -> list[RequestRecord]:
        """Every request handled so far (answered or dropped), oldest first.

        A request is recorded when its handling ends: one still held by `hang`
        is not listed yet (see `wait_for_requests`).
        """
        with self._lock:
            return [r for r in self._requests if endpoint is None or r.endpoint == endpoint]

    def wait_for_requests(
        self, endpoint: str, count: int, timeout_s: float = 10.0
    ) -> list[RequestRecord]:
        """Block until `count` requests to `endpoint` have been handled (bounded)."""
        deadline = time.monotonic() + timeout_s
        with self._answered:
            while True:
                done = [r for r in self._requests if r.endpoint == endpoint]
                if len(done) >= count:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(done)} of {count} requests to {endpoint} handled")
                self._answered.wait(left)

    # -- request pipeline (server threads) ------------------------------------------

    def handle(
        self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """Answer one request: (status, headers, body), or None to drop the connection."""
        endpoint = f"{method} {path}"
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        with self._lock:
            latency = self._latency_s
        if latency:
            self._stopping.wait(latency)
        status, extra, payload, after = self._answer(endpoint, params, query, body, headers)
        with self._lock:
            self._requests.append(RequestRecord(time.monotonic(), endpoint, params, status))
            self._answered.notify_all()
        if after is not None:
            if after.kind == "drop":
                return None
            self._stopping.wait(after.seconds)
        return status, extra, payload

    def _answer(
        self,
        endpoint: str,
        params: dict[str, str],
        query: str,
        body: str,
        headers: Mapping[str, str],
    ) -> tuple[int, dict[str, str], bytes, _Rule | None]:
        with self._lock:
            if self._maintenance:
                return (*_error(503, 1, "System is under maintenance."), None)
            now = time.monotonic()
            if now < self._banned_until:
                until_ms = _now_ms() + int((self._banned_until - now) * 1000)
                status, hdrs, payload = _error(
                    418, -1003, f"Way too much request weight used; IP banned until {until_ms}."
                )
                hdrs["Retry-After"] = str(max(1, round(self._banned_until - now)))
                return status, hdrs, payload, None
            before = self._take(endpoint, ("fail", "rate_limit", "hang_before"))
            after = self._take(endpoint, ("drop", "hang_after"))
        if before is not None:
            if before.kind == "fail":
                if before.html:
                    page = f"<html><body><h1>{before.status}</h1></body></html>".encode()
                    return before.status, {"Content-Type": "text/html"}, page, None
                return (*_error(before.status, before.code, before.msg), None)
            if before.kind == "rate_limit":
                with self._lock:
                    self._banned_until = time.monotonic() + before.seconds
                status, hdrs, payload = _error(
                    429,
                    -1003,
                    "Too much request weight used; current limit is 6000 request weight "
                    "per 1 MINUTE. Please use WebSocket Streams for live updates.",
                )
                hdrs["Retry-After"] = str(int(before.seconds))
                return status, hdrs, payload, None
            self._stopping.wait(before.seconds)  # hang_before: the client gave up meanwhile
        try:
            if endpoint in PRIVATE:
                self._authenticate(params, query, body, headers)
            if endpoint in USER_STREAM and headers.get("x-mbx-apikey") != self.api_key:
                raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            with self._lock:
                result = self._route(endpoint, params)
        except EmulatorError as exc:
            return (*_error(exc.status, exc.code, exc.msg), after)
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode(), after

    def _stamp_ms(self) -> int:
        """The exchange's time for the orders and trades it records (under the lock)."""
        return _now_ms() + self._clock_offset_ms

    def _take(self, endpoint: str, kinds: tuple[str, ...]) -> _Rule | None:
        for rule in self._rules:
            if rule.kind in kinds and rule.matches(endpoint):
                rule.times -= 1
                return rule
        return None

    def _authenticate(
        self, params: Mapping[str, str], query: str, body: str, headers: Mapping[str, str]
    ) -> None:
        if headers.get("x-mbx-apikey") != self.api_key:
            raise EmulatorError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        parts = total.split("&")
        signed = [p for p in parts if not p.startswith("signature=")]
        given = [p.partition("=")[2] for p in parts if p.startswith("signature=")]
        expected = hmac.new(
            self.secret.encode(), "&".join(signed).encode(), hashlib.sha256
        ).hexdigest()
        if len(given) != 1 or not hmac.compare_digest(given[0], expected):
            raise EmulatorError(400, -1022, "Signature for this request is not valid.")
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", _DEFAULT_RECV_WINDOW_MS))
        except (KeyError, ValueError) as exc:
            raise EmulatorError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent."
            ) from exc
        now = _now_ms()
        if stamp > now + 1000 or now - stamp > window:
            raise EmulatorError(400, -1021, _OUTSIDE_WINDOW)

    # -- endpoints (under the lock) ---------------------------------------------------

    def _route(self, endpoint: str, p: dict[str, str]) -> Any:
        if endpoint in ("GET /api/v3/ping", "GET /api/v1/ping"):
            return {}
        if endpoint == "GET /api/v3/time":
            return {"serverTime": _now_ms()}
        if endpoint == "GET /api/v3/exchangeInfo":
            return self._exchange_info()
        if endpoint == "GET /api/v3/ticker/24hr":
            return self._ticker(self._symbol(p))
        if endpoint == "GET /api/v3/ticker/bookTicker":
            name = self._symbol(p)
            bid, ask = self._touch[name]
            return {
                "symbol": self._specs[name].market_id,
                "bidPrice": _text(bid),
                "bidQty": "1.00000000",
                "askPrice": _text(ask),
                "askQty": "1.00000000",
            }
        if endpoint == "GET /api/v3/depth":
            bid, ask = self._touch[self._symbol(p)]
            return {
                "lastUpdateId": len(self._trades) + 1,
                "bids": [[_text(bid), "1.00000000"]],
                "asks": [[_text(ask), "1.00000000"]],
            }
        if endpoint == "POST /api/v3/order":
            return self._new_order(p)
        if endpoint == "GET /api/v3/order":
            return self._order_json(self._find(p, -2013, "Order does not exist."))
        if endpoint == "DELETE /api/v3/order":
            return self._cancel(p)
        if endpoint == "GET /api/v3/openOrders":
            name = self._symbol(p) if "symbol" in p else None
            return [
                self._order_json(o)
                for o in self._orders.values()
                if o.is_open and (name is None or o.symbol == name)
            ]
        if endpoint == "GET /api/v3/myTrades":
            return self._my_trades(p)
        if endpoint == "GET /api/v3/account":
            return self._account()
        if endpoint in USER_STREAM:
            return self._listen_key(endpoint, p)
        raise EmulatorError(404, -1000, f"unknown endpoint {endpoint}")

    def _symbol(self, p: Mapping[str, str]) -> str:
        name = self._by_id.get(p.get("symbol", ""))
        if name is None:
            raise EmulatorError(400, -1121, "Invalid symbol.")
        return name

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for spec in self._specs.values():
            symbols.append(
                {
                    "symbol": spec.market_id,
                    "status": "TRADING",
                    "baseAsset": spec.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": spec.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "icebergAllowed": False,
                    "ocoAllowed": False,
                    "quoteOrderQtyMarketAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _text(spec.tick_size),
                            "maxPrice": "1000000.00000000",
                            "tickSize": _text(spec.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _text(spec.min_qty),
                            "maxQty": _text(spec.max_qty),
                            "stepSize": _text(spec.step_size),
                        },
                    ],
                    "permissions": ["SPOT"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _ticker(self, name: str) -> dict[str, Any]:
        bid, ask = self._touch[name]
        last = next((t.price for t in reversed(self._trades) if t.symbol == name), bid)
        now = _now_ms()
        return {
            "symbol": self._specs[name].market_id,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _text(last),
            "prevClosePrice": _text(last),
            "lastPrice": _text(last),
            "lastQty": "0.00000000",
            "bidPrice": _text(bid),
            "bidQty": "1.00000000",
            "askPrice": _text(ask),
            "askQty": "1.00000000",
            "openPrice": _text(last),
            "highPrice": _text(ask),
            "lowPrice": _text(bid),
            "volume": "0.00000000",
            "quoteVolume": "0.00000000",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 0,
            "lastId": 0,
            "count": 0,
        }

    def _new_order(self, p: Mapping[str, str]) -> dict[str, Any]:
        name = self._symbol(p)
        spec = self._specs[name]
        side, kind = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL"):
            raise EmulatorError(400, -1100, "Illegal characters found in parameter 'side'.")
        if kind not in ("MARKET", "LIMIT"):
            raise EmulatorError(400, -1116, "Invalid orderType.")
        try:
            qty = Decimal(p["quantity"])
        except (KeyError, ArithmeticError) as exc:
            raise EmulatorError(400, -1102, "Param 'quantity' must be sent.") from exc
        if qty < spec.min_qty or qty > spec.max_qty or qty % spec.step_size:
            raise EmulatorError(400, -1013, "Filter failure: LOT_SIZE")
        price = Decimal(0)
        if kind == "LIMIT":
            try:
                price = Decimal(p["price"])
            except (KeyError, ArithmeticError) as exc:
                raise EmulatorError(400, -1102, "Param 'price' must be sent.") from exc
            if price <= 0 or price % spec.tick_size:
                raise EmulatorError(400, -1013, "Filter failure: PRICE_FILTER")
        cid = p.get("newClientOrderId") or f"emu{next(self._order_ids)}"
        if any(o.client_order_id == cid and o.is_open for o in self._orders.values()):
            raise EmulatorError(400, -2010, "Duplicate order sent.")
        bid, ask = self._touch[name]
        if side == "BUY":
            cost = qty * (price if kind == "LIMIT" else ask)
            if self._balances.get(spec.quote, Decimal(0)) < cost:
                raise EmulatorError(
                    400, -2010, "Account has insufficient balance for requested action."
                )
        elif self._balances.get(spec.base, Decimal(0)) < qty:
            raise EmulatorError(
                400, -2010, "Account has insufficient balance for requested action."
            )
        now = self._stamp_ms()
        order = _Order(
            order_id=next(self._order_ids),
            client_order_id=cid,
            symbol=name,
            side=side,
            type=kind,
            time_in_force=p.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC",
            price=price,
            qty=qty,
            time_ms=now,
            update_ms=now,
        )
        self._orders[order.order_id] = order
        self._report(order, "NEW")
        fills: list[EmulatedTrade] = []
        if kind == "MARKET":
            fills = self._fill(order, ask if side == "BUY" else bid, is_maker=False)
        elif side == "BUY" and ask <= price:
            fills = self._fill(order, ask, is_maker=False)
        elif side == "SELL" and bid >= price:
            fills = self._fill(order, bid, is_maker=False)
        if order.is_open:
            self._resting.setdefault(name, {})[order.order_id] = order
        answer = self._order_json(order)
        answer["transactTime"] = now
        answer["fills"] = [
            {
                "price": _text(t.price),
                "qty": _text(t.qty),
                "commission": _text(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in fills
        ]
        return answer

    def _fill(self, order: _Order, price: Decimal, *, is_maker: bool) -> list[EmulatedTrade]:
        spec = self._specs[order.symbol]
        rest = order.qty - order.executed
        parts = self._split(rest, spec.step_size)
        rate = self.maker_fee if is_maker else self.taker_fee
        now = self._stamp_ms()
        out = []
        fee_asset, fee_price = self._fee_asset_of(spec)
        for qty in parts:
            notional = qty * price
            fee = (notional * rate / fee_price).quantize(_FEE_QUANTUM, rounding=ROUND_HALF_EVEN)
            trade = EmulatedTrade(
                trade_id=next(self._trade_ids[order.symbol]),
                order_id=order.order_id,
                symbol=order.symbol,
                side=order.side,
                price=price,
                qty=qty,
                commission=fee,
                commission_asset=fee_asset,
                time_ms=now,
                is_maker=is_maker,
            )
            sign = 1 if order.side == "BUY" else -1
            balances = self._balances
            balances[spec.base] = balances.get(spec.base, Decimal(0)) + sign * qty
            balances[spec.quote] = balances.get(spec.quote, Decimal(0)) - sign * notional
            balances[fee_asset] = balances.get(fee_asset, Decimal(0)) - fee
            order.executed += qty
            order.quote += notional
            order.trade_ids.append(trade.trade_id)
            self._trades.append(trade)
            out.append(trade)
            order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
            order.update_ms = now
            self._report(order, "TRADE", trade)
        self._resting.get(order.symbol, {}).pop(order.order_id, None)
        self._balance_update(spec.base, spec.quote, fee_asset)
        return out

    def _fee_asset_of(self, spec: SymbolSpec) -> tuple[str, Decimal]:
        """The asset a fill of `spec` pays its fee in, and its price in the quote (1 for quote)."""
        asset = self.fee_asset
        if asset is None or asset == spec.quote:
            return spec.quote, Decimal(1)
        bid, ask = self._touch[f"{asset}/{spec.quote}"]
        return asset, (bid + ask) / 2

    def _split(self, qty: Decimal, step: Decimal) -> list[Decimal]:
        parts = self._partial_parts
        steps = int(qty / step)
        if parts <= 1 or steps < parts:
            return [qty]
        share = (Decimal(steps // parts) * step).quantize(step, rounding=ROUND_DOWN)
        return [share] * (parts - 1) + [qty - share * (parts - 1)]

    def _match_resting(self, name: str) -> list[EmulatedTrade]:
        bid, ask = self._touch[name]
        out: list[EmulatedTrade] = []
        for order in list(self._resting.get(name, {}).values()):
            crossed = ask <= order.price if order.side == "BUY" else bid >= order.price
            if crossed:
                out.extend(self._fill(order, order.price, is_maker=True))
        return out

    def _find(self, p: Mapping[str, str], code: int, msg: str) -> _Order:
        name = self._symbol(p)
        if "orderId" in p:
            order = self._orders.get(int(p["orderId"]))
            if order is not None and order.symbol == name:
                return order
        elif "origClientOrderId" in p:
            cid = p["origClientOrderId"]
            # The newest order with the id: after a blind resend there may be two.
            for order in reversed(self._orders.values()):
                if order.client_order_id == cid and order.symbol == name:
                    return order
        raise EmulatorError(400, code, msg)

    def _cancel(self, p: Mapping[str, str]) -> dict[str, Any]:
        order = self._find(p, -2011, "Unknown order sent.")
        if not order.is_open:
            raise EmulatorError(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        self._resting.get(order.symbol, {}).pop(order.order_id, None)
        order.update_ms = self._stamp_ms()
        self._report(order, "CANCELED")
        answer = self._order_json(order)
        answer["origClientOrderId"] = order.client_order_id
        answer["transactTime"] = order.update_ms
        return answer

    # -- the user-data stream (under the lock) ------------------------------------------

    def _listen_key(self, endpoint: str, p: Mapping[str, str]) -> dict[str, Any]:
        if endpoint == "POST /api/v3/userDataStream":
            if self._refused_streams > 0:
                self._refused_streams -= 1
                raise EmulatorError(503, -1008, _OVERLOADED)
            key = secrets.token_hex(30)
            self._listen_keys.add(key)
            return {"listenKey": key}
        key = p.get("listenKey", "")
        if key not in self._listen_keys:
            raise EmulatorError(400, -1125, "This listenKey does not exist.")
        if endpoint == "DELETE /api/v3/userDataStream":
            self._listen_keys.discard(key)
            self._user_stream.close_listen_key(key)
        return {}

    def _listen_key_open(self, key: str) -> bool:
        with self._lock:
            return key in self._listen_keys

    def _ws_api(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A WebSocket API request of the user-data stream: (status, result or error)."""
        if method in ("ping", "userDataStream.unsubscribe"):
            return 200, {}
        if method != "userDataStream.subscribe.signature":
            return 400, {"code": -1100, "msg": f"Unknown method {method}."}
        signed = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if params.get("apiKey") != self.api_key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        if not hmac.compare_digest(str(params.get("signature", "")), expected):
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", _DEFAULT_RECV_WINDOW_MS))
        except (KeyError, ValueError):
            return 400, {"code": -1102, "msg": "Mandatory parameter 'timestamp' was not sent."}
        now = _now_ms()
        if stamp > now + 1000 or now - stamp > window:
            return 400, {"code": -1021, "msg": _OUTSIDE_WINDOW}
        with self._lock:
            if self._refused_streams > 0:
                self._refused_streams -= 1
                return 503, {"code": -1008, "msg": _OVERLOADED}
        return 200, {}

    def _report(self, o: _Order, execution: str, trade: EmulatedTrade | None = None) -> None:
        """Push an order's `executionReport` (Binance's spot event) to the user-data stream."""
        now = self._stamp_ms()
        cancel = execution == "CANCELED"
        self._user_stream.publish(
            {
                "e": "executionReport",
                "E": now,
                "s": self._specs[o.symbol].market_id,
                # A cancel names the cancel request in "c", the order in "C".
                "c": f"cancel{o.order_id}" if cancel else o.client_order_id,
                "S": o.side,
                "o": o.type,
                "f": o.time_in_force,
                "q": _text(o.qty),
                "p": _text(o.price),
                "P": "0.00000000",
                "F": "0.00000000",
                "g": -1,
                "C": o.client_order_id if cancel else "",
                "x": execution,
                "X": o.status,
                "r": "NONE",
                "i": o.order_id,
                "l": _text(trade.qty if trade else Decimal(0)),
                "z": _text(o.executed),
                "L": _text(trade.price if trade else Decimal(0)),
                "n": _text(trade.commission if trade else Decimal(0)),
                "N": trade.commission_asset if trade else None,
                "T": trade.time_ms if trade else o.update_ms,
                "t": trade.trade_id if trade else -1,
                "I": 0,
                "w": o.is_open,
                "m": trade.is_maker if trade else False,
                "M": False,
                "O": o.time_ms,
                "Z": _text(o.quote),
                "Y": _text(trade.price * trade.qty if trade else Decimal(0)),
                "Q": "0.00000000",
                "W": o.time_ms,
                "V": "NONE",
            }
        )

    def _balance_update(self, *assets: str) -> None:
        """Push `outboundAccountPosition` with the balances of `assets` (after a fill)."""
        now = self._stamp_ms()
        self._user_stream.publish(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [
                    {"a": a, "f": _text(self._balances.get(a, Decimal(0))), "l": "0.00000000"}
                    for a in sorted(set(assets))
                ],
            }
        )

    def _my_trades(self, p: Mapping[str, str]) -> list[dict[str, Any]]:
        name = self._symbol(p)
        selected = [t for t in self._trades if t.symbol == name]
        if "orderId" in p:
            selected = [t for t in selected if t.order_id == int(p["orderId"])]
        if "fromId" in p:
            selected = [t for t in selected if t.trade_id >= int(p["fromId"])]
        elif "startTime" in p:
            selected = [t for t in selected if t.time_ms >= int(p["startTime"])]
        selected = selected[: int(p.get("limit", 500))]
        if self._duplicate_trades:
            selected = [t for t in selected for _ in range(2)]
        spec = self._specs[name]
        return [
            {
                "symbol": spec.market_id,
                "id": t.trade_id,
                "orderId": t.order_id,
                "orderListId": -1,
                "price": _text(t.price),
                "qty": _text(t.qty),
                "quoteQty": _text(t.price * t.qty),
                "commission": _text(t.commission),
                "commissionAsset": t.commission_asset,
                "time": t.time_ms,
                "isBuyer": t.side == "BUY",
                "isMaker": t.is_maker,
                "isBestMatch": True,
            }
            for t in selected
        ]

    def _account(self) -> dict[str, Any]:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": _text(free), "locked": "0.00000000"}
                for asset, free in sorted(self._balances.items())
            ],
            "permissions": ["SPOT"],
        }

    def _order_json(self, o: _Order) -> dict[str, Any]:
        return {
            "symbol": self._specs[o.symbol].market_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "price": _text(o.price),
            "origQty": _text(o.qty),
            "executedQty": _text(o.executed),
            "cummulativeQuoteQty": _text(o.quote),
            "status": o.status,
            "timeInForce": o.time_in_force,
            "type": o.type,
            "side": o.side,
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": o.time_ms,
            "updateTime": o.update_ms,
            "isWorking": True,
            "workingTime": o.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }


def _error(status: int, code: int, msg: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"code": code, "msg": msg}).encode()
    return status, {"Content-Type": "application/json"}, body


class _Server(ThreadingHTTPServer):
    """The emulator's HTTP server: a client that hangs up (a timed-out request) is not news."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(emulator: BinanceEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle and
        # the client's delayed ACK add ~40 ms to every keep-alive answer.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the emulator keeps its own request log

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = emulator.handle(self.command, split.path, split.query, body, headers)
            if answer is None:
                self.close_connection = True  # the order was processed; the answer is lost
                return
            status, extra, payload = answer
            try:
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (a hang)

        do_GET = _serve  # noqa: N815 - http.server's naming
        do_POST = _serve  # noqa: N815
        do_DELETE = _serve  # noqa: N815
        do_PUT = _serve  # noqa: N815

    return Handler
