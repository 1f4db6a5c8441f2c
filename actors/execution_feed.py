"""The subscriber side of the gateway's published execution signals (Clone pattern).

`ExecutionFeed` keeps, per gateway incarnation, how far its ``ex|`` signals
were applied here (journaled on ``applied/SENDER``), repairs a gap from the
gateway's journal, catches up with earlier incarnations, and at start fetches
everything the gateway published. It must never apply a signal of a sender
that is not the account's gateway, nor one its journal does not hold.

Threads: the control thread (`on_signal`, `recover` and what they call: they
wait for the gateway); `restore_mark` runs in the caller's thread before the
bus starts; the I/O thread only through `io.call_soon` (subscriber rewinds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from posbus.actors.gateway_schema import REPLAY_PAGE
from posbus.actors.journal import Journal
from posbus.actors.model.errors import PosbusError
from posbus.actors.supervision.handle import ChildHandle
from posbus.actors.worker import WorkerError
from posbus.actors.worker_io import WorkerIO
from posbus.bus.codec import decode, encode
from posbus.bus.errors import BrokerUnavailable, UnknownOutcome
from posbus.bus.messages import Command, CommandArg, Message
from posbus.bus.subscriber import Received
from posbus.bus.topics import execution_topic
from posbus.bus.wire_error import WireError

logger = logging.getLogger(__name__)

# Per gateway incarnation, how far its published signals were applied here.
APPLIED_PREFIX = "applied/"
# A gap repair or start-up snapshot waits this long for the gateway.
REPAIR_TIMEOUT_S = 5.0


class ExecutionFeed:
    """A positions worker's execution signals from its account's gateway, in seq order."""

    def __init__(
        self,
        *,
        io: WorkerIO,
        journal: Journal,
        worker_name: str,
        account: str,
        apply: Callable[[bytes, Message], None],
        position_handles: Callable[[], dict[str, ChildHandle]],
    ) -> None:
        self.io = io
        self.journal = journal
        self._worker_name = worker_name
        self._account = account
        # Routes one signal to its position (the worker's shard and actors).
        self._apply = apply
        self._position_handles = position_handles
        # Per gateway sender: the last execution-signal seq applied (control thread).
        self.applied: dict[str, int] = {}
        self.recovered: dict[str, Any] = {"state": "pending"}
        self.gaps_repaired = 0
        self.gaps_unrepaired = 0

    def restore_mark(self, stream: str) -> None:
        """Read how far the incarnation of the ``applied/`` stream `stream` was applied.

        Caller's thread, before the bus starts: a signal that arrives first
        must not be taken for news from an unknown sender.
        """
        records = list(self.journal.read(stream, max(0, self.journal.last_seq(stream) - 1)))
        if records:
            message = decode(records[-1].payload).message
            seq = message.args.get("seq") if isinstance(message, Command) else None
            if isinstance(seq, int):
                self.applied[stream[len(APPLIED_PREFIX) :]] = seq

    def on_signal(self, received: Received) -> None:
        envelope = received.envelope
        sender, seq = envelope.sender, envelope.seq
        last = self.applied.get(sender)
        if last is None:
            # A sender we have not heard from: only the gateway's current
            # incarnation (asked on the command path) may move positions.
            if not self._is_gateway(sender):
                self._refuse_signal(sender, seq, "not the gateway's publisher")
                return
            # A new gateway incarnation: what its predecessors published last
            # may never have arrived (the gateway died, the broker with it).
            try:
                self._catch_up(sender)
            except PosbusError as exc:
                self.gaps_unrepaired += 1
                self._refuse_signal(sender, seq, f"earlier incarnations not fetched: {exc}")
                return
            # Everything it published before this frame may matter (fills of our positions).
            last = 0
        if seq <= last:
            self.io.metrics.count("stale_signals")
            return
        if seq > last + 1:
            # The gateway's journal is the authority: repair up to and including
            # this seq from it; a frame the journal does not hold is not applied.
            if not self._repair(sender, last, seq):
                self.gaps_unrepaired += 1
                if self.applied.get(sender, 0) < seq:
                    self._refuse_signal(sender, seq, "seq not in the gateway's journal")
            return
        self._apply(received.topic, envelope.message)
        self._mark_applied(sender, seq)

    def _is_gateway(self, sender: str) -> bool:
        """True when `sender` is the publisher name of the account's gateway (control thread)."""
        try:
            current = self._gateway_call("gateway.replay", {"after": 0, "limit": 1})["current"]
        except (PosbusError, KeyError):
            return False
        return bool(current == sender)

    def _catch_up(self, current: str | None) -> str:
        """Apply what every earlier gateway incarnation published and was not applied here.

        Returns the current incarnation's sender (control thread). `current`
        (when known) is left to the caller: its records are live.
        """
        incarnations = self._gateway_call("gateway.incarnations", {})["incarnations"]
        if not isinstance(incarnations, list) or not incarnations:
            raise WorkerError("gateway.incarnations gave no incarnation")
        latest = str(incarnations[-1]["sender"])
        for incarnation in incarnations:
            sender, last_seq = str(incarnation["sender"]), int(incarnation["last_seq"])
            if sender in (current, latest):
                continue
            after = self.applied.get(sender, 0)
            if after < last_seq:
                self._mark_applied(sender, self._fetch(sender, after, last_seq))
        return latest

    def _refuse_signal(self, sender: str, seq: int, why: str) -> None:
        """Drop an unverified execution signal: counted, logged, and the subscriber rewound."""
        self.io.metrics.count("forged_signals")
        logger.warning(
            "execution signal refused", extra={"sender": sender, "seq": seq, "reason": why}
        )
        subscriber = self.io.subscriber
        if subscriber is not None:
            applied = self.applied.get(sender, 0)
            self.io.call_soon(lambda: subscriber.rewind(sender, applied))

    def _mark_applied(self, sender: str, seq: int) -> None:
        if seq <= self.applied.get(sender, 0):
            return
        self.applied[sender] = seq
        # Journaled after the signal: a crash in between re-applies one signal,
        # which the position ignores (known trade id, acked order).
        marker = Command("positions.applied", {"seq": seq}, f"applied-{seq}")
        self.journal.append(
            APPLIED_PREFIX + sender, encode(marker, seq=0, sender=self._worker_name, ts_ns=0)
        )

    def _repair(self, sender: str, after: int, upto: int) -> bool:
        """Fetch and apply the gateway's records after..upto (control thread); False if not."""
        logger.warning(
            "execution signal gap; repairing from the gateway",
            extra={"sender": sender, "after": after, "upto": upto},
        )
        try:
            applied = self._fetch(sender, after, upto)
        except PosbusError as exc:
            logger.error(
                "gap not repaired: the gateway did not answer",
                extra={"sender": sender, "after": after, "upto": upto, "error": str(exc)},
            )
            self.io.metrics.count("gaps_unrepaired")
            return False
        self.gaps_repaired += 1
        self.io.metrics.count("gaps_repaired")
        self._mark_applied(sender, applied)
        return applied >= upto

    def _fetch(self, sender: str, after: int, upto: int | None) -> int:
        """Apply `sender`'s published records after `after` (to `upto`); returns the last seq."""
        position = after
        while upto is None or position < upto:
            page: dict[str, CommandArg] = {
                "sender": sender,
                "after": position,
                "limit": REPLAY_PAGE,
            }
            records = self._gateway_call("gateway.replay", page).get("records", [])
            if not isinstance(records, list) or not records:
                break
            for raw in records:
                if upto is not None and position >= upto:
                    # Later records are the live path's: counting them applied
                    # here would make their live copies stale, and drop them.
                    break
                position += 1
                try:
                    envelope = decode(bytes.fromhex(str(raw)))
                    _, account, symbol = envelope.sender.split("/", 2)
                except (WireError, ValueError):
                    self.io.metrics.count("decode_errors")
                    continue
                self._apply(execution_topic(account, symbol), envelope.message)
        return position

    def _gateway_call(self, name: str, args: dict[str, CommandArg]) -> dict[str, Any]:
        """One read-only command to the account's gateway (control thread).

        A read changes nothing, so it is retried (for REPAIR_TIMEOUT_S) when
        the bus is not connected yet, the gateway is restarting or no answer came.
        """
        service = f"gateway.{self._account}"
        deadline = time.monotonic() + REPAIR_TIMEOUT_S
        while True:
            command = Command(name, dict(args), self.io.new_request_id())
            try:
                reply = self.io.request(service, command, REPAIR_TIMEOUT_S)
            except (BrokerUnavailable, UnknownOutcome):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
                continue
            if reply.ok:
                return reply.result
            assert reply.error is not None
            # Right after a broker restart the gateway has not registered with
            # the new broker yet: its "unknown service" passes like a transient error.
            retry = reply.error["transient"] or reply.error["type"] == "UnknownService"
            if not retry or time.monotonic() >= deadline:
                raise WorkerError(f"{name} failed: {reply.error['message']}")
            time.sleep(0.05)

    def recover(self) -> None:
        """Clone start-up: apply everything the gateway published (control thread)."""
        try:
            sender = self._catch_up(None)
            last = self._fetch(sender, self.applied.get(sender, 0), None)
        except PosbusError as exc:
            self.recovered = {"state": "failed", "error": str(exc)}
            logger.error(
                "positions not recovered from the gateway; gap reported",
                extra={"worker": self._worker_name, "error": str(exc)},
            )
            self.io.metrics.count("recovery_failed")
            return
        self._mark_applied(sender, last)
        subscriber = self.io.subscriber
        if subscriber is not None:
            # .get: a gateway that has published nothing yet leaves no applied mark.
            floor = self.applied.get(sender, 0)
            self.io.call_soon(lambda: subscriber.set_floor(sender, floor))
        self.recovered = {
            "state": "done",
            "sender": sender,
            "seq": self.applied.get(sender, 0),
            "positions": len(self._position_handles()),
        }
        logger.info("positions recovered from the gateway", extra=self.recovered)
