"""Which children a supervisor restarts when one of them exits (OTP strategies)."""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    """A supervisor's restart strategy.

    - ONE_FOR_ONE: restart only the child that exited.
    - ONE_FOR_ALL: stop every other child (reverse start order), then restart
      all of them (start order).
    - REST_FOR_ONE: stop the children started after the one that exited
      (reverse start order), then restart it and them (start order).
    """

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"

    def affected(self, failed_index: int, count: int) -> range:
        """Start-order indexes of the children restarted when child `failed_index` exits.

        `count` is the number of children of the supervisor.
        """
        if not 0 <= failed_index < count:
            msg = f"child index {failed_index} out of range for {count} children"
            raise IndexError(msg)
        if self is Strategy.ONE_FOR_ONE:
            return range(failed_index, failed_index + 1)
        if self is Strategy.ONE_FOR_ALL:
            return range(count)
        return range(failed_index, count)
