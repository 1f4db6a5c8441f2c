"""The chaos run: a real stack under a seeded workload and seeded faults, then an audit.

`run_chaos` writes a configuration (two positions shards, SQLite journals),
starts the stack with `posbus up --detach` (launcher, broker, risk, gateway,
positions.0, positions.1) and trades against one of two exchanges
(`exchange`):

- "emulator" (the default): the Binance emulator runs in this process
  (posbus.adapters.simulation.chaos_venue) and the gateway trades with it
  through real ccxt over HTTP; the gateway and the exchange are fault targets.
- "simulated": the simulated exchange lives inside the gateway process and
  the demo feed gives market data. The gateway is no fault target there:
  killing it would wipe the exchange itself, which no real gateway crash does.

For `duration_s` it sends orders and injects seeded faults, then lets the
stack recover and audits (posbus.adapters.simulation.chaos_audit). The
workload, the faults and the audit: docs/architecture.md, "Chaos run".

Threads: the run is on the caller's thread (with the emulator, chaos_venue
adds the emulator's server threads and its price-walk thread); the stack is
other processes. This module must never leave a process behind:
`ChaosStack.close` brings the stack down and SIGKILLs what refuses to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.order import TERMINAL_STATES, OrderStatus
from posbus.adapters.launcher_client import StackClient
from posbus.adapters.simulation.chaos_audit import (
    AuditResult,
    VenueLedger,
    VenueOrder,
    VenueTrade,
    audit,
)
from posbus.adapters.simulation.chaos_journal_stall import JournalStall
from posbus.adapters.simulation.chaos_venue import EXCHANGE_FAULTS, ChaosVenue, VenueAccess

WORKING = frozenset(s.value for s in OrderStatus if s not in TERMINAL_STATES)
"""Order states that may still change: the run settles when no order is in one."""

EXCHANGES = ("emulator", "simulated")
"""What the gateway trades with (see the module docstring)."""

GATEWAY = "gateway.default"
"""The gateway worker of the chaos stack's (default) account."""

KILLED = ("positions.0", "positions.1", "risk", "broker")
"""Workers the run kills with the simulated exchange (see the module docstring)."""

JOURNAL_FAULTS = tuple(f"journal.{w}" for w in ("positions.0", "positions.1", "risk", GATEWAY))
"""A worker's SQLite journal locked by this process for a few seconds (JournalStall)."""

FAULT_TARGETS = (*KILLED, *JOURNAL_FAULTS)
"""Faults of a run with the simulated exchange."""

EMULATOR_FAULT_TARGETS = (*KILLED, GATEWAY, *JOURNAL_FAULTS, *EXCHANGE_FAULTS)
"""Faults of a run against the emulator: every worker, journal stalls, the exchange's own faults."""

MAX_ORDER_NOTIONAL = Decimal(400)
"""The chaos stack's `[risk] max_order_notional`: qty 1-3 at prices 20-200 passes it at times."""

JOURNAL_STALL_S = (1.0, 4.0)
"""How long a journal stall lasts: uniform in this range (seeded)."""

GATEWAY_TIMEOUT_S = 1.0
"""The ccxt gateway's request timeout in an emulator run (a held request outlasts it)."""
STREAM_LIVENESS_S = 2.0
"""A silent user-data stream is down after this long: a stall fault ends quickly."""


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """What one chaos run does; every random choice derives from `seed`."""

    seed: int = 1
    duration_s: float = 60.0
    symbols: int = 50
    market_steps_per_s: int = 10
    orders_per_s: float = 8.0
    mean_fault_interval_s: float = 4.0
    #: "emulator" or "simulated" (EXCHANGES).
    exchange: str = "emulator"
    #: Empty: every fault of the exchange mode (EMULATOR_FAULT_TARGETS or FAULT_TARGETS).
    fault_targets: tuple[str, ...] = ()
    # False: a fault waits until the previous one's worker has recovered.
    overlap_faults: bool = True
    # The simulated exchange's rejects and partial fills (exchange "simulated").
    reject_rate: float = 0.05
    partial_fill_rate: float = 0.3
    # The gateway's REST polling of working orders and of the venue's quotes.
    poll_interval_s: float = 0.25
    settle_timeout_s: float = 90.0

    def __post_init__(self) -> None:
        if self.exchange not in EXCHANGES:
            raise ValueError(f"exchange must be one of {EXCHANGES}, got {self.exchange!r}")

    @property
    def targets(self) -> tuple[str, ...]:
        """The fault targets of this run."""
        if self.fault_targets:
            return self.fault_targets
        return EMULATOR_FAULT_TARGETS if self.exchange == "emulator" else FAULT_TARGETS


