"""BusMetrics: counts per kind, named counters, latency percentiles, a Reply-compatible snapshot."""

from __future__ import annotations

import tracemalloc

from posbus.bus.messages import Reply
from posbus.bus.metrics import BusMetrics


def test_snapshot_counts_and_percentiles_fit_in_a_reply() -> None:
    metrics = BusMetrics(latency_sample=1000)
    metrics.count_in("market_update", 5)
    metrics.count_in("market_update")
    metrics.count_out("reply")
    metrics.count("gaps")
    for us in range(1, 1001):  # 1..1000 us
        metrics.observe_latency_ns(us * 1000)
    snap = metrics.snapshot()
    assert snap["in"]["market_update"]["count"] == 6
    assert snap["out"]["reply"]["count"] == 1
    assert snap["counters"] == {"gaps": 1}
    # Sorted sample of 1000: index 999*50//100 = 499 -> 500 us; 999*99//100 = 989 -> 990 us;
    # 999*999//1000 = 998 -> 999 us.
    assert snap["latency_us"] == {"count": 1000, "p50": "500.0", "p99": "990.0", "p999": "999.0"}
    Reply.success("r", snap)  # raises WireError if the snapshot broke the reply schema


def test_latency_sample_is_a_ring_of_the_latest_values() -> None:
    metrics = BusMetrics(latency_sample=3)
    for ns in (1_000_000, 1_000_000, 1_000_000, 1_000, 1_000, 1_000):
        metrics.observe_latency_ns(ns)
    # The three 1 ms values were overwritten by the three 1 us ones.
    assert metrics.latency_percentiles_ns() == {"p50": 1_000, "p99": 1_000, "p999": 1_000}


def test_a_partly_filled_sample_counts_only_what_was_observed() -> None:
    metrics = BusMetrics(latency_sample=100)
    for ns in (5_000, 7_000):
        metrics.observe_latency_ns(ns)
    assert metrics.latency_percentiles_ns() == {"p50": 5_000, "p99": 5_000, "p999": 5_000}


def test_filling_the_latency_sample_allocates_nothing() -> None:
    # Allocated once: a worker's memory must not creep up while the ring fills
    # (the 1-minute soak's RSS criterion saw 4 MB of a 100,000-value list).
    metrics = BusMetrics(latency_sample=100_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for ns in range(1_000_000_000, 1_000_000_000 + 100_000):
            metrics.observe_latency_ns(ns)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000, grown


def test_rates_are_per_second_since_the_previous_snapshot() -> None:
    metrics = BusMetrics()
    metrics.count_in("risk_event", 10)
    metrics.snapshot()
    second = metrics.snapshot()
    # No message between the two snapshots: rate 0, count unchanged.
    assert second["in"]["risk_event"] == {"count": 10, "rate": "0.0"}
