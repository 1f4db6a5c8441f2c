"""`posbus journal verify | stats | export` on real SQLite journals, sound and damaged."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from journal_backends import fast_commit, sqlite_backend

from posbus.actors.delivery import Outbox
from posbus.actors.model.side import Side
from posbus.adapters.cli.main import main
from posbus.adapters.clock import ManualClock
from posbus.bus.messages import OrderIntent

T0 = 1_700_000_000_000_000_000
BTC = "position/A/BTC/USDT"


def intent(qty: str) -> OrderIntent:
    return OrderIntent(
        account="A",
        symbol="BTC/USDT",
        side=Side.BUY,
        qty=Decimal(qty),
        limit_price=Decimal("50000.10"),
        intent_id=f"i-{qty}",
        reduce_only=False,
        reason="cli test",
        ts_ns=T0,
    )


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    """A journal with 3 intents on one stream, 1 on another, and a snapshot."""
    backend = sqlite_backend(tmp_path / "journal.sqlite")
    journal = backend.open(commit=fast_commit())
    outbox = Outbox(journal, "cli-test", ManualClock(T0))
    for qty in ("0.1", "0.2", "0.3"):
        outbox.append(BTC, intent(qty))
    outbox.append("position/A/ETH/USDT", intent("2"))
    journal.save_snapshot(BTC, 3, b'{"kind":"position","schema":1,"state":{}}')
    journal.close()
    return tmp_path / "journal.sqlite"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_of_a_sound_journal_exits_0(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "journal", "verify", "--path", str(journal_file))
    assert code == 0
    assert f"{BTC}: 3 records, last seq 3, snapshots [3]: ok" in out
    assert out.rstrip().endswith("2 streams, sound")


def test_verify_names_the_stream_and_seq_of_a_flipped_byte_and_exits_1(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = sqlite_backend(journal_file)
    backend.overwrite_payload(BTC, 2, b"\x96" + b"x" * 20)
    code, out, _ = run(capsys, "journal", "verify", "--path", str(journal_file), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["problems"] == [{"stream": BTC, "seq": 2, "problem": "checksum mismatch"}]


def test_verify_reports_a_damaged_snapshot_and_a_missing_record(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = sqlite_backend(journal_file)
    backend.overwrite_snapshot(BTC, 3, b'{"kind":"position","schema":1,"state":{"x":1}}')
    backend.delete_record(BTC, 2)
    code, out, _ = run(capsys, "journal", "verify", "--path", str(journal_file), "--stream", BTC)
    assert code == 1
    assert f"PROBLEM journal stream {BTC!r} at seq 2: sequence gap: seq 2 missing" in out
    assert f"PROBLEM journal stream {BTC!r} at seq 3: snapshot at seq 3: checksum mismatch" in out


def test_verify_of_a_truncated_file_reports_the_damage_and_exits_1(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(journal_file, "r+b") as fh:
        fh.truncate(os.path.getsize(journal_file) - 4096)
    code, out, _ = run(capsys, "journal", "verify", "--path", str(journal_file))
    assert code == 1
    assert "PROBLEM journal storage:" in out
    assert "malformed" in out


def test_export_decodes_every_record_with_exact_decimals(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "journal", "export", "--path", str(journal_file), "--stream", BTC, "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["problems"] == 0
    records = document["streams"][BTC]["records"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    first = records[0]
    assert (first["type"], first["sender"], first["checksum_ok"]) == (
        "OrderIntent",
        "cli-test",
        True,
    )
    assert first["message"]["qty"] == "0.1"
    assert first["message"]["limit_price"] == "50000.1"
    assert first["message"]["side"] == "buy"
    assert document["streams"][BTC]["snapshots"][0]["seq"] == 3


def test_export_without_json_is_a_usage_error(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "journal", "export", "--path", str(journal_file))
    assert code == 2
    assert out == ""
    assert "--json" in err


def test_stats_counts_records_and_snapshots_per_stream(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "journal", "stats", "--path", str(journal_file), "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["totals"]["streams"] == 2
    assert stats["totals"]["records"] == 4
    assert stats["totals"]["snapshots"] == 1
    assert stats["streams"][BTC]["last_seq"] == 3
    assert stats["streams"][BTC]["snapshots"] == [3]


def test_an_unknown_stream_or_a_missing_file_is_bad_input(
    journal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "journal", "verify", "--path", str(journal_file), "--stream", "nope"
    )
    assert (code, out) == (2, "")
    assert "no stream 'nope'" in err
    code, out, err = run(capsys, "journal", "stats", "--path", str(tmp_path / "absent.sqlite"))
    assert (code, out) == (2, "")
    assert "no journal at" in err


def test_the_configured_run_dir_is_where_the_journal_is_found(
    journal_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = journal_file.parent / "posbus.toml"
    config.write_text(f'run_dir = "{journal_file.parent}"\n')
    code, out, _ = run(capsys, "journal", "stats", "--config", str(config))
    assert code == 0
    assert "2 streams, 4 records, 1 snapshots" in out
