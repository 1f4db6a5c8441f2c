"""Typed errors of the bus transport: requests, services, security, configuration.

Every error is a PosbusError, so `Reply.failure` carries its class name and
its `transient` flag to the other side. The wire-format error (`WireError`)
lives in bus/wire_error.py; this module must not grow codec concerns.
"""

from __future__ import annotations

from typing import Any

from posbus.actors.model.errors import PosbusError


class BusError(PosbusError):
    """Root of the transport's errors."""


class UnknownOutcome(BusError):
    """A request was sent but no answer came: it may or may not have been executed.

    Permanent on purpose: a caller must look the outcome up (e.g. the order by
    its client order id) rather than re-send a state-changing command.
    """

    def __init__(self, message: str, *, service: str, request_id: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.service = service
        self.request_id = request_id

    def context(self) -> dict[str, Any]:
        return {**super().context(), "service": self.service, "request_id": self.request_id}


class BrokerUnavailable(BusError):
    """The request could not be queued on a connection to the broker: it was not sent."""

    transient = True


class UnknownService(BusError):
    """No worker ever offered the requested service; the command was not delivered."""

    def __init__(self, service: str, **context: Any) -> None:
        super().__init__(f"unknown service {service!r}: no worker offers it", **context)
        self.service = service


class ServiceUnavailable(BusError):
    """Every worker of the service is gone; the command was not delivered (safe to retry)."""

    transient = True

    def __init__(self, service: str, **context: Any) -> None:
        super().__init__(f"service {service!r} has no live worker", **context)
        self.service = service


class UnknownCommand(BusError):
    """A command name the service or admin socket does not declare; nothing was done."""

    def __init__(self, name: str, known: list[str], **context: Any) -> None:
        super().__init__(f"unknown command {name!r}; known: {', '.join(sorted(known))}", **context)
        self.name = name


class InvalidArgument(BusError):
    """A command argument that is unknown, missing or not of its declared type: nothing was done.

    `argument` names it as it travels; the message says what was expected.
    """

    def __init__(self, command: str, argument: str, expected: str, **context: Any) -> None:
        where = f"argument {argument!r}: " if argument else ""
        super().__init__(f"command {command!r}: {where}{expected}", **context)
        self.command = command
        self.argument = argument


class CommandFailed(BusError):
    """A command was answered with a failure Reply; carries the remote error's name and flag."""

    def __init__(self, error_type: str, message: str, *, remote_transient: bool) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.remote_transient = remote_transient

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """As transient as the remote error said it was."""
        return self.remote_transient


class ReplyTooLarge(BusError):
    """The answer to a request exceeds the message size limit: ask for less (a filter, a page)."""

    def __init__(self, size: int, limit: int, **context: Any) -> None:
        super().__init__(
            f"the reply of {size} bytes exceeds the message size limit of {limit} bytes; "
            "ask for less (a filter or a smaller limit)",
            **context,
        )
        self.size = size
        self.limit = limit


class BusSecurityError(BusError):
    """Plaintext tcp, a bad key file or a directory others can open."""


class BusConfigError(BusError):
    """An endpoint or socket option that cannot work (e.g. an ipc path that is too long)."""
