"""posbus configuration: one typed object, loaded from TOML, with defaults that run on one machine.

Each TOML table is a frozen msgspec Struct below that declares its keys,
types, defaults and ranges once; `load_config` decodes a file into them
strictly (no string-to-number coercion), so an unknown key, a wrong type or a
value out of range is a `ConfigError` naming the key, and a typo never
silently leaves a limit at its default. Decimals stay exact: a TOML float
0.1 is Decimal("0.1"), what the author typed. Every key is documented once,
in docs/configuration.md.

`Config`, what the rest of posbus reads, is a frozen dataclass: the tables
as decoded, except `[risk]`, `[exchange]` and `[supervisor]`, which it holds
as the domain values they build (RiskLimits, SimConfig and GatewayConfig,
SupervisorPolicy). Change a table with `msgspec.structs.replace`. Pure
values, safe on any thread; the only I/O is reading the file in `load_config`.
"""

from __future__ import annotations

import enum
import re
import tomllib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from posbus.actors.model.currency_conversion import missing_rates, quote_currency
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.risk import RiskLimits
from posbus.actors.node import NodeConfig
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.strategy import Strategy
from posbus.actors.symbol_info import SymbolInfo
from posbus.adapters.alerts.settings import AlertsConfig
from posbus.adapters.exchange.ccxt_config import GatewayConfig, GatewaySection
from posbus.adapters.simulation.simulated_exchange import SimConfig


class ConfigError(PosbusError):
    """A configuration file or value is invalid; the message names the key."""


NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
AtLeastZeroInt = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
AtLeastZero = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


