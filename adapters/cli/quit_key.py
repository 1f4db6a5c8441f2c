"""A terminal's `q` key as a way out of a live view (`posbus top`).

`QuitKey` puts the terminal in cbreak mode (keys arrive one by one, unechoed,
Ctrl-C still interrupts) while a live view runs and restores it on exit;
`pause(seconds)` waits like `time.sleep` but returns True as soon as `q` or
`Q` is pressed. When stdin is not a terminal (a pipe, a file, a test) it is
a plain sleep that never returns True. Runs on the CLI's main thread; it must
never leave the terminal in cbreak mode, whatever ends the view.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any

QUIT_KEYS = frozenset(b"qQ")


class QuitKey:
    """Context manager: cbreak mode on a terminal stdin, restored on exit."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> QuitKey:
        fd = sys.stdin.fileno() if sys.stdin is not None else -1
        if fd >= 0 and os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None

    def pause(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when `q` was pressed (at once), else False after the wait."""
        if self._fd is None:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                return False
            pressed = os.read(self._fd, 64)
            if not pressed or QUIT_KEYS.intersection(pressed):
                # An empty read is end of input: nobody is left to press a key.
                return True
