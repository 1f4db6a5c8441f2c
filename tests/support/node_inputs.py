"""What the node tests feed a node: the test account's risk limits and configs, quotes, intents.

One set of values for every in-process node test, so a test that needs other
values says so where it defines its own.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

from posbus.actors.model.risk import RiskLimits
from posbus.actors.model.side import Side
from posbus.actors.node import NodeConfig
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.adapters.clock import ManualClock
from posbus.bus.messages import MarketUpdate, OrderIntent

ACCOUNT = "A"
BTC = "BTC/USDT"
ETH = "ETH/USDT"

LIMITS = RiskLimits(
    daily_loss_limit=Decimal(1000),
    max_drawdown=Decimal("0.2"),
    max_leverage=Decimal(5),
    warning_fraction=Decimal("0.8"),
    warning_leverage_factor=Decimal("0.5"),
    max_group_exposure=Decimal(200_000),
    max_total_exposure=Decimal(400_000),
    max_order_notional=Decimal(60_000),
    max_orders_per_second=50,
    cooldown_s=60,
    stale_after_s=300,
)
STARTING_EQUITY = Decimal(100_000)
FAST_RESTARTS = SupervisorPolicy(max_restarts=10, period_s=60.0, backoff=Backoff(0.001, 0.01))
CONFIG = NodeConfig(ACCOUNT, LIMITS, STARTING_EQUITY, policy=FAST_RESTARTS)
"""A node of the test account that restarts crashed actors within milliseconds."""
CONFIG_NO_SNAPSHOTS = replace(CONFIG, snapshot_interval_s=None)
"""CONFIG with no periodic snapshots: the journal holds only what the actors appended."""

_intent_ids = itertools.count(1)


def quote(clock: ManualClock, symbol: str, bid: str, ask: str) -> MarketUpdate:
    """A top-of-book update stamped now."""
    return MarketUpdate(symbol, Decimal(bid), Decimal(ask), None, None, None, clock.now_ns())


def intent(
    clock: ManualClock,
    symbol: str,
    side: Side,
    qty: str,
    *,
    limit: str | None = None,
    reduce_only: bool = False,
    account: str = ACCOUNT,
) -> OrderIntent:
    """An order intent (market order unless `limit`) stamped now, with a fresh intent id."""
    return OrderIntent(
        account=account,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        limit_price=None if limit is None else Decimal(limit),
        intent_id=f"intent-{next(_intent_ids)}",
        reduce_only=reduce_only,
        reason="test",
        ts_ns=clock.now_ns(),
    )
