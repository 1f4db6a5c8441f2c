"""How the CLI writes a Decimal: one rule for tables and JSON alike.

Rule: plain fixed-point notation, never an exponent; trailing zeros after the
decimal point are dropped (and the point with them); negative zero is "0".
Every digit the value has is kept, nothing is rounded:
`Decimal("0E-8")` -> "0", `Decimal("1.50")` -> "1.5", `Decimal("1E+3")` ->
"1000", `Decimal("-0.00")` -> "0", `Decimal("1.23456789")` -> "1.23456789".
"""

from decimal import Decimal


def format_decimal(value: Decimal) -> str:
    """Write `value` in the CLI's decimal rule (see the module docstring); exact, no exponent.

    Raises ValueError for NaN or infinity, which have no place in a ledger.
    """
    if not value.is_finite():
        raise ValueError(f"cannot print a non-finite ledger value: {value}")
    # format "f" is exact at any size; normalize() would round to the context precision.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
