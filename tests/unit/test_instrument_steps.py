"""An order's quantity and limit price must sit on the venue's grid; a refusal names the nearest."""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.model.instrument_steps import InstrumentSteps

D = Decimal
STEPS = InstrumentSteps(price_tick=D("0.01"), qty_step=D("0.0001"))


def test_numbers_on_the_grid_pass() -> None:
    assert STEPS.off_grid(D("0.1"), None) is None
    assert STEPS.off_grid(D("2.0000"), D("60000.10")) is None
    assert STEPS.off_grid(D("1000000000"), D("1E+4")) is None


def test_a_quantity_off_the_step_names_the_two_nearest() -> None:
    assert STEPS.off_grid(D("0.12345"), None) == (
        "qty 0.12345 is not a multiple of the venue's quantity step 0.0001 "
        "(nearest: 0.1234 or 0.1235)"
    )


def test_a_quantity_below_one_step_names_only_the_step() -> None:
    assert STEPS.off_grid(D("0.00005"), None) == (
        "qty 0.00005 is not a multiple of the venue's quantity step 0.0001 (nearest: 0.0001)"
    )


def test_a_limit_price_off_the_tick_names_the_two_nearest() -> None:
    assert STEPS.off_grid(D("1"), D("60000.125")) == (
        "limit price 60000.125 is not a multiple of the venue's price tick 0.01 "
        "(nearest: 60000.12 or 60000.13)"
    )
