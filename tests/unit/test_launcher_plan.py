"""Which workers a stack runs: one gateway per account, positions shards shared by all."""

from __future__ import annotations

import pytest

from posbus.actors.sharding import Shard
from posbus.adapters.config import config_from_dict
from posbus.adapters.launcher_layout import plan


def test_one_account_keeps_the_worker_names_of_a_single_account_stack() -> None:
    specs = plan(["default"], 2, demo=True)
    assert [(s.name, s.role) for s in specs] == [
        ("broker", "broker"),
        ("risk", "risk"),
        ("gateway.default", "gateway"),
        ("positions.0", "positions"),
        ("positions.1", "positions"),
        ("feed", "feed"),
    ]
    assert [s.shard for s in specs if s.role == "positions"] == [Shard(0, 2), Shard(1, 2)]


def test_each_account_gets_its_own_gateway_in_the_config_order() -> None:
    specs = plan(["main", "hedge", "binance-1"], 2, demo=False)
    gateways = [s for s in specs if s.role == "gateway"]
    assert [(s.name, s.account, s.service) for s in gateways] == [
        ("gateway.main", "main", "gateway.main"),
        ("gateway.hedge", "hedge", "gateway.hedge"),
        ("gateway.binance-1", "binance-1", "gateway.binance-1"),
    ]
    # The positions shards are the stack's, not an account's: as many as configured.
    positions = [s for s in specs if s.role == "positions"]
    assert [(s.name, s.account) for s in positions] == [
        ("positions.0", None),
        ("positions.1", None),
    ]
    assert [s.name for s in specs][:2] == ["broker", "risk"]


def test_the_plan_of_a_config_follows_its_accounts() -> None:
    config = config_from_dict(
        {
            "accounts": {"b": {}, "a": {"exchange": {"kind": "ccxt"}}},
            "workers": {"position_shards": 1},
        }
    )
    names = [s.name for s in plan(list(config.accounts()), 1, demo=False)]
    assert names == ["broker", "risk", "gateway.b", "gateway.a", "positions.0"]
    legacy = config_from_dict({"account": "desk-1"})
    assert [s.name for s in plan(list(legacy.accounts()), 1, demo=False)] == [
        "broker",
        "risk",
        "gateway.desk-1",
        "positions.0",
    ]


def test_no_account_or_one_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one account"):
        plan([], 1, demo=False)
    with pytest.raises(ValueError, match="named twice"):
        plan(["a", "a"], 1, demo=False)
