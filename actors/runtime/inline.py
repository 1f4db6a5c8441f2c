"""The inline runtime: posbus actors on the caller's thread, driven by one FIFO scheduler.

It hosts the actor classes `posbus.actors.node.Node` runs in pykka threads
(PositionActor, RiskSupervisor, GatewayActor) without starting them: it calls
their `on_start`, `on_receive` and `on_stop` itself, on the thread that drives
it. The actors cannot tell the difference; the scheduling is deterministic:
the same calls always deliver the same messages in the same order.
`InlineRef.tell` queues, `InlineScheduler.run` delivers oldest first until
nothing is left, `InlineRef.ask` runs at once, after the target's queued
messages (a re-entrant ask raises `ActorFailed`). The actors' own pykka
`actor_ref` is never started, so the hosts leave `on_closed` unset.

This module must never start a thread, read a clock or swallow an actor's
failure: an exception escaping an actor stops the run with `ActorFailed`, and
nothing restarts an actor here. The scheduling rules: docs/architecture.md,
"Inline runtime and InlineNode".
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from pykka import ActorDeadError

from posbus.actors.model.errors import PosbusError


class Hosted(Protocol):
    """What the runtime calls on an actor: pykka's lifecycle hooks and `on_receive`."""

    def on_start(self) -> None: ...

    def on_receive(self, message: Any) -> Any: ...

    def on_stop(self) -> None: ...


class ActorFailed(PosbusError):
    """An actor raised while handling a message (or starting, or stopping).

    Carries the actor's name and the message type; the original exception is
    the `__cause__`. The scheduler is unusable afterwards: the run is over.
    """

    def __init__(self, actor: str, message: object, error: BaseException) -> None:
        super().__init__(
            f"actor {actor!r} failed on {type(message).__name__}: {error!r}",
        )
        self.actor = actor
        self.message_type = type(message).__name__
        self.error = error


class InlineRef:
    """A reference to an actor hosted by an `InlineScheduler`: the pykka ActorRef calls it needs.

    `tell` queues, `ask` runs at once (see the module docstring). Both raise
    `pykka.ActorDeadError` once the actor is stopped, like a pykka ref.
    """

    __slots__ = ("_active", "_alive", "_doorbells", "_mailbox", "_scheduler", "actor", "name")

    def __init__(self, scheduler: InlineScheduler, actor: Hosted, name: str) -> None:
        self._scheduler = scheduler
        self._doorbells = scheduler._doorbells
        self.actor = actor
        self.name = name
        self._mailbox: deque[object] = deque()
        self._alive = True
        self._active = False

    def tell(self, message: object) -> None:
        """Queue `message` for the actor; it is handled by the scheduler's next `run`."""
        if not self._alive:
            raise ActorDeadError(f"{self.name} is stopped")
        self._mailbox.append(message)
        self._doorbells.append(self)

    def ask(self, message: object, timeout: float | None = None) -> Any:
        """Handle the actor's queued messages, then `message`, and return its result.

        `timeout` is accepted for pykka compatibility and ignored: nothing waits.
        """
        del timeout
        if not self._alive:
            raise ActorDeadError(f"{self.name} is stopped")
        if self._active:
            raise ActorFailed(
                self.name, message, RuntimeError("re-entrant ask: the actor is already running")
            )
        scheduler = self._scheduler
        mailbox = self._mailbox
        while mailbox:
            scheduler._deliver(self, mailbox.popleft())
        return scheduler._deliver(self, message)

    def is_alive(self) -> bool:
        """False once the actor was stopped."""
        return self._alive

    def stop(self, block: bool = True, timeout: float | None = None) -> None:
        """Stop the actor now: drop its queued messages and call its `on_stop`."""
        del block, timeout
        if not self._alive:
            return
        self._alive = False
        self._mailbox.clear()
        try:
            self.actor.on_stop()
        except Exception as exc:  # an actor boundary: report it as the actor's failure
            raise ActorFailed(self.name, "on_stop", exc) from exc

    def __repr__(self) -> str:
        return f"InlineRef({self.name!r}, queued={len(self._mailbox)})"


