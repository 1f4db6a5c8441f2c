"""The dashboard shows amounts at the venue's precision, rounded half-even, never as "-0"."""

from __future__ import annotations

from decimal import Decimal

from posbus.adapters.display_precision import Precision, places_of


def test_places_of_a_tick_or_step() -> None:
    assert places_of(Decimal("0.01")) == 2
    assert places_of(Decimal("0.0001")) == 4
    assert places_of(Decimal("0.50")) == 1
    assert places_of(Decimal(5)) == 0
    assert places_of(Decimal("1E+1")) == 0


def test_prices_quantities_and_money_are_rounded_half_even_at_their_places() -> None:
    precision = Precision.of_steps(Decimal("0.01"), Decimal("0.0001"))
    assert precision.price("60507.985") == "60507.98"
    assert precision.price("60507.995") == "60508.00"
    assert precision.qty("0.1") == "0.1000"
    assert precision.qty("-3") == "-3.0000"
    assert precision.money("-6.05079900") == "-6.05"
    assert precision.money("130.480") == "130.48"
    assert precision.money("0E-8") == "0.00"


def test_a_value_that_rounds_to_zero_has_no_sign() -> None:
    assert Precision(2, 4).money("-0.004") == "0.00"


def test_an_unknown_precision_shows_every_digit_in_plain_notation() -> None:
    exact = Precision()
    assert exact.price("1.50") == "1.5"
    assert exact.qty("1E-8") == "0.00000001"
    assert exact.money("-6.05079900") == "-6.050799"


def test_a_text_that_is_not_a_number_is_shown_as_it_is() -> None:
    assert Precision(2, 4).price("n/a") == "n/a"
    assert Precision(2, 4).price("NaN") == "NaN"
