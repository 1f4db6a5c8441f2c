"""Timestamps as people read them: ISO 8601 in UTC, never raw nanoseconds.

For reasons and messages an operator reads; values and JSON keep the integer
ns. Pure: converts the number it is given, never reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

NS_PER_S = 1_000_000_000


def iso_utc(ts_ns: int) -> str:
    """`ts_ns` (ns since the epoch) as ISO 8601 UTC to the millisecond: 2026-12-04T21:18:26.123Z."""
    seconds, ns = divmod(ts_ns, NS_PER_S)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_utc_or_dash(ts_ns: int | None) -> str:
    """`iso_utc(ts_ns)`, or "-" when there is no such moment."""
    return "-" if ts_ns is None else iso_utc(ts_ns)