@dataclass(slots=True)
class ChaosReport:
    """Counts of one run and the audit's discrepancies (exit non-zero unless none)."""

    seed: int
    duration_s: float
    symbols: int
    exchange: str = "emulator"
    orders_sent: int = 0
    orders_refused: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    recoveries: int = 0
    recoveries_incomplete: int = 0
    recovery_errors: list[str] = field(default_factory=list)
    market_updates: int = 0
    #: Emulator runs: the gateway's fills by path (stream, poll) since its last start.
    gateway_fills: dict[str, int] = field(default_factory=dict)
    workers_alive: bool = False
    audit: AuditResult = field(default_factory=AuditResult)
    problems: list[str] = field(default_factory=list)

    @property
    def discrepancies(self) -> int:
        """Audit discrepancies plus run-level problems (a worker down, no settle)."""
        return len(self.audit.discrepancies) + len(self.problems)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (money as decimal strings)."""
        return {
            "seed": self.seed,
            "exchange": self.exchange,
            "duration_s": self.duration_s,
            "symbols": self.symbols,
            "faults_injected": sum(self.faults.values()),
            "faults": dict(sorted(self.faults.items())),
            "orders_sent": self.orders_sent,
            "orders_refused": self.orders_refused,
            "orders": self.audit.orders,
            "fills": self.audit.fills,
            "fills_applied": self.audit.fills_applied,
            "exchange_rejects": self.audit.rejects,
            "venue_orders": self.audit.venue_orders,
            "venue_trades": self.audit.venue_trades,
            "risk_refusals": self.audit.risk_refusals,
            "largest_order_notional": str(self.audit.largest_order_notional),
            "positions": self.audit.positions,
            "market_updates": self.market_updates,
            "gateway_fills": dict(self.gateway_fills),
            "restarts": self.restarts,
            "recoveries": self.recoveries,
            "recoveries_incomplete": self.recoveries_incomplete,
            "recovery_errors": self.recovery_errors,
            "workers_alive": self.workers_alive,
            "cash": str(self.audit.cash),
            "discrepancies": self.discrepancies,
            "discrepancy_details": [f"{d.where}: {d.what}" for d in self.audit.discrepancies]
            + self.problems,
        }


def symbol_names(count: int) -> list[str]:
    """`count` distinct symbols, SYM00/USDT, SYM01/USDT, ..."""
    return [f"SYM{i:02d}/USDT" for i in range(count)]


def symbol_prices(settings: ChaosSettings) -> dict[str, Decimal]:
    """The seeded starting price of every chaos symbol."""
    rng = random.Random(settings.seed)  # noqa: S311 - a workload, not cryptography
    return {name: Decimal(rng.randrange(20, 200)) for name in symbol_names(settings.symbols)}


def _exchange_table(settings: ChaosSettings, venue: VenueAccess | None) -> list[str]:
    if settings.exchange == "simulated":
        return [
            "[exchange]",
            f"seed = {settings.seed}",
            f"reject_rate = {settings.reject_rate}",
            f"partial_fill_rate = {settings.partial_fill_rate}",
        ]
    if venue is None:
        raise ValueError("an emulator chaos stack needs the venue's urls and credentials")
    lines = [
        "[exchange]",
        'kind = "ccxt"',
        'exchange_id = "binance"',
        f'credentials_file = "{venue.credentials_file}"',
        'market_data = "rest"',
        f"timeout_ms = {int(GATEWAY_TIMEOUT_S * 1000)}",
        "recv_window_ms = 1500",
        "enable_rate_limit = false",
        f"poll_interval_s = {settings.poll_interval_s}",
        f"user_stream_liveness_s = {STREAM_LIVENESS_S}",
        "reconcile_interval_s = 10",
        "retry_tries = 3",
        "retry_min_s = 0.05",
        "retry_max_s = 0.5",
        "max_retry_after_s = 2",
        "breaker_threshold = 8",
        "breaker_cooloff_s = 2",
        "",
        "[exchange.urls]",
    ]
    lines += [f'"{name}" = "{url}"' for name, url in sorted(venue.urls.items())]
    return lines


def chaos_config(settings: ChaosSettings, run_dir: Path, venue: VenueAccess | None = None) -> str:
    """The TOML configuration of a chaos stack in `run_dir` (`venue`: the emulator's access)."""
    lines = [
        f'run_dir = "{run_dir}"',
        "",
        "[log]",
        'level = "WARNING"',
        "",
        *_exchange_table(settings, venue),
        "",
        "[risk]",
        # Rate and exposure limits stay out of the workload's way so the audit
        # sees fills, not a cool-down; the order notional limit refuses the
        # larger orders of the dearer symbols, and the audit checks that no
        # order was filled beyond it.
        f'max_order_notional = "{MAX_ORDER_NOTIONAL}"',
        "max_orders_per_second = 1000",
        "stale_after_s = 60",
        "",
        "[demo]",
        f"seed = {settings.seed}",
        f"steps_per_s = {settings.market_steps_per_s}",
        "open_probability = 0.0",
        "close_probability = 0.0",
        "volatility = 0.001",
        "",
        "[bus]",
        "heartbeat_interval_s = 0.2",
        "liveness = 3",
        "",
        "[workers]",
        "position_shards = 2",
        "tick_s = 0.5",
        "",
        "[launcher]",
        "max_restarts = 1000",
        "period_s = 60",
        "stop_timeout_s = 15",
        "",
        "[symbols]",
    ]
    for name, price in symbol_prices(settings).items():
        lines.append(f'"{name}" = {{ price = "{price}", order_qty = "1" }}')
    return "\n".join(lines) + "\n"


class ChaosStack:
    """A stack brought up with `posbus up --detach` (and `--demo`) in `root` (caller's thread).

    `config` writes the TOML configuration for a given run directory; `demo`
    runs the demo feed (market data of the simulated exchange).
    """

    def __init__(self, root: Path, config: Callable[[Path], str], *, demo: bool = True) -> None:
        self.root = root
        self.run_dir = root / "var"
        self.config = root / "posbus.toml"
        self.config.write_text(config(self.run_dir), encoding="utf-8")
        self.demo = demo
        self._client: StackClient | None = None

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`posbus ARGS --config CONFIG` in a fresh interpreter."""
        return subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "posbus.adapters.cli.main", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        """Start the stack; raises RuntimeError when it does not come up."""
        result = self.cli("up", "--detach", *(["--demo"] if self.demo else []), timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"posbus up failed ({result.returncode}): {result.stderr.strip()}")
        self._client = StackClient(str(self.config), None)

    @property
    def client(self) -> StackClient:
        """The StackClient of this stack (after `up`)."""
        if self._client is None:
            raise RuntimeError("the chaos stack is not up")
        return self._client

    def run_info(self) -> dict[str, Any]:
        """run.json (pids, restarts) as the launcher last wrote it; {} while it is rewritten."""
        try:
            data: dict[str, Any] = json.loads(
                (self.run_dir / "run.json").read_text(encoding="utf-8")
            )
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def worker_pid(self, name: str) -> int | None:
        """The pid of worker `name` per run.json."""
        worker = self.run_info().get("workers", {}).get(name)
        return None if worker is None else int(worker["pid"])

    def serving(self, name: str, timeout: float = 0.5) -> dict[str, Any] | None:
        """The worker's admin `status`, or None when it does not answer within `timeout`."""
        try:
            reply = self.client.admin(name, "status", timeout=timeout)
        except (PosbusError, OSError):
            return None
        return reply.result if reply.ok else None

    def pids(self) -> list[int]:
        """The launcher's and every worker's pid."""
        data = self.run_info()
        if not data:
            return []
        return [int(data["launcher_pid"])] + [int(w["pid"]) for w in data["workers"].values()]

    def close(self) -> None:
        """`posbus down`; SIGKILL whatever still runs after it."""
        pids = self.pids()
        if self._client is not None:
            self._client.close()
        self.cli("down", "--timeout", "30", timeout=60)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


Log = Callable[[str], None]


def run_chaos(settings: ChaosSettings, root: Path, log: Log = lambda _: None) -> ChaosReport:
    """Run one chaos run in `root` (a short directory: ipc paths are limited) and audit it."""
    report = ChaosReport(
        seed=settings.seed,
        duration_s=settings.duration_s,
        symbols=settings.symbols,
        exchange=settings.exchange,
    )
    venue: ChaosVenue | None = None
    access: VenueAccess | None = None
    if settings.exchange == "emulator":
        venue = ChaosVenue(
            symbol_prices(settings),
            seed=settings.seed,
            steps_per_s=settings.market_steps_per_s,
            volatility=0.001,
            timeout_s=GATEWAY_TIMEOUT_S,
            credentials_file=root / "venue-credentials.toml",
            stream_liveness_s=STREAM_LIVENESS_S,
        )
    try:
        if venue is not None:
            access = venue.start()
            log(f"exchange emulator on {venue.emulator.url}")
        stack = ChaosStack(
            root, lambda run_dir: chaos_config(settings, run_dir, access), demo=venue is None
        )
        stack.up()
        try:
            log(
                f"stack up in {stack.run_dir}; seed {settings.seed}, "
                f"{settings.duration_s} s of chaos against the {settings.exchange} exchange"
            )
            _drive(stack, venue, settings, report, log)
            if venue is not None:
                venue.calm()
                venue.stop_market()
            log("faults, orders and prices stopped; settling")
            _settle(stack, venue, settings, report, log)
            _finish(stack, venue, report)
        finally:
            stack.close()
    finally:
        if venue is not None:
            venue.close()
    return report


def _drive(
    stack: ChaosStack,
    venue: ChaosVenue | None,
    settings: ChaosSettings,
    report: ChaosReport,
    log: Log,
) -> None:
    rng = random.Random(settings.seed)  # noqa: S311 - a workload, not cryptography
    symbols = symbol_names(settings.symbols)
    targets = settings.targets
    stall = JournalStall()
    start = time.monotonic()
    end = start + settings.duration_s
    next_order = start
    next_fault = start + rng.expovariate(1.0 / settings.mean_fault_interval_s)
    pending: dict[str, float] = {}  # fault -> when its recovery may be checked
    marks: dict[str, Decimal] = {}
    next_marks = start
    while (now := time.monotonic()) < end:
        if venue is not None:
            marks = venue.marks
        elif now >= next_marks:
            marks = _marks(stack) or marks
            next_marks = now + 2.0
        if now >= next_order:
            _send_order(stack, rng, symbols, marks, report)
            next_order += rng.expovariate(settings.orders_per_s)
        if now >= next_fault:
            target = rng.choice(targets)
            free = not pending if not settings.overlap_faults else target not in pending
            if free:
                lasts = _inject(stack, venue, stall, target, rng)
                if lasts is not None:
                    report.faults[target] = report.faults.get(target, 0) + 1
                    pending[target] = now + lasts
                    log(f"t={now - start:6.1f}s {_describe(target)}")
            next_fault = now + rng.expovariate(1.0 / settings.mean_fault_interval_s)
        for name in list(pending):
            # A worker counts as recovered once it serves again (a positions
            # shard: once it has replayed its journal and the gateway's fills);
            # an exchange fault once it has passed and the gateway serves.
            if now >= pending[name] and _recovered(stack, _worker_of(name)):
                report.recoveries += 1
                report.recoveries_incomplete += _recovery_failed(stack, name, report)
                del pending[name]
        time.sleep(max(0.0, min(next_order, next_fault, end) - time.monotonic()))
    stall.wait()
    # Recoveries still running when the chaos ends are awaited by the settle phase.
    for name in pending:
        if _wait(partial(_recovered, stack, _worker_of(name)), settings.settle_timeout_s):
            report.recoveries += 1
        else:
            report.problems.append(f"{_worker_of(name)} did not recover after {name}")


def _inject(
    stack: ChaosStack,
    venue: ChaosVenue | None,
    stall: JournalStall,
    target: str,
    rng: random.Random,
) -> float | None:
    """Inject one fault; seconds until its recovery may be checked, None if it did not land."""
    if target in EXCHANGE_FAULTS:
        if venue is None:
            raise ValueError(f"{target}: exchange faults need the emulator")
        return venue.inject(target, rng)
    if target in JOURNAL_FAULTS:
        seconds = rng.uniform(*JOURNAL_STALL_S)
        stall.hold(stack.run_dir / "journal" / f"{_worker_of(target)}.sqlite", seconds)
        return seconds + 0.3
    return 0.3 if _kill(stack, target) else None


def _describe(target: str) -> str:
    if target in EXCHANGE_FAULTS:
        return target
    if target in JOURNAL_FAULTS:
        return f"journal of {_worker_of(target)} locked"
    return f"kill -9 {target}"


def _worker_of(target: str) -> str:
    """The worker whose serving ends a fault: the gateway for an exchange fault."""
    if target in EXCHANGE_FAULTS:
        return GATEWAY
    return target.removeprefix("journal.")


def _marks(stack: ChaosStack) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    try:
        for position in stack.client.positions(timeout=1.0):
            if position.get("mark"):
                out[position["symbol"]] = Decimal(str(position["mark"]))
    except PosbusError:
        return {}
    return out


def _send_order(
    stack: ChaosStack,
    rng: random.Random,
    symbols: list[str],
    marks: dict[str, Decimal],
    report: ChaosReport,
) -> None:
    symbol = rng.choice(symbols)
    side = rng.choice(("buy", "sell"))
    args: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "qty": str(rng.choice((1, 1, 2, 3))),
        "intent_id": f"chaos-{report.orders_sent + report.orders_refused}",
        "reason": "chaos",
    }
    mark = marks.get(symbol)
    if mark is not None and rng.random() < 0.3:
        # A few bps inside the mark: rests, then fills when the walk crosses it.
        offset = Decimal("0.9995") if side == "buy" else Decimal("1.0005")
        args["limit_price"] = str((mark * offset).quantize(Decimal("0.01")))
    try:
        stack.client.call(
            stack.client.shard_service("default", symbol), "positions.order", args, timeout=1.0
        )
        report.orders_sent += 1
    except PosbusError:
        # A shard or the broker is down: the order was refused or its outcome
        # is unknown; it is never re-sent (the audit finds it if it went in).
        report.orders_refused += 1


