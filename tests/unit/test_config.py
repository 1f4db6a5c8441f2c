"""The TOML configuration: defaults run on one machine; every bad key is named."""

import re
import tomllib
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # unknown keys: the table and the key are named, the known keys listed
        ({"acount": "x"}, "config: unknown key `acount`; known: account,"),
        (
            {"risk": {"max_lev": 2}},
            "config: [risk]: unknown key `max_lev`; known: daily_loss_limit,",
        ),
        ({"exchange": {"sed": 1}}, "config: [exchange]: unknown key `sed`; known: kind,"),
        ({"supervisor": {"backoff": 1}}, "[supervisor]: unknown key `backoff`"),
        (
            {"symbols": {"BTC/USDT": {"price": 1, "order_qty": 1, "colour": "red"}}},
            '[symbols."BTC/USDT"]: unknown key `colour`',
        ),
        ({"demo": {"speed": 1}}, "[demo]: unknown key `speed`"),
        ({"log": {"file": "x"}}, "[log]: unknown key `file`"),
        ({"storage": {"fsync": "never"}}, "[storage]: unknown key `fsync`"),
        ({"bus": {"port": 1}}, "[bus]: unknown key `port`"),
        ({"workers": {"shards": 2}}, "[workers]: unknown key `shards`"),
        ({"launcher": {"restarts": 2}}, "[launcher]: unknown key `restarts`"),
        ({"metrics": {"port": 9400}}, "[metrics]: unknown key `port`"),
        ({"positions": {"marks": "market"}}, "[positions]: unknown key `marks`"),
        ({"backtest": {"period": 1}}, "[backtest]: unknown key `period`"),
        # wrong types: the key and the value given are named
        ({"account": 7}, "config: account: Expected `str`, got 7"),
        ({"run_dir": 7}, "config: run_dir: Expected a non-empty path string, got 7"),
        ({"risk": {"cooldown_s": "30"}}, "[risk] cooldown_s: Expected `int`, got '30'"),
        ({"risk": {"max_leverage": True}}, "[risk] max_leverage: Expected `decimal`, got True"),
        ({"exchange": {"seed": True}}, "[exchange] seed: Expected `int`, got True"),
        ({"exchange": {"taker_fee_rate": "a"}}, "[exchange] taker_fee_rate: Invalid decimal"),
        ({"exchange": {"urls": {"public": 5}}}, "[exchange.urls] public: Expected `str`, got 5"),
        ({"exchange": {"options": {"x": [1]}}}, "[exchange.options] x: Expected"),
        ({"supervisor": {"period_s": "10"}}, "[supervisor] period_s: Expected `float`, got '10'"),
        (
            {"symbols": {"BTC/USDT": {"price": 1, "order_qty": "lots"}}},
            "[symbols.\"BTC/USDT\"] order_qty: Invalid decimal string, got 'lots'",
        ),
        ({"demo": {"seed": 1.5}}, "[demo] seed: Expected `int`, got 1.5"),
        ({"log": {"level": 10}}, "[log] level: Expected `str`, got 10"),
        ({"storage": {"path": 3}}, "[storage] path: Expected a non-empty path string, got 3"),
        ({"bus": {"liveness": "3"}}, "[bus] liveness: Expected `int`, got '3'"),
        ({"workers": {"tick_s": "1"}}, "[workers] tick_s: Expected `float`, got '1'"),
        ({"launcher": {"max_restarts": 1.0}}, "[launcher] max_restarts: Expected `int`, got 1.0"),
        ({"metrics": {"prometheus_host": 1}}, "[metrics] prometheus_host: Expected `str`"),
        ({"positions": {"exposure_pnl_step": []}}, "[positions] exposure_pnl_step: Expected"),
        ({"backtest": {"period_s": 1.5}}, "[backtest] period_s: Expected `int`, got 1.5"),
        ({"demo": "fast"}, "config: [demo]: must be a table, got 'fast'"),
        # values out of range, or not one of the choices
        ({"account": ""}, "account: Expected `str` of length >= 1, got ''"),
        ({"starting_equity": 0}, "starting_equity must be a positive finite number, got 0"),
        ({"risk": {"max_drawdown": "1.5"}}, "[risk]: risk limit max_drawdown is a fraction"),
        ({"exchange": {"reject_rate": 2}}, "[exchange]: reject_rate must be a probability"),
        ({"exchange": {"timeout_ms": 0}}, "[exchange]: timeout_ms and recv_window_ms"),
        ({"supervisor": {"max_restarts": -1}}, "[supervisor]: max_restarts must be >= 0"),
        ({"supervisor": {"strategy": "x"}}, "[supervisor] strategy: must be one of one_for_one,"),
        (
            {"symbols": {"BTC/USDT": {"price": -1, "order_qty": 1}}},
            '[symbols."BTC/USDT"]: price must be a positive finite number, got -1',
        ),
        ({"demo": {"open_probability": 1.5}}, "[demo] open_probability: Expected `float` <= 1.0"),
        ({"log": {"level": "loud"}}, "[log]: level must be one of DEBUG, INFO,"),
        ({"storage": {"batch_delay_ms": 6000}}, "[storage] batch_delay_ms: Expected `float` <="),
        ({"storage": {"backend": "pg"}}, "[storage] backend: must be one of sqlite, mongodb, mem"),
        ({"bus": {"base_port": 65533}}, "[bus] base_port: Expected `int` <= 65532, got 65533"),
        ({"bus": {"max_msg_size": 1000}}, "[bus] max_msg_size: Expected `int` >= 1024, got 1000"),
        ({"bus": {"transport": "udp"}}, "[bus] transport: must be one of ipc, tcp, not 'udp'"),
        ({"workers": {"position_shards": 0}}, "[workers] position_shards: Expected `int` >= 1"),
        ({"workers": {"journal": "mongodb"}}, "[workers] journal: must be one of sqlite, memory"),
        ({"launcher": {"period_s": 0}}, "[launcher] period_s: Expected `float` > 0.0, got 0"),
        ({"metrics": {"prometheus_port_base": 70000}}, "[metrics] prometheus_port_base:"),
        ({"positions": {"exposure_interval_ms": -1}}, "[positions] exposure_interval_ms:"),
        ({"backtest": {"periods_per_year": 0}}, "[backtest] periods_per_year: Expected `float` >"),
    ],
)
def test_every_table_names_the_key_of_an_unknown_key_a_wrong_type_or_a_bad_value(
    data: dict[str, object], message: str
):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_a_bad_symbol_is_named_among_several():
    symbols = {
        "BTC/USDT": {"price": "1", "order_qty": "1"},
        "ETH/USDT": {"price": "1", "order_qty": "1", "correlation": "1.5"},
    }
    with pytest.raises(ConfigError, match=r'\[symbols\."ETH/USDT"\]: correlation'):
        config_from_dict({"symbols": symbols})


