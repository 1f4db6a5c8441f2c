"""The alert sender against a local HTTP server: retries, giving up, a hung webhook, no secret
in the logs."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from webhook_server import WebhookServer

from posbus.adapters.alerts.alert import Alert, Severity
from posbus.adapters.alerts.formats import slack_body
from posbus.adapters.alerts.sender import AlertSender
from posbus.adapters.alerts.settings import SinkConfig
from posbus.adapters.alerts.sink import WebhookSink
from posbus.adapters.log_format import JsonFormatter, TextFormatter
from posbus.bus.messages import RiskEvent


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    srv = WebhookServer()
    yield srv
    srv.close()


def alert(summary: str = "risk state Halted (was Normal): halted: operator") -> Alert:
    event = RiskEvent("state_change", "Halted", "Normal", "halted: operator", None, None, {}, 1)
    return Alert("risk_state", Severity.CRITICAL, f"k|{summary}", summary, event)


def sender(
    url: str, *, queue_size: int = 10, max_tries: int = 4, timeout_s: float = 5.0
) -> AlertSender:
    sink = WebhookSink("slack#0", url, slack_body, timeout_s=timeout_s)
    # Millisecond backoff: the tests wait on the server and the sender, never on the clock.
    return AlertSender(
        sink,
        queue_size=queue_size,
        max_tries=max_tries,
        max_per_minute=1_000,
        backoff_base_s=0.001,
        backoff_max_s=0.005,
    )


def test_two_503s_then_accepted_is_delivered_exactly_once() -> None:
    server = WebhookServer(statuses=[503, 503])
    s = sender(server.url + "/hook")
    s.start()
    try:
        s.publish(alert())
        s.wait_idle()
    finally:
        s.stop()
        server.close()
    assert [r.status for r in server.requests] == [503, 503, 200]
    assert len(server.accepted()) == 1
    assert server.accepted()[0].body["text"].startswith("[CRITICAL] posbus: risk state Halted")
    counts = s.counts()
    assert (counts["sent"], counts["retries"], counts["failed"]) == (1, 2, 0)


def test_429_is_retried_and_a_400_is_not() -> None:
    server = WebhookServer(statuses=[429, 400])
    s = sender(server.url)
    s.start()
    try:
        s.publish(alert())
        s.wait_idle()
        assert [r.status for r in server.requests] == [429, 400]
        assert s.counts()["failed"] == 1
        # The thread outlived the refusal: the next alert goes through.
        s.publish(alert("next"))
        s.wait_idle()
    finally:
        s.stop()
        server.close()
    assert s.counts()["sent"] == 1 and "next" in server.requests[-1].body["text"]


def test_it_gives_up_after_max_tries_and_keeps_sending_later_alerts() -> None:
    server = WebhookServer(statuses=[500] * 3)
    s = sender(server.url, max_tries=3)
    s.start()
    try:
        s.publish(alert("lost"))
        s.publish(alert("kept"))
        s.wait_idle()
    finally:
        s.stop()
        server.close()
    assert [r.status for r in server.requests] == [500, 500, 500, 200]
    assert "kept" in server.requests[-1].body["text"]
    assert (s.counts()["failed"], s.counts()["sent"]) == (1, 1)


def test_a_hung_webhook_never_blocks_publish_and_a_full_queue_drops_the_oldest(
    server: WebhookServer,
) -> None:
    server.hold()
    s = sender(server.url, queue_size=3, timeout_s=600)
    s.start()
    try:
        s.publish(alert("first"))
        server.wait_for_requests(1)  # the sender is now stuck on the first post
        for i in range(10):
            s.publish(alert(f"queued {i}"))  # returns although nothing can be sent
        assert s.counts()["dropped"] == 7 and s.counts()["queued"] == 3
        server.release()
        s.wait_idle()
    finally:
        s.stop()
    texts = [r.body["text"] for r in server.accepted()]
    assert [t.split(": ", 1)[1].split("\n")[0] for t in texts] == [
        "first",
        "queued 7",
        "queued 8",
        "queued 9",
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_retried_then_given_up_without_ending_the_thread() -> None:
    s = sender(f"http://127.0.0.1:{_closed_port()}/hook", max_tries=2)
    s.start()
    try:
        s.publish(alert())
        s.wait_idle()
        assert s.counts()["failed"] == 1 and s.counts()["retries"] == 1
        assert s.alive
    finally:
        s.stop()


def test_stop_ends_the_thread_during_a_backoff_wait() -> None:
    server = WebhookServer(statuses=[503] * 10)
    sink = WebhookSink("slack#0", server.url, slack_body)
    s = AlertSender(sink, queue_size=10, max_tries=10, max_per_minute=100, backoff_base_s=3_600)
    s.start()
    s.publish(alert())
    server.wait_for_requests(1)
    s.stop()
    server.close()
    assert not s.alive


@pytest.mark.parametrize("kind", ["slack", "telegram"])
def test_the_secret_appears_nowhere_in_the_logs_of_a_failing_send(
    caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Every record of a send that fails (5xx, then a dead port), rendered as posbus logs it."""
    token = "123456:s3cr3t-T0KEN"
    server = WebhookServer(statuses=[500] * 4)
    dead = f"http://127.0.0.1:{_closed_port()}"
    caplog.set_level(logging.DEBUG)
    for base in (server.url, dead):
        if kind == "telegram":
            config = SinkConfig(kind="telegram", token_env="T", chat_id=7, api_url=base)
        else:
            config = SinkConfig(kind="slack", url_env="U")
        secret = token if kind == "telegram" else f"{base}/services/{token}"
        sink = WebhookSink.from_config(f"{kind}#0", config, secret, timeout_s=5)
        assert token in sink.secret_url
        s = AlertSender(sink, queue_size=10, max_tries=2, max_per_minute=100, backoff_base_s=0.001)
        s.start()
        s.publish(alert())
        s.wait_idle()
        s.stop()
        assert s.counts()["failed"] == 1
    server.close()
    assert len(server.requests) == 2
    assert any("giving up" in r.getMessage() for r in caplog.records)
    rendered = [f.format(r) for r in caplog.records for f in (JsonFormatter(), TextFormatter())]
    assert rendered and not [line for line in rendered if "s3cr3t" in line]
