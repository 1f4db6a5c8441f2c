"""OTP-style supervision on pykka: restart types, strategies, intensity, backoff, handles.

Real pykka actors throughout. Tests synchronise on the children's own life
events (a queue fed from on_start / on_stop / on_failure) and on asks to the
supervisor, which are answered only after every message queued before them
(exit reports included) has been handled. Nothing sleeps; delayed restarts go
through a scheduler the test fires by hand.
"""

from __future__ import annotations

import logging
import queue
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.supervision import (
    Backoff,
    ChildBufferFull,
    ChildExited,
    ChildHandle,
    ChildIgnored,
    Children,
    ChildSpec,
    ChildTerminated,
    ChildUnavailable,
    DuplicateChild,
    HandleState,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartType,
    StartChild,
    Strategy,
    SupervisedActor,
    Supervisor,
    SupervisorLink,
    SupervisorPolicy,
    TerminateChild,
    WhichChildren,
)

TIMEOUT = 10.0
IMMEDIATE = Backoff(0.0, 0.0)
Event = tuple[str, str, int]  # (kind, child name, incarnation)


# -- test doubles ---------------------------------------------------------------


class Life:
    """Everything the probes did, in the order they did it (any thread may record)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []

    def record(self, event: Event) -> None:
        self._queue.put(event)

    def wait(self, kind: str, name: str, incarnation: int) -> None:
        """Block until that event happened (it may already have)."""
        wanted = (kind, name, incarnation)
        while wanted not in self.seen:
            try:
                self.seen.append(self._queue.get(timeout=TIMEOUT))
            except queue.Empty:
                pytest.fail(f"{wanted} did not happen within {TIMEOUT} s; saw {self.seen}")

    def after(self, event: Event) -> list[Event]:
        """The events recorded after `event`, drained from the queue first."""
        while True:
            try:
                self.seen.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return self.seen[self.seen.index(event) + 1 :]


class Probe(SupervisedActor):
    """A child that records its life, crashes on "crash" and keeps what it is told."""

    def __init__(
        self,
        link: SupervisorLink | None,
        life: Life,
        incarnation: int = 1,
        *,
        fail_start: bool = False,
    ) -> None:
        super().__init__(link)
        self.life = life
        self.fail_start = fail_start
        self.received: list[Any] = []
        self.tag = (link.name if link is not None else "unsupervised", incarnation)

    def on_start(self) -> None:
        if self.fail_start:
            self.life.record(("start_failed", *self.tag))
            msg = f"cannot start {self.tag[0]}"
            raise RuntimeError(msg)
        self.life.record(("started", *self.tag))

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            msg = f"boom {self.tag[0]}"
            raise RuntimeError(msg)
        if message == "received?":
            return list(self.received)
        self.received.append(message)
        return None

    def on_stop(self) -> None:
        super().on_stop()
        self.life.record(("stopped", *self.tag))

    def on_failure(self, *exc_info: Any) -> None:
        super().on_failure(*exc_info)
        self.life.record(("failed", *self.tag))


class Recorder(pykka.ThreadingActor):
    """Stands in for a supervisor: keeps every message it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "messages?":
            return list(self.messages)
        self.messages.append(message)
        return None


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FixedRandom(random.Random):
    """`uniform(a, b)` is always the midpoint: random() is 0.5."""

    def random(self) -> float:
        return 0.5


@dataclass
class Scheduled:
    delay_s: float
    action: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """Captures delayed restarts; the test fires them when it wants."""

    def __init__(self) -> None:
        self.requests: list[Scheduled] = []

    def __call__(self, delay_s: float, action: Callable[[], None]) -> Scheduled:
        scheduled = Scheduled(delay_s, action)
        self.requests.append(scheduled)
        return scheduled

    def fire(self, index: int) -> None:
        self.requests[index].action()


