"""The exchange client an account trades through, as its configuration says (`kind`).

`kind = "simulated"` gives the deterministic SimulatedExchange; `kind =
"ccxt"` gives a CcxtGateway for `exchange_id` with the credentials the
account's exchange table points at (environment or a 0600 file). A worker
or a command builds its client here and hands it to its `Node` or gateway
worker; whoever builds a CcxtGateway must `close()` it after the node stops
(it owns an I/O thread).
"""

from __future__ import annotations

from posbus.actors.model.clock import Clock
from posbus.adapters.config import Config, ConfigError
from posbus.adapters.exchange.ccxt_config import CredentialsError, load_credentials
from posbus.adapters.exchange.ccxt_gateway import CcxtGateway
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange


def exchange_client(
    config: Config, *, clock: Clock, account: str | None = None, incarnation: str = ""
) -> SimulatedExchange | CcxtGateway:
    """The configured exchange client of `account` (default: the config's first account).

    `incarnation` names this client's process in a simulated venue's order and
    trade ids, so a venue restarted with its gateway repeats none.

    Raises ConfigError for an account the configuration does not have, when
    the ccxt credentials are missing or unsafe, or the exchange id is
    unknown to ccxt.
    """
    accounts = config.accounts()
    name = account if account is not None else config.account
    if name not in accounts:
        raise ConfigError(f"unknown account {name!r} (accounts: {', '.join(accounts)})")
    chosen = accounts[name]
    settings = chosen.gateway
    if settings.kind != "ccxt":
        return SimulatedExchange(chosen.exchange, name, incarnation=incarnation)
    table = "[exchange]" if config.account_configs is None else f"[accounts.{name}.exchange]"
    try:
        credentials = load_credentials(settings)
        return CcxtGateway(
            settings,
            account=name,
            credentials=credentials,
            clock=clock,
            symbols=tuple(config.symbols),
        )
    except (CredentialsError, ValueError) as exc:
        raise ConfigError(f"{table}: {exc}") from exc
