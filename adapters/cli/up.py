"""`posbus up`: start a stack (broker and workers as OS processes) and keep it up."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    add_command,
)
from posbus.adapters.cli.stack_options import add_stack_options, run_dir_of

if TYPE_CHECKING:
    from posbus.adapters.launcher_layout import RunDir

_DESCRIPTION = """\
Start a stack: the broker, the risk worker, one gateway per account
(gateway.NAME), the positions workers ([workers] position_shards of them,
holding every account's positions) and, with --demo, the demo feed (a seeded
random-walk market and a random signal source per account sending orders),
each as its own OS process with its own root supervisor.

--demo without --config runs two simulated accounts, `main` and `hedge`, on
two simulated venues (their configuration is written to RUN_DIR/demo.toml);
--demo with --config runs that file's accounts.

A worker that dies is started again (at most [launcher] max_restarts within
period_s, then the launcher gives up loudly: every worker is stopped and the
exit code is 1). Pids, endpoints and restarts are written to RUN_DIR/run.json
(see `posbus status`); logs go to RUN_DIR/logs/NAME.log.

In the foreground (the default) Ctrl-C or SIGTERM stops the stack gracefully
(like `posbus down`). With --detach it returns once every worker serves, and
`posbus down` stops it.

One stack per run directory: `posbus up` takes an exclusive lock on
RUN_DIR/launcher.lock before it starts anything and holds it as long as the
launcher runs (also detached); a second `posbus up` on the same run directory
exits 1 at once with "a stack is already running in DIR (pid N)". The lock
goes with the launcher's process, even when it is killed with SIGKILL.
SIGTERM or Ctrl-C while the workers are still starting stops those already
started and exits 1.

With --demo each demo starts with empty journals (its own positions and
risk day): the previous demo's are kept in RUN_DIR/journal.previous. A demo
whose launcher was killed is recovered instead, as any stack is. A demo never
touches a real stack's journals (SQLite backend; with MongoDB a demo stack
continues the journals it finds).

RUN_DIR is --run-dir, else $POSBUS_RUN_DIR, else run_dir of the config
(relative to the current directory). Everything written in it (journals,
logs, pid and ready files, run.json) is readable by its owner only: files
0600, directories 0700.
"""

_EXAMPLES = """\
  posbus up --demo                       # two accounts on one machine, simulated venues
  posbus up --config deploy/local.toml --detach
  posbus status; posbus positions; posbus down
  POSBUS_RUN_DIR=/srv/posbus/var posbus up --detach; POSBUS_RUN_DIR=/srv/posbus/var posbus status
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus up`."""
    parser = add_command(
        subparsers,
        "up",
        summary="start the broker and all workers as processes (restarts those that die)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    add_stack_options(parser)
    parser.add_argument("--demo", action="store_true", help="also run the demo market and signals")
    parser.add_argument(
        "--detach", action="store_true", help="run in the background; stop with 'posbus down'"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=60.0, metavar="S", help="wait for workers (60)"
    )
    parser.add_argument(
        "--lock-fd",
        type=int,
        metavar="N",
        help="used by --detach: adopt the run directory's lock already held on descriptor N",
    )


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus up`."""
    from posbus.adapters.config import load_config
    from posbus.adapters.launcher_layout import OWNER_ONLY_UMASK, RunDir, plan
    from posbus.adapters.launcher_lock import RunDirLock, StackRunning

    os.umask(OWNER_ONLY_UMASK)
    config = load_config(args.config)
    demo_accounts = args.demo and args.config is None
    if demo_accounts:
        from posbus.adapters.simulation.demo_accounts import demo_config

        config = demo_config()
    run_dir = RunDir(run_dir_of(args.run_dir, config))
    specs = plan(
        list(config.accounts()),
        config.workers.position_shards,
        demo=args.demo,
        alerts=bool(config.alerts.sinks),
    )
    # The lock comes before anything is created or started in the run directory.
    lock = RunDirLock(run_dir.root)
    try:
        if args.lock_fd is not None:
            lock.adopt(args.lock_fd)
        else:
            lock.acquire()
    except StackRunning as exc:
        raise CommandError(str(exc)) from exc
    try:
        if args.demo and args.lock_fd is None and config.storage.backend == "sqlite":
            _begin_demo(run_dir)
        if args.detach:
            return _detach(args, run_dir, len(specs), lock.fd)
        return _foreground(args, config, run_dir, specs, demo_accounts=demo_accounts)
    finally:
        lock.release()


def _begin_demo(run_dir: RunDir) -> None:
    """Empty journals for a new demo; a crashed demo's are kept for recovery."""
    from posbus.actors.model.errors import PosbusError
    from posbus.adapters.demo_stack_journals import begin_demo_journals

    try:
        kept = begin_demo_journals(run_dir, crashed=run_dir.read_run() is not None)
    except PosbusError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    if kept is not None:
        print(f"posbus: a new demo; the previous demo's journals are in {kept}", flush=True)