class InlineScheduler:
    """Hosts actors on the calling thread and delivers their messages in FIFO order.

    Not thread-safe: one thread spawns, tells and runs. Deterministic: the
    same sequence of calls delivers the same messages in the same order.
    """

    def __init__(self) -> None:
        self._doorbells: deque[InlineRef] = deque()
        self._refs: dict[str, InlineRef] = {}
        self.delivered = 0
        self.failed: ActorFailed | None = None

    def spawn(self, actor: Hosted, name: str) -> InlineRef:
        """Host `actor` under `name` and run its `on_start` now; returns its ref.

        Messages the actor sends while starting are queued like any other.
        Raises `ActorFailed` if `on_start` raises, and ValueError for a name
        already in use by a live actor.
        """
        known = self._refs.get(name)
        if known is not None and known.is_alive():
            raise ValueError(f"an actor named {name!r} is already running")
        ref = InlineRef(self, actor, name)
        self._refs[name] = ref
        ref._active = True
        try:
            actor.on_start()
        except Exception as exc:  # an actor boundary: the run stops, loudly
            self.failed = ActorFailed(name, "on_start", exc)
            raise self.failed from exc
        finally:
            ref._active = False
        return ref

    def ref(self, name: str) -> InlineRef | None:
        """The ref of the actor called `name` (running or stopped), or None."""
        return self._refs.get(name)

    def run(self) -> int:
        """Deliver queued messages until none is left; return how many were delivered.

        Raises `ActorFailed` (and stays failed) when an actor raises.
        """
        if self.failed is not None:
            raise self.failed
        doorbells = self._doorbells
        pop = doorbells.popleft
        count = 0
        # The hot loop of every backtest: `_deliver` inlined.
        while doorbells:
            if self.failed is not None:
                raise self.failed
            ref = pop()
            mailbox = ref._mailbox
            # An ask may have delivered this message already, or a stop dropped it.
            if not mailbox:
                continue
            message = mailbox.popleft()
            ref._active = True
            try:
                ref.actor.on_receive(message)
            except ActorFailed:
                raise
            except Exception as exc:  # an actor boundary: the run stops, loudly
                self.failed = ActorFailed(ref.name, message, exc)
                raise self.failed from exc
            finally:
                ref._active = False
            count += 1
        self.delivered += count
        if self.failed is not None:
            # A failure inside an ask was caught by the asker (a position turns
            # a missing risk answer into a refusal): the run still ends here.
            raise self.failed
        return count

    def deliver_input(self, message: object, refs: tuple[InlineRef, ...]) -> None:
        """Hand `message`, an input from outside the actors, to each of `refs` in order.

        When nothing is queued, each gets it at once: the queue would deliver
        it next anyway (see `InlineNode.market`). What they send meanwhile is
        queued as usual; `run` delivers it. Otherwise `message` is queued for
        each, behind what is queued already. Raises `pykka.ActorDeadError` for
        a stopped actor and `ActorFailed` when one raises.
        """
        if self._doorbells:
            for ref in refs:
                ref.tell(message)
            return
        for ref in refs:
            if not ref._alive:
                raise ActorDeadError(f"{ref.name} is stopped")
            self._deliver(ref, message)

    def _deliver(self, ref: InlineRef, message: object) -> Any:
        if self.failed is not None:
            raise self.failed
        ref._active = True
        try:
            result = ref.actor.on_receive(message)
        except ActorFailed:
            raise
        except Exception as exc:  # an actor boundary: the run stops, loudly
            self.failed = ActorFailed(ref.name, message, exc)
            raise self.failed from exc
        finally:
            ref._active = False
        self.delivered += 1
        return result
