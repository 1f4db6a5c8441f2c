"""docs/configuration.md documents every configuration key once, and its last example sets them all.

The reference's tables give the documented keys, one row per key under a
section heading. The example "Every key in one file" is loaded through the
public `load_config`, which refuses unknown keys, so every key it names is
accepted. Then the loaded configuration is compared with the defaults
setting by setting, walking the public Config types (dataclasses or msgspec
Structs alike, nothing private): a setting that kept its default is one the
example, and so the reference, does not cover. A key added to the
configuration without a row in the reference fails here.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from posbus.adapters.config import Config, load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
FULL_EXAMPLE_HEADING = "## Every key in one file"
# The symbols section is one table per symbol; the reference names it by this placeholder.
SYMBOLS_SECTION = 'symbols."BASE/QUOTE"'


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _documented_rows() -> list[tuple[str, str]]:
    """(section, key) for every row of the reference tables, in document order."""
    rows: list[tuple[str, str]] = []
    section: str | None = None
    for line in _doc().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            named = re.fullmatch(r"`\[(.+)\]`", heading)
            section = "" if heading == "Top level" else named.group(1) if named else None
            continue
        row = re.match(r"\| `([a-z_]+)` \|", line)
        if row and section is not None:
            rows.append((section, row.group(1)))
    return rows


def _full_example() -> str:
    after = _doc().split(FULL_EXAMPLE_HEADING, 1)[1]
    block = re.search(r"```toml\n(.*?)```", after, re.DOTALL)
    assert block is not None, f"no toml block under {FULL_EXAMPLE_HEADING!r}"
    return block.group(1)


def _example_keys(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for name, value in document.items():
        if not isinstance(value, dict):
            keys.append(("", name))
        elif name == "symbols":
            keys += [(SYMBOLS_SECTION, key) for table in value.values() for key in table]
        else:
            # A sub-table such as [exchange.urls] is the key `urls` of [exchange].
            keys += [(name, key) for key in value]
    return keys


def _field_names(value: Any) -> list[str] | None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [f.name for f in dataclasses.fields(value)]
    struct_fields = getattr(type(value), "__struct_fields__", None)
    return None if struct_fields is None else list(struct_fields)


def _kept_defaults(default: Any, loaded: Any, path: str) -> list[str]:
    """The settings (dotted paths) where `loaded` still equals `default`."""
    names = _field_names(default)
    if names is not None:
        return [
            kept
            for name in names
            for kept in _kept_defaults(
                getattr(default, name), getattr(loaded, name), f"{path}.{name}"
            )
        ]
    if isinstance(default, Mapping) and isinstance(loaded, Mapping):
        common = sorted(set(default) & set(loaded))
        if not common:
            return [path] if default == loaded else []
        return [
            kept
            for key in common
            for kept in _kept_defaults(default[key], loaded[key], f"{path}[{key!r}]")
        ]
    return [path] if default == loaded else []


def test_every_key_is_documented_once() -> None:
    rows = _documented_rows()
    assert len(rows) > 50, "the reference tables were not found"
    assert sorted({row for row in rows if rows.count(row) > 1}) == []


def test_the_full_example_names_exactly_the_documented_keys() -> None:
    example = _example_keys(tomllib.loads(_full_example()))
    documented = _documented_rows()
    assert sorted(set(documented) - set(example)) == [], "documented but not in the example"
    assert sorted(set(example) - set(documented)) == [], "in the example but not documented"


def test_the_full_example_loads_so_every_documented_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "every_key.toml"
    path.write_text(_full_example(), encoding="utf-8")
    assert isinstance(load_config(path), Config)


def test_the_full_example_changes_every_setting_so_none_is_undocumented(tmp_path: Path) -> None:
    path = tmp_path / "every_key.toml"
    path.write_text(_full_example(), encoding="utf-8")
    kept = _kept_defaults(load_config(None), load_config(path), "config")
    assert kept == [], (
        "settings the example in docs/configuration.md leaves at their default: "
        "document their keys and set them in the example"
    )
