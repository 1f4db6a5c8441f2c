"""Parsers of snapshot fields shared by the position and order snapshots (pure)."""

from __future__ import annotations


def text_set(value: object) -> set[str]:
    """A JSON list of strings as a set; TypeError when it is not one.

    A snapshot's trade ids run to thousands: `str.join` checks every element
    is a string in C rather than one Python call per id.
    """
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    try:
        "".join(value)
    except TypeError:
        bad = next(item for item in value if not isinstance(item, str))
        raise TypeError(f"expected a string, got {bad!r}") from None
    return set(value)
