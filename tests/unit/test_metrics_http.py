"""The Prometheus collector turns a worker's admin answers into samples; ports per worker."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from posbus.adapters.metrics_http import WorkerCollector, metrics_port


def test_metrics_ports_are_distinct_per_worker_of_a_stack() -> None:
    names = ["broker", "risk", "gateway.default", "feed", "positions.0", "positions.1"]
    ports = [metrics_port(9400, n) for n in names]
    assert ports == [9400, 9401, 9402, 9403, 9410, 9411]


def test_each_accounts_gateway_has_its_own_port_the_first_one_the_gateway_port() -> None:
    accounts = ("main", "hedge", "venue")
    names = ["gateway.main", "gateway.hedge", "gateway.venue", "positions.0", "alerts"]
    ports = [metrics_port(9400, n, accounts) for n in names]
    assert ports == [9402, 9501, 9502, 9410, 9404]


def test_a_worker_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="no metrics port"):
        metrics_port(9400, "strategy")


def _scrape(collector: WorkerCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_risk_worker_samples_carry_counts_latency_mailbox_and_state() -> None:
    handlers: dict[str, Any] = {
        "metrics": lambda args: {
            "in": {"exposure": {"count": 7, "rate": "1.0"}},
            "out": {"risk_event": {"count": 2, "rate": "0.0"}},
            "counters": {"gaps": 3},
            "latency_us": {"count": 7, "p50": "150.0", "p99": "2500.0", "p999": "9000.0"},
            "restarts": 1,
        },
        "actors": lambda args: {
            "actors": [{"name": "risk", "alive": True, "mailbox": 4, "restarts": 1}]
        },
        "status": lambda args: {"journal_streams": 2},
        "inspect": lambda args: {"state": "CoolDown"},
    }
    text = _scrape(WorkerCollector("risk", handlers))
    assert 'posbus_messages_received_total{kind="exposure",worker="risk"} 7.0' in text
    assert 'posbus_messages_sent_total{kind="risk_event",worker="risk"} 2.0' in text
    assert 'posbus_bus_events_total{counter="gaps",worker="risk"} 3.0' in text
    # 2500 us = 0.0025 s
    assert 'posbus_latency_seconds{quantile="0.99",worker="risk"} 0.0025' in text
    assert 'posbus_mailbox_depth{actor="risk",worker="risk"} 4.0' in text
    assert 'posbus_risk_state{state="CoolDown",worker="risk"} 1.0' in text
    assert 'posbus_risk_state{state="Normal",worker="risk"} 0.0' in text
    assert 'posbus_restarts_total{worker="risk"} 1.0' in text


def test_a_failing_handler_drops_its_samples_and_keeps_the_endpoint_up() -> None:
    def broken(args: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("actor busy")

    text = _scrape(WorkerCollector("positions.0", {"metrics": broken}))
    assert 'posbus_up{worker="positions.0"} 1.0' in text
    assert "posbus_messages_received_total" not in text


def test_gateway_breaker_state_is_found_in_a_network_exchanges_view() -> None:
    handlers: dict[str, Any] = {
        "inspect": lambda args: {"network": {"client": {"breaker": {"state": "open"}}}},
        "status": lambda args: {"journal_streams": 1, "published_seq": 42},
    }
    text = _scrape(WorkerCollector("gateway.default", handlers))
    assert 'posbus_breaker_state{state="open",worker="gateway.default"} 1.0' in text
    assert 'posbus_breaker_state{state="none",worker="gateway.default"} 0.0' in text
    assert 'posbus_journal_published_seq{worker="gateway.default"} 42.0' in text
