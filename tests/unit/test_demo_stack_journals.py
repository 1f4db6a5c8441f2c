"""`posbus up --demo` gives each demo its own journals, and never touches a real stack's."""

from __future__ import annotations

from pathlib import Path

import pytest

from posbus.actors.model.errors import PosbusError
from posbus.adapters.demo_stack_journals import MARKER, begin_demo_journals
from posbus.adapters.launcher_layout import RunDir


def _journal(run_dir: Path, name: str, content: bytes) -> Path:
    path = run_dir / "journal" / f"{name}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_first_demo_gets_an_empty_journal_directory_marked_as_a_demo(tmp_path: Path) -> None:
    assert begin_demo_journals(RunDir(tmp_path), crashed=False) is None
    assert sorted(p.name for p in (tmp_path / "journal").iterdir()) == [MARKER]


def test_after_a_demo_stopped_the_next_starts_empty_and_keeps_the_previous(
    tmp_path: Path,
) -> None:
    begin_demo_journals(RunDir(tmp_path), crashed=False)
    _journal(tmp_path, "risk", b"first demo")
    kept = begin_demo_journals(RunDir(tmp_path), crashed=False)
    assert kept == tmp_path / "journal.previous"
    assert (kept / "risk.sqlite").read_bytes() == b"first demo"
    assert not (tmp_path / "journal" / "risk.sqlite").exists()
    # A third demo replaces the older kept one with the second's.
    _journal(tmp_path, "risk", b"second demo")
    begin_demo_journals(RunDir(tmp_path), crashed=False)
    assert (kept / "risk.sqlite").read_bytes() == b"second demo"


def test_a_crashed_demo_keeps_its_journals_for_recovery(tmp_path: Path) -> None:
    begin_demo_journals(RunDir(tmp_path), crashed=False)
    journal = _journal(tmp_path, "positions.0", b"crashed demo")
    assert begin_demo_journals(RunDir(tmp_path), crashed=True) is None
    assert journal.read_bytes() == b"crashed demo"
    assert not (tmp_path / "journal.previous").exists()


def test_a_real_stacks_journals_are_refused_and_left_alone(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "risk", b"real money")
    for crashed in (False, True):
        with pytest.raises(PosbusError, match="not a demo"):
            begin_demo_journals(RunDir(tmp_path), crashed=crashed)
    assert journal.read_bytes() == b"real money"
    assert sorted(p.name for p in journal.parent.iterdir()) == ["risk.sqlite"]
