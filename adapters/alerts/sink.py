"""A webhook sink: posts one alert, once, and says whether a retry may help.

`WebhookSink.post` is one HTTP POST of a JSON body (urllib, standard
library) with a timeout. A failure raises `DeliveryFailed` when a retry may
help (connection refused or reset, timeout, HTTP 5xx or 429) and
`DeliveryError` when it cannot (any other HTTP status: the request itself
is wrong). Its message names
the sink ("slack#0") and what went wrong, never the URL: the URL, or the bot
token in it, is a secret, so no exception text that could quote it is kept.
Runs on the sink's sender thread (`sender.py`).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.adapters.alerts.alert import Alert, Severity
from posbus.adapters.alerts.formats import json_body, slack_body, telegram_body, telegram_url
from posbus.adapters.alerts.secret import SecretError
from posbus.adapters.alerts.settings import TELEGRAM_API, SinkConfig

# A response body is read only to free the connection; nobody needs more of it.
_MAX_RESPONSE = 64 * 1024
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500

Body = Callable[[Alert, int], dict[str, Any]]


class DeliveryError(PosbusError):
    """An alert was refused by its sink for good (an HTTP 4xx other than 429).

    `status` is the HTTP status, when the sink answered.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DeliveryFailed(DeliveryError):
    """An alert did not get through this time (no connection, timeout, 5xx, 429): retry later."""

    transient = True


class WebhookSink:
    """One configured webhook: where to post (a secret), how to shape the body, what to send.

    Thread-safe: holds no state between posts.
    """

    def __init__(
        self,
        name: str,
        url: str,
        body: Body,
        *,
        min_severity: Severity = Severity.INFO,
        timeout_s: float = 5.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            # Never quote the URL: it is the secret.
            raise SecretError(f"alerts sink {name}: its secret is not an http(s) URL")
        self.name = name
        self.min_severity = min_severity
        self.timeout_s = timeout_s
        self._url = url
        self._body = body

    @classmethod
    def from_config(
        cls, name: str, config: SinkConfig, secret: str, timeout_s: float
    ) -> WebhookSink:
        """The sink `config` describes, its secret (URL, or telegram token) already read."""
        body: Body
        if config.kind == "telegram":
            chat_id = config.chat_id
            assert chat_id is not None  # SinkConfig requires it for telegram
            url = telegram_url(config.api_url or TELEGRAM_API, secret)

            def body(alert: Alert, suppressed: int) -> dict[str, Any]:
                return telegram_body(alert, chat_id, suppressed)

        else:
            url = secret
            body = slack_body if config.kind == "slack" else json_body
        return cls(name, url, body, min_severity=config.min_severity, timeout_s=timeout_s)

    @property
    def secret_url(self) -> str:
        """The URL posted to (a secret: for tests and redaction, never for logs)."""
        return self._url

    def wants(self, alert: Alert) -> bool:
        """True when the alert is at or above this sink's `min_severity`."""
        return alert.severity.rank >= self.min_severity.rank

    def post(self, alert: Alert, suppressed: int = 0) -> None:
        """POST the alert once; raises DeliveryError unless the sink answered 2xx."""
        data = json.dumps(self._body(alert, suppressed), ensure_ascii=False).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "posbus-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                response.read(_MAX_RESPONSE)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            error = (
                DeliveryFailed
                if status == _TOO_MANY_REQUESTS or status >= _SERVER_ERROR
                else DeliveryError
            )
            raise error(f"alerts sink {self.name}: HTTP {status}", status=status) from None
        except TimeoutError:
            raise DeliveryFailed(
                f"alerts sink {self.name}: no answer within {self.timeout_s:g} s"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # URLError's text can quote the URL; only the kind of failure is kept.
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            kind = type(cause).__name__ if isinstance(cause, BaseException) else type(exc).__name__
            raise DeliveryFailed(f"alerts sink {self.name}: connection failed ({kind})") from None