def test_two_keys_that_contradict_each_other_are_refused_naming_both():
    with pytest.raises(ConfigError, match=r"\[positions\] exposure_interval_ms: must be below"):
        config_from_dict(
            {
                "risk": {"stale_after_s": 2},
                "positions": {"risk_marks": "exposures", "exposure_interval_ms": 2000},
            }
        )
    with pytest.raises(ConfigError, match="backoff needs 0 <= min_s <= max_s"):
        config_from_dict({"supervisor": {"backoff_min_s": 1, "backoff_max_s": 0.5}})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('"0.1"', Decimal("0.1")),
        ("0.1", Decimal("0.1")),  # the float's shortest repr: what the author typed
        ("0.30000000000000004", Decimal("0.30000000000000004")),
        ("1e-8", Decimal("1E-8")),
        ("3", Decimal(3)),
        ('"1_000"', Decimal(1000)),
    ],
)
def test_decimals_are_exact_from_strings_floats_and_integers(toml: str, expected: Decimal):
    data = tomllib.loads(
        f"starting_equity = {toml}\n"
        f"[risk]\nmax_group_exposure = {toml}\n"
        f"[exchange]\nmax_order_qty = {toml}\n"
        f'[symbols."BTC/USDT"]\nprice = {toml}\norder_qty = {toml}\n'
    )
    config = config_from_dict(data)
    values = (
        config.starting_equity,
        config.risk.max_group_exposure,
        config.exchange.max_order_qty,
        config.symbols["BTC/USDT"].price,
    )
    for value in values:
        assert isinstance(value, Decimal)
        assert value == expected
        assert str(value) == str(expected)


@pytest.mark.parametrize("toml", ["nan", "inf", '"NaN"', '"-Infinity"', "true"])
def test_a_decimal_that_is_not_a_finite_number_is_refused(toml: str):
    data = tomllib.loads(f'[symbols."BTC/USDT"]\nprice = {toml}\norder_qty = 1\n')
    with pytest.raises(ConfigError, match=r'\[symbols\."BTC/USDT"\]'):
        config_from_dict(data)
    with pytest.raises(ConfigError, match="starting_equity"):
        config_from_dict(tomllib.loads(f"starting_equity = {toml}\n"))


def test_numbers_are_never_read_from_strings_nor_strings_from_numbers():
    with pytest.raises(ConfigError, match=r"\[demo\] steps_per_s"):
        config_from_dict({"demo": {"steps_per_s": "20"}})
    with pytest.raises(ConfigError, match=r"\[bus\] host"):
        config_from_dict({"bus": {"host": 127}})
    # an integer is a fine float
    assert config_from_dict({"demo": {"duration_s": 5}}).demo.duration_s == 5.0


def test_paths_and_log_level_are_read_as_the_rest_of_the_tree_uses_them():
    config = config_from_dict(
        {
            "run_dir": "/srv/posbus",
            "storage": {"path": "j.sqlite", "w": 2},
            "exchange": {"credentials_file": "keys.toml"},
            "log": {"level": "debug"},
        }
    )
    assert config.run_dir == Path("/srv/posbus")
    assert config.storage.path == Path("j.sqlite")
    assert config.storage.w == 2
    assert config.gateway.credentials_file == Path("keys.toml")
    assert config.log.level == "DEBUG"


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path", sorted(REPO.glob("deploy/**/*.toml")), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_example_config_under_deploy_loads(path: Path):
    assert isinstance(load_config(path), Config)


def _documented_examples() -> list[object]:
    """Every ```toml block of the README and of the docs under docs/ and deploy/."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
    pages += sorted((REPO / "deploy").glob("**/*.md"))
    return [
        pytest.param(f"{page.relative_to(REPO)}#{number}", block, id=f"{page.name}#{number}")
        for page in pages
        for number, block in enumerate(
            re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL), 1
        )
    ]


@pytest.mark.parametrize(("where", "example"), _documented_examples())
def test_every_documented_configuration_example_loads(where: str, example: str):
    assert isinstance(config_from_dict(tomllib.loads(example), where=where), Config)