def _positive(name: str, value: Decimal) -> None:
    # msgspec has no range constraints on Decimal; NaN and infinities are not amounts.
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def _at_least_zero(name: str, value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


class SymbolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One traded symbol: start price (simulated market), risk group, demo order size."""

    price: Decimal
    order_qty: Decimal
    group: NonEmpty = "default"
    correlation: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        _positive("price", self.price)
        _positive("order_qty", self.order_qty)
        if not self.correlation.is_finite() or not -1 <= self.correlation <= 1:
            raise ValueError(f"correlation must be within [-1, 1], got {self.correlation}")


class DemoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The in-process demo's market, signal source and fault injection."""

    duration_s: Positive = 20.0
    steps_per_s: PositiveInt = 20
    seed: int = 7
    volatility: AtLeastZero = 0.002
    crash_rate: AtLeastZero = 0.3
    open_probability: Probability = 0.04
    close_probability: Probability = 0.03


class BusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the bus lives and how it is secured (README: `[bus]`).

    `transport` "ipc" (one machine: sockets under RUN_DIR/bus, owner-only) or
    "tcp" (several machines: CURVE on every endpoint, keys from the files below).
    """

    transport: Literal["ipc", "tcp"] = "ipc"
    host: NonEmpty = "127.0.0.1"
    bind: NonEmpty = "*"
    # The broker binds four consecutive ports from here.
    base_port: Annotated[int, msgspec.Meta(ge=1, le=65532)] = 5570
    curve_server_secret: NonEmpty | None = None
    curve_server_public: NonEmpty | None = None
    curve_client_secret: NonEmpty | None = None
    allowed_clients: NonEmpty | None = None
    heartbeat_interval_s: Positive = 1.0
    liveness: PositiveInt = 3
    max_msg_size: Annotated[int, msgspec.Meta(ge=1024)] = 1 << 20


class WorkersConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the stack is split into worker processes (README: `[workers]`)."""

    position_shards: PositiveInt = 1
    tick_s: Positive = 1.0
    journal: Literal["sqlite", "memory"] = "sqlite"


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The Prometheus endpoint of each worker (README: `[metrics]`); port 0 turns it off."""

    prometheus_port_base: Annotated[int, msgspec.Meta(ge=0, le=65_000)] = 0
    prometheus_host: NonEmpty = "127.0.0.1"


class LauncherConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How `posbus up` restarts workers that die (README: `[launcher]`)."""

    max_restarts: AtLeastZeroInt = 5
    period_s: Positive = 60.0
    stop_timeout_s: Positive = 15.0


class PositionsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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

    risk_marks: Literal["market", "exposures"] = "market"
    exposure_interval_ms: AtLeastZeroInt = 0
    exposure_pnl_step: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _at_least_zero("exposure_pnl_step", self.exposure_pnl_step)
        if self.risk_marks == "market" and (self.exposure_interval_ms or self.exposure_pnl_step):
            # Nothing to conflate: positions tell no mark-only change in that mode.
            raise ValueError(
                "exposure_interval_ms and exposure_pnl_step conflate the marks "
                'positions tell; set risk_marks = "exposures" to use them'
            )


class BacktestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`posbus backtest`: how the equity curve is sampled and returns are annualised."""

    period_s: PositiveInt = 86_400
    periods_per_year: Positive = 252.0
    equity_interval_s: PositiveInt = 60

    def __post_init__(self) -> None:
        if self.period_s % self.equity_interval_s:
            # Period closes must fall on the sampling grid, or returns would mix two clocks.
            raise ValueError("period_s must be a multiple of equity_interval_s")


class StorageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The journal and snapshot store (README: `[storage]`).

    `backend` "sqlite" (embedded default: one file, `path`, default
    RUN_DIR/journal.sqlite), "mongodb" (`uri`, `database`, write concern `w`)
    or "memory" (not durable: tests and throwaway demos). Appends are group
    committed: at most `batch_max` records per commit, waiting at most
    `batch_delay_ms` for more. Actors snapshot every `snapshot_interval_s`
    (0: only on demand and on shutdown); `keep_snapshots` per stream are kept.
    """

    backend: Literal["sqlite", "mongodb", "memory"] = "sqlite"
    path: Path | None = None
    uri: NonEmpty = "mongodb://127.0.0.1:27017"
    database: NonEmpty = "posbus"
    w: PositiveInt | Literal["majority"] = "majority"
    batch_max: PositiveInt = 1000
    batch_delay_ms: Annotated[float, msgspec.Meta(ge=0, le=5000)] = 0.0
    snapshot_interval_s: AtLeastZero = 30.0
    keep_snapshots: PositiveInt = 3

    def sqlite_path(self, run_dir: Path) -> Path:
        """The SQLite file: `path`, or journal.sqlite under the run directory."""
        return self.path if self.path is not None else run_dir / "journal.sqlite"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Logging: level (any case; kept upper case) and format ("json" lines, or "text")."""

    level: NonEmpty = "INFO"
    format: Literal["json", "text"] = "json"

    def __post_init__(self) -> None:
        level = self.level.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)}, not {self.level!r}")
        # `logging` knows only the upper-case names.
        msgspec.structs.force_setattr(self, "level", level)


class RiskSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[risk]`: the risk limits; RiskLimits checks their ranges when `limits()` builds it."""

    daily_loss_limit: Decimal = Decimal(2_000)
    max_drawdown: Decimal = Decimal("0.05")
    max_leverage: Decimal = Decimal(3)
    warning_fraction: Decimal = Decimal("0.8")
    warning_leverage_factor: Decimal = Decimal("0.5")
    max_group_exposure: Decimal = Decimal(150_000)
    max_total_exposure: Decimal = Decimal(250_000)
    max_order_notional: Decimal = Decimal(25_000)
    max_orders_per_second: int = 20
    cooldown_s: int = 30
    stale_after_s: int = 10
    trading_day_offset_s: int = 0
    #: Entering CoolDown or Halted cancels the working orders that add risk.
    cancel_risk_adding_orders: bool = True

    def __post_init__(self) -> None:
        self.limits()  # so a limit out of range is reported at [risk]

    def limits(self) -> RiskLimits:
        """The limits these keys describe. Raises ValueError naming a limit out of range."""
        keys = msgspec.structs.asdict(self)
        del keys["cancel_risk_adding_orders"]
        return RiskLimits(**keys)


class SupervisorSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[supervisor]`: the actors' restart policy, the backoff's bounds as flat keys."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 20
    period_s: float = 10.0
    backoff_min_s: float = 0.01
    backoff_max_s: float = 0.2

    def __post_init__(self) -> None:
        self.policy()  # so a value out of range is reported at [supervisor]

    def policy(self) -> SupervisorPolicy:
        """The policy these keys describe. Raises ValueError naming a value out of range."""
        return SupervisorPolicy(
            strategy=self.strategy,
            max_restarts=self.max_restarts,
            period_s=self.period_s,
            backoff=Backoff(min_s=self.backoff_min_s, max_s=self.backoff_max_s),
        )


class ExchangeSection(GatewaySection, frozen=True, forbid_unknown_fields=True):
    """`[exchange]`: the gateway's keys (GatewaySection) and the simulated exchange's (SimConfig).

    Both venues' keys share the table so that switching `kind` changes one
    line; SimConfig checks the simulated exchange's ranges.
    """

    seed: int = 7
    taker_fee_rate: Decimal = Decimal("0.001")
    maker_fee_rate: Decimal = Decimal("0.0002")
    slippage_bps: Decimal = Decimal(1)
    latency_ns: int = 2_000_000
    reject_rate: float = 0.02
    partial_fill_rate: float = 0.2
    price_tick: Decimal = Decimal("0.01")
    qty_step: Decimal = Decimal("0.0001")
    fee_currency: NonEmpty = "USDT"
    max_order_qty: Decimal | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.simulated()  # so a value out of range is reported at [exchange]

    def simulated(self) -> SimConfig:
        """The simulated exchange these keys describe. Raises ValueError naming a key."""
        return SimConfig(**{f.name: getattr(self, f.name) for f in fields(SimConfig)})


class RiskOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[accounts.NAME.risk]`: any `[risk]` limit, set for this account only.

    A key left out takes `[risk]`'s value; `cancel_risk_adding_orders` is
    the stack's, in `[risk]` only.
    """

    daily_loss_limit: Decimal | None = None
    max_drawdown: Decimal | None = None
    max_leverage: Decimal | None = None
    warning_fraction: Decimal | None = None
    warning_leverage_factor: Decimal | None = None
    max_group_exposure: Decimal | None = None
    max_total_exposure: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_orders_per_second: int | None = None
    cooldown_s: int | None = None
    stale_after_s: int | None = None
    trading_day_offset_s: int | None = None

    def over(self, base: RiskSection) -> RiskSection:
        """`base` with the keys set here replaced (ranges checked again)."""
        changes = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}
        return msgspec.structs.replace(base, **changes)


ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""An account's name: it is part of worker names, file names and bus topics."""


class AccountSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[accounts.NAME]`: one trading account: its venue, its equity and its own limits."""

    exchange: ExchangeSection = ExchangeSection()
    starting_equity: Decimal | None = None
    risk: RiskOverrides = RiskOverrides()

    def __post_init__(self) -> None:
        if self.starting_equity is not None:
            _positive("starting_equity", self.starting_equity)


class FirmSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[firm]`: the currency risk counts in, and limits over every account together.

    `reporting_currency` defaults to the quote currency of the symbols when
    they share one (it must be set when they do not). Without `[firm.risk]`
    there is no firm-wide check: each account is judged by its own limits.
    """

    reporting_currency: NonEmpty | None = None
    risk: RiskSection | None = None

    def currency(self, symbols: Iterable[str]) -> str:
        """The reporting currency: as set, or the symbols' one quote currency (ValueError)."""
        if self.reporting_currency is not None:
            return self.reporting_currency
        quotes = sorted({quote_currency(s) for s in symbols})
        if len(quotes) != 1:
            raise ValueError(
                f"[firm] reporting_currency: the symbols quote in {', '.join(quotes)}; "
                "set the currency risk counts in"
            )
        return quotes[0]


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account as the stack runs it: its venue, starting equity and limits."""

    name: str
    exchange: SimConfig
    gateway: GatewayConfig
    risk: RiskLimits
    starting_equity: Decimal


@dataclass(frozen=True, slots=True)
class FirmConfig:
    """The currency risk counts in, and firm-wide limits (None: each account on its own).

    A None currency counts every symbol as quoted, unconverted.
    """

    reporting_currency: str | None = None
    limits: RiskLimits | None = None


def _default_symbols() -> dict[str, SymbolConfig]:
    return {
        "BTC/USDT": SymbolConfig(Decimal(60_000), Decimal("0.1"), "majors", Decimal(1)),
        "ETH/USDT": SymbolConfig(Decimal(3_000), Decimal(2), "majors", Decimal("0.85")),
        "SOL/USDT": SymbolConfig(Decimal(150), Decimal(40), "alts", Decimal("0.7")),
    }


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The TOML document: its top-level keys and one field per table; `config()` builds Config.

    Rules that relate two tables are checked here, after each table is decoded.
    """

    account: NonEmpty = "default"
    starting_equity: Decimal = Decimal(100_000)
    run_dir: Path = Path("var")
    risk: RiskSection = RiskSection()
    exchange: ExchangeSection = ExchangeSection()
    supervisor: SupervisorSection = SupervisorSection()
    symbols: dict[str, SymbolConfig] = msgspec.field(default_factory=_default_symbols)
    demo: DemoConfig = DemoConfig()
    log: LogConfig = LogConfig()
    storage: StorageConfig = StorageConfig()
    bus: BusConfig = BusConfig()
    workers: WorkersConfig = WorkersConfig()
    launcher: LauncherConfig = LauncherConfig()
    metrics: MetricsConfig = MetricsConfig()
    positions: PositionsConfig = PositionsConfig()
    backtest: BacktestConfig = BacktestConfig()
    alerts: AlertsConfig = AlertsConfig()
    accounts: dict[str, AccountSection] | None = None
    firm: FirmSection = FirmSection()

    def __post_init__(self) -> None:
        _positive("starting_equity", self.starting_equity)
        _check_symbol_names(self.symbols)
        _check_conflation_below_staleness(self.positions, self.risk)
        _check_accounts(self)

    def config(self) -> Config:
        """The node's configuration: the tables, with risk, exchange and supervisor built."""
        accounts = self._accounts()
        # With [accounts], the single-account fields describe the first account.
        first = None if accounts is None else next(iter(accounts.values()))
        return Config(
            account=self.account if first is None else first.name,
            starting_equity=self.starting_equity if first is None else first.starting_equity,
            run_dir=self.run_dir,
            risk=self.risk.limits() if first is None else first.risk,
            cancel_risk_adding_orders=self.risk.cancel_risk_adding_orders,
            exchange=self.exchange.simulated() if first is None else first.exchange,
            gateway=self.exchange.gateway() if first is None else first.gateway,
            supervisor=self.supervisor.policy(),
            symbols=self.symbols,
            demo=self.demo,
            log=self.log,
            storage=self.storage,
            bus=self.bus,
            workers=self.workers,
            launcher=self.launcher,
            metrics=self.metrics,
            positions=self.positions,
            backtest=self.backtest,
            alerts=self.alerts,
            account_configs=accounts,
            firm=FirmConfig(
                self.firm.currency(self.symbols),
                None if self.firm.risk is None else self.firm.risk.limits(),
            ),
        )

    def _accounts(self) -> dict[str, AccountConfig] | None:
        if self.accounts is None:
            return None
        return {
            name: AccountConfig(
                name=name,
                exchange=section.exchange.simulated(),
                gateway=section.exchange.gateway(),
                risk=section.risk.over(self.risk).limits(),
                starting_equity=section.starting_equity or self.starting_equity,
            )
            for name, section in self.accounts.items()
        }


def _check_accounts(document: ConfigFile) -> None:
    """`[accounts]` names, their limits in range, and a rate for every foreign quote."""
    if document.accounts is not None:
        if not document.accounts:
            raise ValueError("[accounts]: at least one account is needed (or leave it out)")
        for name, section in document.accounts.items():
            if not ACCOUNT_NAME.fullmatch(name):
                raise ValueError(
                    f"[accounts.{name}]: an account name is 1 to 64 letters, digits, _ or -"
                )
            try:
                section.risk.over(document.risk).limits()
            except ValueError as exc:
                raise ValueError(f"[accounts.{name}.risk]: {exc}") from exc
    currency = document.firm.currency(document.symbols)
    missing = missing_rates(currency, document.symbols)
    if missing:
        # Risk converts a symbol quoted in another currency at QUOTE/REPORTING's mid.
        raise ValueError(
            f"[symbols]: risk counts in {currency}; to convert the symbols quoted in "
            f"another currency, add {', '.join(missing)}"
        )
    if document.positions.risk_marks != "market" and any(
        quote_currency(s) != currency for s in document.symbols
    ):
        # The rates come from the quotes risk reads itself.
        raise ValueError(
            f"[positions] risk_marks: symbols quoted in another currency than {currency} "
            'need "market" (risk converts them at the quotes it reads)'
        )


def _check_symbol_names(symbols: Mapping[str, SymbolConfig]) -> None:
    if not symbols:
        raise ValueError("[symbols]: at least one symbol is needed")
    for name in symbols:
        if "/" not in name:
            raise ValueError(f"[symbols]: symbol {name!r} must look like BASE/QUOTE")


def _check_conflation_below_staleness(positions: PositionsConfig, risk: RiskSection) -> None:
    if positions.exposure_interval_ms >= risk.stale_after_s * 1000:
        # A conflated mark could then look stale to risk although ticks keep coming.
        raise ValueError(
            f"[positions] exposure_interval_ms: must be below [risk] stale_after_s "
            f"({risk.stale_after_s} s)"
        )


_BUILT_IN = ConfigFile()


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of a posbus node; the defaults are ConfigFile's."""

    account: str = _BUILT_IN.account
    starting_equity: Decimal = _BUILT_IN.starting_equity
    run_dir: Path = _BUILT_IN.run_dir
    risk: RiskLimits = field(default_factory=_BUILT_IN.risk.limits)
    #: `[risk] cancel_risk_adding_orders`.
    cancel_risk_adding_orders: bool = _BUILT_IN.risk.cancel_risk_adding_orders
    exchange: SimConfig = field(default_factory=_BUILT_IN.exchange.simulated)
    # `[exchange] kind` and the ccxt gateway's keys (the rest of `[exchange]` is `exchange`).
    gateway: GatewayConfig = field(default_factory=_BUILT_IN.exchange.gateway)
    supervisor: SupervisorPolicy = field(default_factory=_BUILT_IN.supervisor.policy)
    symbols: Mapping[str, SymbolConfig] = field(default_factory=_default_symbols)
    demo: DemoConfig = _BUILT_IN.demo
    log: LogConfig = _BUILT_IN.log
    storage: StorageConfig = _BUILT_IN.storage
    bus: BusConfig = _BUILT_IN.bus
    workers: WorkersConfig = _BUILT_IN.workers
    launcher: LauncherConfig = _BUILT_IN.launcher
    metrics: MetricsConfig = _BUILT_IN.metrics
    positions: PositionsConfig = _BUILT_IN.positions
    backtest: BacktestConfig = _BUILT_IN.backtest
    alerts: AlertsConfig = _BUILT_IN.alerts
    #: `[accounts]` as built; None: the one account of `account` and `[exchange]`.
    account_configs: Mapping[str, AccountConfig] | None = None
    firm: FirmConfig = field(default_factory=FirmConfig)

    def accounts(self) -> dict[str, AccountConfig]:
        """Every account of the stack, by name, in the order of the file."""
        if self.account_configs is not None:
            return dict(self.account_configs)
        one = AccountConfig(
            self.account, self.exchange, self.gateway, self.risk, self.starting_equity
        )
        return {self.account: one}

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
            cancel_risk_adding_orders=self.cancel_risk_adding_orders,
            reporting_currency=self.firm.reporting_currency,
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
    """Build a Config from plain values (a parsed TOML document) over the defaults.

    Raises ConfigError naming the key (`[risk] max_leverage`) for an unknown
    key, a wrong type or a value out of range.
    """
    legacy = [key for key in ("account", "exchange") if key in data]
    if "accounts" in data and legacy:
        raise ConfigError(
            f"{where}: [accounts] replaces the top-level `account` and [exchange]; "
            f"move {' and '.join(legacy)} into an [accounts.NAME] table"
        )
    try:
        document: ConfigFile = _decode(data, ConfigFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(str(exc), data)}") from exc
    return document.config()


def _decode(value: Any, kind: Any) -> Any:
    # strict: a TOML string never becomes a number, nor a number a string.
    return msgspec.convert(value, kind, strict=True, dec_hook=_decode_path)


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str) and value:
        return Path(value)
    raise TypeError("Expected a non-empty path string")


