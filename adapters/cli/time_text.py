"""Timestamps as people read them: ISO 8601 in UTC, never raw nanoseconds.

Pure formatting for the CLI's human output (JSON output keeps the integers).
"""

from __future__ import annotations

from datetime import UTC, datetime

_NS_PER_S = 1_000_000_000


def iso_utc(ts_ns: int) -> str:
    """`ts_ns` (ns since the epoch) as ISO 8601 UTC to the millisecond: 2026-12-04T21:18:26.123Z."""
    seconds, ns = divmod(ts_ns, _NS_PER_S)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment_text(ts_ns: int, now_ns: int) -> str:
    """`iso_utc(ts_ns)` with the whole seconds until it, when it is still ahead of `now_ns`."""
    text = iso_utc(ts_ns)
    if ts_ns > now_ns:
        text += f" (in {-(-(ts_ns - now_ns) // _NS_PER_S)} s)"
    return text
