"""Order side."""

from enum import StrEnum


class Side(StrEnum):
    """The side of an order or fill, as it appears on the wire and in CSV files."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the sign a fill of this side adds to a position."""
        return 1 if self is Side.BUY else -1
