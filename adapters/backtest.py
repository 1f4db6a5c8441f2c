"""The backtest engine: replay market data through the live engine's actors, deterministically.

An `InlineNode` hosts the same PositionActor, RiskSupervisor and GatewayActor
classes a `Node` runs, with the same configuration (`Config.node_config()`),
and the strategy sends the same `OrderIntent`s a live strategy sends
(`posbus.actors.strategy`). Only two things differ: the data source (a replay
of files, `posbus.adapters.market.replay`, with a `ReplayClock` set to each
update's timestamp) and the exchange (the simulated exchange behind
`BacktestExchange`, which makes orders reach it `latency_ns` after they were
sent). The order of a run's events: docs/architecture.md, "Backtest engine".

Deterministic: one thread, a FIFO scheduler, the replay clock, a seeded
exchange and sorted iteration everywhere, so the same data, config, strategy
and seed give byte-identical journals and reports. This module must never
read the wall clock or iterate anything unordered into a result.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posbus.actors.delivery import decode_record
from posbus.actors.events import EventLog
from posbus.actors.gateway_actor import ExchangeReports
from posbus.actors.journal import Journal
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.round_trip import RoundTrip, RoundTripLedger
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor
from posbus.actors.runtime.inline_node import InlineNode
from posbus.actors.strategy import Strategy
from posbus.adapters.cli.decimal_text import format_decimal
from posbus.adapters.config import Config
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.backtest_exchange import BacktestExchange
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange
from posbus.bus.messages import MarketUpdate, Message, OrderFill, OrderIntent, RiskEvent

_NS_PER_S = 1_000_000_000
RISK_TICK_NS = _NS_PER_S
"""The risk supervisor's timer period in replay time."""
PROGRESS_EVERY = 8_192
"""Market updates between two progress callbacks."""
SENDER = "backtest"
"""The sender name in the envelope of every journaled record."""


class ReplayClock:
    """The replay clock: set to each update's time, read by every actor (`Clock`).

    `ManualClock` without its lock: a backtest runs on one thread, and every
    actor reads the clock on every message.
    """

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        """The replay time."""
        return self._now

    def set(self, now_ns: int) -> None:
        """Jump to `now_ns`; raises ValueError if that is earlier than the current time."""
        if now_ns < self._now:
            raise ValueError("a clock never goes back")
        self._now = now_ns


class BacktestError(PosbusError):
    """The backtest could not run (no data, a strategy that failed); nothing was reported."""


def journal_digest(journal: Journal) -> tuple[int, str]:
    """(number of records, sha256 hex) over every stream, sorted, and every record in order.

    Each record contributes its stream name, sequence number and payload
    bytes, so two journals have the same digest exactly when they hold the
    same records.
    """
    digest = hashlib.sha256()
    count = 0
    for stream in journal.streams():
        for record in journal.read(stream):
            digest.update(f"{record.stream}\x00{record.seq}\x00{len(record.payload)}\x00".encode())
            digest.update(record.payload)
            count += 1
    return count, digest.hexdigest()


@dataclass(slots=True)
class BacktestResult:
    """What a run produced, before any metric is computed (see backtest_summary)."""

    starting_equity: Decimal
    start_ns: int
    end_ns: int
    updates: int
    equity: list[tuple[int, Decimal]]
    trips: list[RoundTrip]
    open_trips: list[RoundTrip]
    open_intervals: list[tuple[int, int]]
    fees: Decimal
    fills: int
    orders: dict[str, int]
    positions: dict[str, dict[str, str]]
    risk_state: str
    risk_decisions: dict[str, int]
    risk_events: list[RiskEvent]
    journal_records: int
    journal_sha256: str


class _Context:
    """The strategy's view of the engine (`posbus.actors.strategy.StrategyContext`)."""

    def __init__(self, backtest: Backtest) -> None:
        self._backtest = backtest
        self._ids = itertools.count(1)

    @property
    def account(self) -> str:
        return self._backtest.config.account

    def now_ns(self) -> int:
        return self._backtest.clock.now_ns()

    def position(self, symbol: str) -> Decimal:
        actor = self._backtest.node.position_actor(self.account, symbol)
        return actor.position.qty if actor is not None else Decimal(0)

    def working(self, symbol: str) -> Decimal:
        actor = self._backtest.node.position_actor(self.account, symbol)
        if actor is None:
            return Decimal(0)
        total = Decimal(0)
        for order in actor.orders.values():
            if not order.is_terminal:
                remaining = order.remaining_qty
                total += remaining if order.side is Side.BUY else -remaining
        return total

    def next_intent_id(self) -> str:
        return f"bt-{next(self._ids)}"


