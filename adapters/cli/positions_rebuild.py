"""`posbus positions rebuild`: recompute positions offline from a trade-history CSV.

Reads the whole file (adapters/trades_csv.py validates every row first),
applies the fills in file order to one `Position` per symbol (account
"default"), and prints per symbol: signed quantity, average entry price,
realized P&L (net of every fee), unrealized P&L at the `--mark` price, and
total fees. The P&L conventions are the Position's; this module only routes
fills and prints. Nothing is written on stdout unless the whole file and every
argument are valid; notes (duplicates, out-of-order timestamps) go to stderr.
It needs no running stack and touches nothing but the file it reads.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from posbus.actors.model.fill import Fill
from posbus.actors.model.position import Position
from posbus.adapters.cli.command import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    UsageError,
    add_command,
)
from posbus.adapters.cli.decimal_text import format_decimal
from posbus.adapters.trades_csv import ACCOUNT, TradeFileError, parse_decimal, read_trades

_DESCRIPTION = """\
Rebuild positions from a trade-history CSV export, without a running stack.

The file needs a header with the columns
  timestamp,symbol,side,qty,price,fee,fee_currency,trade_id
(any order, extra columns ignored). Fills are applied in file order to one
position per symbol; a trade id seen before for the same symbol is ignored
(the count is reported on stderr). Prints, per symbol: signed quantity
(negative = short), average entry price (0 when flat), realized P&L net of
all fees, unrealized P&L at the --mark price ("-" in the table, null in JSON,
when no mark is given), and total fees. Numbers are exact decimals, never in
exponent notation, trailing zeros dropped.

Exit status: 0 on success; 2 for a bad argument or an invalid trade file (the
message names the line and field; nothing is printed on stdout).
"""

_EXAMPLES = """\
  posbus positions rebuild --trades examples/trades.csv
  posbus positions rebuild --trades examples/trades.csv \\
      --mark BTC-USDT=64000 --mark ETH-USDT=3100 --json
"""

_MAX_IDS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class RebuiltBook:
    """The result of replaying a trade file: one Position per symbol, in first-seen order."""

    positions: Mapping[str, Position]
    fills_applied: int
    duplicates: tuple[Fill, ...]


def rebuild_positions(fills: Iterable[Fill]) -> RebuiltBook:
    """Apply `fills` in the given order to one Position per symbol (pure, no I/O).

    A fill whose trade id the symbol's Position already applied is collected
    in `duplicates` instead of being applied.
    """
    positions: dict[str, Position] = {}
    duplicates: list[Fill] = []
    applied = 0
    for fill in fills:
        position = positions.get(fill.symbol)
        if position is None:
            position = positions[fill.symbol] = Position(ACCOUNT, fill.symbol)
        if position.apply_fill(fill):
            applied += 1
        else:
            duplicates.append(fill)
    return RebuiltBook(positions=positions, fills_applied=applied, duplicates=tuple(duplicates))


def parse_mark(text: str) -> tuple[str, Decimal]:
    """Parse a `--mark SYMBOL=PRICE` value; a malformed one is an argparse usage error."""
    symbol, separator, price_text = text.partition("=")
    symbol = symbol.strip()
    if not separator:
        raise argparse.ArgumentTypeError(f"expected SYMBOL=PRICE, got {text!r}")
    if not symbol:
        raise argparse.ArgumentTypeError(f"missing symbol before '=' in {text!r}")
    try:
        price = parse_decimal(price_text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"price of {symbol}: {exc}") from None
    if price <= 0:
        raise argparse.ArgumentTypeError(f"price of {symbol} must be greater than 0: {text!r}")
    return symbol, price


def render_json(book: RebuiltBook, marks: Mapping[str, Decimal]) -> str:
    """The `--json` document: positions by symbol (sorted), every number a decimal string."""
    document = {
        "positions": {
            symbol: {
                "qty": format_decimal(position.qty),
                "avg_entry_price": format_decimal(position.avg_entry_price),
                "realized_pnl": format_decimal(position.realized_pnl),
                "unrealized_pnl": _unrealized_text(position, marks.get(symbol)),
                "fees": format_decimal(position.fees),
            }
            for symbol, position in sorted(book.positions.items())
        }
    }
    return json.dumps(document, indent=2) + "\n"


def render_table(book: RebuiltBook, marks: Mapping[str, Decimal], source: str) -> str:
    """An aligned text table, one row per symbol (sorted), and a footer with the counts."""
    header = ("SYMBOL", "QTY", "AVG ENTRY", "REALIZED P&L", "MARK", "UNREALIZED P&L", "FEES")
    rows = [
        (
            symbol,
            format_decimal(position.qty),
            format_decimal(position.avg_entry_price),
            format_decimal(position.realized_pnl),
            format_decimal(marks[symbol]) if symbol in marks else "-",
            _unrealized_text(position, marks.get(symbol)) or "-",
            format_decimal(position.fees),
        )
        for symbol, position in sorted(book.positions.items())
    ]
    if not rows:
        return f"no trades in {source}\n"
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [_table_line(row, widths) for row in (header, *rows)]
    duplicates = len(book.duplicates)
    lines.append("")
    lines.append(
        f"{book.fills_applied} fill{_plural(book.fills_applied)} from {source}, applied in file"
        f" order; {duplicates} duplicate trade id{_plural(duplicates)} ignored."
    )
    lines.append("Realized P&L is net of all fees; unrealized excludes fees.")
    if any(symbol not in marks for symbol in book.positions):
        lines.append("'-': no --mark given for the symbol.")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus positions rebuild` (main thread): read, rebuild, print."""
    source: str = args.trades
    try:
        fills = read_trades(source)
    except TradeFileError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    marks = _marks_by_symbol(args.mark)
    book = rebuild_positions(fills)
    unknown = sorted(set(marks) - set(book.positions))
    if unknown:
        known = ", ".join(sorted(book.positions)) or "none"
        raise UsageError(
            f"--mark for {', '.join(unknown)}: no trades for that symbol in {source}"
            f" (symbols in the file: {known})"
        )
    # Render everything before writing anything, so a failure leaves stdout empty.
    output = render_json(book, marks) if args.json else render_table(book, marks, source)
    for note in _notes(book, fills, source):
        print(f"posbus: {note}", file=sys.stderr)
    sys.stdout.write(output)
    return EXIT_OK


