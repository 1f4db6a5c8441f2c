"""The ccxt gateway keeps what it tells while its actor is away and hands it over in order."""

from __future__ import annotations

import pykka

from posbus.actors.gateway_actor import ExchangeReports
from posbus.actors.model.exchange_reports import OrderExpired
from posbus.adapters.exchange.ccxt_actor_inbox import ActorInbox


def test_messages_told_before_attach_are_handed_over_first_in_order() -> None:
    inbox = ActorInbox()
    inbox.tell("one")
    inbox.tell("two")
    received: list[object] = []

    inbox.attach(received.append)
    inbox.tell("three")

    assert received == ["one", "two", "three"]


def test_told_moves_on_with_every_message_attached_or_not() -> None:
    inbox = ActorInbox()
    marks = [inbox.told]
    inbox.tell("kept")
    marks.append(inbox.told)
    inbox.attach(lambda message: None)
    inbox.tell("delivered")
    marks.append(inbox.told)

    assert marks == sorted(set(marks))


def test_a_message_to_a_dead_actor_is_kept_for_the_next_one() -> None:
    inbox = ActorInbox()

    def dead(message: object) -> None:
        raise pykka.ActorDeadError("stopped")

    inbox.attach(dead)
    inbox.tell("lost?")
    inbox.tell("and this")
    received: list[object] = []
    inbox.attach(received.append)

    assert received == ["lost?", "and this"]


def test_messages_told_after_detach_wait_for_the_next_attach() -> None:
    inbox = ActorInbox()
    first: list[object] = []
    inbox.attach(first.append)
    inbox.detach()
    inbox.tell("later")
    second: list[object] = []

    inbox.attach(second.append)

    assert first == []
    assert second == ["later"]


def test_reports_go_as_one_message_and_none_for_nothing() -> None:
    inbox = ActorInbox()
    received: list[object] = []
    inbox.attach(received.append)

    inbox.report([])
    inbox.report([OrderExpired("c1", 1), OrderExpired("c2", 2)])

    assert received == [ExchangeReports((OrderExpired("c1", 1), OrderExpired("c2", 2)))]