class Backtest:
    """One backtest run of `strategy` under `config`; call `run` once.

    `journal` is where the run journals (default: a fresh in-memory
    journal); the digest covers every record it holds.
    """

    def __init__(
        self, config: Config, strategy: Strategy, *, journal: Journal | None = None
    ) -> None:
        self.config = config
        self.strategy = strategy
        self.journal: Journal = journal if journal is not None else MemoryJournal()
        self.clock = ReplayClock(0)
        self.exchange = SimulatedExchange(config.exchange, config.account)
        self.venue = BacktestExchange(self.exchange)
        self.events = EventLog()
        self.node = InlineNode(
            config.node_config(),
            journal=self.journal,
            exchange=self.venue,
            clock=self.clock,
            events=self.events,
            sender=SENDER,
        )
        self.context = _Context(self)
        self.ledger = RoundTripLedger()
        self.risk_events: list[RiskEvent] = []
        self.events.subscribe(self._on_event)
        self.equity: list[tuple[int, Decimal]] = []
        self._interval_ns = config.backtest.equity_interval_s * _NS_PER_S
        self._next_sample = 0
        self._seen_reports = 0
        self._seen_seq: dict[str, int] = {}
        self._open_since: int | None = None
        self.open_intervals: list[tuple[int, int]] = []
        self.fills = 0
        self.updates = 0
        self._ran = False

    def _on_event(self, message: Message) -> None:
        if isinstance(message, RiskEvent):
            self.risk_events.append(message)

    # -- the run -----------------------------------------------------------------------

    def run(
        self,
        updates: Iterable[MarketUpdate],
        on_progress: Callable[[int], None] | None = None,
    ) -> BacktestResult:
        """Replay `updates` (time-ordered) and return the result.

        `on_progress(updates_done)` is called every `PROGRESS_EVERY` updates.
        Raises BacktestError when there is no update, and whatever the data
        source raises (e.g. MarketDataError) or an actor raised (ActorFailed).
        """
        if self._ran:
            raise BacktestError("a Backtest runs once")
        self._ran = True
        stream = iter(updates)
        first = next(stream, None)
        if first is None:
            raise BacktestError("no market data to replay (every row skipped, or empty files)")
        try:
            return self._run(first, stream, on_progress)
        except PosbusError:
            raise
        except Exception as exc:  # strategy code: say when, keep the cause
            raise BacktestError(
                f"the run failed at replay time {self.clock.now_ns()} ns: {exc!r}"
            ) from exc

    def _run(
        self,
        first: MarketUpdate,
        stream: Iterator[MarketUpdate],
        on_progress: Callable[[int], None] | None,
    ) -> BacktestResult:
        start = first.ts_ns
        self.clock.set(start)
        self.node.start()
        self.strategy.on_start(self.context)
        self.equity.append((start, self.config.starting_equity))
        self._next_sample = (start // self._interval_ns + 1) * self._interval_ns

        node = self.node
        venue = self.venue
        clock_set = self.clock.set
        market = node.market
        settle = node.scheduler.run  # node.settle, one call less
        on_market = self.strategy.on_market
        arrivals = venue.queue
        count = 0
        last_ts = start
        # The hot loop: one pass per market update. Boundaries (sampling, risk
        # tick, progress) are kept in locals and checked with one comparison each.
        next_sample = self._next_sample
        next_tick = start
        next_progress = PROGRESS_EVERY if on_progress is not None else -1
        seen_reports = venue.reports_out
        for update in itertools.chain((first,), stream):
            ts = update.ts_ns
            if arrivals and arrivals[0][0] <= ts:
                self._deliver_arrivals(ts)
                next_sample = self._next_sample
                seen_reports = self._seen_reports
            if ts > next_sample:
                self._sample_until(ts)
                next_sample = self._next_sample
            clock_set(ts)
            if ts >= next_tick:
                node.tick()
                next_tick = (ts // RISK_TICK_NS + 1) * RISK_TICK_NS
            market(update)
            settle()
            if venue.reports_out != seen_reports:
                self._collect_fills()
                seen_reports = self._seen_reports
            intents = on_market(update)
            if intents:
                self._signal(intents, node.signal)
            last_ts = ts
            count += 1
            if count == next_progress and on_progress is not None:
                on_progress(count)
                next_progress += PROGRESS_EVERY
        self.updates = count
        if on_progress is not None:
            on_progress(count)
        return self._finish(start, last_ts)

    def _finish(self, start: int, last_ts: int) -> BacktestResult:
        """Deliver what is still on its way, sample the final equity, build the result."""
        end = max(last_ts, self._drain_arrivals())
        if end > self._next_sample:
            self._sample_until(end)
        self.equity.append((end, self._equity()))
        if self._open_since is not None:
            self.open_intervals.append((self._open_since, end))
        return self._result(start, end)

    def _signal(self, intents: Iterable[OrderIntent], signal: Callable[[OrderIntent], Any]) -> None:
        for intent in intents:
            signal(intent)
        self.node.settle()

    def _deliver_arrivals(self, until_ns: int) -> None:
        """Deliver every request arriving at or before `until_ns`, each at its own time."""
        venue = self.venue
        while True:
            arrival = venue.next_arrival_ns()
            if arrival is None or arrival > until_ns:
                return
            self._deliver_one()

    def _drain_arrivals(self) -> int:
        """After the data: deliver what is still on its way; return the last arrival time."""
        last = 0
        while self.venue.next_arrival_ns() is not None:
            last = self._deliver_one()
        return last

    def _deliver_one(self) -> int:
        arrival = self.venue.next_arrival_ns()
        assert arrival is not None
        if arrival > self._next_sample:
            self._sample_until(arrival)
        self.clock.set(max(arrival, self.clock.now_ns()))
        _, reports = self.venue.release_next()
        if reports:
            self.node.tell_gateway(ExchangeReports(tuple(reports)))
            self.node.settle()
        self._collect_fills()
        return arrival

    def _collect_fills(self) -> None:
        """Hand every fill the positions applied since the last call to the ledger and strategy.

        Read from the journal, where the gateway wrote them before any
        position applied them: what the strategy sees is what was applied.
        """
        self._seen_reports = self.venue.reports_out
        fills: list[OrderFill] = []
        for stream in self.node.position_names():
            last = self.journal.last_seq(stream)
            seen = self._seen_seq.get(stream, 0)
            if last == seen:
                continue
            for record in self.journal.read(stream, seen):
                message = decode_record(record).message
                if isinstance(message, OrderFill):
                    fills.append(message)
            self._seen_seq[stream] = last
        for fill in fills:
            self._on_fill(fill)

    def _on_fill(self, message: OrderFill) -> None:
        self.fills += 1
        self.ledger.apply(message.to_fill())
        open_now = any(
            self.ledger.qty(self.config.account, symbol) != 0 for symbol in self._symbols()
        )
        if open_now and self._open_since is None:
            self._open_since = message.ts_ns
        elif not open_now and self._open_since is not None:
            self.open_intervals.append((self._open_since, message.ts_ns))
            self._open_since = None
        intents = self.strategy.on_fill(message)
        if intents:
            self._signal(intents, self.node.signal)

    def _symbols(self) -> list[str]:
        return [name.split("/", 2)[2] for name in self.node.position_names()]

    # -- equity ---------------------------------------------------------------------------

    def _sample_until(self, ts: int) -> None:
        """Record the equity at every sampling boundary strictly before `ts`."""
        equity = self._equity()
        boundary = self._next_sample
        interval = self._interval_ns
        while boundary < ts:
            self.equity.append((boundary, equity))
            boundary += interval
        self._next_sample = boundary

    def _equity(self) -> Decimal:
        """Starting equity plus every position's realized and unrealized P&L at its mark."""
        total = self.config.starting_equity
        for actor in self._actors():
            total += actor.position.realized_pnl
            if actor.mark is not None and actor.position.qty:
                total += actor.position.unrealized_pnl(actor.mark)
        return total

    def _actors(self) -> list[PositionActor]:
        out = []
        for name in self.node.position_names():
            _, account, symbol = name.split("/", 2)
            actor = self.node.position_actor(account, symbol)
            if actor is not None:
                out.append(actor)
        return out

    # -- result ---------------------------------------------------------------------------

    def _result(self, start: int, end: int) -> BacktestResult:
        orders: Counter[str] = Counter()
        positions: dict[str, dict[str, str]] = {}
        for actor in self._actors():
            for order in actor.orders.values():
                orders[order.status.value] += 1
            mark = actor.mark
            unrealized = actor.position.unrealized_pnl(mark) if mark is not None else Decimal(0)
            positions[actor.symbol] = {
                "qty": format_decimal(actor.position.qty),
                "avg_entry_price": format_decimal(actor.position.avg_entry_price),
                "realized_pnl": format_decimal(actor.position.realized_pnl),
                "unrealized_pnl": format_decimal(unrealized),
                "fees": format_decimal(actor.position.fees),
                "mark": "" if mark is None else format_decimal(mark),
            }
        risk = self.node.inspect("risk")
        records, sha = journal_digest(self.journal)
        return BacktestResult(
            starting_equity=self.config.starting_equity,
            start_ns=start,
            end_ns=end,
            updates=self.updates,
            equity=self.equity,
            trips=list(self.ledger.closed),
            open_trips=self.ledger.open_trips(),
            open_intervals=self.open_intervals,
            fees=self.ledger.fees(),
            fills=self.fills,
            orders=dict(sorted(orders.items())),
            positions=dict(sorted(positions.items())),
            risk_state=str(risk["state"]),
            risk_decisions=dict(sorted(risk["decisions_since_start"].items())),
            risk_events=list(self.risk_events),
            journal_records=records,
            journal_sha256=sha,
        )
