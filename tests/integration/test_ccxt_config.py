"""The ccxt gateway's configuration and credentials: parsed, checked, never shown.

Keys live in `[exchange]` next to the simulated exchange's; credentials come
from named environment variables or a 0600 file and never appear in a repr,
an inspect view or a log line (the last test runs a real order against the
emulator with every logger at DEBUG).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from ccxt_rig import RigFactory

from posbus.actors.model.side import Side
from posbus.adapters.clock import ManualClock
from posbus.adapters.config import ConfigError, config_from_dict
from posbus.adapters.exchange.ccxt_config import (
    Credentials,
    CredentialsError,
    GatewayConfig,
    load_credentials,
)
from posbus.adapters.exchange.ccxt_gateway import CcxtGateway
from posbus.adapters.exchange.factory import exchange_client
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.binance_emulator import BinanceEmulator
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange

API_KEY = "KEY-4f9d1c"
SECRET = "SECRET-b27e0a"


def test_ccxt_keys_are_read_from_the_exchange_table_next_to_the_simulated_ones() -> None:
    config = config_from_dict(
        {
            "exchange": {
                "kind": "ccxt",
                "exchange_id": "binance",
                "urls": {"public": "http://127.0.0.1:9/api/v3"},
                "timeout_ms": 2500,
                "retry_tries": 5,
                "retry_min_s": 0.2,
                "retry_max_s": 0.8,
                "breaker_threshold": 4,
                "breaker_cooloff_s": 12,
                "reconcile_interval_s": 120,
                "unknown_orders": "adopt",
                "balance_mismatch": "warn",
                "balance_tolerance": "0.00000001",
                "seed": 3,
            }
        }
    )
    gateway = config.gateway
    assert (gateway.kind, gateway.exchange_id, gateway.timeout_ms) == ("ccxt", "binance", 2500)
    assert gateway.urls == {"public": "http://127.0.0.1:9/api/v3"}
    assert (gateway.retry.tries, gateway.retry.min_s, gateway.retry.max_s) == (5, 0.2, 0.8)
    assert (gateway.breaker_threshold, gateway.breaker_cooloff_s) == (4, 12.0)
    assert (gateway.unknown_orders, gateway.balance_mismatch) == ("adopt", "warn")
    assert gateway.balance_tolerance == Decimal("0.00000001")
    assert config.exchange.seed == 3  # the simulated exchange's key still applies


def test_defaults_run_the_simulated_exchange() -> None:
    assert config_from_dict({}).gateway == GatewayConfig()
    assert GatewayConfig().kind == "simulated"


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ({"kind": "ftx"}, "kind"),
        ({"retry_tries": 0}, "tries"),
        ({"retry_tries": "4"}, "retry_tries"),
        ({"unknown_orders": "ignore"}, "unknown_orders"),
        ({"balance_mismatch": "shrug"}, "balance_mismatch"),
        ({"balance_tolerance": "-1"}, "balance_tolerance"),
        ({"urls": "http://x"}, "urls"),
        ({"enable_rate_limit": "yes"}, "enable_rate_limit"),
        ({"reconcile_intervall_s": 60}, "reconcile_intervall_s"),
    ],
)
def test_a_bad_gateway_value_is_refused_naming_the_key(
    table: dict[str, object], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        config_from_dict({"exchange": table})


def test_credentials_come_from_the_named_environment_variables() -> None:
    config = GatewayConfig(api_key_env="MY_KEY", secret_env="MY_SECRET")
    credentials = load_credentials(config, {"MY_KEY": API_KEY, "MY_SECRET": SECRET})
    assert (credentials.api_key, credentials.secret) == (API_KEY, SECRET)


def test_missing_environment_credentials_name_the_variables_only() -> None:
    config = GatewayConfig(api_key_env="MY_KEY", secret_env="MY_SECRET")
    with pytest.raises(CredentialsError, match="MY_SECRET") as caught:
        load_credentials(config, {"MY_KEY": API_KEY})
    assert API_KEY not in str(caught.value)


def test_credentials_file_only_its_owner_can_read_is_used(tmp_path: Path) -> None:
    path = tmp_path / "binance.toml"
    path.write_text(f'api_key = "{API_KEY}"\nsecret = "{SECRET}"\n')
    path.chmod(0o600)
    credentials = load_credentials(GatewayConfig(credentials_file=path), {})
    assert (credentials.api_key, credentials.secret) == (API_KEY, SECRET)


def test_credentials_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "binance.toml"
    path.write_text(f'api_key = "{API_KEY}"\nsecret = "{SECRET}"\n')
    path.chmod(0o644)
    with pytest.raises(CredentialsError, match="0644") as caught:
        load_credentials(GatewayConfig(credentials_file=path), {})
    assert SECRET not in str(caught.value)


def test_credentials_never_print() -> None:
    credentials = Credentials(API_KEY, SECRET)
    for text in (repr(credentials), str(credentials), f"{credentials}", str([credentials])):
        assert API_KEY not in text
        assert SECRET not in text
    assert credentials.redacted() == {"api_key": "<redacted>", "secret": "<redacted>"}


def test_factory_builds_the_configured_client(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(0)
    assert isinstance(exchange_client(config_from_dict({}), clock=clock), SimulatedExchange)

    ccxt_config = config_from_dict({"exchange": {"kind": "ccxt", "api_key_env": "PB_TEST_KEY"}})
    monkeypatch.delenv("PB_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="PB_TEST_KEY"):
        exchange_client(ccxt_config, clock=clock)

    monkeypatch.setenv("PB_TEST_KEY", API_KEY)
    monkeypatch.setenv("POSBUS_API_SECRET", SECRET)
    client = exchange_client(ccxt_config, clock=clock)
    try:
        assert isinstance(client, CcxtGateway)
        assert client.symbols == ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    finally:
        client.close()
    assert os.environ["PB_TEST_KEY"] == API_KEY


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    with BinanceEmulator(api_key=API_KEY, secret=SECRET) as emu:
        yield emu


def test_credentials_appear_in_no_log_line_and_no_inspect_view(
    emulator: BinanceEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, ccxt's and aiohttp's included
    factory = RigFactory()
    try:
        rig = factory(emulator, MemoryJournal())
        emulator.drop_response("POST /api/v3/order")  # a lookup, a retry path, warnings
        rig.quote()
        rig.order(Side.BUY, "0.1")
        rig.settle()
        view = json.dumps(rig.gateway(), default=str)
    finally:
        factory.close()

    assert Decimal(rig.position()["qty"]) == Decimal("0.1")  # the order really went through
    assert caplog.records, "the run logged nothing: the check below would prove nothing"
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert API_KEY not in text
        assert SECRET not in text
    assert API_KEY not in view
    assert SECRET not in view
    assert '"api_key": "<redacted>"' in view
