"""The inline runtime: actors on one thread, FIFO delivery, asks that respect queued tells."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from pykka import ActorDeadError

from posbus.actors.model.errors import PosbusError
from posbus.actors.runtime.inline import ActorFailed, InlineRef, InlineScheduler


class Recorder:
    """Appends every message it gets to a shared log; optional reactions per message."""

    def __init__(self, name: str, log: list[tuple[str, Any]]) -> None:
        self.name = name
        self.log = log
        self.started = False
        self.stopped = False
        self.react: dict[Any, Any] = {}

    def on_start(self) -> None:
        self.started = True

    def on_receive(self, message: Any) -> Any:
        self.log.append((self.name, message))
        reaction = self.react.get(message)
        if reaction is not None:
            return reaction()
        return f"{self.name} got {message}"

    def on_stop(self) -> None:
        self.stopped = True


def spawn(scheduler: InlineScheduler, name: str, log: list[tuple[str, Any]]) -> InlineRef:
    return scheduler.spawn(Recorder(name, log), name)


def test_tell_is_delivered_only_by_run_in_the_order_sent() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a, b = spawn(scheduler, "a", log), spawn(scheduler, "b", log)
    a.tell(1)
    b.tell(2)
    a.tell(3)
    assert log == []
    assert scheduler.run() == 3
    assert log == [("a", 1), ("b", 2), ("a", 3)]
    assert scheduler.run() == 0


def test_messages_sent_while_running_are_delivered_in_the_same_run_after_earlier_ones() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a, b = spawn(scheduler, "a", log), spawn(scheduler, "b", log)
    a.actor.react["ping"] = lambda: b.tell("pong")  # type: ignore[attr-defined]
    a.tell("ping")
    b.tell("first")
    scheduler.run()
    # b's "first" was queued before a sent "pong".
    assert log == [("a", "ping"), ("b", "first"), ("b", "pong")]


def test_ask_handles_the_targets_queued_messages_first_and_returns_the_answer() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    asker, target = spawn(scheduler, "asker", log), spawn(scheduler, "target", log)
    answers: list[Any] = []

    def tell_then_ask() -> None:
        target.tell("update")  # as a position tells its exposure before asking risk
        answers.append(target.ask("check"))

    asker.actor.react["go"] = tell_then_ask  # type: ignore[attr-defined]
    asker.tell("go")
    scheduler.run()
    assert answers == ["target got check"]
    assert log == [("asker", "go"), ("target", "update"), ("target", "check")]


def test_an_ask_back_into_a_running_actor_fails_instead_of_deadlocking() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a, b = spawn(scheduler, "a", log), spawn(scheduler, "b", log)
    a.actor.react["go"] = lambda: b.ask("call back")  # type: ignore[attr-defined]
    b.actor.react["call back"] = lambda: a.ask("again")  # type: ignore[attr-defined]
    a.tell("go")
    with pytest.raises(ActorFailed) as failed:
        scheduler.run()
    assert "re-entrant ask" in str(failed.value)


def test_an_actor_failure_ends_the_run_with_its_name_and_message_type() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a = spawn(scheduler, "a", log)

    def boom() -> None:
        raise ValueError("bad state")

    a.actor.react["boom"] = boom  # type: ignore[attr-defined]
    a.tell("boom")
    a.tell("after")
    with pytest.raises(ActorFailed) as failed:
        scheduler.run()
    assert failed.value.actor == "a"
    assert failed.value.message_type == "str"
    assert isinstance(failed.value.__cause__, ValueError)
    assert isinstance(failed.value, PosbusError)
    # The run is over: nothing after the failure is delivered, now or later.
    with pytest.raises(ActorFailed):
        scheduler.run()
    assert log == [("a", "boom")]


def test_a_failure_inside_an_ask_that_the_asker_caught_still_ends_the_run() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    asker, target = spawn(scheduler, "asker", log), spawn(scheduler, "target", log)

    def boom() -> None:
        raise ValueError("risk is broken")

    def ask_and_swallow() -> None:
        # A position turns a missing risk answer into a refusal and goes on.
        with contextlib.suppress(PosbusError):
            target.ask("check")

    target.actor.react["check"] = boom  # type: ignore[attr-defined]
    asker.actor.react["go"] = ask_and_swallow  # type: ignore[attr-defined]
    asker.tell("go")
    with pytest.raises(ActorFailed) as failed:
        scheduler.run()
    assert failed.value.actor == "target"


def test_spawn_starts_the_actor_and_a_stopped_actor_refuses_messages() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a = spawn(scheduler, "a", log)
    assert a.actor.started  # type: ignore[attr-defined]
    a.tell("queued before stop")
    a.stop()
    assert a.actor.stopped  # type: ignore[attr-defined]
    assert not a.is_alive()
    with pytest.raises(ActorDeadError):
        a.tell("late")
    with pytest.raises(ActorDeadError):
        a.ask("late")
    # The queued message was dropped with the actor, as pykka drops an inbox.
    assert scheduler.run() == 0
    assert log == []


def test_a_name_can_only_be_used_by_one_live_actor() -> None:
    log: list[tuple[str, Any]] = []
    scheduler = InlineScheduler()
    a = spawn(scheduler, "a", log)
    with pytest.raises(ValueError, match="already running"):
        spawn(scheduler, "a", log)
    a.stop()
    again = spawn(scheduler, "a", log)
    assert scheduler.ref("a") is again


def test_the_same_calls_deliver_the_same_messages_in_the_same_order() -> None:
    def scenario() -> list[tuple[str, Any]]:
        log: list[tuple[str, Any]] = []
        scheduler = InlineScheduler()
        refs = [spawn(scheduler, name, log) for name in ("x", "y", "z")]
        for ref, other in zip(refs, refs[1:] + refs[:1], strict=True):
            ref.actor.react[ref.name] = (  # type: ignore[attr-defined]
                lambda other=other: other.tell(f"echo to {other.name}")
            )
        for i in range(5):
            refs[i % 3].tell(i)
            refs[i % 3].tell(refs[i % 3].name)
        scheduler.run()
        return log

    assert scenario() == scenario()