def _foreground(
    args: argparse.Namespace, config: Any, run_dir: RunDir, specs: list[Any], *, demo_accounts: bool
) -> int:
    """Run the launcher here; `demo_accounts`: the workers read the demo's RUN_DIR/demo.toml."""
    from posbus.adapters.launcher import Launcher, LauncherPolicy, LaunchError
    from posbus.adapters.log_format import configure_logging

    policy = LauncherPolicy(
        max_restarts=config.launcher.max_restarts,
        period_s=config.launcher.period_s,
        stop_timeout_s=config.launcher.stop_timeout_s,
        ready_timeout_s=args.ready_timeout,
    )
    config_path = Path(args.config) if args.config else None
    if demo_accounts:
        from posbus.adapters.simulation.demo_accounts import write_demo_config

        run_dir.prepare()
        config_path = write_demo_config(run_dir.root)
    launcher = Launcher(specs, run_dir, config_path=config_path, policy=policy)

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        launcher.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    run_dir.prepare()
    configure_logging(
        config.log.level, config.log.format, file=run_dir.root / "logs" / "launcher.log"
    )
    try:
        launcher.start()
    except LaunchError as exc:
        raise CommandError(str(exc)) from exc
    names = ", ".join(spec.name for spec in specs)
    print(f"posbus: stack up in {run_dir.root} ({names}); Ctrl-C stops it", flush=True)
    code = launcher.watch()
    print("posbus: stack stopped", flush=True)
    return code


def _detach(args: argparse.Namespace, run_dir: RunDir, workers: int, lock_fd: int | None) -> int:
    """Start the launcher in the background and return once every worker serves.

    The lock is handed over, never let go: this process took it; the
    detached launcher inherits the descriptor (the same open file, so the
    same lock) and adopts it with --lock-fd before it starts anything. This
    process closes its copy only when it returns (the caller's `finally`),
    after the launcher is up or has exited, so at every instant one of the
    two holds the lock and no second `posbus up` can slip in between.
    """
    from posbus.adapters.launcher_layout import OWNER_ONLY_UMASK, pid_alive

    assert lock_fd is not None
    run_dir.prepare()
    argv = [sys.executable, "-m", "posbus.adapters.cli.main", "up"]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    argv += ["--run-dir", str(run_dir.root), "--ready-timeout", str(args.ready_timeout)]
    argv += ["--lock-fd", str(lock_fd)]
    if args.demo:
        argv.append("--demo")
    log = run_dir.root / "logs" / "launcher.out"
    with open(log, "ab") as out:
        offset = out.tell()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            pass_fds=(lock_fd,),
            umask=OWNER_ONLY_UMASK,
        )
    deadline = time.monotonic() + args.ready_timeout + 5
    while time.monotonic() < deadline:
        data = run_dir.read_run()
        if (
            data is not None
            and data.get("launcher_pid") == process.pid
            and len(data.get("workers", {})) == workers
        ):
            print(
                f"posbus: stack up in {run_dir.root} (launcher pid {process.pid}); "
                "'posbus down' stops it",
                flush=True,
            )
            return EXIT_OK
        if process.poll() is not None:
            raise CommandError(
                f"the launcher exited with code {process.returncode}: "
                f"{_last_error(log, offset) or 'no error message'}; see {log}"
            )
        time.sleep(0.05)
    if pid_alive(process.pid):
        os.kill(process.pid, signal.SIGTERM)
    raise CommandError(f"stack not up within {args.ready_timeout} s; see {log}")


def _last_error(log: Path, offset: int) -> str | None:
    """The last `posbus: error: ...` line the launcher wrote to its output after `offset`."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    prefix = "posbus: error: "
    errors = [line[len(prefix) :] for line in lines if line.startswith(prefix)]
    return errors[-1] if errors else None
