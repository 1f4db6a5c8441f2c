"""The dashboard's token: random, read only from an owner-only file, never echoed in errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posbus.adapters.web.access_token import (
    TokenError,
    check_shape,
    new_token,
    read_token_file,
    same,
    session_value,
)


def test_new_tokens_are_long_url_safe_and_different() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert check_shape(first, "new") == first
    assert len(first) >= 40


def test_a_token_file_of_its_owner_only_is_read(tmp_path: Path) -> None:
    path = tmp_path / "web.token"
    path.write_text("  abcdefghij0123456789-_.~  \n", encoding="utf-8")
    os.chmod(path, 0o600)
    assert read_token_file(path) == "abcdefghij0123456789-_.~"


def test_a_token_file_others_may_read_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "web.token"
    path.write_text("abcdefghij0123456789", encoding="utf-8")
    os.chmod(path, 0o640)
    with pytest.raises(TokenError, match="chmod 600") as caught:
        read_token_file(path)
    assert "abcdefghij" not in str(caught.value)


def test_a_short_or_odd_token_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "web.token"
    path.write_text("short secret", encoding="utf-8")
    os.chmod(path, 0o600)
    with pytest.raises(TokenError) as caught:
        read_token_file(path)
    assert "short secret" not in str(caught.value)


def test_a_missing_token_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match=r"web\.token"):
        read_token_file(tmp_path / "web.token")


def test_the_session_value_is_not_the_token_and_comparison_is_exact() -> None:
    token = new_token()
    assert token not in session_value(token)
    assert session_value(token) == session_value(token) != session_value(new_token())
    assert same(token, token)
    assert not same(token, token[:-1])
    assert not same(token, token[:-1] + ("a" if token[-1] != "a" else "b"))
