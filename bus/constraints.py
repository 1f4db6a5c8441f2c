"""The field types of the wire schema, each declared once, and the decimal text form.

A message field's annotation is its constraint: `Id`, `Text`, `Uint63`,
`Positive`... are `typing.Annotated` aliases carrying a `msgspec.Meta` (or,
for decimals, a `DecimalRule`), which the decoder enforces on untrusted
bytes and bus/schema.py enforces on in-process construction. Limits
(lengths, ranges, nesting) live here and nowhere else.

Pure: no I/O, no clocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from msgspec import Meta

from posbus.bus.wire_error import WireError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Identifiers: ids, symbols, accounts, senders, names, currencies, dict keys.
MAX_ID_LEN = 256
# Human text: reasons, error messages, command argument strings.
MAX_TEXT_LEN = 4096
# Strings inside a reply's result (tables, listings) may be longer.
MAX_RESULT_STR_LEN = 65_536
# A plain decimal of 64 characters holds any price or quantity a desk meets
# (18 decimals plus 45 integer digits) and bounds Decimal arithmetic cost.
MAX_DECIMAL_LEN = 64
# Entries of a risk event's values or a command's args; items of an args list.
MAX_MAP_ENTRIES = 256
MAX_LIST_ITEMS = 4096
# Items of any array or map inside a reply's result.
MAX_CONTAINER_ITEMS = 65_536
# Nesting of a reply's result: the result map itself is depth 1.
MAX_RESULT_DEPTH = 8

# -- strings and integers: msgspec enforces these on decode ----------------------

Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_ID_LEN,
        description=f"a non-empty str of at most {MAX_ID_LEN} chars",
    ),
]
Text = Annotated[
    str, Meta(max_length=MAX_TEXT_LEN, description=f"a str of at most {MAX_TEXT_LEN} chars")
]
# A timestamp (ns since the epoch) or a sequence number.
Uint63 = Annotated[int, Meta(ge=0, le=INT64_MAX, description="an int in 0..2**63-1")]
Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX, description="an int64")]

# -- decimals ------------------------------------------------------------------------

# ASCII digits only: Decimal() alone would also take "1_000", " 1", "1e9",
# "NaN", "Infinity" and non-ASCII digits, none of which another language's
# parser is sure to read the same way. msgspec applies a pattern with
# re.search, hence the anchors; \Z, unlike $, refuses a trailing newline.
_DIGITS = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_DECIMAL_TEXT = re.compile(f"-?{_DIGITS}")
_match_decimal = _DECIMAL_TEXT.fullmatch
_ZERO = Decimal(0)  # a Decimal constant: an int would be converted on every check


@dataclass(frozen=True, slots=True)
class DecimalRule:
    """How a Decimal field travels: as plain decimal text matching `pattern`, with a sign rule.

    `description` completes "must be ..." in errors; `accepts` is the
    in-process check of a value, the same rule as the pattern: a finite
    Decimal (exactly: not a float, an int or a subclass) on the right side of 0.
    """

    description: str
    pattern: str
    accepts: Callable[[object], bool]


def _finite(value: object) -> bool:
    return type(value) is Decimal and value.is_finite()


def _positive(value: object) -> bool:
    return type(value) is Decimal and value.is_finite() and value > _ZERO


def _non_negative(value: object) -> bool:
    return type(value) is Decimal and value.is_finite() and value >= _ZERO


POSITIVE = DecimalRule(
    "a finite Decimal > 0",
    rf"^(?!0(?:\.0+)?\Z){_DIGITS}\Z",  # not signed, not all zeros
    _positive,
)
NON_NEGATIVE = DecimalRule(
    "a finite Decimal >= 0",
    rf"^(?:-?0(?:\.0+)?|{_DIGITS})\Z",  # "-0" is zero, as Decimal reads it
    _non_negative,
)
FINITE = DecimalRule("a finite Decimal", rf"^-?{_DIGITS}\Z", _finite)

# A quantity or a price; a displayed size, which may be zero on an empty book
# side; a fee (negative for a rebate) or any signed amount.
Positive = Annotated[Decimal, POSITIVE]
NonNegative = Annotated[Decimal, NON_NEGATIVE]
Signed = Annotated[Decimal, FINITE]

# Exact numbers that stay text in Python, such as a risk event's values.
DecimalText = Annotated[
    str,
    Meta(
        pattern=FINITE.pattern,
        max_length=MAX_DECIMAL_LEN,
        description=f"a plain decimal str of at most {MAX_DECIMAL_LEN} chars",
    ),
]


def wire_text(rule: DecimalRule) -> Any:
    """The msgspec type of a decimal field on the wire: a str matching the rule's pattern."""
    return Annotated[str, Meta(pattern=rule.pattern, max_length=MAX_DECIMAL_LEN)]


