"""The ccxt client's `urls` overrides and the user-data stream settings of `[exchange]`."""

from __future__ import annotations

import pytest

from posbus.adapters.exchange.ccxt_client import with_urls
from posbus.adapters.exchange.ccxt_config import GatewayConfig


def test_a_dotted_url_name_sets_a_nested_entry_and_leaves_its_siblings() -> None:
    api = {
        "public": "https://api.example/v3",
        "ws": {"spot": "wss://stream.example/ws", "ws-api": {"spot": "wss://ws.example/v3"}},
    }
    urls = {"public": "http://127.0.0.1:1/v3", "ws.ws-api.spot": "ws://127.0.0.1:2/ws-api/v3"}

    merged = with_urls(api, urls)

    assert merged == {
        "public": "http://127.0.0.1:1/v3",
        "ws": {"spot": "wss://stream.example/ws", "ws-api": {"spot": "ws://127.0.0.1:2/ws-api/v3"}},
    }


def test_with_urls_never_changes_the_exchanges_own_entries() -> None:
    api = {"ws": {"ws-api": {"spot": "wss://ws.example/v3"}}}

    with_urls(api, {"ws.ws-api.spot": "ws://127.0.0.1:2/ws-api/v3", "ws.new.leaf": "ws://x"})

    assert api == {"ws": {"ws-api": {"spot": "wss://ws.example/v3"}}}


def test_user_stream_defaults_to_auto_with_a_liveness_bound() -> None:
    config = GatewayConfig()
    assert (config.user_stream, config.user_stream_liveness_s) == ("auto", 30.0)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("user_stream", "on", "user_stream must be one of"),
        ("user_stream_liveness_s", 0.0, "user_stream_liveness_s must be > 0"),
    ],
)
def test_user_stream_settings_out_of_range_are_refused_by_name(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GatewayConfig(**{key: value})  # type: ignore[arg-type]
