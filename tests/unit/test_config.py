"""The TOML configuration: defaults run on one machine; every bad key is named."""

from decimal import Decimal
from pathlib import Path

import pytest

from posbus.adapters.config import Config, ConfigError, config_from_dict, load_config


def test_no_file_gives_the_embedded_defaults():
    assert load_config(None) == Config()


def test_defaults_describe_three_symbols_and_positive_limits():
    config = Config()
    assert set(config.symbols) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert config.risk.daily_loss_limit == Decimal(2000)
    node = config.node_config()
    assert node.symbols["ETH/USDT"].correlation == Decimal("0.85")


def test_a_file_overrides_only_what_it_names(tmp_path: Path):
    path = tmp_path / "posbus.toml"
    path.write_text(
        'starting_equity = "250000"\n'
        "[risk]\n"
        'daily_loss_limit = "5000"\n'
        "max_leverage = 2\n"
        "[exchange]\n"
        "reject_rate = 0.0\n"
        '[symbols."BTC/USDT"]\n'
        'price = "60000"\n'
        "order_qty = 0.05\n"
    )
    config = load_config(path)
    assert config.starting_equity == Decimal(250000)
    assert config.risk.daily_loss_limit == Decimal(5000)
    assert config.risk.max_leverage == Decimal(2)
    # untouched keys keep their defaults
    assert config.risk.max_drawdown == Config().risk.max_drawdown
    assert config.exchange.reject_rate == 0.0
    assert config.exchange.partial_fill_rate == Config().exchange.partial_fill_rate
    # a TOML float reaches the ledger through its shortest repr, exactly
    assert config.symbols["BTC/USDT"].order_qty == Decimal("0.05")
    assert list(config.symbols) == ["BTC/USDT"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"risk": {"daily_loss_limt": "1"}}, "daily_loss_limt"),
        ({"exchange": {"reject_rate": "high"}}, "reject_rate"),
        ({"exchange": {"seed": True}}, "seed"),
        ({"starting_equity": "-5"}, "starting_equity"),
        ({"starting_equity": "NaN"}, "starting_equity"),
        ({"supervisor": {"strategy": "one_for_some"}}, "strategy"),
        ({"symbols": {"BTCUSDT": {"price": "1", "order_qty": "1"}}}, "BASE/QUOTE"),
        ({"symbols": {"BTC/USDT": {"price": "1"}}}, "order_qty"),
        (
            {"symbols": {"BTC/USDT": {"price": "1", "order_qty": 1, "correlation": 2}}},
            "correlation",
        ),
        ({"demo": {"duration_s": 0}}, "duration_s"),
        ({"log": {"format": "xml"}}, "format"),
        ({"mystery": 1}, "mystery"),
        ({"risk": "strict"}, "[risk]"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(data, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert fragment in str(info.value)


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[risk\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
