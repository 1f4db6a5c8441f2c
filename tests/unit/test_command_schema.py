"""Command declarations: strict typed arguments, typed refusals, docs generated from them."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from posbus.actors.control import CheckOrder, ExposureChanged
from posbus.actors.model.risk import OrderRequest, PositionExposure
from posbus.actors.model.side import Side
from posbus.actors.positions_schema import ORDER, ORDERS
from posbus.actors.remote import RemoteMessageError, from_command, to_command
from posbus.adapters.cli.commands import markdown, services
from posbus.bus.command_schema import Dispatcher
from posbus.bus.errors import InvalidArgument, UnknownCommand
from posbus.bus.messages import Command

ROOT = Path(__file__).resolve().parents[2]
ORDER_ARGS: dict[str, Any] = {"symbol": "BTC/USDT", "side": "buy", "qty": "0.5"}


def test_an_order_parses_into_typed_arguments_with_decimals() -> None:
    args = ORDER.parse({**ORDER_ARGS, "limit_price": "64000.5", "reduce_only": True})
    assert (args.side, args.qty, args.limit_price) == (Side.BUY, Decimal("0.5"), Decimal("64000.5"))
    assert (args.reduce_only, args.reason, args.account) == (True, "command", None)


@pytest.mark.parametrize(
    ("extra", "argument", "expected"),
    [
        ({"limit": "64000"}, "limit", "unknown; it takes account, symbol, side, qty, limit_price"),
        ({"qty": 5}, "qty", "must be decimal string > 0, got 5"),
        ({"qty": "5e-1"}, "qty", "must be decimal string > 0"),
        ({"qty": "0"}, "qty", "must be decimal string > 0"),
        ({"reduce_only": "yes"}, "reduce_only", "must be bool, got 'yes'"),
        ({"side": "BUY"}, "side", 'must be "buy" | "sell"'),
    ],
    ids=["unknown", "int-for-decimal", "exponent", "zero", "str-for-bool", "bad-enum"],
)
def test_a_refused_argument_is_named_with_what_was_expected(
    extra: dict[str, Any], argument: str, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ORDER.parse({**ORDER_ARGS, **extra})
    assert refused.value.argument == argument
    assert expected in str(refused.value)


def test_a_missing_argument_is_named_with_its_type() -> None:
    with pytest.raises(InvalidArgument, match="argument 'qty': required: decimal string > 0"):
        ORDER.parse({"symbol": "BTC/USDT", "side": "sell"})


def test_an_int_argument_is_never_taken_from_a_string() -> None:
    with pytest.raises(InvalidArgument, match=re.escape("argument 'limit': must be int 1..500")):
        ORDERS.parse({"limit": "5"})


def test_an_undeclared_command_is_refused_listing_the_declared_ones() -> None:
    (positions, *_) = services()
    dispatcher = Dispatcher(positions, [spec.route(lambda args: {}) for spec in positions.commands])
    with pytest.raises(UnknownCommand) as refused:
        dispatcher(Command("positions.buy", {}, "r1"))
    assert "known: positions.cancel, positions.inspect, positions.list" in str(refused.value)


def test_a_dispatcher_needs_a_route_for_every_declared_command() -> None:
    (positions, *_) = services()
    with pytest.raises(ValueError, match="do not match"):
        Dispatcher(positions, [ORDER.route(lambda args: {})])


def test_a_check_with_part_of_an_exposure_is_refused_naming_the_missing_part() -> None:
    request = OrderRequest("a", "BTC/USDT", Side.BUY, Decimal(1), None, "a:BTC/USDT:1", 1)
    exposure = PositionExposure(
        "a", "BTC/USDT", Decimal(0), None, None, Decimal(0), Decimal(0), "g", Decimal(1)
    )
    args = dict(to_command(CheckOrder(request, ExposureChanged(exposure, 2))).args)
    del args["exposure.group"]
    with pytest.raises(RemoteMessageError, match=re.escape("argument 'exposure.group': required")):
        from_command(Command("risk.check", args, "r1"))


@pytest.mark.parametrize(
    "spec",
    [spec for schema in services() for spec in schema.commands],
    ids=lambda spec: spec.name,
)
def test_every_example_is_a_valid_request_and_answers_declared_fields(spec: Any) -> None:
    spec.parse(spec.example.args)
    declared = set(spec.reply)
    if not any(field.startswith("(") for field in declared):
        assert set(spec.example.reply) <= declared


def test_docs_commands_md_is_generated_from_the_declarations() -> None:
    written = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert written == markdown(), (
        "docs/commands.md is stale: regenerate it with "
        "`.venv/bin/posbus commands --markdown > docs/commands.md`"
    )