class Tree:
    """Builds probe specs that count their starts: incarnation n is the n-th start.

    The count lives in the test, outside the supervisors, so it keeps going
    when a nested supervisor is itself restarted.
    """

    def __init__(self) -> None:
        self.life = Life()
        self.starts: Counter[str] = Counter()
        self.escalations: queue.Queue[RestartIntensityExceeded] = queue.Queue()

    def probe(
        self,
        name: str,
        restart: RestartType = RestartType.PERMANENT,
        *,
        fail_start_on: frozenset[int] = frozenset(),
        buffer_capacity: int = 100,
    ) -> ChildSpec:
        def start(link: SupervisorLink) -> pykka.ActorRef[Any]:
            self.starts[name] += 1
            incarnation = self.starts[name]
            fail = incarnation in fail_start_on
            return Probe.start(link, self.life, incarnation, fail_start=fail)

        return ChildSpec(name, start, restart=restart, buffer_capacity=buffer_capacity)

    def root(
        self,
        specs: list[ChildSpec],
        policy: SupervisorPolicy | None = None,
        **kwargs: Any,
    ) -> pykka.ActorRef[Supervisor]:
        policy = policy if policy is not None else SupervisorPolicy(backoff=IMMEDIATE)
        return Supervisor.start(
            None, specs, policy=policy, on_escalate=self.escalations.put, **kwargs
        )


def children_of(sup: pykka.ActorRef[Supervisor]) -> list[dict[str, Any]]:
    """Introspect; also a barrier: every exit report told before it has been handled."""
    rows: list[dict[str, Any]] = sup.proxy().children().get(timeout=TIMEOUT)
    return rows


def crash(tree: Tree, spec: ChildSpec, incarnation: int) -> None:
    """Make the child fail and wait until it has reported the failure."""
    spec.handle.tell("crash")
    tree.life.wait("failed", spec.name, incarnation)


@pytest.fixture(autouse=True)
def _stop_every_actor() -> Iterator[None]:
    yield
    # Roots first (registered first): they stop their subtrees in order and
    # nothing left running can restart a child behind stop_all's back.
    for ref in pykka.ActorRegistry.get_by_class(Supervisor):
        ref.stop(timeout=TIMEOUT)
    pykka.ActorRegistry.stop_all(timeout=TIMEOUT)


# -- pure parts: no actors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "abnormal", "expected"),
    [
        (RestartType.PERMANENT, True, True),
        (RestartType.PERMANENT, False, True),
        (RestartType.TRANSIENT, True, True),
        (RestartType.TRANSIENT, False, False),
        (RestartType.TEMPORARY, True, False),
        (RestartType.TEMPORARY, False, False),
    ],
)
def test_restart_type_decides_whether_an_exit_is_restarted(
    restart: RestartType, abnormal: bool, expected: bool
) -> None:
    assert restart.should_restart(abnormal=abnormal) is expected


def test_strategies_pick_the_failed_child_all_children_or_the_failed_and_later_ones() -> None:
    # Child 1 of 4 fails.
    assert list(Strategy.ONE_FOR_ONE.affected(1, 4)) == [1]
    assert list(Strategy.ONE_FOR_ALL.affected(1, 4)) == [0, 1, 2, 3]
    assert list(Strategy.REST_FOR_ONE.affected(1, 4)) == [1, 2, 3]


def test_intensity_allows_max_restarts_within_the_period_and_refuses_one_more() -> None:
    intensity = RestartIntensity(max_restarts=2, period_s=10.0)
    assert intensity.record(0.0)
    assert intensity.record(5.0)
    assert not intensity.record(9.0)  # 3 restarts at 0, 5, 9: all within 10 s


def test_intensity_window_slides_so_old_restarts_stop_counting() -> None:
    intensity = RestartIntensity(max_restarts=2, period_s=10.0)
    assert intensity.record(0.0)
    assert intensity.record(5.0)
    # At 10.0 the restart at 0.0 is 10 s old and no longer counts: 5.0 and 10.0 remain.
    assert intensity.record(10.0)
    assert intensity.recent(10.0) == 2
    # At 14.0 all of 5, 10, 14 count: 3 > 2.
    assert not intensity.record(14.0)


