"""Values of market data files: timestamps and prices, parsed exactly.

- A timestamp is an integer epoch or an ISO 8601 date-time. The unit of an
  integer epoch follows from its size: at least 10^17 is nanoseconds, 10^14
  microseconds, 10^11 milliseconds, otherwise seconds (any date after 1973
  reads right). ISO 8601 keeps up to 9 fractional digits exactly; without an
  offset it is UTC. Parquet timestamp columns are read in their own unit.
- A price or size is a decimal number. CSV text is parsed exactly; a Parquet
  float goes through its shortest repr (0.1 means Decimal("0.1")), so what
  was written is what is read. An empty cell or NaN is *missing* (None), not
  an error: the reader decides whether a row without it is skipped. Any other
  text that is not a finite number is an error.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_8601 = re.compile(
    r"(?P<head>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
CACHE_LIMIT = 65_536
"""Most prices a parse cache keeps (it is emptied when full)."""
_MISSING = frozenset(("", "nan", "NaN", "NAN", "null", "NULL", "None"))


def epoch_to_ns(value: int) -> int:
    """An integer epoch in s, ms, us or ns (told apart by size) as ns. Raises ValueError if < 0."""
    if value < 0:
        raise ValueError(f"a timestamp before 1970: {value}")
    if value >= 10**17:
        return value
    if value >= 10**14:
        return value * 1_000
    if value >= 10**11:
        return value * 1_000_000
    return value * _NS_PER_S


def parse_timestamp(value: object) -> int:
    """A timestamp cell (int, or text: integer epoch or ISO 8601) as ns since the epoch.

    Raises ValueError naming what was found.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return epoch_to_ns(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        return (delta // timedelta(microseconds=1)) * 1_000
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.isdigit():
        return epoch_to_ns(int(text))
    match = _ISO_8601.fullmatch(text)
    if match is None:
        raise ValueError(f"not an epoch integer or ISO 8601 timestamp: {value!r}")
    tz = match["tz"]
    offset = "+00:00" if tz is None or tz in "Zz" else tz
    try:
        moment = datetime.fromisoformat(match["head"].replace("t", "T") + offset)
    except ValueError:
        raise ValueError(f"not a valid date and time: {value!r}") from None
    whole_seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return whole_seconds * _NS_PER_S + int((match["frac"] or "").ljust(9, "0"))


def parse_number(value: object, cache: dict[str, Decimal] | None = None) -> Decimal | None:
    """A price or size cell as an exact Decimal; None when missing (empty or NaN).

    `cache` (text -> Decimal) makes repeated prices cheap. Raises ValueError
    for text that is not a number and for infinities.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if cache is not None:
            hit = cache.get(value)
            if hit is not None:
                return hit
        text = value.strip()
        if text in _MISSING:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
        if number.is_nan():
            return None
        if not number.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        if cache is not None:
            if len(cache) >= CACHE_LIMIT:
                # Bounded: a long replay of ever new prices must not grow it forever.
                cache.clear()
            cache[value] = number
        return number
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return value
    raise ValueError(f"not a number: {value!r}")
