"""`posbus positions rebuild`: recompute positions offline from a trade-history CSV.

Reads the whole file (adapters/trades_csv.py validates every row first),
applies the fills in file order to one `Position` per symbol (account
"default"), and prints per symbol: signed quantity, average entry price,
realized P&L (net of every fee), unrealized P&L at the `--mark` price, and
total fees in the quote currency, with the fees per currency when some were
paid in another. A `--mark` of a pair FEECCY-QUOTE is also the conversion
mark of fees paid in FEECCY by symbols quoted in QUOTE. The P&L conventions
are the Position's (docs/accounting.md); this module only routes fills,
attaches conversion marks and prints. Nothing is written on stdout unless the whole file and every
argument are valid; notes (duplicates, out-of-order timestamps) go to stderr.
It needs no running stack and touches nothing but the file it reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posbus.actors.model.fill import Fill
from posbus.actors.model.position import Position
from posbus.actors.model.symbol_currencies import FeeKind, SymbolCurrencies
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
when no mark is given), and total fees valued in the quote currency. Numbers
are exact decimals, never in exponent notation, trailing zeros dropped.

Fees in any currency (docs/accounting.md): a fee in the symbol's base
currency (BTC on BTC-USDT) comes out of the quantity and is valued at its
fill's price; a fee in another currency (BNB) is valued at the --mark of
the pair FEECCY-QUOTE (BNB-USDT=600), the same mark for every fill. Without
that mark the fee is left out of realized P&L and reported as unconverted
(a note on stderr; "unconverted_fees" in JSON). When a position paid fees
outside its quote currency, the table adds a FEES BY CURRENCY column and
the JSON "fees_by_currency".

Exit status: 0 on success; 2 for a bad argument or an invalid trade file (the
message names the line and field; nothing is printed on stdout).
"""

_EXAMPLES = """\
  posbus positions rebuild --trades examples/trades.csv
  posbus positions rebuild --trades examples/trades.csv \\
      --mark BTC-USDT=64000 --mark ETH-USDT=3100 --json
  posbus positions rebuild --trades binance.csv --mark BNB-USDT=600
"""

_MAX_IDS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class RebuiltBook:
    """The result of replaying a trade file: one Position per symbol, in first-seen order."""

    positions: Mapping[str, Position]
    fills_applied: int
    duplicates: tuple[Fill, ...]


def with_conversion_marks(
    fills: Iterable[Fill], marks: Mapping[str, Decimal]
) -> tuple[list[Fill], set[str]]:
    """`fills`, those paying a third-currency fee carrying the mark of FEECCY-QUOTE.

    `marks` are by symbol; a mark's symbol is read as a pair (`BNB-USDT`,
    `BNB/USDT`). A fill that already has a conversion mark keeps it. Returns
    the fills and the symbols of the marks used as conversion marks.
    """
    by_pair: dict[tuple[str, str], tuple[str, Decimal]] = {}
    for symbol, price in marks.items():
        pair = SymbolCurrencies.of(symbol)
        if pair is not None:
            by_pair[(pair.base, pair.quote)] = (symbol, price)
    out: list[Fill] = []
    used: set[str] = set()
    for fill in fills:
        currencies = SymbolCurrencies.of(fill.symbol)
        found = None
        if (
            fill.fee_mark is None
            and currencies is not None
            and currencies.fee_kind(fill.fee_currency) is FeeKind.OTHER
        ):
            found = by_pair.get((fill.fee_currency.upper(), currencies.quote))
        if found is None:
            out.append(fill)
        else:
            used.add(found[0])
            out.append(dataclasses.replace(fill, fee_mark=found[1]))
    return out, used


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
            symbol: _json_position(position, marks.get(symbol))
            for symbol, position in sorted(book.positions.items())
        }
    }
    return json.dumps(document, indent=2) + "\n"


def _json_position(position: Position, mark: Decimal | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "qty": format_decimal(position.qty),
        "avg_entry_price": format_decimal(position.avg_entry_price),
        "realized_pnl": format_decimal(position.realized_pnl),
        "unrealized_pnl": _unrealized_text(position, mark),
        "fees": format_decimal(position.fees),
    }
    if _fees_outside_quote(position):
        entry["fees_by_currency"] = _amounts(position.fees_by_currency)
    if position.unconverted_fees:
        entry["unconverted_fees"] = position.unconverted_fees
        entry["unconverted_fees_by_currency"] = _amounts(position.unconverted_fees_by_currency)
    return entry


def render_table(book: RebuiltBook, marks: Mapping[str, Decimal], source: str) -> str:
    """An aligned text table, one row per symbol (sorted), and a footer with the counts."""
    by_currency = any(_fees_outside_quote(position) for position in book.positions.values())
    header: tuple[str, ...] = (
        "SYMBOL",
        "QTY",
        "AVG ENTRY",
        "REALIZED P&L",
        "MARK",
        "UNREALIZED P&L",
        "FEES",
    )
    if by_currency:
        header = (*header, "FEES BY CURRENCY")
    rows = [
        (
            symbol,
            format_decimal(position.qty),
            format_decimal(position.avg_entry_price),
            format_decimal(position.realized_pnl),
            format_decimal(marks[symbol]) if symbol in marks else "-",
            _unrealized_text(position, marks.get(symbol)) or "-",
            format_decimal(position.fees),
            *((_amounts_text(position.fees_by_currency),) if by_currency else ()),
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
    if by_currency:
        lines.append(
            "FEES are valued in the quote currency: base fees at the fill price, others at --mark."
        )
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
    fills, conversions = with_conversion_marks(fills, marks)
    book = rebuild_positions(fills)
    unknown = sorted(set(marks) - set(book.positions) - conversions)
    if unknown:
        known = ", ".join(sorted(book.positions)) or "none"
        raise UsageError(
            f"--mark for {', '.join(unknown)}: no trades for that symbol in {source}"
            f" and no fee it converts (symbols in the file: {known})"
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
        help=(
            "mark price for unrealized P&L, and of a pair FEECCY-QUOTE the conversion"
            " mark of fees paid in FEECCY; repeat for each symbol (price > 0)"
        ),
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
    for symbol, position in sorted(book.positions.items()):
        if position.unconverted_fees:
            unconverted = position.unconverted_fees_by_currency
            pairs = ", ".join(_pair_hint(symbol, currency) for currency in sorted(unconverted))
            count = position.unconverted_fees
            notes.append(
                f"warning: {symbol}: {count} fee{_plural(count)}"
                f" ({_amounts_text(unconverted)}) not in realized P&L:"
                f" no conversion mark (give --mark {pairs})"
            )
    return notes


def _fees_outside_quote(position: Position) -> bool:
    currencies = SymbolCurrencies.of(position.symbol)
    quote = {currencies.quote} if currencies is not None else set()
    return bool(set(position.fees_by_currency) - quote) or position.unconverted_fees > 0


def _amounts(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: format_decimal(amount) for currency, amount in sorted(amounts.items())}


def _amounts_text(amounts: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in _amounts(amounts).items())


def _pair_hint(symbol: str, currency: str) -> str:
    currencies = SymbolCurrencies.of(symbol)
    quote = currencies.quote if currencies is not None else "QUOTE"
    separator = "/" if "/" in symbol else "-"
    return f"{currency}{separator}{quote}=PRICE"


def _table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    first = cells[0].ljust(widths[0])
    rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
    return "  ".join((first, *rest)).rstrip()


def _plural(count: int) -> str:
    return "" if count == 1 else "s"
