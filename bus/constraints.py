"""Field constraints of the wire schema, and the decimal text form.

Every message constructor calls these checks, so a message that exists in
memory is one the wire accepts; the decoder relies on that and only converts
the fields whose wire form differs from their Python form (decimals, enums).
Checks compare exact types (`type(v) is int`): a bool is not an int and a
float is never money. Each failure is a WireError naming the field.

Pure: no I/O, no clocks.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

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
# Nesting of a reply's result: the result map itself is depth 1.
MAX_RESULT_DEPTH = 8

# ASCII digits only: Decimal() alone would also take "1_000", " 1", "1e9",
# "NaN", "Infinity" and non-ASCII digits, none of which another language's
# parser is sure to read the same way.
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_match_decimal = _DECIMAL_TEXT.fullmatch

# Decimal against a Decimal constant: an int would be converted on every check.
_ZERO = Decimal(0)


def show(value: object) -> str:
    """A short repr of a rejected value for an error message (never the whole of a huge one)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, problem: str, value: object) -> WireError:
    return WireError(f"{where}: {problem}, got {show(value)}", field=where)


# -- strings ------------------------------------------------------------------


def check_id(value: object, where: str) -> None:
    """An identifier: a non-empty str of at most MAX_ID_LEN characters."""
    if type(value) is not str or not 0 < len(value) <= MAX_ID_LEN:
        raise _fail(where, f"must be a non-empty str of at most {MAX_ID_LEN} chars", value)


def check_optional_id(value: object, where: str) -> None:
    """None or an identifier (see check_id)."""
    if value is not None:
        check_id(value, where)


def check_text(value: object, where: str) -> None:
    """Free text: a str, possibly empty, of at most MAX_TEXT_LEN characters."""
    if type(value) is not str or len(value) > MAX_TEXT_LEN:
        raise _fail(where, f"must be a str of at most {MAX_TEXT_LEN} chars", value)


# -- integers and booleans ----------------------------------------------------


def check_non_negative_int64(value: object, where: str) -> None:
    """A timestamp (ns since the epoch) or a sequence number: an int in 0..2**63-1, not a bool."""
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise _fail(where, "must be an int in 0..2**63-1", value)


def check_bool(value: object, where: str) -> None:
    """A real bool: 0 and 1 are not booleans on this wire."""
    if type(value) is not bool:
        raise _fail(where, "must be a bool", value)


def check_member(value: object, cls: type, where: str) -> None:
    """A member of the enum `cls` (Side, Liquidity); a plain str is refused."""
    if not isinstance(value, cls):
        raise _fail(where, f"must be a {cls.__name__}", value)


# -- decimals -----------------------------------------------------------------


def check_positive(value: object, where: str) -> None:
    """A finite Decimal > 0: a quantity or a price."""
    if type(value) is not Decimal or not value.is_finite() or value <= _ZERO:
        raise _fail(where, "must be a finite Decimal > 0", value)


def check_non_negative(value: object, where: str) -> None:
    """A finite Decimal >= 0: a displayed size, which may be zero on an empty book side."""
    if type(value) is not Decimal or not value.is_finite() or value < _ZERO:
        raise _fail(where, "must be a finite Decimal >= 0", value)


def check_finite(value: object, where: str) -> None:
    """A finite Decimal of any sign: a fee (negative for a rebate)."""
    if type(value) is not Decimal or not value.is_finite():
        raise _fail(where, "must be a finite Decimal", value)


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


# -- maps ---------------------------------------------------------------------


def _check_map(value: object, where: str) -> dict[Any, Any]:
    if type(value) is not dict or len(value) > MAX_MAP_ENTRIES:
        raise _fail(where, f"must be a map of at most {MAX_MAP_ENTRIES} entries", value)
    for key in value:
        check_id(key, f"{where} key")
    return value


def check_decimal_strings(value: object, where: str) -> None:
    """A map of identifier -> decimal text: the numbers of a risk event, exact."""
    for key, item in _check_map(value, where).items():
        if type(item) is not str or not is_decimal_text(item):
            raise _fail(f"{where}[{key!r}]", "must be a plain decimal str", item)


def check_command_args(value: object, where: str) -> None:
    """A map of identifier -> str | int64 | bool | None | list[str]: a command's arguments."""
    for key, item in _check_map(value, where).items():
        item_where = f"{where}[{key!r}]"
        kind = type(item)
        if item is None or kind is bool:
            continue
        if kind is str:
            check_text(item, item_where)
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise _fail(item_where, "must be an int64", item)
        elif kind is list:
            if len(item) > MAX_LIST_ITEMS:
                raise _fail(item_where, f"must be a list of at most {MAX_LIST_ITEMS} items", item)
            for index, element in enumerate(item):
                check_text(element, f"{item_where}[{index}]")
        else:
            raise _fail(item_where, "must be a str, int, bool, None or list of str", item)


def check_result(value: object, where: str) -> None:
    """A reply's result: a JSON-like map (str, int64, bool, None, list, map with str keys).

    No floats: numbers that are money travel as decimal strings. Nesting is
    bounded by MAX_RESULT_DEPTH, the result map itself being depth 1.
    """
    if type(value) is not dict:
        raise _fail(where, "must be a map", value)
    _check_json(value, where, 1)


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
        if depth > MAX_RESULT_DEPTH:
            raise WireError(f"{where}: nested deeper than {MAX_RESULT_DEPTH}", field=where)
        for index, element in enumerate(value):
            _check_json(element, f"{where}[{index}]", depth + 1)
    elif type(value) is dict:
        if depth > MAX_RESULT_DEPTH:
            raise WireError(f"{where}: nested deeper than {MAX_RESULT_DEPTH}", field=where)
        for key, element in value.items():
            check_id(key, f"{where} key")
            _check_json(element, f"{where}[{key!r}]", depth + 1)
    else:
        raise _fail(where, "must be a str, int, bool, None, list or map", value)


_ERROR_KEYS = frozenset({"type", "message", "transient"})


def check_reply_error(value: object, where: str) -> None:
    """A failed reply's error: exactly {"type": id, "message": text, "transient": bool}."""
    if type(value) is not dict or value.keys() != _ERROR_KEYS:
        raise _fail(where, "must be a map with exactly the keys type, message, transient", value)
    check_id(value["type"], f"{where}['type']")
    check_text(value["message"], f"{where}['message']")
    check_bool(value["transient"], f"{where}['transient']")
