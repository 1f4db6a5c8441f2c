"""Sink secrets and the `[alerts]` section: from the environment or an owner-only file, checked."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from posbus.adapters.alerts.secret import SecretError, read_secret
from posbus.adapters.alerts.settings import AlertsConfig, SinkConfig
from posbus.adapters.alerts.sink import WebhookSink

SECRET = "https://hooks.example.invalid/services/T000/B000/s3cr3t-XYZ"


def test_a_secret_is_read_from_the_named_environment_variable() -> None:
    sink = SinkConfig(kind="slack", url_env="POSBUS_SLACK_WEBHOOK")
    assert read_secret(sink, {"POSBUS_SLACK_WEBHOOK": f" {SECRET}\n"}) == SECRET


def test_an_unset_variable_is_refused_naming_the_variable() -> None:
    sink = SinkConfig(kind="telegram", token_env="POSBUS_TG_TOKEN", chat_id=42)
    with pytest.raises(SecretError, match="POSBUS_TG_TOKEN is unset"):
        read_secret(sink, {})


def test_an_owner_only_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "slack.url"
    path.write_text(SECRET + "\n", encoding="utf-8")
    path.chmod(0o600)
    assert read_secret(SinkConfig(kind="slack", url_file=str(path))) == SECRET
    path.chmod(0o400)
    assert read_secret(SinkConfig(kind="slack", url_file=str(path))) == SECRET


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_file_others_can_read_is_refused_naming_the_file_not_its_content(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "slack.url"
    path.write_text(SECRET, encoding="utf-8")
    path.chmod(mode)
    with pytest.raises(SecretError) as refused:
        read_secret(SinkConfig(kind="slack", url_file=str(path)))
    message = str(refused.value)
    assert str(path) in message and f"{mode:04o}" in message and "chmod 600" in message
    assert "s3cr3t" not in message


def test_a_missing_or_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot open secret file"):
        read_secret(SinkConfig(kind="json", url_file=str(tmp_path / "absent")))
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    empty.chmod(0o600)
    with pytest.raises(SecretError, match="is empty"):
        read_secret(SinkConfig(kind="json", url_file=str(empty)))


def test_a_secret_that_is_no_http_url_is_refused_without_quoting_it() -> None:
    with pytest.raises(SecretError) as refused:
        WebhookSink("slack#0", "file:///etc/s3cr3t", lambda a, s: {})
    assert "s3cr3t" not in str(refused.value) and "slack#0" in str(refused.value)


def _decode(table: dict[str, object]) -> AlertsConfig:
    return msgspec.convert(table, AlertsConfig, strict=True)


def test_the_section_decodes_with_defaults_and_refuses_unknown_keys() -> None:
    config = _decode(
        {
            "sinks": [
                {"kind": "slack", "url_env": "POSBUS_SLACK_WEBHOOK", "min_severity": "error"},
                {"kind": "telegram", "token_file": "/etc/posbus/tg", "chat_id": "@desk"},
            ],
            "rejection_rate": {"count": 5, "window_s": 30},
        }
    )
    assert [s.kind for s in config.sinks] == ["slack", "telegram"]
    assert config.rejection_rate.count == 5 and config.max_tries == 5
    with pytest.raises(msgspec.ValidationError, match="unknown field `url`"):
        _decode({"sinks": [{"kind": "slack", "url": SECRET}]})


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ({"kind": "slack"}, "exactly one of url_env or url_file"),
        ({"kind": "slack", "url_env": "A", "url_file": "/b"}, "exactly one of"),
        ({"kind": "slack", "url_env": "A", "chat_id": 1}, "takes no chat_id"),
        ({"kind": "json", "token_env": "A", "url_env": "B"}, "takes no token_env"),
        ({"kind": "telegram", "token_env": "A"}, "needs chat_id"),
        ({"kind": "telegram", "url_env": "A", "chat_id": 1}, "takes no url_env"),
        ({"kind": "email", "url_env": "A"}, "Invalid enum value 'email'"),
    ],
)
def test_a_sink_without_exactly_one_secret_source_of_its_kind_is_refused(
    sink: dict[str, object], problem: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=problem):
        _decode({"sinks": [sink]})
