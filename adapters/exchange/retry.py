"""Retries of exchange calls: exponential backoff with full jitter, bounded, via `backoff`.

A call that fails with a transient posbus error (`PosbusError.transient`) is
tried again, at most `tries` times in all. Before attempt n+1 it waits a
uniformly random time in [min_s, min(max_s, min_s * 2**(n+1))] ("full
jitter", the same arithmetic as the supervisors' restart backoff), except
after `RateLimited` with a Retry-After: then it waits exactly what the
exchange asked for, and gives up at once if that is more than
`max_retry_after_s`. Permanent errors are raised on the first try.

Runs on the gateway's asyncio loop (the waits are `asyncio.sleep`), so a
retrying call never blocks an actor.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import backoff

from posbus.actors.model.errors import PosbusError, RateLimited
from posbus.actors.supervision.backoff import Backoff

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    `tries` counts every attempt, the first included (3-5 is sensible);
    `min_s`/`max_s` bound each wait; a Retry-After longer than
    `max_retry_after_s` is not waited for (the call fails at once).
    """

    tries: int = 4
    min_s: float = 0.1
    max_s: float = 1.0
    max_retry_after_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.tries <= 10:
            raise ValueError(f"tries must be within 1..10, not {self.tries}")
        if not 0 <= self.min_s <= self.max_s:
            raise ValueError(
                f"retry delays need 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}"
            )
        if self.max_retry_after_s < 0:
            raise ValueError(f"max_retry_after_s must be >= 0, not {self.max_retry_after_s}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry number `attempt` (0-based) of a plain transient failure."""
        return Backoff(self.min_s, self.max_s).delay(attempt, rng)


def _waits(
    policy: RetryPolicy, rng: random.Random
) -> Generator[float | None, BaseException | None, None]:
    """backoff's wait generator: it is sent each failure and yields the next wait."""
    error = yield None  # backoff primes the generator with an empty send
    attempt = 0
    while True:
        if isinstance(error, RateLimited) and error.retry_after_s is not None:
            wait = error.retry_after_s
        else:
            wait = policy.delay(attempt, rng)
        attempt += 1
        error = yield wait


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    rng: random.Random,
    give_up: Callable[[PosbusError], bool] = lambda _: False,
    on_retry: Callable[[PosbusError, int, float], None] = lambda *_: None,
) -> T:
    """Await `call()`, retrying transient PosbusErrors as the policy says.

    `call` must raise PosbusError for every exchange failure (map ccxt's
    exceptions first). `give_up(error)` may stop early (the breaker opened,
    say); `on_retry(error, tries_so_far, wait_s)` is told before each wait.
    The last error is raised when the tries are spent.
    """

    def stop(error: Exception) -> bool:
        if not isinstance(error, PosbusError) or not error.transient:
            return True
        if isinstance(error, RateLimited) and (error.retry_after_s or 0) > policy.max_retry_after_s:
            return True
        return give_up(error)

    def told(details: Any) -> None:
        on_retry(details["exception"], details["tries"], details["wait"])

    @backoff.on_exception(
        cast(Any, _waits),  # backoff's stubs expect a plain generator; it does send()
        PosbusError,
        max_tries=policy.tries,
        jitter=None,  # the generator draws the full jitter itself
        giveup=stop,
        on_backoff=told,
        raise_on_giveup=True,
        logger=None,
        policy=policy,
        rng=rng,
    )
    async def attempt() -> T:
        return await call()

    return await attempt()
