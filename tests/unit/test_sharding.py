"""Sharding of positions across positions workers: stable, total, parseable."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.sharding import Shard, shard_of


def test_shard_of_is_crc32_of_account_nul_symbol_modulo_count() -> None:
    # crc32(b"default\x00BTC/USDT") computed by zlib, the same function on every host.
    expected = zlib.crc32(b"default\x00BTC/USDT") % 4
    assert shard_of("default", "BTC/USDT", 4) == expected


def test_one_shard_owns_everything() -> None:
    assert Shard(0, 1).owns("any", "SYM/USDT")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20), st.integers(1, 16))
def test_exactly_one_shard_owns_each_position(account: str, symbol: str, count: int) -> None:
    """Invariant: for any account+symbol and any N, exactly one of the N shards owns it."""
    owners = [i for i in range(count) if Shard(i, count).owns(account, symbol)]
    assert len(owners) == 1


def test_shard_parses_i_slash_n_and_names_its_service() -> None:
    shard = Shard.parse("1/3")
    assert (shard.index, shard.count, shard.service, str(shard)) == (1, 3, "positions.1", "1/3")


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.parse(text)
