"""docs/configuration.md documents every configuration key once, and its last examples set them all.

The reference's tables give the documented keys, one row per key under a
section heading. The examples under "Every key in one file" (one file with
the top-level `account` and `[exchange]`, one with `[accounts]`, which
replaces them: no one file can hold both) are each loaded through the public
`load_config`, which refuses unknown keys, so every key they name is
accepted. Then each loaded configuration is compared with the defaults
setting by setting, walking the public Config types (dataclasses or msgspec
Structs alike, nothing private), and each account of `[accounts]` with the
one default account: a setting that every example leaves at its default is
one the examples, and so the reference, do not cover. A key added to the
configuration without a row in the reference fails here.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from posbus.adapters.config import AccountConfig, Config, load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
FULL_EXAMPLE_HEADING = "## Every key in one file"
# The symbols section is one table per symbol; the reference names it by this placeholder.
SYMBOLS_SECTION = 'symbols."BASE/QUOTE"'
# So is the accounts section: one table per account.
ACCOUNTS_SECTION = "accounts.NAME"


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


def _full_examples() -> list[str]:
    """The toml blocks of the section "Every key in one file"."""
    section = _doc().split(FULL_EXAMPLE_HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert blocks, f"no toml block under {FULL_EXAMPLE_HEADING!r}"
    return blocks


def _example_keys(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for name, value in document.items():
        if not isinstance(value, dict):
            keys.append(("", name))
        elif name == "symbols":
            keys += [(SYMBOLS_SECTION, key) for table in value.values() for key in table]
        elif name == "accounts":
            # Its sub-tables [accounts.NAME.exchange] and .risk are keys of [accounts.NAME].
            keys += [(ACCOUNTS_SECTION, key) for table in value.values() for key in table]
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


def _kept_account_settings(default: Config, loaded: Config) -> list[str]:
    """The settings of an account that no account of `loaded` changes from the default account.

    `[accounts]` is a table of tables: each account is compared with the one
    account of the defaults (`account` and `[exchange]`), field by field;
    the keys inside its `exchange` table are those of `[exchange]`, which the
    walk of the whole configuration covers.
    """
    (base,) = default.accounts().values()
    accounts = list((loaded.account_configs or {}).values())
    return [
        f"config.accounts[*].{field.name}"
        for field in dataclasses.fields(AccountConfig)
        if field.name != "name"
        and all(getattr(a, field.name) == getattr(base, field.name) for a in accounts)
    ]


def _loaded_examples(directory: Path) -> list[Config]:
    configs = []
    for i, example in enumerate(_full_examples()):
        path = directory / f"every_key_{i}.toml"
        path.write_text(example, encoding="utf-8")
        configs.append(load_config(path))
    return configs


def test_every_key_is_documented_once() -> None:
    rows = _documented_rows()
    assert len(rows) > 50, "the reference tables were not found"
    assert sorted({row for row in rows if rows.count(row) > 1}) == []


def test_the_full_examples_name_exactly_the_documented_keys() -> None:
    example = {key for text in _full_examples() for key in _example_keys(tomllib.loads(text))}
    documented = _documented_rows()
    assert sorted(set(documented) - example) == [], "documented but not in the examples"
    assert sorted(example - set(documented)) == [], "in the examples but not documented"


def test_the_full_examples_load_so_every_documented_key_is_accepted(tmp_path: Path) -> None:
    assert len(_full_examples()) == 2
    assert all(isinstance(c, Config) for c in _loaded_examples(tmp_path))


def test_the_full_examples_change_every_setting_so_none_is_undocumented(tmp_path: Path) -> None:
    default = load_config(None)
    kept_by_each = [
        set(_kept_defaults(default, loaded, "config") + _kept_account_settings(default, loaded))
        for loaded in _loaded_examples(tmp_path)
    ]
    kept = sorted(set.intersection(*kept_by_each))
    assert kept == [], (
        "settings the examples in docs/configuration.md leave at their default: "
        "document their keys and set them in an example"
    )
