"""OTP-style supervisor on pykka: start, watch, restart and stop child actors.

Erlang/OTP semantics (pykka has no supervision of its own):

- children start in spec order when the supervisor starts and stop in reverse
  order when it stops;
- on an exit the child's restart type (permanent / transient / temporary)
  decides whether it comes back, and the strategy (one_for_one /
  one_for_all / rest_for_one) which siblings are stopped and restarted with it;
- restart intensity: more than `max_restarts` restarts within `period_s`
  seconds (sliding window on an injected monotonic clock) and the supervisor
  stops all its children and escalates: a nested supervisor fails so its
  parent handles it, the root calls `on_escalate` (the worker exits the
  process, and the launcher applies the same policy to processes);
- restarts wait an exponential, fully jittered backoff, scheduled on a timer
  so the supervisor's thread never sleeps.

Everything here runs in the supervisor's own actor thread, except the timer
callback, which only tells the supervisor a message. A supervisor never
blocks on anything but its children's starts and stops.

Durability is not this module's job: messages queued in a child's inbox when
it failed are lost with it (pykka drops them); a restarted child rebuilds from
the journal in its `on_start`. `ChildHandle` only covers the time the child is
down.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

from pykka import ActorDeadError, ActorRef, Timeout
from pykka.messages import ProxyGetAttr

from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.errors import (
    ChildIgnored,
    ChildStartFailed,
    DuplicateChild,
    RestartIntensityExceeded,
)
from posbus.actors.supervision.handle import ChildHandle
from posbus.actors.supervision.intensity import RestartIntensity
from posbus.actors.supervision.link import ChildExited, SupervisorLink
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.requests import (
    Children,
    GetHandle,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.supervision.scheduler import Cancellable, Scheduler, timer_scheduler
from posbus.actors.supervision.supervised_actor import SupervisedActor

logger = logging.getLogger(__name__)

# While waiting for a child's on_start, look this often whether it died: pykka
# can lose a message put into an inbox that is being torn down, and the
# supervisor must not wait the whole start timeout for a reply that will never come.
_START_POLL_S = 0.05


class ChildStatus(StrEnum):
    """A child's state as its supervisor sees it."""

    STARTING = "starting"  # start not attempted yet
    RUNNING = "running"
    START_FAILED = "start_failed"  # its exit report is on its way
    RESTARTING = "restarting"  # down, restart scheduled
    STOPPED = "stopped"  # stopped by its supervisor (shutdown or escalation)
    TERMINATED = "terminated"  # down for good


@dataclass(frozen=True, slots=True)
class _RestartDue:
    """Told by the backoff timer: restart the children holding `token`."""

    token: int


@dataclass(slots=True)
class _Child:
    """The supervisor's mutable record of one child (supervisor thread only)."""

    spec: ChildSpec
    index: int
    status: ChildStatus = ChildStatus.STARTING
    ref: ActorRef[Any] | None = None
    link: SupervisorLink | None = None
    incarnation: int = 0
    last_error: str | None = None
    started_at_ns: int | None = None
    restart_token: int | None = None
    is_supervisor: bool = False
    dynamic: bool = False  # added by StartChild: gone when the supervisor stops

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def handle(self) -> ChildHandle:
        return self.spec.handle


