"""Base class of every supervised actor: it reports its own exit to its supervisor."""

from __future__ import annotations

import logging
from types import TracebackType

from pykka import ActorDeadError, ThreadingActor

from posbus.actors.supervision.link import ChildExited, SupervisorLink

logger = logging.getLogger(__name__)


class SupervisedActor(ThreadingActor):
    """A pykka `ThreadingActor` that tells its supervisor when it exits.

    - A failure (an exception escaping `on_receive` for a told message) runs
      `on_failure` in the actor's thread, which tells the supervisor
      `ChildExited(abnormal=True, error=repr(exception))`.
    - A stop runs `on_stop` in the actor's thread, which tells the supervisor
      `ChildExited(abnormal=False)`, unless the supervisor itself is stopping
      the actor (the link says so): its own stops are not exits.

    Subclasses that override `on_stop` or `on_failure` must call `super()`
    (first, so a later exception cannot skip the report). A failure inside
    `on_start` never reaches `on_failure` in pykka; the supervisor detects it
    itself by waiting for the start to complete. `link` is None when the
    actor runs unsupervised (a backtest, a unit test).

    Never `ask` the supervisor from `on_start` or `on_stop`: the supervisor
    waits synchronously for both (OTP's synchronous start and shutdown), so
    such an ask would stall until the start or shutdown timeout. Tell it.
    """

    def __init__(self, link: SupervisorLink | None = None) -> None:
        super().__init__()
        self.supervisor_link = link

    def on_stop(self) -> None:
        """Report a normal exit to the supervisor (actor thread)."""
        link = self.supervisor_link
        if link is not None and not link.stop_requested:
            self._report_exit(link, ChildExited(link.name, link.incarnation, abnormal=False))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Report an abnormal exit to the supervisor (actor thread)."""
        link = self.supervisor_link
        if link is not None:
            report = ChildExited(
                link.name, link.incarnation, abnormal=True, error=repr(exception_value)
            )
            self._report_exit(link, report)

    def _report_exit(self, link: SupervisorLink, report: ChildExited) -> None:
        try:
            link.supervisor.tell(report)
        except ActorDeadError:
            # The supervisor is gone (it stopped or failed and took its
            # children down with it): no one is left to restart this child.
            logger.debug(
                "exit not reported, supervisor gone child=%s incarnation=%d",
                link.name,
                link.incarnation,
                extra={"event": "exit_unreported", "child": link.name},
            )
