"""`[alerts]`: where alerts go and how many; a typed TOML section (docs/alerts.md).

Frozen msgspec Structs that refuse unknown keys. A sink names where its
secret (a webhook URL, or a Telegram bot token) is read from, never the
secret itself: `url_env` / `url_file` for "slack" and "json" sinks,
`token_env` / `token_file` for "telegram" (`secret.py` reads them). Pure
values; nothing is read here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from posbus.adapters.alerts.alert import Severity

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
_Positive = Annotated[float, msgspec.Meta(gt=0)]
_AtLeastZero = Annotated[float, msgspec.Meta(ge=0)]
_Tries = Annotated[int, msgspec.Meta(ge=1, le=10)]

SinkKind = Literal["slack", "telegram", "json"]
TELEGRAM_API = "https://api.telegram.org"


class SinkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One webhook (`[[alerts.sinks]]`).

    Exactly one secret source: `url_env` or `url_file` (slack, json),
    `token_env` or `token_file` (telegram, which also needs `chat_id`;
    `api_url` is the Bot API's base URL, TELEGRAM_API by default). Only
    alerts of `min_severity` or above are sent to it.
    """

    kind: SinkKind
    url_env: _NonEmpty | None = None
    url_file: _NonEmpty | None = None
    token_env: _NonEmpty | None = None
    token_file: _NonEmpty | None = None
    chat_id: int | _NonEmpty | None = None
    api_url: _NonEmpty | None = None
    min_severity: Severity = Severity.INFO

    def __post_init__(self) -> None:
        sources: tuple[str, ...]
        foreign: tuple[str, ...]
        if self.kind == "telegram":
            sources, foreign = ("token_env", "token_file"), ("url_env", "url_file")
            if self.chat_id is None:
                raise ValueError("a telegram sink needs chat_id")
        else:
            sources = ("url_env", "url_file")
            foreign = ("token_env", "token_file", "chat_id", "api_url")
        wrong = [key for key in foreign if getattr(self, key) is not None]
        if wrong:
            raise ValueError(f"a {self.kind} sink takes no {', '.join(wrong)}")
        given = [key for key in sources if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"a {self.kind} sink needs exactly one of {' or '.join(sources)}")


class RejectionRate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Order refusals alert once `count` of them fall within `window_s` seconds."""

    count: _PositiveInt = 10
    window_s: _Positive = 60.0


class AlertsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[alerts]`: the sinks and how alerts reach them.

    With no sink, no alerts worker runs. `dedupe_s`: the same alert is sent
    once within it. `max_per_minute`: per sink. `queue_size`: alerts waiting
    per sink (the oldest is dropped beyond it). `timeout_s`: each HTTP
    request. `max_tries`: attempts per alert, the first included.
    """

    sinks: tuple[SinkConfig, ...] = ()
    dedupe_s: _AtLeastZero = 300.0
    max_per_minute: _PositiveInt = 20
    rejection_rate: RejectionRate = RejectionRate()
    queue_size: _PositiveInt = 1_000
    timeout_s: _Positive = 5.0
    max_tries: _Tries = 5
