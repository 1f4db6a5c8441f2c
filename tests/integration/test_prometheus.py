"""The Prometheus endpoint of each worker: a real stack, real HTTP GETs, real samples.

`[metrics] prometheus_port_base` turns the endpoints on; each worker serves
/metrics on base + its offset (posbus.adapters.metrics_http.metrics_port).
The test trades one order so the counters have moved, then scrapes the
positions, risk and gateway workers and checks the samples posbus promises.
"""

from __future__ import annotations

import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stack_harness import Stack, wait_for, where

from posbus.adapters.metrics_http import metrics_port


def _free_base() -> int:
    """A base port whose 12 ports (broker .. positions.1) are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] - 20
        if base < 20_000:
            continue
        try:
            sockets = []
            for port in range(base, base + 12):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise AssertionError("no free port range")


@pytest.fixture
def stack() -> Iterator[tuple[Stack, int]]:
    base = _free_base()
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(
            Path(name),
            shards=2,
            extra=f"\n[metrics]\nprometheus_port_base = {base}\n",
        )
        s.up()
        try:
            yield s, base
        finally:
            s.close()


def _scrape(base: int, worker: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics of `worker`; samples by name."""
    url = f"http://127.0.0.1:{metrics_port(base, worker)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    matches = [
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return matches[0]


def test_each_worker_serves_its_metrics_over_http(stack: tuple[Stack, int]) -> None:
    s, base = stack
    s.cli("order", "buy", "BTC/USDT", "0.1")
    shard = next(
        w["name"]
        for w in s.status()["workers"]
        if w["name"].startswith("positions.") and s.admin(w["name"], "status")["positions"] > 0
    )
    # The fill reaches the position: the positions worker received execution signals.
    samples = wait_for(
        "the fill counted on the positions worker's endpoint",
        lambda: where(
            _scrape(base, shard),
            lambda m: any(
                lab.get("kind", "").startswith("execution_signal") and v >= 1
                for lab, v in m.get("posbus_messages_received_total", [])
            ),
        ),
    )
    assert _value(samples, "posbus_up", worker=shard) == 1
    # One order, filled and settled: nothing is left waiting for the position.
    assert (
        _value(samples, "posbus_mailbox_depth", worker=shard, actor="position/default/BTC/USDT")
        == 0
    )
    assert (
        _value(samples, "posbus_actor_alive", worker=shard, actor="position/default/BTC/USDT") == 1
    )
    assert _value(samples, "posbus_restarts_total", worker=shard) == 0
    # Only the risk worker times what it handles (below): a positions worker observes none.
    assert _value(samples, "posbus_latency_observations_total", worker=shard) == 0
    applied = samples["posbus_journal_applied_seq"]
    assert applied and all(v >= 1 for _, v in applied), applied

    # The risk worker times every exposure it hears (its publish timestamp to handling).
    risk = wait_for(
        "risk latency quantiles",
        lambda: where(_scrape(base, "risk"), lambda m: "posbus_latency_seconds" in m),
    )
    # The fill changed the position, whose exposure the risk worker heard and timed.
    assert _value(risk, "posbus_latency_observations_total", worker="risk") >= 1
    p99 = _value(risk, "posbus_latency_seconds", worker="risk", quantile="0.99")
    assert 0 < p99 < 60
    assert _value(risk, "posbus_risk_state", worker="risk", state="Normal") == 1
    assert _value(risk, "posbus_risk_state", worker="risk", state="CoolDown") == 0

    gateway = _scrape(base, "gateway.default")
    # The simulated exchange has no circuit breaker: "none" is the state.
    assert _value(gateway, "posbus_breaker_state", worker="gateway.default", state="none") == 1
    published = _value(gateway, "posbus_journal_published_seq", worker="gateway.default")
    # An accepted, filled market order publishes at least its ack and its fill.
    assert published >= 2
    assert (
        _value(gateway, "posbus_messages_received_total", worker="gateway.default", kind="command")
        >= 1
    )

    broker = _scrape(base, "broker")
    assert _value(broker, "posbus_up", worker="broker") == 1
