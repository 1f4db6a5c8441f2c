"""Which positions worker owns a position: a stable hash of account + symbol.

Every process (gateway, positions workers, the CLI) must compute the same
owner for the same account+symbol across restarts, hosts and Python versions,
so the hash is CRC-32 of the UTF-8 bytes (never Python's salted `hash`).
Pure: no I/O, no state.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_SHARD_TEXT = re.compile(r"([0-9]+)/([0-9]+)")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count), written "I/N" on the command line."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N and N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse "I/N" (e.g. "0/2"); raises ValueError naming the text."""
        match = _SHARD_TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"shard {text!r}: expected I/N, e.g. 0/2")
        return cls(int(match.group(1)), int(match.group(2)))

    def owns(self, account: str, symbol: str) -> bool:
        """True when this shard holds the position of `account` in `symbol`."""
        return shard_of(account, symbol, self.count) == self.index

    @property
    def service(self) -> str:
        """The command service name of this shard's worker: "positions.I"."""
        return f"positions.{self.index}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(account: str, symbol: str, count: int) -> int:
    """The index of the shard (of `count`) that owns account+symbol."""
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    return zlib.crc32(f"{account}\x00{symbol}".encode()) % count
