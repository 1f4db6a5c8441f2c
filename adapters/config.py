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
from posbus.actors.node import NodeConfig
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.strategy import Strategy
from posbus.actors.symbol_info import SymbolInfo
from posbus.adapters.exchange.ccxt_config import GATEWAY_KEYS, GatewayConfig, gateway_config
from posbus.adapters.simulation.simulated_exchange import SimConfig


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
class BusConfig:
    """Where the bus lives and how it is secured (README: `[bus]`).

    `transport` "ipc" (one machine: sockets under RUN_DIR/bus, owner-only) or
    "tcp" (several machines: CURVE on every endpoint, keys from the files below).
    """

    transport: str = "ipc"
    host: str = "127.0.0.1"
    bind: str = "*"
    base_port: int = 5570
    curve_server_secret: str | None = None
    curve_server_public: str | None = None
    curve_client_secret: str | None = None
    allowed_clients: str | None = None
    heartbeat_interval_s: float = 1.0
    liveness: int = 3
    max_msg_size: int = 1 << 20


@dataclass(frozen=True, slots=True)
class WorkersConfig:
    """How the stack is split into worker processes (README: `[workers]`)."""

    position_shards: int = 1
    tick_s: float = 1.0
    journal: str = "sqlite"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The Prometheus endpoint of each worker (README: `[metrics]`); port 0 turns it off."""

    prometheus_port_base: int = 0
    prometheus_host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LauncherConfig:
    """How `posbus up` restarts workers that die (README: `[launcher]`)."""

    max_restarts: int = 5
    period_s: float = 60.0
    stop_timeout_s: float = 15.0


#: Where the risk supervisor takes marks from (`[positions] risk_marks`).
RISK_MARKS = ("market", "exposures")


@dataclass(frozen=True, slots=True)
class PositionsConfig:
    """How positions report to the risk supervisor (README: `[positions]`).

    `risk_marks` "market" (the default): the risk supervisor takes every mark
    from market data itself and judges each exactly; positions tell it only
    what fills, orders and starts change (in-process runtimes: `posbus run`
    and `posbus backtest`). "exposures": positions tell it every mark change,
    which `exposure_interval_ms` > 0 conflates: at most one per interval of
    market time, plus one whenever the unrealized P&L moved by
    `exposure_pnl_step` (0: no such trigger); fills and orders always report
    at once. 0 reports every change.
    """

    risk_marks: str = "market"
    exposure_interval_ms: int = 0
    exposure_pnl_step: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """`posbus backtest`: how the equity curve is sampled and returns are annualised."""

    period_s: int = 86_400
    periods_per_year: float = 252.0
    equity_interval_s: int = 60


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The journal and snapshot store (README: `[storage]`).

    `backend` "sqlite" (embedded default: one file, `path`, default
    RUN_DIR/journal.sqlite), "mongodb" (`uri`, `database`, write concern `w`)
    or "memory" (not durable: tests and throwaway demos). Appends are group
    committed: at most `batch_max` records per commit, waiting at most
    `batch_delay_ms` for more. Actors snapshot every `snapshot_interval_s`
    (0: only on demand and on shutdown); `keep_snapshots` per stream are kept.
    """

    backend: str = "sqlite"
    path: Path | None = None
    uri: str = "mongodb://127.0.0.1:27017"
    database: str = "posbus"
    w: int | str = "majority"
    batch_max: int = 1000
    batch_delay_ms: float = 0.0
    snapshot_interval_s: float = 30.0
    keep_snapshots: int = 3

    def sqlite_path(self, run_dir: Path) -> Path:
        """The SQLite file: `path`, or journal.sqlite under the run directory."""
        return self.path if self.path is not None else run_dir / "journal.sqlite"


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
    # `[exchange] kind` and the ccxt gateway's keys (the rest of `[exchange]` is `exchange`).
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
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
    storage: StorageConfig = field(default_factory=StorageConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    positions: PositionsConfig = field(default_factory=PositionsConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)

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
            exposure_interval_ns=self.positions.exposure_interval_ms * 1_000_000,
            exposure_pnl_step=self.positions.exposure_pnl_step,
            risk_reads_market=self.positions.risk_marks == "market",
            snapshot_interval_s=self.storage.snapshot_interval_s or None,
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
        | {"symbols", "demo", "log", "bus", "workers", "launcher"}
        | {"positions", "backtest", "storage", "metrics"},
        where,
    )
    account = _str(data.get("account", base.account), f"{where}: account")
    equity = _decimal(
        data.get("starting_equity", base.starting_equity), f"{where}: starting_equity"
    )
    if equity <= 0:
        raise ConfigError(f"{where}: starting_equity must be positive")
    run_dir = Path(_str(data.get("run_dir", str(base.run_dir)), f"{where}: run_dir"))
    risk = _risk(data.get("risk"), base.risk, f"{where}: [risk]")
    return Config(
        account=account,
        starting_equity=equity,
        run_dir=run_dir,
        risk=risk,
        exchange=_exchange(data.get("exchange"), base.exchange, f"{where}: [exchange]"),
        gateway=_gateway(data.get("exchange"), base.gateway, f"{where}: [exchange]"),
        supervisor=_supervisor(data.get("supervisor"), base.supervisor, f"{where}: [supervisor]"),
        symbols=_symbols(data.get("symbols"), base.symbols, f"{where}: [symbols]"),
        demo=_demo(data.get("demo"), base.demo, f"{where}: [demo]"),
        log=_log(data.get("log"), base.log, f"{where}: [log]"),
        storage=_storage(data.get("storage"), base.storage, f"{where}: [storage]"),
        bus=_bus(data.get("bus"), base.bus, f"{where}: [bus]"),
        workers=_workers(data.get("workers"), base.workers, f"{where}: [workers]"),
        launcher=_launcher(data.get("launcher"), base.launcher, f"{where}: [launcher]"),
        metrics=_metrics(data.get("metrics"), base.metrics, f"{where}: [metrics]"),
        positions=_positions(data.get("positions"), base.positions, risk, f"{where}: [positions]"),
        backtest=_backtest(data.get("backtest"), base.backtest, f"{where}: [backtest]"),
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
    # The gateway's keys share the table; `_gateway` reads and checks them.
    whole = _table(raw, where)
    table = {k: v for k, v in whole.items() if k not in GATEWAY_KEYS}
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
    _no_unknown(whole, set(fields) | GATEWAY_KEYS, where)
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        if name in table:
            values[name] = _typed(table[name], kind, f"{where} {name}")
    return _build(SimConfig, base, values, where)


def _gateway(raw: Any, base: GatewayConfig, where: str) -> GatewayConfig:
    if raw is None:
        return base
    try:
        return gateway_config(_table(raw, where), base)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} {exc}") from exc


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


