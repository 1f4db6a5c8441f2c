"""The exposure book: aggregates kept by deltas are what a recount of the positions gives."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.risk_book import ExposureBook
from posbus.actors.model.risk_exposure import PositionExposure

D = Decimal
T0 = 1_704_067_200_000_000_000


def _exposure(
    symbol: str,
    qty: str,
    mark: str | None = "100",
    *,
    account: str = "a",
    realized: str = "0",
    unrealized: str = "0",
    group: str = "crypto",
    correlation: str = "1",
    mark_ts: int = T0,
) -> PositionExposure:
    return PositionExposure(
        account,
        symbol,
        D(qty),
        None if mark is None else D(mark),
        None if mark is None else mark_ts,
        D(realized),
        D(unrealized),
        group,
        D(correlation),
    )


_told = st.builds(
    _exposure,
    st.sampled_from(["BTC", "ETH", "SOL"]),
    st.sampled_from(["0", "1.5", "-2", "0.25"]),
    st.sampled_from(["100", "99.5", "250.125", None]),
    account=st.sampled_from(["a", "b"]),
    realized=st.sampled_from(["0", "-12.5", "40"]),
    unrealized=st.sampled_from(["0", "3.25", "-7"]),
    group=st.sampled_from(["crypto", "alt"]),
    correlation=st.sampled_from(["1", "0.5", "-0.8"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_told, min_size=1, max_size=30))
def test_every_aggregate_after_any_replacements_is_the_recount_of_the_positions(
    told: list[PositionExposure],
) -> None:
    book = ExposureBook(D(10_000))
    for exp in told:
        book.apply(exp)
    held = book.positions()
    marked = [p for p in held if p.mark is not None]
    assert book.equity == D(10_000) + sum(p.realized_pnl + p.unrealized_pnl for p in held)
    assert book.gross == sum(abs(p.qty * p.mark) for p in marked if p.mark is not None)
    nets = {p.group: D(0) for p in held}
    for p in marked:
        assert p.mark is not None
        nets[p.group] += p.qty * p.mark * p.correlation
    assert book.total_net == sum(nets.values())
    assert book.group_nets() == sorted(nets.items())
    assert book.open_count == sum(1 for p in held if p.qty)


def test_a_group_is_forgotten_when_its_last_position_moves_to_another() -> None:
    book = ExposureBook(D(10_000))
    book.apply(_exposure("SOL", "2", group="alt"))
    book.apply(_exposure("SOL", "2", group="crypto"))
    assert book.group_nets() == [("crypto", D(200))]
    assert book.group_net("alt") == 0


def test_an_open_position_without_a_mark_adds_nothing_and_is_the_stalest() -> None:
    book = ExposureBook(D(10_000))
    book.apply(_exposure("BTC", "1", mark_ts=T0 - 5))
    book.apply(_exposure("ETH", "3", None))
    assert book.gross == D(100)
    oldest = book.oldest_open()
    assert oldest is not None
    assert (oldest[2], oldest[3]) == ("a", "ETH")


def test_repricing_moves_unrealized_pnl_by_qty_times_the_mark_move() -> None:
    book = ExposureBook(D(10_000))
    book.apply(_exposure("BTC", "2", "100", unrealized="5"))
    book.apply(_exposure("BTC", "-1", "100", account="b"))
    info = book.symbols.get("BTC")
    assert info is not None
    info.mark, info.mark_ts_ns = D("103.5"), T0 + 1
    book.reprice("BTC")
    long, short = book.position(("a", "BTC")), book.position(("b", "BTC"))
    assert long is not None and short is not None
    assert (long.unrealized_pnl, short.unrealized_pnl) == (D(12), D("-3.5"))
    assert book.equity == D("10008.5")
    assert book.gross == D("310.5")