# -- maps ---------------------------------------------------------------------------

DecimalStrings = Annotated[
    dict[Id, DecimalText],
    Meta(max_length=MAX_MAP_ENTRIES, description=f"a map of at most {MAX_MAP_ENTRIES} entries"),
]
CommandArg = Text | Int64 | bool | None | Annotated[list[Text], Meta(max_length=MAX_LIST_ITEMS)]
CommandArgs = Annotated[
    dict[Id, CommandArg],
    Meta(max_length=MAX_MAP_ENTRIES, description=f"a map of at most {MAX_MAP_ENTRIES} entries"),
]
# A reply's result: its keys are typed here, its values by check_result.
Result = dict[Id, Any]


def show(value: object) -> str:
    """A short repr of a rejected value for an error message (never the whole of a huge one)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, problem: str, value: object) -> WireError:
    return WireError(f"{where}: {problem}, got {show(value)}", field=where)


def format_decimal(value: Decimal, where: str) -> str:
    """The wire text of a finite Decimal: plain notation, no exponent, at most MAX_DECIMAL_LEN.

    Raises WireError when the plain form is too long (1E+100 needs 101 chars).
    """
    text = str(value)
    if "E" in text:
        # str() switches to scientific notation for large exponents or many
        # leading zeros; the wire only has plain notation.
        text = format(value, "f")
    if len(text) > MAX_DECIMAL_LEN:
        raise WireError(
            f"{where}: {show(value)} needs {len(text)} chars in plain notation, "
            f"the wire allows {MAX_DECIMAL_LEN}",
            field=where,
        )
    return text


def parse_decimal(value: object, where: str) -> Decimal:
    """The Decimal of a wire text ``-?(0|[1-9][0-9]*)(\\.[0-9]+)?`` of at most MAX_DECIMAL_LEN."""
    if type(value) is str and len(value) <= MAX_DECIMAL_LEN:
        # Fast path, about twice as fast as the pattern: when the text is
        # exactly Decimal's own str() of a finite value without exponent, it
        # is in the grammar (str() never writes "+", "_", spaces, leading
        # zeros or non-ASCII digits). Anything else, such as "0.0000001"
        # whose str() is "1E-7", is judged by the pattern.
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is not None:
            if str(number) == value and number.is_finite() and "E" not in value:
                return number
            if _match_decimal(value) is not None:
                return number
    raise _fail(where, f"must be a plain decimal str of at most {MAX_DECIMAL_LEN} chars", value)


def parse_optional_decimal(value: object, where: str) -> Decimal | None:
    """None (msgpack nil) or a decimal text (see parse_decimal)."""
    return None if value is None else parse_decimal(value, where)


def is_decimal_text(value: str) -> bool:
    """True when `value` is a decimal in wire text form (see parse_decimal)."""
    return len(value) <= MAX_DECIMAL_LEN and _match_decimal(value) is not None


# -- a reply's result: JSON-like values, which no static type describes ------------


def check_result(value: object, where: str) -> None:
    """A reply's result: a JSON-like map (str, int64, bool, None, list, map with str keys).

    No floats: numbers that are money travel as decimal strings. Nesting is
    bounded by MAX_RESULT_DEPTH, the result map itself being depth 1, and
    every array or map by MAX_CONTAINER_ITEMS.
    """
    if type(value) is not dict:
        raise _fail(where, "must be a map", value)
    _check_json(value, where, 1)


def _check_container(value: list[Any] | dict[Any, Any], where: str, depth: int) -> None:
    if depth > MAX_RESULT_DEPTH:
        raise WireError(f"{where}: nested deeper than {MAX_RESULT_DEPTH}", field=where)
    if len(value) > MAX_CONTAINER_ITEMS:
        raise _fail(where, f"must hold at most {MAX_CONTAINER_ITEMS} items", value)


def _check_json(value: object, where: str, depth: int) -> None:
    if value is None or type(value) is bool:
        return
    if type(value) is str:
        if len(value) > MAX_RESULT_STR_LEN:
            raise _fail(where, f"must be a str of at most {MAX_RESULT_STR_LEN} chars", value)
    elif type(value) is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(where, "must be an int64", value)
    elif type(value) is list:
        _check_container(value, where, depth)
        for index, element in enumerate(value):
            _check_json(element, f"{where}[{index}]", depth + 1)
    elif type(value) is dict:
        _check_container(value, where, depth)
        for key, element in value.items():
            if type(key) is not str or not 0 < len(key) <= MAX_ID_LEN:
                raise _fail(f"{where} key", f"must be an id of at most {MAX_ID_LEN} chars", key)
            _check_json(element, f"{where}[{key!r}]", depth + 1)
    else:
        raise _fail(where, "must be a str, int, bool, None, list or map", value)
