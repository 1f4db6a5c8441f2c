"""Snapshot field parsers: a list of strings or a TypeError, never a guess."""

from __future__ import annotations

import pytest

from posbus.actors.model.snapshot_fields import text_set


def test_a_list_of_trade_ids_becomes_a_set() -> None:
    assert text_set(["T1", "T2", "T1"]) == {"T1", "T2"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("T1T2", "expected a list of strings, got str"),
        ({"T1": 1}, "expected a list of strings, got dict"),
        (["T1", 7, "T3"], "expected a string, got 7"),
        (["T1", None], "expected a string, got None"),
    ],
)
def test_anything_but_a_list_of_strings_is_refused(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        text_set(value)
