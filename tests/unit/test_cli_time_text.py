"""Timestamps in the CLI's human output: ISO 8601 UTC, hand-computed."""

from __future__ import annotations

from posbus.actors.model.timestamp_text import iso_utc
from posbus.adapters.cli.time_text import moment_text

# 2026-12-04T21:18:26Z = 1796419106 s since the epoch (hand-computed:
# 20,791 days to 2026-12-04 x 86,400 s + 21 h 18 min 26 s).
SECONDS = 20_791 * 86_400 + 21 * 3600 + 18 * 60 + 26


def test_iso_utc_keeps_milliseconds_and_says_z() -> None:
    assert iso_utc(SECONDS * 10**9 + 123_456_789) == "2026-12-04T21:18:26.123Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"


def test_a_moment_ahead_says_the_seconds_until_it_rounded_up() -> None:
    now = SECONDS * 10**9
    assert moment_text(now + 1, now) == "2026-12-04T21:18:26.000Z (in 1 s)"
    assert moment_text(now + 300 * 10**9, now) == "2026-12-04T21:23:26.000Z (in 300 s)"
    assert moment_text(now - 10**9, now) == "2026-12-04T21:18:25.000Z"