def _storage(raw: Any, base: StorageConfig, where: str) -> StorageConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {
        "backend": str,
        "path": str,
        "uri": str,
        "database": str,
        "batch_max": int,
        "batch_delay_ms": float,
        "snapshot_interval_s": float,
        "keep_snapshots": int,
    }
    _no_unknown(table, {*fields, "w"}, where)
    values: dict[str, Any] = {
        k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table
    }
    if "path" in values:
        values["path"] = Path(values["path"])
    if "w" in table:
        w = table["w"]
        if w != "majority" and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"{where} w: an integer >= 1 or 'majority', got {w!r}")
        values["w"] = w
    storage = _build(StorageConfig, base, values, where)
    if storage.backend not in ("sqlite", "mongodb", "memory"):
        raise ConfigError(f"{where} backend: 'sqlite', 'mongodb' or 'memory'")
    if storage.batch_max < 1:
        raise ConfigError(f"{where} batch_max: must be >= 1")
    if not 0 <= storage.batch_delay_ms <= 5000:
        raise ConfigError(f"{where} batch_delay_ms: must be within [0, 5000]")
    if storage.snapshot_interval_s < 0:
        raise ConfigError(f"{where} snapshot_interval_s: must be >= 0")
    if storage.keep_snapshots < 1:
        raise ConfigError(f"{where} keep_snapshots: must be >= 1")
    return storage


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


def _bus(raw: Any, base: BusConfig, where: str) -> BusConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {
        "transport": str,
        "host": str,
        "bind": str,
        "base_port": int,
        "curve_server_secret": str,
        "curve_server_public": str,
        "curve_client_secret": str,
        "allowed_clients": str,
        "heartbeat_interval_s": float,
        "liveness": int,
        "max_msg_size": int,
    }
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    bus: BusConfig = _build(BusConfig, base, values, where)
    if bus.transport not in ("ipc", "tcp"):
        raise ConfigError(f"{where} transport: 'ipc' or 'tcp'")
    if not 1 <= bus.base_port <= 65532:
        raise ConfigError(f"{where} base_port: within 1..65532 (4 consecutive ports)")
    if bus.heartbeat_interval_s <= 0 or bus.liveness < 1 or bus.max_msg_size < 1024:
        raise ConfigError(f"{where}: heartbeat_interval_s > 0, liveness >= 1, max_msg_size >= 1024")
    return bus


