"""One launcher per run directory: an exclusive OS lock on RUN_DIR/launcher.lock.

`posbus up` takes the lock (`fcntl.flock`, LOCK_EX | LOCK_NB) before it
creates anything else in the run directory, and holds it for the launcher's
whole life. The kernel releases it when the last descriptor of the lock's open
file goes away, so a launcher killed with SIGKILL frees it; the pid written in
the file only names the holder in the refusal message, it decides nothing.

With `--detach` the lock is handed over, never dropped: the short-lived parent
takes it, the detached launcher inherits the descriptor (the same open file,
hence the same lock) and confirms it, and only then does the parent close its
copy. Worker processes never inherit it (the descriptor is close-on-exec and
Popen closes every other descriptor), or a surviving worker would keep a dead
launcher's lock. Used on the main thread of `posbus up`; never blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from posbus.actors.model.errors import PosbusError

LOCK_NAME = "launcher.lock"


class StackRunning(PosbusError):
    """Another launcher holds the run directory's lock: nothing was started."""


class RunDirLock:
    """The exclusive lock of one run directory (held from `acquire` or `adopt` until `release`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise StackRunning (naming the holder's pid); never waits."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackRunning(
                f"a stack is already running in {self.root} (pid {self._holder()})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.write_pid()

    def adopt(self, fd: int) -> None:
        """Take over a descriptor inherited from `posbus up --detach`'s parent.

        Checks that it is this run directory's lock file and that its open file
        holds the lock (flock on a descriptor of the holding open file succeeds
        at once); StackRunning otherwise.
        """
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StackRunning(f"the lock of {self.root} was not handed over: {exc}") from None
        if not same:
            raise StackRunning(f"descriptor {fd} is not the lock of {self.root}")
        os.set_inheritable(fd, False)
        self.fd = fd
        self.write_pid()

    def write_pid(self) -> None:
        """Write this process's pid in the lock file (for the refusal message of others)."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode("ascii"), 0)

    def release(self) -> None:
        """Close this process's descriptor (the lock goes once no process has it open)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def _holder(self) -> str:
        # The holder writes its pid right after locking: wait a moment for it.
        deadline = time.monotonic() + 1.0
        while True:
            with contextlib.suppress(OSError, ValueError):
                text = self.path.read_text(encoding="ascii").strip()
                if text:
                    return str(int(text))
            if time.monotonic() > deadline:
                return "unknown"
            time.sleep(0.01)
