"""The `posbus` dispatcher: registry, exit codes, and where errors are written."""

from __future__ import annotations

import argparse
import re

import pytest

from posbus.actors.model.errors import OrderValidationError
from posbus.adapters.cli import main as cli
from posbus.adapters.cli import positions
from posbus.adapters.cli.command import CommandError, SubParsers, UsageError, add_command


def register_probe(subparsers: SubParsers) -> None:
    """A test command: `probe --fail KIND` raises that kind of error, else exits 7."""

    def run(args: argparse.Namespace) -> int:
        if args.fail == "usage":
            raise UsageError("these flags do not go together")
        if args.fail == "command":
            raise CommandError("the thing failed", exit_code=3)
        if args.fail == "posbus":
            raise OrderValidationError("bad fill", symbol="BTC-USDT")
        print("probe ran")
        return 7

    parser = add_command(
        subparsers,
        "probe",
        summary="a probe command",
        description="Probes the dispatcher.",
        examples="  posbus probe",
        handler=run,
    )
    parser.add_argument("--fail", choices=["usage", "command", "posbus"])


@pytest.fixture
def with_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, register_probe))


@pytest.mark.usefixtures("with_probe")
def test_registered_command_runs_and_its_exit_code_is_returned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["probe"]) == 7
    assert capsys.readouterr().out == "probe ran\n"


@pytest.mark.usefixtures("with_probe")
def test_registered_command_is_listed_in_help_with_its_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--help"]) == 0
    assert re.search(r"^ +probe +a probe command$", capsys.readouterr().out, re.MULTILINE)


@pytest.mark.usefixtures("with_probe")
def test_command_error_is_one_line_on_stderr_with_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["probe", "--fail", "command"]) == 3
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "posbus: error: the thing failed\n")


@pytest.mark.usefixtures("with_probe")
def test_usage_error_shows_the_command_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["probe", "--fail", "usage"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: posbus probe [-h]")
    assert err.endswith("posbus probe: error: these flags do not go together\n")


@pytest.mark.usefixtures("with_probe")
def test_posbus_error_from_a_handler_exits_1_with_its_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["probe", "--fail", "posbus"]) == 1
    assert capsys.readouterr().err == "posbus: error: bad fill (symbol=BTC-USDT)\n"


def test_no_command_prints_help_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: posbus" in captured.err


def test_argparse_usage_error_is_returned_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["positions", "rebuild"]) == 2
    assert "the following arguments are required: --trades" in capsys.readouterr().err


def test_positions_list_action_is_pluggable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []

    def list_positions(args: argparse.Namespace) -> int:
        seen.append(args.json)
        return 0

    def register_positions(subparsers: SubParsers) -> None:
        positions.register(subparsers, list_handler=list_positions)

    monkeypatch.setattr(cli, "COMMANDS", (register_positions,))

    assert cli.main(["positions", "--json"]) == 0
    assert cli.main(["positions"]) == 0
    assert seen == [True, False]
    # the group's subcommands are still there and still win over the default action
    assert cli.main(["positions", "rebuild", "--trades", "/nonexistent/trades.csv"]) == 2
    assert "/nonexistent/trades.csv: no such file" in capsys.readouterr().err
