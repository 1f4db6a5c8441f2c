"""posbus configuration: one typed object, loaded from TOML, with defaults that run on one machine.

Every key is documented once, in the README's configuration reference; the
embedded defaults below are what `posbus demo` runs with when no file is
given. Loading rejects unknown keys and wrong types with a `ConfigError` that
names the key, so a typo never silently leaves a limit at its default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.risk import RiskLimits
from posbus.actors.node import NodeConfig, SymbolInfo
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.strategy import Strategy
from posbus.adapters.exchange.simulated import SimConfig


class ConfigError(PosbusError):
    """A configuration file or value is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class SymbolConfig:
    """One traded symbol: start price (simulated market), risk group, demo order size."""

    price: Decimal
    order_qty: Decimal
    group: str = "default"
    correlation: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """The in-process demo's market, signal source and fault injection."""

    duration_s: float = 20.0
    steps_per_s: int = 20
    seed: int = 7
    volatility: float = 0.002
    crash_rate: float = 0.3
    open_probability: float = 0.04
    close_probability: float = 0.03


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging: level and format ("json" lines, or "text")."""

    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of a posbus node."""

    account: str = "default"
    starting_equity: Decimal = Decimal(100_000)
    run_dir: Path = Path("var")
    risk: RiskLimits = field(
        default_factory=lambda: RiskLimits(
            daily_loss_limit=Decimal(2_000),
            max_drawdown=Decimal("0.05"),
            max_leverage=Decimal(3),
            warning_fraction=Decimal("0.8"),
            warning_leverage_factor=Decimal("0.5"),
            max_group_exposure=Decimal(150_000),
            max_total_exposure=Decimal(250_000),
            max_order_notional=Decimal(25_000),
            max_orders_per_second=20,
            cooldown_s=30,
            stale_after_s=10,
        )
    )
    exchange: SimConfig = field(
        default_factory=lambda: SimConfig(
            seed=7,
            slippage_bps=Decimal(1),
            latency_ns=2_000_000,
            reject_rate=0.02,
            partial_fill_rate=0.2,
            qty_step=Decimal("0.0001"),
        )
    )
    supervisor: SupervisorPolicy = field(
        default_factory=lambda: SupervisorPolicy(
            max_restarts=20, period_s=10.0, backoff=Backoff(min_s=0.01, max_s=0.2)
        )
    )
    symbols: Mapping[str, SymbolConfig] = field(
        default_factory=lambda: {
            "BTC/USDT": SymbolConfig(Decimal(60_000), Decimal("0.1"), "majors", Decimal(1)),
            "ETH/USDT": SymbolConfig(Decimal(3_000), Decimal(2), "majors", Decimal("0.85")),
            "SOL/USDT": SymbolConfig(Decimal(150), Decimal(40), "alts", Decimal("0.7")),
        }
    )
    demo: DemoConfig = field(default_factory=DemoConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def node_config(self) -> NodeConfig:
        """The part of the configuration a Node needs."""
        return NodeConfig(
            account=self.account,
            limits=self.risk,
            starting_equity=self.starting_equity,
            policy=self.supervisor,
            symbols={
                name: SymbolInfo(group=s.group, correlation=s.correlation)
                for name, s in self.symbols.items()
            },
        )


def load_config(path: str | Path | None = None) -> Config:
    """Load a TOML file over the embedded defaults; None gives the defaults.

    Raises ConfigError for a missing or unreadable file, bad TOML, an unknown
    key or a bad value.
    """
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return config_from_dict(data, where=str(path))


def config_from_dict(data: Mapping[str, Any], where: str = "config") -> Config:
    """Build a Config from plain values (a parsed TOML document)."""
    base = Config()
    _no_unknown(
        data,
        {"account", "starting_equity", "run_dir", "risk", "exchange", "supervisor"}
        | {"symbols", "demo", "log"},
        where,
    )
    account = _str(data.get("account", base.account), f"{where}: account")
    equity = _decimal(
        data.get("starting_equity", base.starting_equity), f"{where}: starting_equity"
    )
    if equity <= 0:
        raise ConfigError(f"{where}: starting_equity must be positive")
    run_dir = Path(_str(data.get("run_dir", str(base.run_dir)), f"{where}: run_dir"))
    return Config(
        account=account,
        starting_equity=equity,
        run_dir=run_dir,
        risk=_risk(data.get("risk"), base.risk, f"{where}: [risk]"),
        exchange=_exchange(data.get("exchange"), base.exchange, f"{where}: [exchange]"),
        supervisor=_supervisor(data.get("supervisor"), base.supervisor, f"{where}: [supervisor]"),
        symbols=_symbols(data.get("symbols"), base.symbols, f"{where}: [symbols]"),
        demo=_demo(data.get("demo"), base.demo, f"{where}: [demo]"),
        log=_log(data.get("log"), base.log, f"{where}: [log]"),
    )


# -- sections -------------------------------------------------------------------


def _risk(raw: Any, base: RiskLimits, where: str) -> RiskLimits:
    if raw is None:
        return base
    table = _table(raw, where)
    merged: dict[str, Any] = {**base.to_dict(), **table}
    try:
        return RiskLimits.from_dict(merged)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _exchange(raw: Any, base: SimConfig, where: str) -> SimConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields = {
        "seed": int,
        "taker_fee_rate": Decimal,
        "maker_fee_rate": Decimal,
        "slippage_bps": Decimal,
        "latency_ns": int,
        "reject_rate": float,
        "partial_fill_rate": float,
        "price_tick": Decimal,
        "qty_step": Decimal,
        "fee_currency": str,
        "max_order_qty": Decimal,
    }
    _no_unknown(table, set(fields), where)
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        if name in table:
            values[name] = _typed(table[name], kind, f"{where} {name}")
    return _build(SimConfig, base, values, where)


def _supervisor(raw: Any, base: SupervisorPolicy, where: str) -> SupervisorPolicy:
    if raw is None:
        return base
    table = _table(raw, where)
    _no_unknown(
        table, {"strategy", "max_restarts", "period_s", "backoff_min_s", "backoff_max_s"}, where
    )
    try:
        strategy = Strategy(table.get("strategy", base.strategy.value))
    except ValueError as exc:
        raise ConfigError(f"{where} strategy: one of {[s.value for s in Strategy]}") from exc
    try:
        backoff = Backoff(
            min_s=_typed(
                table.get("backoff_min_s", base.backoff.min_s), float, f"{where} backoff_min_s"
            ),
            max_s=_typed(
                table.get("backoff_max_s", base.backoff.max_s), float, f"{where} backoff_max_s"
            ),
        )
        return SupervisorPolicy(
            strategy=strategy,
            max_restarts=_typed(
                table.get("max_restarts", base.max_restarts), int, f"{where} max_restarts"
            ),
            period_s=_typed(table.get("period_s", base.period_s), float, f"{where} period_s"),
            backoff=backoff,
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _symbols(raw: Any, base: Mapping[str, SymbolConfig], where: str) -> Mapping[str, SymbolConfig]:
    if raw is None:
        return base
    table = _table(raw, where)
    if not table:
        raise ConfigError(f"{where}: at least one symbol is needed")
    out: dict[str, SymbolConfig] = {}
    for name, spec in table.items():
        if "/" not in name:
            raise ConfigError(f"{where}: symbol {name!r} must look like BASE/QUOTE")
        sub = f"{where} {name!r}"
        entry = _table(spec, sub)
        _no_unknown(entry, {"price", "order_qty", "group", "correlation"}, sub)
        for key in ("price", "order_qty"):
            if key not in entry:
                raise ConfigError(f"{sub}: {key} is required")
        price = _decimal(entry["price"], f"{sub} price")
        qty = _decimal(entry["order_qty"], f"{sub} order_qty")
        corr = _decimal(entry.get("correlation", 1), f"{sub} correlation")
        if price <= 0 or qty <= 0:
            raise ConfigError(f"{sub}: price and order_qty must be positive")
        if not Decimal(-1) <= corr <= Decimal(1):
            raise ConfigError(f"{sub}: correlation must be within [-1, 1]")
        out[name] = SymbolConfig(
            price, qty, _str(entry.get("group", "default"), f"{sub} group"), corr
        )
    return out


def _demo(raw: Any, base: DemoConfig, where: str) -> DemoConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields = {
        "duration_s": float,
        "steps_per_s": int,
        "seed": int,
        "volatility": float,
        "crash_rate": float,
        "open_probability": float,
        "close_probability": float,
    }
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    demo = _build(DemoConfig, base, values, where)
    if demo.duration_s <= 0 or demo.steps_per_s <= 0:
        raise ConfigError(f"{where}: duration_s and steps_per_s must be positive")
    for name in ("crash_rate", "volatility"):
        if getattr(demo, name) < 0:
            raise ConfigError(f"{where}: {name} must be >= 0")
    for name in ("open_probability", "close_probability"):
        if not 0 <= getattr(demo, name) <= 1:
            raise ConfigError(f"{where}: {name} must be within [0, 1]")
    return demo


def _log(raw: Any, base: LogConfig, where: str) -> LogConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    _no_unknown(table, {"level", "format"}, where)
    level = _str(table.get("level", base.level), f"{where} level").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{where} level: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    fmt = _str(table.get("format", base.format), f"{where} format")
    if fmt not in ("json", "text"):
        raise ConfigError(f"{where} format: 'json' or 'text'")
    return LogConfig(level, fmt)


# -- values -----------------------------------------------------------------------


def _build(cls: Any, base: Any, values: dict[str, Any], where: str) -> Any:
    merged = {name: getattr(base, name) for name in cls.__dataclass_fields__}
    merged.update(values)
    try:
        return cls(**merged)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    return raw


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")


def _typed(value: Any, kind: type, where: str) -> Any:
    if kind is Decimal:
        return _decimal(value, where)
    if kind is str:
        return _str(value, where)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        return float(value)
    raise AssertionError(kind)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    try:
        # A TOML float goes through its shortest repr: 0.1 means Decimal("0.1").
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not a number: {value!r}") from exc
    if not number.is_finite():
        raise ConfigError(f"{where}: must be finite, got {value!r}")
    return number