def _kill(stack: ChaosStack, name: str) -> bool:
    pid = stack.worker_pid(name)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _recovered(stack: ChaosStack, name: str) -> bool:
    """True once `name` serves again; a positions shard once its start-up fetch has ended.

    A shard whose fetch from the gateway failed (the broker was down at the
    time) serves and repairs from the next gap; the audit tells whether it
    lost anything.
    """
    status = stack.serving(name)
    if status is None:
        return False
    if name.startswith("positions."):
        return bool(status.get("recovered", {}).get("state") in ("done", "failed"))
    return True


def _recovery_failed(stack: ChaosStack, name: str, report: ChaosReport) -> bool:
    if not name.startswith("positions."):
        return False
    status = stack.serving(name) or {}
    recovered = status.get("recovered", {})
    if recovered.get("state") != "failed":
        return False
    report.recovery_errors.append(f"{name}: {recovered.get('error')}")
    return True


def _wait(probe: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(every)
    return False


def _settle(
    stack: ChaosStack,
    venue: ChaosVenue | None,
    settings: ChaosSettings,
    report: ChaosReport,
    log: Log,
) -> None:
    names = sorted(stack.run_info().get("workers", {}))
    if not _wait(lambda: all(_recovered(stack, n) for n in names), settings.settle_timeout_s):
        report.problems.append("not every worker serves after the faults stopped")
        return

    still_working: list[dict[str, Any]] = []

    def no_order_working() -> bool:
        try:
            orders = stack.client.call_all_shards(
                "positions.orders", "orders", {"status": sorted(WORKING)}, timeout=2.0
            )
            working = [o for o in orders if o["status"] in WORKING]
            for order in working:
                if order["status"] != "CancelRequested":
                    stack.client.call(
                        stack.client.shard_service("default", order["symbol"]),
                        "positions.cancel",
                        {"order_id": order["order_id"]},
                        timeout=2.0,
                    )
        except PosbusError:
            return False
        still_working[:] = working
        return not working

    if not _wait(no_order_working, settings.settle_timeout_s, every=0.5):
        stuck = ", ".join(f"{o['order_id']} {o['status']}" for o in still_working)
        report.problems.append(f"orders still working after the settle timeout: {stuck}")
        return

    def clean() -> bool:
        try:
            report.audit = _audit(stack, venue)
        except PosbusError as exc:  # a shard busy or the broker reconnecting: audit again
            report.audit = AuditResult()
            report.audit.add("audit", f"could not read the live state: {exc}")
            return False
        return not report.audit.discrepancies

    # Signals published before the last cancel may still be on their way to a
    # shard: audit until the accounts agree or the settle timeout runs out.
    if not _wait(clean, settings.settle_timeout_s, every=1.0):
        log(f"audit found {len(report.audit.discrepancies)} discrepancies after settling")


def _audit(stack: ChaosStack, venue: ChaosVenue | None) -> AuditResult:
    live: dict[str, dict[str, Any]] = {}
    client = stack.client
    for service in client.position_services():
        for position in client.shard_positions(service, timeout=5.0):
            stream = f"position/{position['account']}/{position['symbol']}"
            live[stream] = client.call(service, "positions.inspect", {"actor": stream}, timeout=5.0)
    journals = stack.run_dir / "journal"
    return audit(
        live,
        [journals / f"{s}.sqlite" for s in client.position_services()],
        journals / f"gateway.{client.config.account}.sqlite",
        venue=None if venue is None else _ledger(venue, client.config.account),
        max_order_notional=MAX_ORDER_NOTIONAL,
    )


def _ledger(venue: ChaosVenue, account: str) -> VenueLedger:
    """The emulator's orders and trades, as the audit compares them."""
    emulator = venue.emulator
    names = {name.replace("/", ""): name for name in venue.symbols}
    orders = [
        VenueOrder(
            client_order_id=str(o["clientOrderId"]),
            exchange_order_id=str(o["orderId"]),
            symbol=names[o["symbol"]],
            qty=Decimal(o["origQty"]),
            executed=Decimal(o["executedQty"]),
            status=str(o["status"]),
        )
        for o in emulator.orders()
    ]
    by_id = {o.exchange_order_id: o.client_order_id for o in orders}
    trades = [
        VenueTrade(
            trade_id=str(t.trade_id),
            client_order_id=by_id[str(t.order_id)],
            account=account,
            symbol=t.symbol,
            side=t.side.lower(),
            qty=t.qty,
            price=t.price,
            fee=t.commission,
        )
        for t in emulator.trades()
    ]
    return VenueLedger(orders=tuple(orders), trades=tuple(trades))


def _gateway_fills(stack: ChaosStack) -> dict[str, int]:
    """How the gateway's ccxt client found its fills, since its last start (report only)."""
    try:
        view = stack.client.admin_result(GATEWAY, "inspect", {"actor": GATEWAY}, timeout=2.0)
        counts = view["network"]["exchange"]["counts"]
    except Exception:  # noqa: BLE001 - a count for the report only; the audit decides
        return {}
    keys = ("fills_from_stream", "fills_from_poll", "user_stream.reconnects")
    return {key: int(counts.get(key, 0)) for key in keys}


def _finish(stack: ChaosStack, venue: ChaosVenue | None, report: ChaosReport) -> None:
    data = stack.run_info()
    workers = data.get("workers", {})
    report.restarts = sum(int(w.get("restarts", 0)) for w in workers.values())
    alive = [n for n in workers if stack.serving(n, timeout=2.0) is not None]
    report.workers_alive = len(alive) == len(workers)
    if not report.workers_alive:
        report.problems.append(
            f"workers not serving at the end: {sorted(set(workers) - set(alive))}"
        )
    if venue is not None:
        report.market_updates = venue.touches
        report.gateway_fills = _gateway_fills(stack)
        return
    try:
        feed = stack.client.admin_result("feed", "metrics", timeout=2.0)
        report.market_updates = int(feed["out"].get("market_update", {}).get("count", 0))
    except Exception:  # noqa: BLE001 - a count for the report only; the audit decides
        report.market_updates = 0
