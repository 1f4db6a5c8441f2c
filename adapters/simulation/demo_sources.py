"""The seeded market and signal source both demos run on (`posbus demo`, `posbus up --demo`)."""

from __future__ import annotations

from posbus.actors.signal_source import RandomSignalSource
from posbus.adapters.config import Config
from posbus.adapters.simulation.random_walk import RandomWalkMarket


def demo_sources(config: Config) -> tuple[RandomWalkMarket, RandomSignalSource]:
    """The random-walk market of the configured symbols and the random signals on it.

    Seeded from `[demo] seed` (the market) and seed + 1 (the signals), so a
    demo replays the same session for the same configuration.
    """
    demo = config.demo
    market = RandomWalkMarket(
        {name: s.price for name, s in config.symbols.items()},
        seed=demo.seed,
        volatility=demo.volatility,
        tick=config.exchange.price_tick,
    )
    signals = RandomSignalSource(
        market.symbols,
        account=config.account,
        seed=demo.seed + 1,
        order_qty={name: s.order_qty for name, s in config.symbols.items()},
        open_probability=demo.open_probability,
        close_probability=demo.close_probability,
    )
    return market, signals
