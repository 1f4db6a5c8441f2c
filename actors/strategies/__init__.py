"""Example strategies shipped with posbus, by the name `posbus backtest --strategy` knows them.

Each is a plain class implementing `posbus.actors.strategy.Strategy`, built
with keyword parameters (`--param name=value`); see each module's docstring.
"""

from __future__ import annotations

from posbus.actors.strategies.flip import Flip
from posbus.actors.strategies.ma_crossover import MovingAverageCrossover
from posbus.actors.strategies.mean_reversion import MeanReversion

BUILTIN: dict[str, type] = {
    "ma_crossover": MovingAverageCrossover,
    "mean_reversion": MeanReversion,
    "flip": Flip,
}
"""Built-in strategies by name."""
