"""A Prometheus metrics endpoint per worker (prometheus-client), off by default.

`[metrics] prometheus_port_base` turns it on: each worker serves
``http://[metrics] prometheus_host:PORT/metrics`` on its own port,
`metrics_port(base, name, accounts)` (broker +0, risk +1, the first
account's gateway +2, feed +3, alerts +4, positions.I +10+I, the gateway of
the account after the first at index i of `[accounts]` +100+i). Nothing is
computed for Prometheus alone: each scrape reads the same admin handlers
`posbus admin` answers with (`metrics`, `actors`, `status`, and the risk or
gateway actor's `inspect`), so the endpoint and the admin socket always
agree. Every sample is labelled
``worker``; the metric names are in `collect` and in docs/operations.md.

Threads: prometheus-client's HTTP server thread runs `collect`; the admin
handlers it calls are the ones the admin thread calls, safe from any thread
but the I/O thread. A failing handler must never stop the endpoint: it is
logged and its metrics are omitted from that scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

logger = logging.getLogger(__name__)

AdminCall = Callable[[dict[str, Any]], dict[str, Any]]

_ROLE_OFFSETS = {"broker": 0, "risk": 1, "gateway": 2, "feed": 3, "alerts": 4}
POSITIONS_OFFSET = 10
"""positions.I listens on base + 10 + I."""
GATEWAYS_OFFSET = 100
"""The gateway of the account at index i >= 1 of the stack's accounts listens on base + 100 + i."""

_QUANTILES = {"p50": "0.5", "p99": "0.99", "p999": "0.999"}


def metrics_port(base: int, name: str, accounts: Sequence[str] = ()) -> int:
    """Worker `name`'s metrics port (broker, risk, gateway.ACCOUNT, feed, alerts, positions.I).

    `accounts`: the stack's, in order; the first one's gateway keeps the
    gateway's port of a one-account stack, each other has its own.
    """
    role, _, rest = name.partition(".")
    if role == "positions":
        return base + POSITIONS_OFFSET + int(rest or 0)
    if role == "gateway" and rest in accounts[1:]:
        return base + GATEWAYS_OFFSET + list(accounts).index(rest)
    if role not in _ROLE_OFFSETS:
        raise ValueError(f"no metrics port for worker {name!r}")
    return base + _ROLE_OFFSETS[role]


