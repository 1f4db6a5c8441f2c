"""`posbus down`: stop a running stack gracefully."""

from __future__ import annotations

import argparse
import os
import signal
import time

from posbus.adapters.cli.command import EXIT_OK, CommandError, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options, run_dir_of

_DESCRIPTION = """\
Stop the stack running in the run directory: SIGTERM to its launcher, which
stops the workers in reverse start order; each worker snapshots, flushes its
journal and stops its actors. Open orders are left as they are (nothing is
cancelled). Waits until every process has exited (--timeout); a launcher that
is gone already is cleaned up after (its workers get SIGTERM directly).
"""

_EXAMPLES = """\
  posbus down
  posbus down --config deploy/local.toml
  POSBUS_RUN_DIR=/srv/posbus/var posbus down
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus down`."""
    parser = add_command(
        subparsers,
        "down",
        summary="stop the running stack gracefully (snapshot, flush, stop)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    add_stack_options(parser)
    parser.add_argument("--timeout", type=float, default=60.0, metavar="S", help="wait (60 s)")


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus down`."""
    from posbus.adapters.config import load_config
    from posbus.adapters.launcher_layout import RunDir, pid_alive

    config = load_config(args.config)
    run_dir = RunDir(run_dir_of(args.run_dir, config))
    data = run_dir.read_run()
    if data is None:
        raise CommandError(f"no stack is running in {run_dir.root}")
    pids = [int(data.get("launcher_pid", 0))]
    if not pid_alive(pids[0]):
        # The launcher is gone: stop what it left behind directly.
        pids = [int(w.get("pid", 0)) for w in data.get("workers", {}).values()]
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise CommandError(f"stack still running after {args.timeout} s (pids {pids})")
        time.sleep(0.05)
    run_dir.run_file.unlink(missing_ok=True)
    print(f"posbus: stack in {run_dir.root} stopped")
    return EXIT_OK
