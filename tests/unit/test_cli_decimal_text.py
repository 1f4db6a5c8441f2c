"""The CLI's one rule for writing decimals: fixed-point, exact, no exponent, no trailing zeros."""

from decimal import Decimal

import pytest

from posbus.adapters.cli.decimal_text import format_decimal


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0E-8", "0"),
        ("-0.00", "0"),
        ("0", "0"),
        ("1.50", "1.5"),
        ("1E+3", "1000"),
        ("-2.500E+2", "-250"),
        ("1.23456789", "1.23456789"),
        ("1E-12", "0.000000000001"),
        ("100", "100"),
        ("-0.1", "-0.1"),
        # more digits than the default 28-digit context: nothing is rounded
        ("1234567890.12345678901234567890123456789", "1234567890.12345678901234567890123456789"),
    ],
)
def test_decimal_is_written_fixed_point_without_trailing_zeros(value: str, text: str) -> None:
    assert format_decimal(Decimal(value)) == text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_value_cannot_be_printed(value: str) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        format_decimal(Decimal(value))
