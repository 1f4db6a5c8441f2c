"""A real stack with `[alerts]`: `posbus halt` and `posbus resume` reach a local Slack webhook."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_harness import Stack, posbus, wait_for, where
from webhook_server import Received, WebhookServer

WEBHOOK_PATH = "/services/T000/B000/s3cr3t"
ALERTS = """
[alerts]
dedupe_s = 0

[[alerts.sinks]]
kind = "slack"
url_env = "POSBUS_TEST_ALERTS_WEBHOOK"
"""


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def stack(webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # The secret reaches the workers the way an operator's does: through the environment.
    monkeypatch.setenv("POSBUS_TEST_ALERTS_WEBHOOK", webhook.url + WEBHOOK_PATH)
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), demo=False, extra=ALERTS)
        s.up()
        try:
            yield s
        finally:
            s.close()


def _text_with(webhook: WebhookServer, needle: str) -> Received | None:
    return next((r for r in webhook.accepted() if needle in r.body["text"]), None)


def test_a_halt_and_its_resume_reach_the_webhook_in_slack_format(
    stack: Stack, webhook: WebhookServer
) -> None:
    alerts = stack.worker("alerts")
    assert alerts["role"] == "alerts" and alerts["serving"]
    # It starts before risk, gateway and positions: once it heard them come up, it hears risk.
    wait_for(
        "the alerts worker hearing risk events",
        lambda: where(stack.admin("alerts", "status"), lambda s: s["events"] > 0),
    )

    assert stack.json("halt", "--reason", "alert drill")["state"] == "Halted"
    halted = wait_for("the Halted alert", lambda: _text_with(webhook, "Halted"))
    stack.json("resume")
    resolved = wait_for("the resolved notice", lambda: _text_with(webhook, "[RESOLVED]"))

    assert halted.path == WEBHOOK_PATH
    assert list(halted.body) == ["text"]
    assert halted.body["text"].startswith("[CRITICAL] posbus: risk state Halted (was Normal)")
    assert "alert drill" in halted.body["text"]
    assert list(resolved.body) == ["text"]
    assert resolved.body["text"].startswith("[RESOLVED] posbus: risk state back to Normal")
    status = stack.admin("alerts", "status")
    assert status["raised"] == {"risk_state": 1, "resolved": 1}
    assert status["sinks"][0]["sent"] == 2 and status["sinks"][0]["failed"] == 0


def test_the_alerts_worker_refuses_to_start_on_a_secret_others_can_read(tmp_path: Path) -> None:
    secret = tmp_path / "slack.url"
    secret.write_text("https://hooks.example.invalid/s3cr3t\n", encoding="utf-8")
    secret.chmod(0o644)
    config = tmp_path / "posbus.toml"
    config.write_text(f'[[alerts.sinks]]\nkind = "slack"\nurl_file = "{secret}"\n', "utf-8")
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as run_dir:
        result = posbus(
            "worker", "--role", "alerts", "--config", str(config), "--run-dir", run_dir, check=False
        )
    assert result.returncode != 0
    assert f"secret file {secret} has mode 0644" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


def test_a_dead_webhook_costs_retries_never_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    monkeypatch.setenv("POSBUS_TEST_ALERTS_WEBHOOK", dead)
    extra = ALERTS.replace("dedupe_s = 0", "dedupe_s = 0\nmax_tries = 2")
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), demo=False, extra=extra)
        s.up()
        try:
            wait_for(
                "the alerts worker hearing risk events",
                lambda: where(s.admin("alerts", "status"), lambda st: st["events"] > 0),
            )
            s.json("halt", "--reason", "outage drill")
            status = wait_for(
                "the alert given up on",
                lambda: where(s.admin("alerts", "status"), lambda st: st["sinks"][0]["failed"]),
            )
            assert status["sinks"][0]["retries"] == 1 and status["sinks"][0]["sent"] == 0
            alerts = s.worker("alerts")
            assert alerts["alive"] and alerts["serving"] and alerts["restarts"] == 0
            # Trading did not wait for the webhook: risk answers and resumes.
            s.json("resume")
        finally:
            s.close()


def test_sigterm_stops_the_alerts_worker_cleanly(
    webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POSBUS_TEST_ALERTS_WEBHOOK", webhook.url + WEBHOOK_PATH)
    config = tmp_path / "posbus.toml"
    config.write_text(ALERTS, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as run_dir:
        # No broker is needed to start: the bus sockets connect when one appears.
        command = ["worker", "--role", "alerts", "--config", str(config), "--run-dir", run_dir]
        worker = subprocess.Popen(
            [sys.executable, "-m", "posbus.adapters.cli.main", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready = Path(run_dir) / "ready" / "alerts.json"
            wait_for("the alerts worker ready", lambda: ready.is_file() or None)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait() == 0
        finally:
            if worker.poll() is None:
                worker.kill()
