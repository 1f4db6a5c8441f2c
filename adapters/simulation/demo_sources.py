"""The seeded market and signal sources the demos run on (`posbus demo`, `posbus up --demo`)."""

from __future__ import annotations

from posbus.actors.signal_source import RandomSignalSource
from posbus.adapters.config import Config
from posbus.adapters.simulation.random_walk import RandomWalkMarket


def demo_sources(config: Config) -> tuple[RandomWalkMarket, RandomSignalSource]:
    """The random-walk market of the configured symbols and the first account's signals.

    Seeded from `[demo] seed` (the market) and seed + 1 (the signals), so a
    demo replays the same session for the same configuration.
    """
    market = demo_market(config)
    return market, demo_signals(config, market)[0]


def demo_market(config: Config) -> RandomWalkMarket:
    """The random-walk market of the configured symbols, seeded from `[demo] seed`."""
    demo = config.demo
    return RandomWalkMarket(
        {name: s.price for name, s in config.symbols.items()},
        seed=demo.seed,
        volatility=demo.volatility,
        tick=config.exchange.price_tick,
    )


def demo_signals(config: Config, market: RandomWalkMarket) -> list[RandomSignalSource]:
    """One random signal source per account, in the accounts' order, on `market`'s symbols.

    The i-th account's is seeded from `[demo] seed` + 1 + i: the first
    account's signals are those a one-account demo sends.
    """
    demo = config.demo
    return [
        RandomSignalSource(
            market.symbols,
            account=account,
            seed=demo.seed + 1 + i,
            order_qty={name: s.order_qty for name, s in config.symbols.items()},
            open_probability=demo.open_probability,
            close_probability=demo.close_probability,
        )
        for i, account in enumerate(config.accounts())
    ]