class Supervisor(SupervisedActor):
    """A pykka actor that supervises an ordered list of children.

    Start a root supervisor with
    `Supervisor.start(None, specs, policy=..., on_escalate=...)`; nest one
    under another with `Supervisor.spec(name, specs, ...)` as a child spec.

    Args:
        link: the parent supervisor's link, or None for a root supervisor.
        children: child specs, in start order; names must be unique.
        policy: strategy, restart intensity and backoff.
        on_escalate: root only (required there): called in the supervisor's
            thread with the error once the intensity is exceeded and all
            children are stopped; the supervisor then stops itself.
        name: the root supervisor's name in logs (a nested one uses its
            link's name).
        clock: monotonic seconds, for the intensity window.
        wall_clock: epoch nanoseconds, for `started_at_ns` in introspection.
        rng: source of the backoff jitter.
        scheduler: runs delayed restarts; the default uses threading.Timer.

    Requests (answered in the supervisor's thread): through `ref.proxy()`
    the methods `children()`, `which_children()`, `handle(name)`; through
    `ref.ask` or a `ChildHandle.ask` the messages of
    `posbus.actors.supervision.requests` (`Children`, `WhichChildren`,
    `GetHandle`, and `StartChild` / `TerminateChild` for dynamic children).
    """

    def __init__(
        self,
        link: SupervisorLink | None,
        children: Sequence[ChildSpec],
        *,
        policy: SupervisorPolicy | None = None,
        on_escalate: Callable[[RestartIntensityExceeded], None] | None = None,
        name: str = "root",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        scheduler: Scheduler = timer_scheduler,
    ) -> None:
        super().__init__(link)
        names = [spec.name for spec in children]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            msg = f"child names must be unique within a supervisor: {duplicates}"
            raise ValueError(msg)
        if link is None and on_escalate is None:
            msg = "a root supervisor needs on_escalate (it has no parent to escalate to)"
            raise ValueError(msg)
        self.policy = policy if policy is not None else SupervisorPolicy()
        self.name = link.name if link is not None else name
        self._on_escalate = on_escalate
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._scheduler = scheduler
        self._children = [_Child(spec, index) for index, spec in enumerate(children)]
        self._by_name = {child.name: child for child in self._children}
        self._intensity = RestartIntensity(self.policy.max_restarts, self.policy.period_s)
        self._tokens = itertools.count(1)
        self._timers: dict[int, Cancellable] = {}

    @classmethod
    def spec(
        cls,
        name: str,
        children: Sequence[ChildSpec],
        *,
        policy: SupervisorPolicy | None = None,
        restart: RestartType = RestartType.PERMANENT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        scheduler: Scheduler = timer_scheduler,
    ) -> ChildSpec:
        """A child spec that runs a nested supervisor over `children`.

        Every restart of the nested supervisor starts a fresh instance over
        the same specs, so the grandchildren's handles stay valid. Its
        shutdown timeout is infinite, as for OTP supervisor children: it
        needs the time its own children take to stop.
        """
        specs = tuple(children)

        def start(link: SupervisorLink) -> ActorRef[Any]:
            return cls.start(
                link,
                specs,
                policy=policy,
                clock=clock,
                wall_clock=wall_clock,
                rng=rng,
                scheduler=scheduler,
            )

        return ChildSpec(name, start, restart=restart, shutdown_s=None)

    # -- lifecycle (supervisor thread) ------------------------------------------

    def on_start(self) -> None:
        """Start the children in spec order (supervisor thread).

        A child that fails to start is handled like a crash of that child, so
        the restart policy (and the intensity) applies to it.
        """
        self._log(logging.INFO, "supervisor started", children=len(self._children))
        self._start_batch(self._children, restarted=False)

    def on_stop(self) -> None:
        """Stop the children in reverse start order, then report (supervisor thread)."""
        self._stop_all_children()
        self._log(logging.INFO, "supervisor stopped")
        super().on_stop()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Take the children down with the supervisor, then report (supervisor thread).

        This is how escalation reaches a parent: the nested supervisor raises
        `RestartIntensityExceeded` and its parent sees an abnormal exit.
        """
        self._stop_all_children()
        self._log(logging.ERROR, "supervisor failed", error=repr(exception_value))
        super().on_failure(exception_type, exception_value, traceback)

    def on_receive(self, message: Any) -> Any:
        """Handle exit reports, due restarts and requests (supervisor thread)."""
        match message:
            case ChildExited():
                return self._on_child_exited(message)
            case _RestartDue():
                return self._on_restart_due(message)
            case Children():
                return self.children()
            case WhichChildren():
                return self.which_children()
            case GetHandle(name):
                return self.handle(name)
            case StartChild(spec):
                return self.start_child(spec)
            case TerminateChild(name):
                return self.terminate_child(name)
        return super().on_receive(message)

    # -- introspection (supervisor thread, through ask / proxy) ------------------

    def children(self) -> list[dict[str, Any]]:
        """One plain dict per child, in start order, for the admin socket.

        Keys: name, restart (permanent/transient/temporary), status (a
        `ChildStatus` value), alive, restarts, last_error (repr of the last
        abnormal exit, or None), started_at_ns (wall clock of the current or
        last start, or None), supervisor (the child is itself a supervisor),
        buffered (messages its handle holds while it is down).
        """
        return [
            {
                "name": child.name,
                "restart": child.spec.restart.value,
                "status": child.status.value,
                "alive": child.handle.alive,
                "restarts": child.handle.restarts,
                "last_error": child.last_error,
                "started_at_ns": child.started_at_ns,
                "supervisor": child.is_supervisor,
                "buffered": child.handle.buffered,
            }
            for child in self._children
        ]

    def which_children(self) -> dict[str, int]:
        """Counts as OTP's count_children: specs, active, supervisors, workers."""
        supervisors = sum(1 for child in self._children if child.is_supervisor)
        return {
            "specs": len(self._children),
            "active": sum(1 for child in self._children if child.handle.alive),
            "supervisors": supervisors,
            "workers": len(self._children) - supervisors,
        }

    def handle(self, name: str) -> ChildHandle:
        """The stable handle of child `name` (KeyError if there is none)."""
        return self._by_name[name].handle

    # -- dynamic children (supervisor thread, through ask / proxy) ---------------

    def start_child(self, spec: ChildSpec) -> ChildHandle:
        """Add `spec` after the existing children, start it, return its handle.

        See `requests.StartChild`. A failed start is handled like a crash (the
        handle is returned all the same and buffers until a restart).
        """
        existing = self._by_name.get(spec.name)
        if existing is not None:
            if existing.status not in (ChildStatus.TERMINATED, ChildStatus.STOPPED):
                msg = f"child {spec.name} already exists ({existing.status.value})"
                raise DuplicateChild(msg, child=spec.name)
            child = _Child(spec, existing.index, dynamic=True)
            self._children[existing.index] = child
        else:
            child = _Child(spec, len(self._children), dynamic=True)
            self._children.append(child)
        self._by_name[spec.name] = child
        self._start_child(child, restarted=False)
        return spec.handle

    def terminate_child(self, name: str) -> None:
        """Stop child `name` for good, whatever its restart type (KeyError if unknown)."""
        child = self._by_name[name]
        if child.status is ChildStatus.RUNNING:
            self._stop_child(child)
        self._terminate(child)

    # -- exits and restarts (supervisor thread) ----------------------------------

    def _on_child_exited(self, report: ChildExited) -> None:
        child = self._by_name.get(report.name)
        if (
            child is None
            or report.incarnation != child.incarnation
            or child.status not in (ChildStatus.RUNNING, ChildStatus.START_FAILED)
        ):
            # A late report from an incarnation already replaced or stopped by
            # this supervisor: that exit has been dealt with.
            self._log(
                logging.DEBUG,
                "stale exit ignored",
                child=report.name,
                incarnation=report.incarnation,
            )
            return
        child.handle.detach()
        child.ref = None
        if report.abnormal:
            child.last_error = report.error
        self._log(
            logging.WARNING if report.abnormal else logging.INFO,
            "child exited",
            child=child.name,
            incarnation=child.incarnation,
            abnormal=report.abnormal,
            error=report.error,
        )
        if not child.spec.restart.should_restart(abnormal=report.abnormal):
            self._terminate(child)
            return
        if not self._intensity.record(self._clock()):
            self._escalate(child)
            return
        self._restart(child)

    def _restart(self, failed: _Child) -> None:
        affected = [
            self._children[i]
            for i in self.policy.strategy.affected(failed.index, len(self._children))
        ]
        for sibling in reversed(affected):
            if sibling is not failed and sibling.status is ChildStatus.RUNNING:
                self._stop_child(sibling)
        batch: list[_Child] = []
        for child in affected:
            if child is not failed and child.status is ChildStatus.TERMINATED:
                continue
            if child is not failed and child.spec.restart is RestartType.TEMPORARY:
                self._terminate(child)
                continue
            child.status = ChildStatus.RESTARTING
            batch.append(child)
        # Restarts already in the window before this one: a burst backs off more.
        attempt = self._intensity.recent(self._clock()) - 1
        delay_s = self.policy.backoff.delay(attempt, self._rng)
        self._log(
            logging.INFO,
            "restart scheduled",
            child=failed.name,
            restarting=",".join(child.name for child in batch),
            strategy=self.policy.strategy.value,
            attempt=attempt,
            delay_s=round(delay_s, 6),
        )
        if delay_s <= 0:
            for child in batch:
                child.restart_token = None
            self._start_batch(batch, restarted=True)
            return
        token = next(self._tokens)
        for child in batch:
            # A newer token supersedes an older pending one (the later, wider
            # restart covers this child too); the old timer then finds no one.
            child.restart_token = token
        self._timers[token] = self._scheduler(
            delay_s, functools.partial(self._tell_self, _RestartDue(token))
        )

    def _on_restart_due(self, due: _RestartDue) -> None:
        self._timers.pop(due.token, None)
        batch = [child for child in self._children if child.restart_token == due.token]
        self._start_batch(batch, restarted=True)

    def _tell_self(self, message: Any) -> None:
        """Runs in the scheduler's thread."""
        try:
            self.actor_ref.tell(message)
        except ActorDeadError:
            # The supervisor stopped before its restart timer fired: its
            # children are stopped, there is nothing left to restart.
            logger.debug("restart timer fired after supervisor stopped sup=%s", self.name)

    def _terminate(self, child: _Child) -> None:
        child.status = ChildStatus.TERMINATED
        child.restart_token = None
        dropped = child.handle.terminate()
        self._log(
            logging.ERROR if dropped else logging.INFO,
            "child terminated, not restarted",
            child=child.name,
            restart=child.spec.restart.value,
            dropped_messages=dropped,
        )

    def _escalate(self, failed: _Child) -> None:
        error = RestartIntensityExceeded(
            self.name, failed.name, self.policy.max_restarts, self.policy.period_s
        )
        self._log(
            logging.ERROR,
            "restart intensity exceeded, escalating",
            child=failed.name,
            max_restarts=self.policy.max_restarts,
            period_s=self.policy.period_s,
            to="parent" if self.supervisor_link is not None else "on_escalate",
        )
        self._stop_all_children()
        if self.supervisor_link is not None:
            # Fail this actor: on_failure reports the abnormal exit to the parent.
            raise error
        assert self._on_escalate is not None  # checked in __init__
        self._on_escalate(error)
        self.stop()

    # -- starting and stopping children (supervisor thread) ----------------------

    def _start_batch(self, batch: Sequence[_Child], *, restarted: bool) -> None:
        for child in batch:
            self._start_child(child, restarted=restarted)

    def _start_child(self, child: _Child, *, restarted: bool) -> None:
        child.incarnation += 1
        child.restart_token = None
        link = SupervisorLink(self.actor_ref, child.name, child.incarnation)
        child.link = link
        try:
            ref = child.spec.start(link)
            self._await_started(child, ref)
        except ChildIgnored as exc:
            child.ref = None
            child.last_error = str(exc)
            self._log(logging.WARNING, "child start ignored", child=child.name, reason=str(exc))
            self._terminate(child)
            return
        except Exception as exc:  # noqa: BLE001 - actor boundary: the child failed to start; report, restart
            child.status = ChildStatus.START_FAILED
            child.ref = None
            child.last_error = repr(exc)
            self._log(
                logging.ERROR,
                "child start failed",
                child=child.name,
                incarnation=child.incarnation,
                error=repr(exc),
            )
            # Through the inbox rather than recursion: the exit then follows
            # the same path as a crash, one message at a time.
            self.actor_ref.tell(
                ChildExited(child.name, child.incarnation, abnormal=True, error=repr(exc))
            )
            return
        child.ref = ref
        child.status = ChildStatus.RUNNING
        child.started_at_ns = self._wall_clock()
        child.is_supervisor = issubclass(ref.actor_class, Supervisor)
        child.handle.attach(ref, restarted=restarted)
        self._log(
            logging.INFO,
            "child restarted" if restarted else "child started",
            child=child.name,
            incarnation=child.incarnation,
            restarts=child.handle.restarts,
        )

    def _await_started(self, child: _Child, ref: ActorRef[Any]) -> None:
        """Wait until the child's on_start has run (OTP's synchronous start).

        pykka runs on_start in the child's thread and only logs its failure;
        a reply to a trivial ask proves on_start completed.
        """
        future = ref.ask(ProxyGetAttr(attr_path=("actor_urn",)), block=False)
        deadline = time.monotonic() + child.spec.start_timeout_s
        while True:
            try:
                future.get(timeout=_START_POLL_S)
            except ActorDeadError as exc:
                raise ChildStartFailed(
                    f"child {child.name} died during on_start", child=child.name
                ) from exc
            except Timeout:
                if not ref.is_alive():
                    msg = f"child {child.name} died during on_start"
                    raise ChildStartFailed(msg, child=child.name) from None
                if time.monotonic() >= deadline:
                    if child.link is not None:
                        child.link.request_stop()
                    ref.stop(block=False)
                    msg = (
                        f"child {child.name} did not finish on_start within "
                        f"{child.spec.start_timeout_s} s"
                    )
                    raise ChildStartFailed(msg, child=child.name) from None
            else:
                return

    def _stop_all_children(self) -> None:
        for token, timer in self._timers.items():
            timer.cancel()
            self._log(logging.DEBUG, "pending restart cancelled", token=token)
        self._timers.clear()
        for child in reversed(self._children):
            if child.status is ChildStatus.RUNNING:
                self._stop_child(child)
            elif child.status is not ChildStatus.TERMINATED:
                child.handle.detach()
                child.status = ChildStatus.STOPPED
            child.restart_token = None
            if child.dynamic and child.status is not ChildStatus.TERMINATED:
                # The next incarnation of this supervisor starts only the
                # static specs: tell senders now rather than buffer forever.
                self._terminate(child)

    def _stop_child(self, child: _Child) -> None:
        """Stop one child and wait up to its shutdown timeout; it is not an exit."""
        # Buffer first: nothing new goes into an inbox about to be dropped.
        child.handle.detach()
        ref, link = child.ref, child.link
        child.status = ChildStatus.STOPPED
        child.ref = None
        if ref is None:
            return
        if link is not None:
            link.request_stop()
        try:
            ref.stop(block=True, timeout=child.spec.shutdown_s)
        except Timeout:
            # Python threads cannot be killed (no OTP brutal_kill): log it and
            # go on; the straggler's late exit report is stale and ignored.
            self._log(
                logging.WARNING,
                "child did not stop within shutdown timeout",
                child=child.name,
                shutdown_s=child.spec.shutdown_s,
            )
            return
        self._log(logging.INFO, "child stopped", child=child.name, incarnation=child.incarnation)

    def _log(self, level: int, event: str, **fields: Any) -> None:
        """One log line: the event, then key=value pairs; the same fields in `extra`."""
        fields = {"supervisor": self.name, **fields}
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        logger.log(level, "%s %s", event, text, extra={"event": event, **fields})
