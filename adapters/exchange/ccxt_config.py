"""Settings of the exchange gateway (`[exchange]` in the TOML file) and its credentials.

`kind = "simulated"` (the default) runs the simulated exchange, configured by
the other keys of `[exchange]` (`SimConfig`,
posbus.adapters.simulation.simulated_exchange); `kind = "ccxt"` runs the
ccxt gateway with the keys of `GatewaySection`. Every key is documented in
docs/configuration.md.

Credentials come from environment variables (`api_key_env`, `secret_env`,
which hold the *names* of the variables) or from a TOML file
(`credentials_file`, keys `api_key` and `secret`) that only its owner may read
(mode 0600 or stricter; anything looser is refused). They are never logged:
`Credentials` prints as redacted, and `inspect` shows only whether they are
set.

Pure values; the only I/O is reading the credentials file and the
environment in `load_credentials`.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import msgspec

from posbus.adapters.exchange.retry import RetryPolicy

KINDS = ("simulated", "ccxt")
UNKNOWN_ORDER_POLICIES = ("flag", "adopt")
BALANCE_MISMATCH_POLICIES = ("halt", "warn")
MARKET_DATA_MODES = ("auto", "rest", "websocket")
USER_STREAM_MODES = ("auto", "off")

_Text = Annotated[str, msgspec.Meta(min_length=1)]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Which exchange client the node uses, and how the ccxt gateway behaves.

    - `kind`: "simulated" or "ccxt".
    - `exchange_id`: the ccxt exchange id ("binance", "kraken", ...).
    - `api_key_env`, `secret_env`: names of the environment variables holding
      the credentials; `credentials_file`: a 0600 TOML file with `api_key`
      and `secret` (used when set, instead of the environment).
    - `urls`: overrides of ccxt's `urls['api']` entries (name -> base URL),
      e.g. to point at an exchange emulator or a testnet; a dotted name is
      a path into nested entries ("ws.ws-api.spot").
    - `options`: extra ccxt `options` (strings, numbers, booleans).
    - `timeout_ms`: ccxt's per-request timeout.
    - `recv_window_ms`: how long a signed request stays valid at the
      exchange (Binance's recvWindow); an order whose send failed is only
      re-sent once a lookup, made after this window, proves it absent.
    - `enable_rate_limit`: ccxt's own client-side throttle.
    - `retry`: tries and delays of transient failures.
    - `breaker_threshold`, `breaker_cooloff_s`: the circuit breaker.
    - `reconcile_interval_s`: periodic reconciliation (0: only at start-up,
      reconnect and breaker close).
    - `poll_interval_s`: REST polling of working orders (fills) and of
      market data.
    - `market_data`: "auto" (websocket `watch_*` when ccxt.pro has them,
      else REST; REST whenever `urls` overrides the REST endpoints, since
      ccxt's websocket URLs would still name the production venue), "rest"
      or "websocket".
    - `user_stream`: "auto" (fills and order updates of resting orders from
      ccxt.pro's `watch_my_trades` and `watch_orders` when the exchange has
      them and its subscription is confirmed (binance), polling only while
      that stream is down; never when `urls`
      overrides the REST endpoints but no websocket one) or "off" (polling).
    - `user_stream_liveness_s`: a user-data stream that answers nothing
      (no event, no pong) for this long counts as down.
    - `unknown_orders`: "flag" (report and halt the account) or "adopt"
      (report, track and apply its fills) for an exchange order posbus did
      not place.
    - `balance_mismatch`: "halt" or "warn" when the exchange's balances
      differ from what posbus's fills explain by more than
      `balance_tolerance`.

    Raises ValueError naming the key for a value out of range.
    """

    kind: str = "simulated"
    exchange_id: str = "binance"
    api_key_env: str = "POSBUS_API_KEY"
    secret_env: str = "POSBUS_API_SECRET"  # noqa: S105 - the name of a variable, not a secret
    credentials_file: Path | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    timeout_ms: int = 10_000
    recv_window_ms: int = 5_000
    enable_rate_limit: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = 5
    breaker_cooloff_s: float = 30.0
    reconcile_interval_s: float = 300.0
    poll_interval_s: float = 1.0
    market_data: str = "auto"
    user_stream: str = "auto"
    user_stream_liveness_s: float = 30.0
    unknown_orders: str = "flag"
    balance_mismatch: str = "halt"
    balance_tolerance: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _one_of("kind", self.kind, KINDS)
        _one_of("unknown_orders", self.unknown_orders, UNKNOWN_ORDER_POLICIES)
        _one_of("balance_mismatch", self.balance_mismatch, BALANCE_MISMATCH_POLICIES)
        _one_of("market_data", self.market_data, MARKET_DATA_MODES)
        _one_of("user_stream", self.user_stream, USER_STREAM_MODES)
        if self.user_stream_liveness_s <= 0:
            raise ValueError("user_stream_liveness_s must be > 0")
        if not self.exchange_id:
            raise ValueError("exchange_id must not be empty")
        if self.timeout_ms <= 0 or self.recv_window_ms <= 0:
            raise ValueError("timeout_ms and recv_window_ms must be positive")
        if self.breaker_threshold < 1 or self.breaker_cooloff_s < 0:
            raise ValueError("breaker_threshold must be >= 1 and breaker_cooloff_s >= 0")
        if self.reconcile_interval_s < 0 or self.poll_interval_s <= 0:
            raise ValueError("reconcile_interval_s must be >= 0 and poll_interval_s > 0")
        if not self.balance_tolerance.is_finite() or self.balance_tolerance < 0:
            raise ValueError("balance_tolerance must be a finite number >= 0")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, not {value!r}")


