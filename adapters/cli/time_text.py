"""Timestamps in the CLI's human output: ISO 8601 UTC, with the seconds still to go.

JSON output keeps the integers.
"""

from __future__ import annotations

from posbus.actors.model.timestamp_text import NS_PER_S, iso_utc


def moment_text(ts_ns: int, now_ns: int) -> str:
    """`iso_utc(ts_ns)` with the whole seconds until it, when it is still ahead of `now_ns`."""
    text = iso_utc(ts_ns)
    if ts_ns > now_ns:
        text += f" (in {-(-(ts_ns - now_ns) // NS_PER_S)} s)"
    return text
