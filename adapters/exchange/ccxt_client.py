"""The ccxt client of a gateway: one exchange instance built from the `[exchange]` settings.

`new_ccxt_client` is called on the gateway's I/O loop (REST, `ccxt.async_support`)
or by its market data (websockets, `ccxt.pro`); it only builds the instance and
sends nothing. Numbers come back as the exchange's strings (`number = str`), so
money stays exact.

This module must never let credentials reach a log: ccxt's request log, which
prints headers, goes to a logger pinned at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig

# ccxt logs every request with its headers (the API key among them) at DEBUG:
# its logger is pinned at INFO so those records are never even created.
_WIRE_LOGGER = logging.getLogger("posbus.adapters.exchange.ccxt_wire")
_WIRE_LOGGER.setLevel(logging.INFO)

# ccxt options that make binance-family exchanges load markets with a single
# public request (exchangeInfo) and read open orders of every symbol at once.
_BINANCE_OPTIONS: dict[str, Any] = {
    "fetchCurrencies": False,
    "adjustForTimeDifference": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "fetchOpenOrders": {"warnWithoutSymbol": False},
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


def require_exchange(module: Any, exchange_id: str) -> Any:
    """The exchange class `exchange_id` of a ccxt module; ValueError when ccxt has none."""
    cls = getattr(module, exchange_id, None)
    if cls is None:
        raise ValueError(f"ccxt has no exchange {exchange_id!r}")
    return cls


def new_ccxt_client(
    module: Any,
    config: GatewayConfig,
    credentials: Credentials,
    *,
    streaming: Mapping[str, Any] | None = None,
) -> Any:
    """An exchange instance of `module` (ccxt.async_support or ccxt.pro) for `config`.

    `streaming`: ccxt.pro's websocket settings (`keepAlive`, `maxPingPongMisses`).
    """
    cls = require_exchange(module, config.exchange_id)
    options: dict[str, Any] = {}
    if config.exchange_id.startswith("binance"):
        options.update(_BINANCE_OPTIONS, recvWindow=config.recv_window_ms)
    options.update(config.options)
    settings: dict[str, Any] = {
        "apiKey": credentials.api_key,
        "secret": credentials.secret,
        "enableRateLimit": config.enable_rate_limit,
        "timeout": config.timeout_ms,
        "logger": _WIRE_LOGGER,
        "options": options,
    }
    if streaming is not None:
        settings["streaming"] = dict(streaming)  # ccxt merges it with the exchange's own
    exchange = cls(settings)
    exchange.number = str  # numbers as exchange-sent strings: exact Decimals here
    if config.urls:
        api = exchange.urls.get("api")
        if isinstance(api, dict):
            exchange.urls["api"] = with_urls(api, config.urls)
        elif "api" in config.urls:
            exchange.urls["api"] = config.urls["api"]
    return exchange


def with_urls(api: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """ccxt's `urls['api']` with `urls` laid over it; a dotted name is a path into nested entries.

    ("ws.ws-api.spot" sets `api['ws']['ws-api']['spot']`.) Nested entries are
    copied, never changed in place.
    """
    out = dict(api)
    for name, url in urls.items():
        *parents, leaf = name.split(".")
        node = out
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        node[leaf] = url
    return out
