"""The positions role on the bus: the PositionActors of shard I/N as "positions.I".

Owns the positions of every account of the stack whose crc32 of
account+symbol falls in its shard, fans market data out to them (one
conflated quote per mailbox), applies each account's execution signals
through that account's `ExecutionFeed` (one per gateway), sends each
position's orders and cancels to its account's gateway and answers commands
through `PositionsCommands`. A corrupt journal stream halts the account
through the risk worker. It must never wait for an actor on the I/O thread.

Threads: the I/O thread (`on_events`, `on_tick`: tells only), the control
thread (commands, signal application, gap repair, halts), the admin thread
(`status`), the position actors' threads (`on_corrupt`) and the caller's
(start/stop); `position`/`positions` are safe from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from posbus.actors import positions_schema
from posbus.actors.control import Halt, Resync, SubmitOrder, trading_restricted
from posbus.actors.execution_feed import APPLIED_PREFIX, ExecutionFeed
from posbus.actors.journal import Journal, JournalCorrupt
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.position_actor import position_stream
from posbus.actors.positions_commands import PositionsCommands
from posbus.actors.quote_slot import QuoteSlot
from posbus.actors.remote import RemoteGateway, RemoteRisk
from posbus.actors.sharding import Shard
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.requests import StartChild
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.supervision.supervisor import Supervisor
from posbus.actors.worker import (
    ASK_TIMEOUT_S,
    RESYNC_COMMAND,
    RESYNC_EVENT,
    Worker,
    WorkerError,
    WorkerSettings,
    json_ready,
)
from posbus.bus.command_schema import Route
from posbus.bus.messages import Command, CommandArg, MarketUpdate, Message, OrderRejected
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_EXECUTION, PREFIX_MARKET, risk_topic

# The risk worker's state changes (`RiskEvent.event`), on rk|state_change|.
STATE_CHANGE_EVENT = "state_change"

logger = logging.getLogger(__name__)


class PositionsWorker(Worker):
    """The position actors of one shard on the bus (see the module docstring)."""

    role = "positions"

    def __init__(self, settings: WorkerSettings, *, journal: Journal, clock: Clock) -> None:
        if settings.shard is None:
            raise WorkerError("a positions worker needs a shard (I/N)")
        self.shard: Shard = settings.shard
        super().__init__(settings, journal=journal, clock=clock)
        self.remote_risk = RemoteRisk(self.io)
        # Per account, its gateway: a position's orders go to its own account's.
        self._gateways: dict[str, RemoteGateway] = {}
        self._gateways_lock = threading.Lock()
        self._spawn_lock = threading.Lock()
        # symbol -> {stream: handle}: market data fans out without a scan of every actor.
        self._by_symbol: dict[str, dict[str, ChildHandle]] = {}
        # stream -> the current incarnation's conflated market mailbox entry.
        self._quote_slots: dict[str, QuoteSlot] = {}
        self._last_market: dict[str, MarketUpdate] = {}
        # Per account, the execution signals of its gateway (gap repair, incarnations).
        self.feeds: dict[str, ExecutionFeed] = {
            account: ExecutionFeed(
                io=self.io,
                journal=journal,
                worker_name=settings.name,
                account=account,
                apply=self._apply_signal,
                position_handles=self.position_handles,
            )
            for account in settings.stack_accounts()
        }
        self.commands = PositionsCommands(
            accounts=settings.stack_accounts(),
            symbols=settings.symbols.keys(),
            steps=settings.steps,
            clock=clock,
            outbox=self.outbox,
            factory=self.factory,
            snapshots=self.snapshots,
            position=self.position,
            position_handles=self.position_handles,
            last_told=self._last_told,
        )
        # Corrupt streams whose halt the risk worker has not confirmed yet.
        self._halts_pending: dict[str, JournalCorrupt] = {}
        self._halts_lock = threading.Lock()

    def services(self) -> list[str]:
        return [self.shard.service]

    def prefixes(self) -> list[bytes]:
        executions = [
            PREFIX_EXECUTION + account.encode() + b"|" for account in self.settings.stack_accounts()
        ]
        return [
            PREFIX_MARKET,
            *executions,
            risk_topic(RESYNC_EVENT),
            risk_topic(STATE_CHANGE_EVENT),
        ]

    def _children(self) -> list[ChildSpec]:
        return [Supervisor.spec("positions", [], policy=self.settings.policy)]

    def start(self) -> None:
        # How far each gateway incarnation was applied here is known before the
        # bus starts: a signal that arrives first must not be taken for news
        # from an unknown sender, which would fetch (and journal again)
        # everything every incarnation ever published.
        owned = []
        for stream in self.journal.streams():
            if stream.startswith("position/"):
                _, account, symbol = stream.split("/", 2)
                if self.shard.owns(account, symbol):
                    owned.append((account, symbol))
            elif stream.startswith(APPLIED_PREFIX):
                feed = self._feed_of_sender(stream[len(APPLIED_PREFIX) :])
                if feed is not None:
                    feed.restore_mark(stream)
        super().start()
        # Journaled positions recover (replay) now; what the gateway published
        # since then comes with the Clone fetch in `recover`.
        self.positions(owned)

    def after_start(self) -> None:
        # Clone pattern: subscribed already; now fetch each gateway's records.
        for feed in self.feeds.values():
            self.io.control(feed.recover)

    def _feed_of_sender(self, sender: str) -> ExecutionFeed | None:
        """The feed of the gateway that published as `sender` (`gateway.ACCOUNT.PID.N`).

        A gateway's sender names its worker, `gateway.ACCOUNT`, so an account
        never takes another's incarnation for its own; with one account, every
        mark is its gateway's (whatever the worker was named).
        """
        if len(self.feeds) == 1:
            return next(iter(self.feeds.values()))
        name = sender.rsplit(".", 2)[0]
        return self.feeds.get(name.removeprefix("gateway."))

    def _gateway(self, account: str) -> RemoteGateway:
        """The gateway of `account` (any thread; one per account, made when first needed)."""
        with self._gateways_lock:
            gateway = self._gateways.get(account)
            if gateway is None:
                gateway = self._gateways[account] = RemoteGateway(self.io, account, self._not_sent)
            return gateway

    # -- positions ----------------------------------------------------------------------------

    def position(self, account: str, symbol: str) -> ChildHandle:
        """The handle of the position actor of account+symbol (started if needed; any thread)."""
        if not self.shard.owns(account, symbol):
            raise WorkerError(
                f"{account}/{symbol} belongs to another positions shard than {self.shard}"
            )
        stream = position_stream(account, symbol)
        with self._handles_lock:  # a lookup, not a copy: O(1) with 10,000 actors
            handle = self.handles.get(stream)
        if handle is not None and handle.state is not HandleState.TERMINATED:
            return handle
        with self._spawn_lock:
            with self._handles_lock:
                handle = self.handles.get(stream)
            if handle is not None and handle.state is not HandleState.TERMINATED:
                return handle
            spec = self._position_spec(account, symbol)
            supervisor = self._positions_supervisor()
            started: ChildHandle = supervisor.ask(StartChild(spec), timeout=ASK_TIMEOUT_S)
            self._register(symbol, stream, started)
            return started

    def positions(self, pairs: Iterable[tuple[str, str]]) -> list[ChildHandle]:
        """The handles of many position actors, the missing ones started together (any thread).

        As `position` for each (account, symbol), in order, but pipelined:
        every start request reaches the positions supervisor before the first
        answer is awaited, so the caller's round trip to the supervisor is
        paid once rather than once per actor (a worker restarting with
        10,000 journaled positions). Each start is still synchronous in the
        supervisor (OTP): every returned handle's actor has run its
        `on_start`, or failed it and is being restarted.
        """
        pairs = list(pairs)
        for account, symbol in pairs:
            if not self.shard.owns(account, symbol):
                raise WorkerError(
                    f"{account}/{symbol} belongs to another positions shard than {self.shard}"
                )
        with self._spawn_lock:
            supervisor = self._positions_supervisor().ref
            if supervisor is None:
                raise WorkerError(f"{self.settings.name}: the positions supervisor is restarting")
            pending = []
            for account, symbol in pairs:
                stream = position_stream(account, symbol)
                with self._handles_lock:
                    handle = self.handles.get(stream)
                if handle is None or handle.state is HandleState.TERMINATED:
                    spec = self._position_spec(account, symbol)
                    pending.append((symbol, stream, supervisor.ask(StartChild(spec), block=False)))
            for symbol, stream, future in pending:
                # Each answer comes at most one start after the one before it.
                self._register(symbol, stream, future.get(timeout=ASK_TIMEOUT_S))
        return [self.position(account, symbol) for account, symbol in pairs]

    def _positions_supervisor(self) -> ChildHandle:
        # Known before the bus starts: a signal may start a position at once.
        with self._handles_lock:
            return self.handles["positions"]

    def _register(self, symbol: str, stream: str, handle: ChildHandle) -> None:
        with self._handles_lock:
            self.handles[stream] = handle
            self._by_symbol.setdefault(symbol, {})[stream] = handle

    def _position_spec(self, account: str, symbol: str) -> ChildSpec:
        """The child spec of a position actor (caller holds the spawn lock)."""
        stream = position_stream(account, symbol)

        def start(link: Any) -> Any:
            # A fresh slot per incarnation: one told to a mailbox that died
            # with its actor would otherwise stay full, and never be told again.
            self._quote_slots[stream] = QuoteSlot()
            recipe = self.factory.position(
                account,
                symbol,
                risk=self.remote_risk,
                gateway=self._gateway(account),
                last_market=self._last_market.get(symbol),
            )
            return recipe.start(link)

        return ChildSpec(stream, start, restart=RestartType.TRANSIENT)

    def position_handles(self) -> dict[str, ChildHandle]:
        """Every position actor's handle, by stream."""
        return {k: v for k, v in self._all_handles().items() if k.startswith("position/")}

    def snapshot_targets(self) -> list[ChildHandle]:
        return [h for h in self.position_handles().values() if h.state is HandleState.RUNNING]

    # -- corrupt streams ------------------------------------------------------------------------

    def on_corrupt(self, stream: str, error: JournalCorrupt) -> None:
        """A position's stream is corrupt (its thread): halt the account through the risk worker.

        The position stays down (the factory starts it no more); the halt is
        journaled by the risk worker and survives restarts. Asked from the
        control thread, and asked again every tick until the risk worker answers.
        """
        logger.critical(
            "journal corrupt: halting the account",
            extra={"worker": self.settings.name, "stream": stream, "seq": error.seq},
        )
        self.io.metrics.count("corrupt_streams")
        with self._halts_lock:
            self._halts_pending[stream] = error
        self.io.control(self._send_halts)

    def on_tick(self) -> None:
        with self._halts_lock:
            pending = bool(self._halts_pending)
        if pending:
            self.io.control(self._send_halts)

    def _send_halts(self) -> None:
        """Ask the risk worker to halt for each unconfirmed corrupt stream (control thread)."""
        with self._halts_lock:
            pending = dict(self._halts_pending)
        for stream, error in pending.items():
            account = stream.split("/", 2)[1]  # position/ACCOUNT/SYMBOL: that account halts
            halt = Halt(f"journal corrupt: {error}", self.clock.now_ns(), account)
            try:
                self.remote_risk.ask(halt, timeout=ASK_TIMEOUT_S)
            except PosbusError as exc:
                logger.error(
                    "halt for a corrupt journal not confirmed yet; asked again next tick",
                    extra={"stream": stream, "error": str(exc)},
                )
                return
            with self._halts_lock:
                self._halts_pending.pop(stream, None)

    def _not_sent(self, submit: SubmitOrder, reason: str) -> None:
        """No submit of an order reached the gateway: the order is rejected (any thread)."""
        self.io.control(partial(self._reject_unsent, submit, reason))

    def _reject_unsent(self, submit: SubmitOrder, reason: str) -> None:
        # Journaled on the position's stream like any exchange answer: the order
        # ends Rejected rather than waiting for an ack that cannot come.
        _, account, symbol = submit.stream.split("/", 2)
        self.io.metrics.count("orders_not_sent")
        logger.warning(
            "order never reached the gateway; rejected",
            extra={"order_id": submit.order_id, "stream": submit.stream, "reason": reason},
        )
        rejected = OrderRejected(
            order_id=submit.order_id,
            reason=f"not sent: gateway unreachable ({reason})",
            ts_ns=self.clock.now_ns(),
        )
        self.outbox.deliver(submit.stream, rejected, self.position(account, symbol))

    # -- events (I/O thread) ---------------------------------------------------------------------

    def on_events(self, batch: list[Received]) -> None:
        slots = self._quote_slots
        superseded = 0
        for received in batch:
            message = received.envelope.message
            topic = received.topic
            if isinstance(message, MarketUpdate):
                self._last_market[message.symbol] = message
                for stream, handle in self._running_of(message.symbol):
                    slot = slots.get(stream)
                    if slot is None:
                        self.tell(stream, handle, message)
                    elif slot.put(message):
                        # At most one market message in an actor's mailbox: a
                        # busy actor takes the newest quote when it gets there.
                        self.tell(stream, handle, slot)
                    else:
                        superseded += 1
            elif topic.startswith(PREFIX_EXECUTION):
                # May start a position actor, which may ask the risk supervisor
                # through this very I/O thread: the control thread applies it.
                feed = self.feeds.get(topic.split(b"|", 2)[1].decode(errors="replace"))
                if feed is None:
                    self.io.metrics.count("rejects")
                else:
                    self.io.control(partial(feed.on_signal, received))
            elif isinstance(message, Command) and message.name == RESYNC_COMMAND:
                for stream, handle in self.position_handles().items():
                    if handle.state is HandleState.RUNNING:
                        self.tell(stream, handle, Resync())
            elif (notice := trading_restricted(message)) is not None:
                # CoolDown or Halted: each position cancels its risk-adding orders.
                for stream, handle in self.position_handles().items():
                    if handle.state is HandleState.RUNNING:
                        self.tell(stream, handle, notice)
        if superseded:
            self.io.metrics.count("conflated_in_mailbox", superseded)

    def _running_of(self, symbol: str) -> list[tuple[str, ChildHandle]]:
        with self._handles_lock:
            handles = list(self._by_symbol.get(symbol, {}).items())
        return [(s, h) for s, h in handles if h.state is HandleState.RUNNING]

    def _apply_signal(self, topic: bytes, message: Message) -> None:
        parts = topic.split(b"|")
        if len(parts) < 3:
            self.io.metrics.count("rejects")
            return
        account, symbol = parts[1].decode(), parts[2].decode()
        if not self.shard.owns(account, symbol):
            return
        stream = position_stream(account, symbol)
        if self.factory.corruption(stream) is not None:
            # Kept for the operator's repair: journaled, told to no one.
            self.outbox.deliver(stream, message, None)
            self.io.metrics.count("signals_held_for_corrupt_streams")
            return
        handle = self.position(account, symbol)
        self._last_told[stream] = time.time_ns()
        # Write-ahead on the receiving side: journaled here before the position hears of it.
        self.outbox.deliver(stream, message, handle)
        self.io.metrics.count_in("execution_signal.applied")

    # -- commands (control thread) -----------------------------------------------------------------

    schema = positions_schema.POSITIONS

    def routes(self) -> list[Route]:
        commands = self.commands
        return [
            positions_schema.LIST.route(commands.list_positions),
            positions_schema.ORDER.route(commands.order),
            positions_schema.CANCEL.route(commands.cancel),
            positions_schema.ORDERS.route(commands.orders),
            positions_schema.INSPECT.route(lambda args: self.inspect({"actor": args.actor})),
        ]

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        out = super().status(args)
        feeds = self.feeds.values()
        out["recovered"] = json_ready(self._recovered())
        out["gaps_repaired"] = sum(feed.gaps_repaired for feed in feeds)
        out["gaps_unrepaired"] = sum(feed.gaps_unrepaired for feed in feeds)
        # With the gateways' published_seq, the journal lag a metrics scrape shows
        # (senders name their gateway's incarnation: no two accounts share one).
        out["applied_seq"] = {s: n for feed in feeds for s, n in feed.applied.items()}
        out["positions"] = len(self.position_handles())
        return out

    def _recovered(self) -> dict[str, Any]:
        """The start-up fetch from every gateway: pending until each is done or failed."""
        accounts = {account: dict(feed.recovered) for account, feed in self.feeds.items()}
        states = {entry["state"] for entry in accounts.values()}
        errors = [f"{a}: {e['error']}" for a, e in accounts.items() if e["state"] == "failed"]
        if "pending" in states:
            state = "pending"
        elif errors:
            state = "failed"
        else:
            state = "done"
        return {"state": state, "accounts": accounts} | (
            {"error": "; ".join(errors)} if errors else {}
        )