def _workers(raw: Any, base: WorkersConfig, where: str) -> WorkersConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {"position_shards": int, "tick_s": float, "journal": str}
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    workers: WorkersConfig = _build(WorkersConfig, base, values, where)
    if workers.position_shards < 1 or workers.tick_s <= 0:
        raise ConfigError(f"{where}: position_shards >= 1 and tick_s > 0")
    if workers.journal not in ("sqlite", "memory"):
        raise ConfigError(f"{where} journal: 'sqlite' or 'memory'")
    return workers


def _metrics(raw: Any, base: MetricsConfig, where: str) -> MetricsConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {"prometheus_port_base": int, "prometheus_host": str}
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    metrics: MetricsConfig = _build(MetricsConfig, base, values, where)
    if not 0 <= metrics.prometheus_port_base <= 65_000:
        raise ConfigError(f"{where}: prometheus_port_base between 0 (off) and 65000")
    return metrics


def _launcher(raw: Any, base: LauncherConfig, where: str) -> LauncherConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {"max_restarts": int, "period_s": float, "stop_timeout_s": float}
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    launcher: LauncherConfig = _build(LauncherConfig, base, values, where)
    if launcher.max_restarts < 0 or launcher.period_s <= 0 or launcher.stop_timeout_s <= 0:
        raise ConfigError(f"{where}: max_restarts >= 0, period_s > 0, stop_timeout_s > 0")
    return launcher


def _positions(raw: Any, base: PositionsConfig, risk: RiskLimits, where: str) -> PositionsConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {
        "risk_marks": str,
        "exposure_interval_ms": int,
        "exposure_pnl_step": Decimal,
    }
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    positions: PositionsConfig = _build(PositionsConfig, base, values, where)
    if positions.risk_marks not in RISK_MARKS:
        raise ConfigError(
            f"{where} risk_marks: must be one of {', '.join(RISK_MARKS)}, "
            f"not {positions.risk_marks!r}"
        )
    if positions.exposure_interval_ms < 0 or positions.exposure_pnl_step < 0:
        raise ConfigError(f"{where}: exposure_interval_ms and exposure_pnl_step must be >= 0")
    if positions.risk_marks == "market" and (
        positions.exposure_interval_ms or positions.exposure_pnl_step
    ):
        # Nothing to conflate: positions tell no mark-only change in that mode.
        raise ConfigError(
            f"{where}: exposure_interval_ms and exposure_pnl_step conflate the marks "
            'positions tell; set risk_marks = "exposures" to use them'
        )
    if positions.exposure_interval_ms >= risk.stale_after_s * 1000:
        # A conflated mark could then look stale to risk although ticks keep coming.
        raise ConfigError(
            f"{where} exposure_interval_ms: must be below [risk] stale_after_s "
            f"({risk.stale_after_s} s)"
        )
    return positions


def _backtest(raw: Any, base: BacktestConfig, where: str) -> BacktestConfig:
    if raw is None:
        return base
    table = _table(raw, where)
    fields: dict[str, type] = {
        "period_s": int,
        "periods_per_year": float,
        "equity_interval_s": int,
    }
    _no_unknown(table, set(fields), where)
    values = {k: _typed(table[k], kind, f"{where} {k}") for k, kind in fields.items() if k in table}
    backtest: BacktestConfig = _build(BacktestConfig, base, values, where)
    if backtest.period_s <= 0 or backtest.equity_interval_s <= 0:
        raise ConfigError(f"{where}: period_s and equity_interval_s must be positive")
    if backtest.periods_per_year <= 0:
        raise ConfigError(f"{where}: periods_per_year must be positive")
    if backtest.period_s % backtest.equity_interval_s:
        # Period closes must fall on the sampling grid, or returns would mix two clocks.
        raise ConfigError(f"{where}: period_s must be a multiple of equity_interval_s")
    return backtest


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
