"""Deduplication: the same alert key within `window_s` seconds is sent once.

A key is forgotten early when its condition changes (`forget`): a halt after
a resume is news, however soon it comes.

Pure bookkeeping over the times it is given (a monotonic clock's seconds);
not thread-safe (one owner: the alerts worker's I/O thread).
"""

from __future__ import annotations

# Keys are few (a rule each, per account or worker); pruning only bounds a long run.
_PRUNE_AT = 1_024


class Dedupe:
    """Remembers when each alert key was last let through."""

    def __init__(self, window_s: float) -> None:
        if window_s < 0:
            raise ValueError(f"dedupe window must be >= 0 s, got {window_s}")
        self._window_s = window_s
        self._sent: dict[str, float] = {}
        self.suppressed = 0

    def first(self, key: str, now: float) -> bool:
        """True when `key` was not let through within the window before `now` (and note it)."""
        last = self._sent.get(key)
        if last is not None and now - last < self._window_s:
            self.suppressed += 1
            return False
        self._sent[key] = now
        if len(self._sent) > _PRUNE_AT:
            self._prune(now)
        return True

    def forget(self, keys: str) -> None:
        """Let `keys` through again (their condition changed): one key, or a prefix ending in |."""
        if keys.endswith("|"):
            self._sent = {k: t for k, t in self._sent.items() if not k.startswith(keys)}
        else:
            self._sent.pop(keys, None)

    def _prune(self, now: float) -> None:
        self._sent = {k: t for k, t in self._sent.items() if now - t < self._window_s}