def test_backoff_ceiling_doubles_from_twice_the_minimum_up_to_the_maximum() -> None:
    backoff = Backoff(min_s=0.1, max_s=1.0)
    # min * 2**(n+1): 0.2, 0.4, 0.8, then capped at 1.0
    assert [backoff.ceiling(n) for n in range(5)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_delay_is_drawn_between_the_minimum_and_the_ceiling() -> None:
    backoff = Backoff(min_s=0.1, max_s=1.0)
    # uniform(0.1, 0.4) with random() = 0.5: 0.1 + 0.3 * 0.5 = 0.25
    assert backoff.delay(1, FixedRandom()) == pytest.approx(0.25)


def test_zero_backoff_restarts_immediately() -> None:
    assert Backoff(0.0, 0.0).delay(5, random.Random(1)) == 0.0


def test_backoff_rejects_a_minimum_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(min_s=2.0, max_s=1.0)


@settings(max_examples=200, deadline=None)
@given(
    min_s=st.floats(min_value=0.0, max_value=5.0),
    span=st.floats(min_value=0.0, max_value=60.0),
    attempt=st.integers(min_value=0, max_value=2000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_always_lies_within_min_and_max(
    min_s: float, span: float, attempt: int, seed: int
) -> None:
    """Whatever the attempt and the draw, min_s <= delay <= max_s."""
    backoff = Backoff(min_s=min_s, max_s=min_s + span)
    delay = backoff.delay(attempt, random.Random(seed))
    assert backoff.min_s <= delay <= backoff.max_s


# -- child handle -------------------------------------------------------------------


def test_handle_holds_messages_until_attached_then_delivers_them_first_in_order() -> None:
    life = Life()
    handle = ChildHandle("solo", capacity=10)
    handle.tell("a")
    handle.tell("b")
    assert handle.state is HandleState.DOWN
    assert handle.buffered == 2

    handle.attach(Probe.start(None, life), restarted=False)
    handle.tell("c")

    assert handle.ask("received?", timeout=TIMEOUT) == ["a", "b", "c"]
    assert handle.buffered == 0
    assert handle.restarts == 0


def test_handle_refuses_messages_beyond_its_capacity_while_down() -> None:
    handle = ChildHandle("solo", capacity=2)
    handle.tell(1)
    handle.tell(2)
    with pytest.raises(ChildBufferFull) as caught:
        handle.tell(3)
    assert caught.value.transient
    assert caught.value.context()["child"] == "solo"


def test_ask_through_a_handle_that_is_down_fails_fast() -> None:
    handle = ChildHandle("solo")
    with pytest.raises(ChildUnavailable):
        handle.ask("received?", timeout=TIMEOUT)
    handle.terminate()
    with pytest.raises(ChildTerminated):
        handle.ask("received?", timeout=TIMEOUT)


# -- supervised actor reporting --------------------------------------------------------


def test_a_supervised_actor_reports_its_own_stop_but_not_one_its_supervisor_requested() -> None:
    life = Life()
    supervisor = Recorder.start()
    own = SupervisorLink(supervisor, "own", 1)
    Probe.start(own, life).stop(timeout=TIMEOUT)
    requested = SupervisorLink(supervisor, "requested", 1)
    ref = Probe.start(requested, life)
    requested.request_stop()
    ref.stop(timeout=TIMEOUT)

    # on_stop runs before stop() returns, so its report is already queued.
    assert supervisor.ask("messages?", timeout=TIMEOUT) == [ChildExited("own", 1, abnormal=False)]


def test_a_supervised_actor_reports_a_failure_with_the_error() -> None:
    life = Life()
    supervisor = Recorder.start()
    Probe.start(SupervisorLink(supervisor, "w", 3), life, 3).tell("crash")
    life.wait("failed", "w", 3)

    assert supervisor.ask("messages?", timeout=TIMEOUT) == [
        ChildExited("w", 3, abnormal=True, error="RuntimeError('boom w')")
    ]


# -- restart types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        (RestartType.PERMANENT, "crash", True),
        (RestartType.PERMANENT, "stop", True),
        (RestartType.TRANSIENT, "crash", True),
        (RestartType.TRANSIENT, "stop", False),
        (RestartType.TEMPORARY, "crash", False),
        (RestartType.TEMPORARY, "stop", False),
    ],
)
def test_restart_type_decides_what_happens_after_a_crash_or_a_normal_stop(
    restart: RestartType, how: str, restarted: bool
) -> None:
    tree = Tree()
    worker = tree.probe("w", restart)
    sup = tree.root([worker])
    children_of(sup)  # start-up complete: handle attached

    if how == "crash":
        crash(tree, worker, 1)
    else:
        ref = worker.handle.ref
        assert ref is not None
        ref.stop(timeout=TIMEOUT)  # stopped by someone else: a normal exit
    [row] = children_of(sup)

    if restarted:
        assert tree.starts["w"] == 2
        assert row["status"] == "running"
        assert row["alive"] is True
        assert row["restarts"] == 1
        worker.handle.tell("after")
        assert worker.handle.ask("received?", timeout=TIMEOUT) == ["after"]
    else:
        assert tree.starts["w"] == 1
        assert row["status"] == "terminated"
        assert row["alive"] is False
        with pytest.raises(ChildTerminated):
            worker.handle.tell("after")


# -- strategies ------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_failed_child() -> None:
    tree = Tree()
    a, b, c = tree.probe("a"), tree.probe("b"), tree.probe("c")
    sup = tree.root([a, b, c], SupervisorPolicy(Strategy.ONE_FOR_ONE, backoff=IMMEDIATE))
    children_of(sup)  # start-up complete: handles attached
    a_ref, c_ref = a.handle.ref, c.handle.ref
    assert a_ref is not None

    crash(tree, b, 1)
    children_of(sup)

    assert tree.starts == {"a": 1, "b": 2, "c": 1}
    assert a.handle.ref is a_ref
    assert c.handle.ref is c_ref
    assert tree.life.after(("failed", "b", 1)) == [("started", "b", 2)]


def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_start_order() -> None:
    tree = Tree()
    a, b, c = tree.probe("a"), tree.probe("b"), tree.probe("c")
    sup = tree.root([a, b, c], SupervisorPolicy(Strategy.ONE_FOR_ALL, backoff=IMMEDIATE))
    tree.life.wait("started", "c", 1)

    crash(tree, b, 1)
    rows = children_of(sup)

    assert tree.starts == {"a": 2, "b": 2, "c": 2}
    assert tree.life.after(("failed", "b", 1)) == [
        ("stopped", "c", 1),
        ("stopped", "a", 1),
        ("started", "a", 2),
        ("started", "b", 2),
        ("started", "c", 2),
    ]
    # The supervisor's own stops of a and c were not taken for exits: one
    # restart each, no second round.
    assert [row["restarts"] for row in rows] == [1, 1, 1]
    assert [row["last_error"] for row in rows] == [None, "RuntimeError('boom b')", None]


def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    tree = Tree()
    a, b, c, d = (tree.probe(n) for n in "abcd")
    sup = tree.root([a, b, c, d], SupervisorPolicy(Strategy.REST_FOR_ONE, backoff=IMMEDIATE))
    children_of(sup)  # start-up complete: handles attached
    a_ref = a.handle.ref
    assert a_ref is not None

    crash(tree, b, 1)
    children_of(sup)

    assert tree.starts == {"a": 1, "b": 2, "c": 2, "d": 2}
    assert a.handle.ref is a_ref
    assert tree.life.after(("failed", "b", 1)) == [
        ("stopped", "d", 1),
        ("stopped", "c", 1),
        ("started", "b", 2),
        ("started", "c", 2),
        ("started", "d", 2),
    ]


def test_temporary_sibling_stopped_by_one_for_all_stays_down() -> None:
    tree = Tree()
    a, t = tree.probe("a"), tree.probe("t", RestartType.TEMPORARY)
    sup = tree.root([a, t], SupervisorPolicy(Strategy.ONE_FOR_ALL, backoff=IMMEDIATE))
    tree.life.wait("started", "t", 1)

    crash(tree, a, 1)
    rows = children_of(sup)

    assert tree.starts == {"a": 2, "t": 1}
    assert [row["status"] for row in rows] == ["running", "terminated"]


# -- start-up, shutdown, start failures ---------------------------------------------------


def test_supervisor_starts_children_in_order_and_stops_them_in_reverse() -> None:
    tree = Tree()
    sup = tree.root([tree.probe("a"), tree.probe("b"), tree.probe("c")])
    tree.life.wait("started", "c", 1)

    sup.stop(timeout=TIMEOUT)

    assert tree.life.after(("started", "a", 1)) == [
        ("started", "b", 1),
        ("started", "c", 1),
        ("stopped", "c", 1),
        ("stopped", "b", 1),
        ("stopped", "a", 1),
    ]
    assert tree.starts == {"a": 1, "b": 1, "c": 1}


def test_child_that_fails_in_on_start_is_restarted() -> None:
    tree = Tree()
    worker = tree.probe("w", fail_start_on=frozenset({1}))
    sup = tree.root([worker])
    tree.life.wait("started", "w", 2)

    [row] = children_of(sup)

    assert tree.starts["w"] == 2
    assert row["status"] == "running"
    assert row["restarts"] == 1
    assert row["last_error"].startswith("ChildStartFailed(")


def test_start_that_keeps_failing_exhausts_the_intensity_and_escalates() -> None:
    tree = Tree()
    attempts: list[int] = []

    def start(link: SupervisorLink) -> pykka.ActorRef[Any]:
        attempts.append(link.incarnation)
        msg = "no journal"
        raise OSError(msg)

    policy = SupervisorPolicy(max_restarts=2, period_s=60.0, backoff=IMMEDIATE)
    sup = tree.root([ChildSpec("w", start)], policy, clock=FakeClock(0.0))

    error = tree.escalations.get(timeout=TIMEOUT)

    # first start + 2 restarts allowed; the 3rd restart would exceed 2 in 60 s
    assert attempts == [1, 2, 3]
    assert error.context()["child"] == "w"
    assert sup.actor_stopped.wait(TIMEOUT)


# -- intensity and escalation ----------------------------------------------------------------


def test_exceeding_the_intensity_stops_the_children_and_escalates_at_the_root() -> None:
    tree = Tree()
    a, b = tree.probe("a"), tree.probe("b")
    policy = SupervisorPolicy(max_restarts=1, period_s=10.0, backoff=IMMEDIATE)
    sup = tree.root([a, b], policy, clock=FakeClock(100.0), name="risk-root")
    tree.life.wait("started", "b", 1)

    crash(tree, a, 1)  # restart 1 of at most 1
    tree.life.wait("started", "a", 2)
    crash(tree, a, 2)  # restart 2 within 10 s: too many

    error = tree.escalations.get(timeout=TIMEOUT)
    assert sup.actor_stopped.wait(TIMEOUT)
    assert isinstance(error, RestartIntensityExceeded)
    assert error.context()["supervisor"] == "risk-root"
    assert error.context()["max_restarts"] == 1
    assert tree.starts == {"a": 2, "b": 1}
    assert tree.life.after(("failed", "a", 2)) == [("stopped", "b", 1)]
    assert not a.handle.alive
    assert not b.handle.alive


def test_restarts_spread_beyond_the_period_do_not_escalate() -> None:
    tree = Tree()
    worker = tree.probe("w")
    clock = FakeClock(0.0)
    policy = SupervisorPolicy(max_restarts=1, period_s=10.0, backoff=IMMEDIATE)
    sup = tree.root([worker], policy, clock=clock)
    tree.life.wait("started", "w", 1)

    crash(tree, worker, 1)  # restart at t=0
    tree.life.wait("started", "w", 2)
    clock.now = 10.0  # the t=0 restart is now 10 s old: out of the window
    crash(tree, worker, 2)  # restart at t=10: the only one in the window
    tree.life.wait("started", "w", 3)
    children_of(sup)
    assert tree.escalations.empty()

    crash(tree, worker, 3)  # second restart at t=10: 2 in the window > 1
    tree.escalations.get(timeout=TIMEOUT)
    assert tree.starts["w"] == 3


def test_nested_supervisor_that_exceeds_its_intensity_is_restarted_by_its_parent() -> None:
    tree = Tree()
    leaf = tree.probe("leaf")
    inner = Supervisor.spec(
        "inner", [leaf], policy=SupervisorPolicy(max_restarts=0, backoff=IMMEDIATE)
    )
    sibling = tree.probe("sibling")
    sup = tree.root([inner, sibling])
    tree.life.wait("started", "sibling", 1)

    crash(tree, leaf, 1)  # inner allows 0 restarts: it gives up and fails
    tree.life.wait("started", "leaf", 2)
    rows = children_of(sup)

    assert tree.escalations.empty()  # the root absorbed it
    assert tree.starts == {"leaf": 2, "sibling": 1}
    assert rows[0]["name"] == "inner"
    assert rows[0]["restarts"] == 1
    assert rows[0]["supervisor"] is True
    assert rows[0]["last_error"].startswith("RestartIntensityExceeded(")
    # The leaf's handle outlives both the leaf and the supervisor that ran it.
    leaf.handle.tell("still here")
    assert leaf.handle.ask("received?", timeout=TIMEOUT) == ["still here"]
    assert sup.proxy().which_children().get(timeout=TIMEOUT) == {
        "specs": 2,
        "active": 2,
        "supervisors": 1,
        "workers": 1,
    }


# -- backoff -----------------------------------------------------------------------------


def test_backoff_delays_grow_exponentially_within_bounds_and_restarts_wait_for_them() -> None:
    tree = Tree()
    worker = tree.probe("w")
    scheduler = ManualScheduler()
    policy = SupervisorPolicy(max_restarts=10, period_s=60.0, backoff=Backoff(0.1, 0.5))
    sup = tree.root([worker], policy, rng=FixedRandom(), scheduler=scheduler, clock=FakeClock())
    tree.life.wait("started", "w", 1)

    for incarnation in range(1, 5):
        crash(tree, worker, incarnation)
        [row] = children_of(sup)
        assert row["status"] == "restarting"
        assert tree.starts["w"] == incarnation  # not restarted before the timer fires
        scheduler.fire(-1)
        tree.life.wait("started", "w", incarnation + 1)

    # ceilings min(0.5, 0.1 * 2**(n+1)): 0.2, 0.4, 0.5, 0.5; midpoint draws:
    # (0.1+0.2)/2 = 0.15, (0.1+0.4)/2 = 0.25, (0.1+0.5)/2 = 0.3, 0.3
    assert [r.delay_s for r in scheduler.requests] == pytest.approx([0.15, 0.25, 0.3, 0.3])


def test_pending_restart_is_cancelled_when_the_supervisor_stops() -> None:
    tree = Tree()
    worker = tree.probe("w")
    scheduler = ManualScheduler()
    policy = SupervisorPolicy(backoff=Backoff(1.0, 1.0))
    sup = tree.root([worker], policy, scheduler=scheduler)
    tree.life.wait("started", "w", 1)
    crash(tree, worker, 1)
    children_of(sup)

    sup.stop(timeout=TIMEOUT)
    scheduler.fire(0)  # a timer that fires anyway finds no supervisor

    assert scheduler.requests[0].cancelled
    assert tree.starts["w"] == 1


# -- handles across restarts ----------------------------------------------------------------


def test_handle_buffers_messages_while_the_child_is_down_and_delivers_them_in_order() -> None:
    tree = Tree()
    worker = tree.probe("w")
    scheduler = ManualScheduler()
    sup = tree.root([worker], SupervisorPolicy(backoff=Backoff(1.0, 1.0)), scheduler=scheduler)
    tree.life.wait("started", "w", 1)

    worker.handle.tell("m1")  # handled by incarnation 1, which then dies
    crash(tree, worker, 1)
    worker.handle.tell("m2")  # dead, exit maybe not handled yet: held
    children_of(sup)
    assert worker.handle.state is HandleState.DOWN
    worker.handle.tell("m3")  # down, restart pending: held
    worker.handle.tell("m4")
    assert worker.handle.buffered == 3
    with pytest.raises(ChildUnavailable):
        worker.handle.ask("received?", timeout=TIMEOUT)

    scheduler.fire(0)
    tree.life.wait("started", "w", 2)
    children_of(sup)  # the restart, flush included, is complete
    worker.handle.tell("m5")

    assert worker.handle.ask("received?", timeout=TIMEOUT) == ["m2", "m3", "m4", "m5"]
    assert worker.handle.restarts == 1


def test_handle_of_a_down_child_refuses_messages_beyond_its_capacity() -> None:
    tree = Tree()
    worker = tree.probe("w", buffer_capacity=2)
    scheduler = ManualScheduler()
    sup = tree.root([worker], SupervisorPolicy(backoff=Backoff(1.0, 1.0)), scheduler=scheduler)
    tree.life.wait("started", "w", 1)
    crash(tree, worker, 1)
    children_of(sup)

    worker.handle.tell(1)
    worker.handle.tell(2)
    with pytest.raises(ChildBufferFull):
        worker.handle.tell(3)

    scheduler.fire(0)
    tree.life.wait("started", "w", 2)
    children_of(sup)
    assert worker.handle.ask("received?", timeout=TIMEOUT) == [1, 2]


# -- dynamic children --------------------------------------------------------------------


def test_start_child_adds_a_supervised_child_after_the_static_ones() -> None:
    tree = Tree()
    sup = tree.root([tree.probe("a")])
    dyn = tree.probe("pos/BTC")

    handle = sup.ask(StartChild(dyn), timeout=TIMEOUT)
    crash(tree, dyn, 1)
    rows = sup.ask(Children(), timeout=TIMEOUT)

    assert handle is dyn.handle
    assert [row["name"] for row in rows] == ["a", "pos/BTC"]
    assert tree.starts == {"a": 1, "pos/BTC": 2}  # supervised like any child
    assert rows[1]["restarts"] == 1


def test_start_child_reuses_the_name_of_a_terminated_child_but_not_of_a_live_one() -> None:
    tree = Tree()
    sup = tree.root([])
    first = tree.probe("pos/ETH", RestartType.TRANSIENT)
    sup.ask(StartChild(first), timeout=TIMEOUT)
    with pytest.raises(DuplicateChild):
        sup.ask(StartChild(tree.probe("pos/ETH")), timeout=TIMEOUT)

    sup.ask(TerminateChild("pos/ETH"), timeout=TIMEOUT)
    assert first.handle.state is HandleState.TERMINATED
    second = tree.probe("pos/ETH", RestartType.TRANSIENT)
    sup.ask(StartChild(second), timeout=TIMEOUT)
    second.handle.tell("hello")

    assert second.handle.ask("received?", timeout=TIMEOUT) == ["hello"]
    assert tree.starts["pos/ETH"] == 2  # the first spec was not restarted
    assert sup.ask(WhichChildren(), timeout=TIMEOUT)["specs"] == 1


def test_a_start_declined_with_child_ignored_terminates_the_child_without_a_restart() -> None:
    tree = Tree()
    sup = tree.root([], SupervisorPolicy(max_restarts=0, backoff=IMMEDIATE))

    def decline(link: SupervisorLink) -> pykka.ActorRef[Any]:
        raise ChildIgnored("its stream is corrupt", child="pos/BAD")

    bad = ChildSpec("pos/BAD", decline, restart=RestartType.PERMANENT)
    sup.ask(StartChild(bad), timeout=TIMEOUT)
    sup.ask(StartChild(tree.probe("pos/OK")), timeout=TIMEOUT)
    rows = {row["name"]: row for row in children_of(sup)}

    assert rows["pos/BAD"]["status"] == "terminated"
    assert rows["pos/BAD"]["restarts"] == 0
    assert rows["pos/OK"]["status"] == "running"
    assert bad.handle.state is HandleState.TERMINATED
    assert tree.escalations.empty()  # no restart was counted, though none is allowed


def test_terminate_child_stops_even_a_permanent_child_for_good() -> None:
    tree = Tree()
    worker = tree.probe("w")
    sup = tree.root([worker])

    sup.ask(TerminateChild("w"), timeout=TIMEOUT)
    [row] = children_of(sup)

    assert tree.life.after(("started", "w", 1)) == [("stopped", "w", 1)]
    assert row["status"] == "terminated"
    assert tree.starts["w"] == 1


def test_dynamic_children_are_terminated_when_their_supervisor_is_restarted() -> None:
    tree = Tree()
    static = tree.probe("static")
    positions = Supervisor.spec(
        "positions", [static], policy=SupervisorPolicy(max_restarts=0, backoff=IMMEDIATE)
    )
    sup = tree.root([positions])
    children_of(sup)
    dyn = tree.probe("pos/SOL")
    positions.handle.ask(StartChild(dyn), timeout=TIMEOUT)

    crash(tree, dyn, 1)  # positions allows no restart: it fails, root restarts it
    tree.life.wait("started", "static", 2)
    children_of(sup)
    rows = positions.handle.ask(Children(), timeout=TIMEOUT)

    assert [row["name"] for row in rows] == ["static"]  # a fresh instance: static specs only
    assert static.handle.state is HandleState.RUNNING
    assert dyn.handle.state is HandleState.TERMINATED  # senders learn it, nothing buffers
    assert tree.starts == {"static": 2, "pos/SOL": 1}


# -- introspection and logs --------------------------------------------------------------------


def test_children_reports_each_child_for_the_admin_socket() -> None:
    tree = Tree()
    a, t = tree.probe("a"), tree.probe("t", RestartType.TEMPORARY)
    sup = tree.root([a, t], wall_clock=lambda: 1_700_000_000_000_000_000)
    tree.life.wait("started", "t", 1)

    crash(tree, t, 1)
    rows = children_of(sup)

    assert rows == [
        {
            "name": "a",
            "restart": "permanent",
            "status": "running",
            "alive": True,
            "restarts": 0,
            "last_error": None,
            "started_at_ns": 1_700_000_000_000_000_000,
            "supervisor": False,
            "buffered": 0,
        },
        {
            "name": "t",
            "restart": "temporary",
            "status": "terminated",
            "alive": False,
            "restarts": 0,
            "last_error": "RuntimeError('boom t')",
            "started_at_ns": 1_700_000_000_000_000_000,
            "supervisor": False,
            "buffered": 0,
        },
    ]
    assert sup.proxy().which_children().get(timeout=TIMEOUT) == {
        "specs": 2,
        "active": 1,
        "supervisors": 0,
        "workers": 2,
    }
    assert sup.proxy().handle("a").get(timeout=TIMEOUT) is a.handle


def test_exits_and_restarts_are_logged_with_their_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="posbus.actors.supervision")
    tree = Tree()
    worker = tree.probe("w")
    sup = tree.root([worker], name="pos-root")
    tree.life.wait("started", "w", 1)

    crash(tree, worker, 1)
    children_of(sup)

    events = {
        record.__dict__["event"]: record
        for record in caplog.records
        if record.name.startswith("posbus.actors.supervision")
    }
    exited = events["child exited"]
    assert exited.__dict__["child"] == "w"
    assert exited.__dict__["supervisor"] == "pos-root"
    assert exited.__dict__["abnormal"] is True
    assert "error=RuntimeError('boom w')" in exited.getMessage()
    assert events["child restarted"].__dict__["restarts"] == 1


def test_supervisor_needs_unique_child_names_and_a_root_needs_on_escalate() -> None:
    tree = Tree()
    with pytest.raises(ValueError, match="unique"):
        tree.root([tree.probe("a"), tree.probe("a")])
    with pytest.raises(ValueError, match="on_escalate"):
        Supervisor.start(None, [tree.probe("b")])