def register(subparsers: SubParsers) -> None:
    """Add `rebuild` to the `positions` group."""
    parser = add_command(
        subparsers,
        "rebuild",
        summary="rebuild positions offline from a trade-history CSV",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument(
        "--trades", required=True, metavar="FILE.csv", help="the trade-history export to replay"
    )
    parser.add_argument(
        "--mark",
        action="append",
        type=parse_mark,
        default=[],
        metavar="SYMBOL=PRICE",
        help="mark price for unrealized P&L; repeat for each symbol (price > 0)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _marks_by_symbol(marks: Sequence[tuple[str, Decimal]]) -> dict[str, Decimal]:
    by_symbol: dict[str, Decimal] = {}
    for symbol, price in marks:
        if symbol in by_symbol:
            raise UsageError(f"--mark given more than once for {symbol}")
        by_symbol[symbol] = price
    return by_symbol


def _unrealized_text(position: Position, mark: Decimal | None) -> str | None:
    return None if mark is None else format_decimal(position.unrealized_pnl(mark))


def _notes(book: RebuiltBook, fills: Sequence[Fill], source: str) -> list[str]:
    notes: list[str] = []
    if book.duplicates:
        count = len(book.duplicates)
        ids = ", ".join(fill.trade_id for fill in book.duplicates[:_MAX_IDS_SHOWN])
        more = ", ..." if count > _MAX_IDS_SHOWN else ""
        notes.append(
            f"ignored {count} duplicate trade id{_plural(count)} (already applied): {ids}{more}"
        )
    for before, after in itertools.pairwise(fills):
        if after.ts_ns < before.ts_ns:
            # Exports are often newest-first; replaying those in file order
            # gives wrong average prices, so say so rather than guess.
            notes.append(
                f"warning: timestamps in {source} are not ascending (trade {after.trade_id!r}"
                f" is earlier than {before.trade_id!r} above it); fills were applied in file order"
            )
            break
    return notes


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    first = cells[0].ljust(widths[0])
    rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
    return "  ".join((first, *rest)).rstrip()


def _plural(count: int) -> str:
    return "" if count == 1 else "s"
