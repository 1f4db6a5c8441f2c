"""The gateway role on the bus: the GatewayActor of one account as "gateway.ACCOUNT".

Hears market data (``md|``) and publishes every execution signal it
delivers on ``ex|ACCOUNT|SYMBOL|``, journaled first on its ``published/SENDER``
stream (journal seq == bus seq); `gateway.replay` and `gateway.incarnations`
serve those records to the positions workers' gap repair. It must never
publish a signal it has not journaled.

Threads: the I/O thread (`publish_signal`, `on_events`), the control thread
(`on_command`), the gateway actor's thread (`_SignalPublisher.tell`, `_halt`),
the admin thread (`status`), and a network exchange's own market thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from posbus.actors import gateway_schema
from posbus.actors.control import Halt
from posbus.actors.exchange_sync import MarketFeed, ReportingExchange
from posbus.actors.gateway_actor import ExchangeClient
from posbus.actors.gateway_schema import REPLAY_PAGE, ReplayArgs
from posbus.actors.journal import Journal
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.remote import RemoteRisk, cancel_order, submit_order
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.handle import ChildHandle
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.worker import ASK_TIMEOUT_S, Worker, WorkerError, WorkerSettings
from posbus.bus.codec import decode, encode
from posbus.bus.command_schema import Route
from posbus.bus.messages import CommandArg, MarketUpdate, Message
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_MARKET, execution_topic, market_topic

logger = logging.getLogger(__name__)

# Per gateway incarnation, what it published (journal seq == bus seq).
PUBLISHED_PREFIX = "published/"


class GatewayWorker(Worker):
    """The gateway of one account on the bus (see the module docstring)."""

    role = "gateway"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        journal: Journal,
        clock: Clock,
        exchange: ExchangeClient | ReportingExchange,
        symbols: Sequence[str] = (),
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        super().__init__(settings, journal=journal, clock=clock)
        self.published_stream = f"{PUBLISHED_PREFIX}{self.io.sender}"

    def start(self) -> None:
        """Start as every worker does; a network exchange then feeds the bus its quotes."""
        super().start()
        if isinstance(self.exchange, MarketFeed) and self.symbols:
            # A real exchange is the market: its quotes go to every worker, as the
            # demo feed's do (the simulated exchange is fed by the feed instead).
            self.exchange.subscribe_market(self.symbols, self._publish_market)

    def stop(self) -> None:
        """Stop as every worker does, then close a network exchange's I/O thread."""
        super().stop()
        close = getattr(self.exchange, "close", None)
        if callable(close):
            close()

    def _publish_market(self, update: MarketUpdate) -> None:
        # Not through the execution publisher: its seq must stay the journal's.
        self.io.publish_market(market_topic(update.symbol), update)

    def _halt(self, reason: str) -> None:
        """Reconciliation found what it cannot resolve: halt trading (gateway actor thread)."""
        try:
            RemoteRisk(self.io).ask(Halt(reason, self.clock.now_ns()), timeout=ASK_TIMEOUT_S)
        except PosbusError as exc:
            logger.critical(
                "could not halt the risk worker",
                extra={"worker": self.settings.name, "reason": reason, "error": str(exc)},
            )

    @property
    def service_name(self) -> str:
        return f"gateway.{self.settings.account}"

    def services(self) -> list[str]:
        return [self.service_name]

    def prefixes(self) -> list[bytes]:
        return [PREFIX_MARKET]

    def _children(self) -> list[ChildSpec]:
        gateway = self.factory.gateway(
            account=self.settings.account,
            exchange=self.exchange,
            lookup=self._doorbell,
            halt=self._halt,
        )
        return [ChildSpec(self.service_name, gateway.start, restart=RestartType.PERMANENT)]

    @property
    def gateway(self) -> ChildHandle:
        """The gateway actor's handle."""
        return self._all_handles()[self.service_name]

    def _doorbell(self, stream: str) -> _SignalPublisher:
        return _SignalPublisher(self, stream)

    def publish_signal(self, stream: str, message: Message) -> None:
        """Journal `message` on the published stream, then publish it (I/O thread).

        The journal's sequence number and the publisher's are the same
        number: both count every execution signal of this incarnation.
        """
        _, account, symbol = stream.split("/", 2)
        # The record's envelope names the position stream as its sender, so a
        # replay can route signals that carry no account or symbol (acks, rejects).
        payload = encode(message, seq=0, sender=stream, ts_ns=self.clock.now_ns())
        record = self.journal.append(self.published_stream, payload)
        publisher = self.io.publisher
        assert publisher is not None
        seq = publisher.publish(
            message, topic=execution_topic(account, symbol), ts_ns=time.time_ns()
        )
        if seq != record.seq:  # pragma: no cover - both count the same frames
            logger.error(
                "published seq differs from journal seq",
                extra={"journal_seq": record.seq, "bus_seq": seq},
            )

    def on_events(self, batch: list[Received]) -> None:
        updates = [
            r.envelope.message for r in batch if isinstance(r.envelope.message, MarketUpdate)
        ]
        if updates:
            self.tell(self.service_name, self.gateway, updates)

    schema = gateway_schema.GATEWAY

    def routes(self) -> list[Route]:
        return [
            gateway_schema.SUBMIT_SPEC.route(lambda args: self._told(submit_order(args))),
            gateway_schema.CANCEL_SPEC.route(lambda args: self._told(cancel_order(args))),
            gateway_schema.REPLAY.route(self.replay),
            gateway_schema.INCARNATIONS.route(lambda args: {"incarnations": self.incarnations()}),
            gateway_schema.INSPECT.route(lambda args: self.inspect({"actor": self.service_name})),
        ]

    def _told(self, message: object) -> dict[str, Any]:
        self.tell(self.service_name, self.gateway, message)
        return {}

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        out = super().status(args)
        out["published_seq"] = self.journal.last_seq(self.published_stream)
        return out

    def replay(self, args: ReplayArgs) -> dict[str, Any]:
        """Published records after `after` (at most `limit`), hex-encoded envelopes, in order.

        `sender` names the incarnation whose records to read (default: this
        one); the journal keeps every incarnation's ``published/SENDER`` stream.
        """
        after = args.after
        sender = args.sender or self.io.sender
        stream = f"{PUBLISHED_PREFIX}{sender}"
        if stream != self.published_stream and self.journal.last_seq(stream) == 0:
            raise WorkerError(f"gateway.replay: no records of sender {sender!r}")
        records: list[str] = []
        for record in self.journal.read(stream, after):
            if len(records) >= min(args.limit, REPLAY_PAGE):
                break
            records.append(record.payload.hex())
        return {
            "sender": sender,
            "current": self.io.sender,
            "after": after,
            "last_seq": self.journal.last_seq(stream),
            "records": records,
        }

    def incarnations(self) -> list[dict[str, Any]]:
        """Every incarnation that published, oldest first: its sender and last seq.

        A positions worker applies an earlier incarnation's records it missed
        (published just before that gateway died) before the current one's.
        Order: the journal timestamp of each stream's first record.
        """
        found = []
        for stream in self.journal.streams():
            if not stream.startswith(PUBLISHED_PREFIX):
                continue
            first = next(iter(self.journal.read(stream, 0)), None)
            started = decode(first.payload).ts_ns if first is not None else time.time_ns()
            found.append((started, stream[len(PUBLISHED_PREFIX) :], self.journal.last_seq(stream)))
        if not any(sender == self.io.sender for _, sender, _ in found):
            found.append((time.time_ns(), self.io.sender, 0))
        return [{"sender": sender, "last_seq": last} for _, sender, last in sorted(found)]


class _SignalPublisher:
    """The doorbell the gateway rings for a position in another process (actor thread)."""

    def __init__(self, worker: GatewayWorker, stream: str) -> None:
        self.worker = worker
        self.stream = stream

    def tell(self, message: object) -> None:
        delivered_message = getattr(message, "message", None)
        if delivered_message is None:
            raise TypeError(f"expected a Delivered record, got {type(message).__name__}")
        self.worker.io.call_soon(lambda: self.worker.publish_signal(self.stream, delivered_message))
