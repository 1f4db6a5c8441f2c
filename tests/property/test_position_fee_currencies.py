"""The cash-flow identity holds in the quote currency with fees in mixed currencies.

Random BTC/USDT fills pay their fee in USDT, in BTC (the base: it leaves the
balance) or in BNB (a third currency, with or without a conversion mark).
The reference is what the account holds, computed here from the raw fills in
a context that traps any rounding: the quote cash it paid and received, the
BTC it holds, the quote and converted BNB fees; compared with == (no
tolerance). Unconverted BNB fees are the one thing realized P&L leaves out,
and the position must say exactly which.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, Inexact, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.fill import Fill
from posbus.actors.model.position import Position
from posbus.actors.model.side import Side

D = Decimal
SYMBOL = "BTC/USDT"
SETTINGS = settings(max_examples=300, deadline=None)


@contextmanager
def exact() -> Iterator[None]:
    """Reference arithmetic: wide enough for these inputs, and any rounding raises."""
    with localcontext() as ctx:
        ctx.prec = 500
        ctx.traps[Inexact] = True
        yield


def _scaled(units: int, places: int) -> Decimal:
    return D(units).scaleb(-places)


_qty = st.builds(_scaled, st.integers(1, 5_000), st.integers(0, 3))
_price = st.builds(_scaled, st.integers(1, 10_000_000), st.integers(0, 4))
_fee = st.one_of(st.just(D(0)), st.builds(_scaled, st.integers(-500, 5_000), st.integers(3, 8)))
_currency = st.sampled_from(["USDT", "", "BTC", "btc", "BNB"])
_conversion = st.one_of(st.none(), st.builds(_scaled, st.integers(1, 100_000), st.integers(0, 2)))
_fill = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]), _qty, _price, _fee, _currency, _conversion
)
_fills = st.lists(_fill, min_size=1, max_size=30)
_mark = st.builds(_scaled, st.integers(1, 10_000_000), st.integers(0, 4))


def fills_of(raw: list[tuple[Side, Decimal, Decimal, Decimal, str, Decimal | None]]) -> list[Fill]:
    return [
        Fill(f"t{i}", "acc", SYMBOL, side, qty, price, fee, ccy, 1_000 + i, f"o{i}", conversion)
        for i, (side, qty, price, fee, ccy, conversion) in enumerate(raw)
    ]


@SETTINGS
@given(_fills, _mark)
def test_realized_plus_unrealized_is_what_the_account_holds_in_quote(
    raw: list[tuple[Side, Decimal, Decimal, Decimal, str, Decimal | None]], mark: Decimal
) -> None:
    """realized + unrealized(mark) == quote cash + base held * mark - quote and converted fees.

    The base held is the fills' signed quantities less every base fee, and it
    is the position's quantity.
    """
    fills = fills_of(raw)
    position = Position("acc", SYMBOL)
    for f in fills:
        assert position.apply_fill(f)

    cash = base_held = quote_fees = D(0)
    unconverted: dict[str, Decimal] = {}
    with exact():
        for f in fills:
            signed = f.qty if f.side is Side.BUY else -f.qty
            cash -= signed * f.price
            base_held += signed
            ccy = f.fee_currency.upper()
            if ccy in ("", "USDT"):
                quote_fees += f.fee
            elif ccy == "BTC":
                base_held -= f.fee
            elif f.fee_mark is not None:
                quote_fees += f.fee * f.fee_mark
            elif f.fee:
                unconverted["BNB"] = unconverted.get("BNB", D(0)) + f.fee
        expected = cash + base_held * mark - quote_fees
        actual = position.realized_pnl + position.unrealized_pnl(mark)

    assert position.qty == base_held
    assert actual == expected
    assert dict(position.unconverted_fees_by_currency) == unconverted
    unconverted_fills = sum(
        1 for f in fills if f.fee_currency == "BNB" and f.fee_mark is None and f.fee
    )
    assert position.unconverted_fees == unconverted_fills


@SETTINGS
@given(_fills)
def test_fees_by_currency_are_the_exact_sums_of_each_currency_charged(
    raw: list[tuple[Side, Decimal, Decimal, Decimal, str, Decimal | None]],
) -> None:
    """fees_by_currency[c] == sum of the non-zero fees charged in c (an empty code is USDT)."""
    fills = fills_of(raw)
    position = Position("acc", SYMBOL)
    for f in fills:
        position.apply_fill(f)

    expected: dict[str, Decimal] = {}
    with exact():
        for f in fills:
            if f.fee:
                ccy = f.fee_currency.upper() or "USDT"
                expected[ccy] = expected.get(ccy, D(0)) + f.fee
    assert dict(position.fees_by_currency) == expected
