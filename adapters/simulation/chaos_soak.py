"""The soak run: a real stack holding N open positions under a steady market_update rate.

`run_soak` brings a stack up (the chaos run's harness, posbus.adapters.simulation.chaos:
launcher, broker, risk, gateway, two positions shards, the demo feed) with
`positions` symbols, opens one position per symbol through the broker, waits
for every fill, then lets the feed publish one market_update per symbol per
step for `duration_s` while it samples, every `sample_s`:

- the RSS of every worker process (/proc/PID/status VmRSS);
- the mailbox depth of every actor (admin `actors`), summed per worker;
- the risk worker's p99 latencies: `market_to_risk_us` (a market update's
  timestamp to the risk supervisor being told of the exposure it moved:
  feed -> broker -> positions -> broker -> risk) and `latency_us`.

`SoakResult.verdict` compares the samples after `warmup_s` in three equal
windows, first against last: RSS growth under `max_rss_growth` (medians per
worker), no mailbox growth (the last window's median depth at most the
first's plus `mailbox_slack`), a stable p99 (the last window's median at
most `p99_factor` x the first's plus `p99_slack_ms`). Medians, not single
samples, so one scheduling hiccup on a busy machine does not decide.

Threads: the caller's only; the stack is other processes. Nothing here
changes the stack after the positions are opened: it only reads.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.adapters.simulation.chaos import ChaosStack

Log = Callable[[str], None]

_WORKING = frozenset({"PendingOrder", "AwaitingFill", "Accepted", "PartiallyFilled"})


@dataclass(frozen=True, slots=True)
class SoakSettings:
    """One soak run's load, length and pass criteria."""

    positions: int = 1000
    market_steps_per_s: int = 2
    duration_s: float = 600.0
    warmup_s: float = 60.0
    sample_s: float = 2.0
    max_rss_growth: float = 0.05
    mailbox_slack: int = 200
    p99_factor: float = 3.0
    p99_slack_ms: float = 50.0
    seed: int = 1


@dataclass(slots=True)
class Sample:
    """One observation of the whole stack."""

    t_s: float
    rss_kb: dict[str, int]
    mailbox: dict[str, int]
    market_to_risk_p99_us: float | None
    risk_p99_us: float | None


@dataclass(slots=True)
class SoakResult:
    """Samples of a soak run and, per criterion, the figures it was judged on."""

    settings: SoakSettings
    positions_open: int = 0
    market_updates: int = 0
    samples: list[Sample] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def verdict(self) -> list[str]:
        """Judge the samples after warm-up (fills `figures`); the failed criteria, if any."""
        s = self.settings
        kept = [x for x in self.samples if x.t_s >= s.warmup_s]
        if len(kept) < 6:
            self.failures.append(f"only {len(kept)} samples after warm-up (need 6)")
            return self.failures
        third = len(kept) // 3
        first, last = kept[:third], kept[-third:]
        for worker in sorted(kept[0].rss_kb):
            before = statistics.median(x.rss_kb.get(worker, 0) for x in first)
            after = statistics.median(x.rss_kb.get(worker, 0) for x in last)
            growth = (after - before) / before if before else 0.0
            self.figures[f"rss_kb.{worker}"] = {"first": before, "last": after, "growth": growth}
            if growth >= s.max_rss_growth:
                self.failures.append(f"{worker}: RSS grew {growth:.1%} ({before} -> {after} kB)")
        for worker in sorted(kept[0].mailbox):
            before = statistics.median(x.mailbox.get(worker, 0) for x in first)
            after = statistics.median(x.mailbox.get(worker, 0) for x in last)
            self.figures[f"mailbox.{worker}"] = {"first": before, "last": after}
            if after > before + s.mailbox_slack:
                self.failures.append(f"{worker}: mailbox depth grew {before} -> {after}")
        for key in ("market_to_risk_p99_us", "risk_p99_us"):
            a = [v for x in first if (v := getattr(x, key)) is not None]
            b = [v for x in last if (v := getattr(x, key)) is not None]
            if not a or not b:
                self.failures.append(f"{key}: no latency observed")
                continue
            before, after = statistics.median(a), statistics.median(b)
            self.figures[key] = {"first": before, "last": after}
            if after > s.p99_factor * before + s.p99_slack_ms * 1000:
                self.failures.append(f"{key}: p99 {before:.0f} -> {after:.0f} us")
        return self.failures

    def to_json(self) -> dict[str, Any]:
        """Counts, judged figures and failures, JSON-ready."""
        return {
            "positions_open": self.positions_open,
            "market_updates": self.market_updates,
            "duration_s": self.settings.duration_s,
            "warmup_s": self.settings.warmup_s,
            "samples": len(self.samples),
            "figures": self.figures,
            "failures": self.failures,
        }


