"""The exchange client a node trades through, as the configuration says (`[exchange] kind`).

`kind = "simulated"` gives the deterministic SimulatedExchange; `kind =
"ccxt"` gives a CcxtGateway for `exchange_id` with the credentials the
config points at (environment or a 0600 file). A worker or a command builds
its client here and hands it to its `Node`; whoever builds a CcxtGateway
must `close()` it after the node stops (it owns an I/O thread).
"""

from __future__ import annotations

from posbus.actors.model.clock import Clock
from posbus.adapters.config import Config, ConfigError
from posbus.adapters.exchange.ccxt_config import CredentialsError, load_credentials
from posbus.adapters.exchange.ccxt_gateway import CcxtGateway
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange


def exchange_client(
    config: Config, *, clock: Clock, account: str | None = None
) -> SimulatedExchange | CcxtGateway:
    """The configured exchange client of `account` (default: the config's account).

    Raises ConfigError when the ccxt credentials are missing or unsafe, or
    the exchange id is unknown to ccxt.
    """
    name = account if account is not None else config.account
    settings = config.gateway
    if settings.kind != "ccxt":
        return SimulatedExchange(config.exchange, name)
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
        raise ConfigError(f"[exchange]: {exc}") from exc