# -- error messages -----------------------------------------------------------------
#
# msgspec says where a value failed as a path (`$.symbols[...].price`) in its
# own words (Object, field); the messages below use the TOML file's words
# instead and name the entry of a table of tables, which msgspec elides.

_STEP = re.compile(r"\.(?P<field>\w+)|\[(?P<entry>[^\]]*)\]")
_GOT_TYPE = re.compile(r"got `[^`]*`$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _explain(error: str, data: Mapping[str, Any]) -> str:
    """msgspec's error as `[table] key: what is wrong, got VALUE`."""
    message, _, path = error.partition(" - at `$")
    kind: Any = ConfigFile
    value: Any = data
    tables: list[str] = []
    key = ""
    for step in _STEP.finditer(path.removesuffix("`")):
        if step["field"] is not None:
            name, kind = step["field"], _field_type(kind, step["field"])
        elif get_origin(_unwrapped(kind)) in (list, tuple):
            # An array of tables ([[alerts.sinks]]): msgspec names the entry by its index.
            index = int(step["entry"])
            kind = get_args(_unwrapped(kind))[0]
            value = value[index] if isinstance(value, list) and index < len(value) else None
            tables.append(f"{key}[{index}]")
            key = ""
            continue
        else:
            kind = _entry_type(kind)
            name = _failing_entry(value, kind)
        value = value.get(name) if isinstance(value, Mapping) else None
        quoted = name if _BARE_KEY.fullmatch(name) else f'"{name}"'
        if _is_table(kind):
            tables.append(quoted)
        else:
            key = quoted
    where = " ".join(filter(None, (f"[{'.'.join(tables)}]" if tables else "", key)))
    text = _reworded(message, kind, value)
    return f"{where}: {text}" if where else text


def _reworded(message: str, kind: Any, value: Any) -> str:
    if message.startswith("Object contains unknown field"):
        known = ", ".join(f.name for f in msgspec.structs.fields(_unwrapped(kind)))
        unknown = message.removeprefix("Object contains unknown field ")
        return f"unknown key {unknown}; known: {known}"
    if message.startswith("Object missing required field"):
        return f"missing key {message.removeprefix('Object missing required field ')}"
    if message.startswith("Expected `object`"):
        return f"must be a table, got {value!r}"
    if message.startswith("Invalid enum value"):
        return f"must be one of {', '.join(str(c) for c in _choices(kind))}, not {value!r}"
    if message.startswith(("Expected", "Invalid")):
        if _GOT_TYPE.search(message):
            return _GOT_TYPE.sub(f"got {value!r}", message)
        return f"{message}, got {value!r}"
    return message


def _unwrapped(kind: Any) -> Any:
    """The type under Annotated and `| None`."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) in (Union, types.UnionType):
        members = [m for m in get_args(kind) if m is not type(None)]
        if len(members) == 1:
            return _unwrapped(members[0])
    return kind


def _field_type(kind: Any, name: str) -> Any:
    return next(f.type for f in msgspec.structs.fields(_unwrapped(kind)) if f.name == name)


def _entry_type(kind: Any) -> Any:
    return get_args(_unwrapped(kind))[1]


def _is_table(kind: Any) -> bool:
    kind = _unwrapped(kind)
    return get_origin(kind) is dict or (isinstance(kind, type) and issubclass(kind, msgspec.Struct))


def _failing_entry(table: Any, kind: Any) -> str:
    """The first key of `table` whose value does not decode as `kind` (msgspec elides it)."""
    for name, entry in table.items() if isinstance(table, Mapping) else ():
        try:
            _decode(entry, kind)
        except msgspec.ValidationError:
            return str(name)
    return "..."


def _choices(kind: Any) -> list[Any]:
    kind = _unwrapped(kind)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [member.value for member in kind]
    if get_origin(kind) is Literal:
        return list(get_args(kind))
    return [choice for member in get_args(kind) for choice in _choices(member)]