class WorkerCollector(Collector):
    """Turns a worker's admin answers into Prometheus samples at each scrape (HTTP thread)."""

    def __init__(self, worker: str, handlers: Mapping[str, AdminCall]) -> None:
        self.worker = worker
        self.handlers = handlers

    def _call(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
        handler = self.handlers.get(name)
        if handler is None:
            return None
        try:
            return handler(args or {})
        except Exception:
            logger.exception(
                "metrics scrape: admin handler failed", extra={"worker": self.worker, "call": name}
            )
            return None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Every sample of one scrape."""
        w = self.worker
        up = GaugeMetricFamily("posbus_up", "1 while the worker answers", labels=["worker"])
        up.add_metric([w], 1)
        yield up
        metrics = self._call("metrics")
        if metrics is not None:
            yield from self._bus(metrics)
        actors = self._call("actors")
        if actors is not None:
            yield from self._actors(actors.get("actors", []))
        status = self._call("status")
        if status is not None:
            yield from self._journal(status)
        yield from self._roles()

    def _bus(self, metrics: dict[str, Any]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        w = self.worker
        for direction, help_text in (("in", "received"), ("out", "sent")):
            family = CounterMetricFamily(
                f"posbus_messages_{help_text}",
                f"bus messages {help_text}, by kind",
                labels=["worker", "kind"],
            )
            for kind, value in sorted(metrics.get(direction, {}).items()):
                family.add_metric([w, kind], float(value.get("count", 0)))
            yield family
        counters = CounterMetricFamily(
            "posbus_bus_events",
            "bus error and repair counters (decode_errors, gaps, conflated, rejects, ...)",
            labels=["worker", "counter"],
        )
        for name, value in sorted(metrics.get("counters", {}).items()):
            counters.add_metric([w, name], float(value))
        yield counters
        latency = metrics.get("latency_us", {})
        quantiles = GaugeMetricFamily(
            "posbus_latency_seconds",
            "latency of handled messages over the recent sample (event timestamp to handling)",
            labels=["worker", "quantile"],
        )
        for key, quantile in _QUANTILES.items():
            if key in latency:
                quantiles.add_metric([w, quantile], float(latency[key]) / 1e6)
        yield quantiles
        observed = CounterMetricFamily(
            "posbus_latency_observations", "latencies observed", labels=["worker"]
        )
        observed.add_metric([w], float(latency.get("count", 0)))
        yield observed
        restarts = CounterMetricFamily(
            "posbus_restarts", "actor restarts in this worker", labels=["worker"]
        )
        restarts.add_metric([w], float(metrics.get("restarts", 0)))
        yield restarts

    def _actors(
        self, actors: list[dict[str, Any]]
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        w = self.worker
        depth = GaugeMetricFamily(
            "posbus_mailbox_depth", "messages waiting for the actor", labels=["worker", "actor"]
        )
        restarts = CounterMetricFamily(
            "posbus_actor_restarts", "restarts of the actor", labels=["worker", "actor"]
        )
        alive = GaugeMetricFamily(
            "posbus_actor_alive", "1 while the actor runs", labels=["worker", "actor"]
        )
        for actor in actors:
            name = str(actor["name"])
            depth.add_metric([w, name], float(actor.get("mailbox", 0)))
            restarts.add_metric([w, name], float(actor.get("restarts", 0)))
            alive.add_metric([w, name], 1.0 if actor.get("alive") else 0.0)
        yield depth
        yield restarts
        yield alive

    def _journal(self, status: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
        w = self.worker
        streams = GaugeMetricFamily(
            "posbus_journal_streams", "journal streams of the worker", labels=["worker"]
        )
        streams.add_metric([w], float(status.get("journal_streams", 0)))
        yield streams
        published = status.get("published_seq")
        if published is not None:
            family = GaugeMetricFamily(
                "posbus_journal_published_seq",
                "last execution signal the gateway journaled and published",
                labels=["worker"],
            )
            family.add_metric([w], float(published))
            yield family
        applied = status.get("applied_seq")
        if isinstance(applied, dict):
            family = GaugeMetricFamily(
                "posbus_journal_applied_seq",
                "last gateway signal applied, per gateway incarnation",
                labels=["worker", "sender"],
            )
            for sender, seq in sorted(applied.items()):
                family.add_metric([w, str(sender)], float(seq))
            yield family

    def _roles(self) -> Iterator[GaugeMetricFamily]:
        w = self.worker
        risk = self._inspect("risk") if self.worker == "risk" else None
        if risk is not None and "state" in risk:
            family = GaugeMetricFamily(
                "posbus_risk_state",
                "1 for the risk engine's current state",
                labels=["worker", "state"],
            )
            for state in ("Normal", "Warning", "CoolDown", "Halted"):
                family.add_metric([w, state], 1.0 if risk["state"] == state else 0.0)
            yield family
        if self.worker.startswith("gateway."):
            gateway = self._inspect(self.worker)
            breaker = find_breaker(gateway) if gateway is not None else None
            family = GaugeMetricFamily(
                "posbus_breaker_state",
                "1 for the circuit breaker's current state (none: no network exchange)",
                labels=["worker", "state"],
            )
            for state in ("closed", "open", "half_open", "none"):
                family.add_metric([w, state], 1.0 if (breaker or "none") == state else 0.0)
            yield family

    def _inspect(self, actor: str) -> dict[str, Any] | None:
        return self._call("inspect", {"actor": actor})


def find_breaker(view: Any) -> str | None:
    """The breaker state anywhere in a gateway's inspect view (a network exchange nests it)."""
    if isinstance(view, dict):
        for key, value in view.items():
            if key == "breaker":
                if isinstance(value, str):
                    return value
                if isinstance(value, dict) and isinstance(value.get("state"), str):
                    return str(value["state"])
            found = find_breaker(value)
            if found is not None:
                return found
    elif isinstance(view, list):
        for item in view:
            found = find_breaker(item)
            if found is not None:
                return found
    return None


class MetricsEndpoint:
    """The HTTP endpoint of one worker; `close` stops it (caller's thread)."""

    def __init__(
        self, worker: str, handlers: Mapping[str, AdminCall], host: str, port: int
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(WorkerCollector(worker, handlers))
        self.host = host
        self.port = port
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        logger.info(
            "prometheus metrics endpoint serving",
            extra={"worker": worker, "url": f"http://{host}:{port}/metrics"},
        )

    def close(self) -> None:
        """Stop serving and join the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_for_worker(config: Any, name: str, worker: Any) -> MetricsEndpoint | None:
    """The endpoint of worker `name` when `[metrics] prometheus_port_base` is set, else None.

    Uses the worker's admin handlers (`admin_handlers()`, or the `status` and
    `metrics` a feed or broker answers).
    """
    settings = config.metrics
    if not settings.prometheus_port_base:
        return None
    handlers: Mapping[str, AdminCall]
    if hasattr(worker, "admin_handlers"):
        handlers = worker.admin_handlers()
    else:
        handlers = {
            key: getattr(worker, attr)
            for key, attr in (("status", "status"), ("metrics", "metrics"))
            if callable(getattr(worker, attr, None))
        } or {
            key: getattr(worker, attr)
            for key, attr in (("status", "_status"), ("metrics", "_metrics"))
            if callable(getattr(worker, attr, None))
        }
    port = metrics_port(settings.prometheus_port_base, name, tuple(config.accounts()))
    return MetricsEndpoint(name, handlers, settings.prometheus_host, port)