_DEFAULT = GatewayConfig()


class GatewaySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The gateway's keys of `[exchange]` as the TOML file spells them; `gateway()` builds them.

    The retry policy's keys are flat (`retry_tries` ...) like every other key
    of the table. Defaults are GatewayConfig's; ranges are checked by it, so
    decoding a section reports them at `[exchange]`.
    """

    kind: _Text = _DEFAULT.kind
    exchange_id: _Text = _DEFAULT.exchange_id
    api_key_env: _Text = _DEFAULT.api_key_env
    secret_env: _Text = _DEFAULT.secret_env
    credentials_file: Path | None = None
    urls: dict[str, _Text] = {}
    options: dict[str, str | int | float | bool] = {}
    timeout_ms: int = _DEFAULT.timeout_ms
    recv_window_ms: int = _DEFAULT.recv_window_ms
    enable_rate_limit: bool = _DEFAULT.enable_rate_limit
    retry_tries: int = _DEFAULT.retry.tries
    retry_min_s: float = _DEFAULT.retry.min_s
    retry_max_s: float = _DEFAULT.retry.max_s
    max_retry_after_s: float = _DEFAULT.retry.max_retry_after_s
    breaker_threshold: int = _DEFAULT.breaker_threshold
    breaker_cooloff_s: float = _DEFAULT.breaker_cooloff_s
    reconcile_interval_s: float = _DEFAULT.reconcile_interval_s
    poll_interval_s: float = _DEFAULT.poll_interval_s
    market_data: _Text = _DEFAULT.market_data
    user_stream: _Text = _DEFAULT.user_stream
    user_stream_liveness_s: float = _DEFAULT.user_stream_liveness_s
    unknown_orders: _Text = _DEFAULT.unknown_orders
    balance_mismatch: _Text = _DEFAULT.balance_mismatch
    balance_tolerance: Decimal = _DEFAULT.balance_tolerance

    def __post_init__(self) -> None:
        self.gateway()

    def gateway(self) -> GatewayConfig:
        """The gateway settings these keys describe. Raises ValueError naming a key out of range."""
        return GatewayConfig(
            kind=self.kind,
            exchange_id=self.exchange_id,
            api_key_env=self.api_key_env,
            secret_env=self.secret_env,
            credentials_file=self.credentials_file,
            urls=self.urls,
            options=self.options,
            timeout_ms=self.timeout_ms,
            recv_window_ms=self.recv_window_ms,
            enable_rate_limit=self.enable_rate_limit,
            retry=RetryPolicy(
                tries=self.retry_tries,
                min_s=self.retry_min_s,
                max_s=self.retry_max_s,
                max_retry_after_s=self.max_retry_after_s,
            ),
            breaker_threshold=self.breaker_threshold,
            breaker_cooloff_s=self.breaker_cooloff_s,
            reconcile_interval_s=self.reconcile_interval_s,
            poll_interval_s=self.poll_interval_s,
            market_data=self.market_data,
            user_stream=self.user_stream,
            user_stream_liveness_s=self.user_stream_liveness_s,
            unknown_orders=self.unknown_orders,
            balance_mismatch=self.balance_mismatch,
            balance_tolerance=self.balance_tolerance,
        )


# -- credentials ------------------------------------------------------------------


class CredentialsError(ValueError):
    """Credentials are missing, or their file is unreadable or readable by others."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and secret. Never printed: repr and str are redacted."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(api_key=<redacted>, secret=<redacted>)"

    __str__ = __repr__

    def redacted(self) -> dict[str, str]:
        """What `inspect` may show: whether each part is set, never its value."""
        return {
            "api_key": "<redacted>" if self.api_key else "<unset>",
            "secret": "<redacted>" if self.secret else "<unset>",
        }


def load_credentials(
    config: GatewayConfig, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Read the credentials the config points at (the file when set, else the environment).

    Raises CredentialsError when a part is missing, when the file cannot be
    read, or when its mode lets anyone but its owner read it.
    """
    if config.credentials_file is not None:
        return _from_file(config.credentials_file)
    env = os.environ if environ is None else environ
    api_key = env.get(config.api_key_env, "")
    secret = env.get(config.secret_env, "")
    missing = [
        name
        for name, value in ((config.api_key_env, api_key), (config.secret_env, secret))
        if not value
    ]
    if missing:
        raise CredentialsError(f"environment variable(s) not set: {', '.join(missing)}")
    return Credentials(api_key, secret)


def _from_file(path: Path) -> Credentials:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialsError(f"credentials file {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"credentials file {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            "chmod 600 it"
        )
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # The parser's message may quote the file's content: never repeat it.
        raise CredentialsError(f"credentials file {path}: cannot be read as TOML") from exc
    api_key, secret = data.get("api_key"), data.get("secret")
    if not isinstance(api_key, str) or not isinstance(secret, str) or not api_key or not secret:
        raise CredentialsError(f"credentials file {path}: needs string keys api_key and secret")
    return Credentials(api_key, secret)