def soak_config(settings: SoakSettings, run_dir: Path) -> str:
    """The TOML configuration of a soak stack (`positions` symbols, low notional each)."""
    rng = random.Random(settings.seed)  # noqa: S311 - a workload, not cryptography
    lines = [
        f'run_dir = "{run_dir}"',
        "[log]",
        'level = "WARNING"',
        "[exchange]",
        "reject_rate = 0.0",
        "partial_fill_rate = 0.0",
        "[risk]",
        "max_orders_per_second = 100000",
        "stale_after_s = 600",
        "[demo]",
        f"seed = {settings.seed}",
        f"steps_per_s = {settings.market_steps_per_s}",
        "open_probability = 0.0",
        "close_probability = 0.0",
        "volatility = 0.0005",
        "[workers]",
        "position_shards = 2",
        "[launcher]",
        "max_restarts = 0",
        "[symbols]",
    ]
    for i in range(settings.positions):
        lines.append(f'"S{i:04d}/USDT" = {{ price = "{rng.randrange(5, 50)}", order_qty = "1" }}')
    return "\n".join(lines) + "\n"


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _p99(section: Any) -> float | None:
    if isinstance(section, dict) and "p99" in section:
        return float(Decimal(str(section["p99"])))
    return None


def run_soak(settings: SoakSettings, root: Path, log: Log = lambda _: None) -> SoakResult:
    """Run one soak in `root` (short: ipc path limits) and judge it."""
    result = SoakResult(settings)
    stack = ChaosStack(root, lambda run_dir: soak_config(settings, run_dir))
    stack.up()
    try:
        _open_positions(stack, settings, result, log)
        _sample(stack, settings, result, log)
        feed = stack.client.admin_result("feed", "metrics", timeout=5.0)
        result.market_updates = int(feed["out"].get("market_update", {}).get("count", 0))
    finally:
        stack.close()
    result.verdict()
    return result


def _open_positions(stack: ChaosStack, s: SoakSettings, result: SoakResult, log: Log) -> None:
    """One market order per symbol; an order the risk check refused is sent again.

    A position actor is created by its first order and has no mark until the
    next market update, so the first order of a symbol may be refused
    (market order without a mark); the next round finds the actor marked.
    """
    client = stack.client
    symbols = [f"S{i:04d}/USDT" for i in range(s.positions)]
    pending = list(symbols)
    deadline = time.monotonic() + 60 + s.positions / 20
    while pending and time.monotonic() < deadline:
        for symbol in pending:
            side = "buy" if int(symbol[1:5]) % 2 else "sell"
            args: dict[str, Any] = {"symbol": symbol, "side": side, "qty": "1"}
            client.call(
                client.shard_service("default", symbol), "positions.order", args, timeout=10
            )
        while time.monotonic() < deadline:
            time.sleep(1.0)
            orders = client.call_all_shards(
                "positions.orders", "orders", {"status": sorted(_WORKING)}, timeout=30.0
            )
            if not any(o["status"] in _WORKING for o in orders):
                break
        listed = client.positions(timeout=30.0)
        open_ = {p["symbol"] for p in listed if Decimal(str(p["qty"])) != 0}
        result.positions_open = len(open_)
        pending = [x for x in symbols if x not in open_]
        log(f"{result.positions_open} positions open; sending {len(pending)} again")
    if result.positions_open != s.positions:
        raise RuntimeError(f"only {result.positions_open} of {s.positions} positions opened")


def _sample(stack: ChaosStack, s: SoakSettings, result: SoakResult, log: Log) -> None:
    client = stack.client
    workers = stack.run_info()["workers"]
    start = time.monotonic()
    next_sample = start
    while (now := time.monotonic()) - start < s.duration_s:
        if now < next_sample:
            time.sleep(next_sample - now)
            continue
        next_sample += s.sample_s
        rss = {name: _rss_kb(int(w["pid"])) for name, w in workers.items()}
        mailbox: dict[str, int] = {}
        for name in workers:
            if name in ("broker", "feed"):
                continue
            actors = client.admin_result(name, "actors", timeout=10.0)["actors"]
            mailbox[name] = sum(int(a["mailbox"]) for a in actors)
        risk = client.admin_result("risk", "metrics", timeout=10.0)
        sample = Sample(
            t_s=time.monotonic() - start,
            rss_kb=rss,
            mailbox=mailbox,
            market_to_risk_p99_us=_p99(risk.get("market_to_risk_us")),
            risk_p99_us=_p99(risk.get("latency_us")),
        )
        result.samples.append(sample)
        if len(result.samples) % 15 == 1:
            log(
                f"t={sample.t_s:5.0f}s rss_kb={sum(rss.values())} mailbox={sum(mailbox.values())}"
                f" market_to_risk_p99_us={sample.market_to_risk_p99_us}"
            )
