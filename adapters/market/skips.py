"""Rows a replay leaves out on purpose, counted by reason, with the first of each named.

A replay never drops a row silently: a row that cannot be traded on (a
missing or NaN price, a crossed quote) is skipped, counted here under its
reason, and the first row skipped for each reason is kept so the report can
name it. Anything else wrong with a row is a `MarketDataError`.
"""

from __future__ import annotations

from collections import Counter

MISSING_PRICE = "missing_price"
"""A price cell is empty or NaN."""
CROSSED_QUOTE = "crossed_quote"
"""A quote whose bid is above its ask."""


class SkippedRows:
    """Counts skipped rows by reason; keeps where the first one of each reason was."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def skip(self, reason: str, where: str) -> None:
        """Count one skipped row at `where` for `reason`."""
        self.counts[reason] += 1
        self.first.setdefault(reason, where)

    @property
    def total(self) -> int:
        """All rows skipped, whatever the reason."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, dict[str, object]]:
        """{reason: {"rows": count, "first": where}}, sorted by reason."""
        return {
            reason: {"rows": self.counts[reason], "first": self.first[reason]}
            for reason in sorted(self.counts)
        }
