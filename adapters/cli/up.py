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

from posbus.adapters.cli.command import EXIT_OK, CommandError, SubParsers, add_command
from posbus.adapters.cli.stack_options import add_stack_options

_DESCRIPTION = """\
Start a stack: the broker, the risk worker, the gateway of the account, the
positions workers ([workers] position_shards of them) and, with --demo, the
demo feed (a seeded random-walk market and a random signal source sending
orders), each as its own OS process with its own root supervisor.

A worker that dies is started again (at most [launcher] max_restarts within
period_s, then the launcher gives up loudly: every worker is stopped and the
exit code is 1). Pids, endpoints and restarts are written to RUN_DIR/run.json
(see `posbus status`); logs go to RUN_DIR/logs/NAME.log.

In the foreground (the default) Ctrl-C or SIGTERM stops the stack gracefully
(like `posbus down`). With --detach it returns once every worker serves, and
`posbus down` stops it.
"""

_EXAMPLES = """\
  posbus up --demo                       # everything on one machine, simulated market
  posbus up --config deploy/local.toml --detach
  posbus status; posbus positions; posbus down
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


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus up`."""
    from posbus.adapters.config import load_config
    from posbus.adapters.launcher import Launcher, LauncherPolicy, LaunchError
    from posbus.adapters.launcher_layout import RunDir, plan
    from posbus.adapters.log_format import configure_logging

    config = load_config(args.config)
    run_dir = RunDir(Path(args.run_dir) if args.run_dir else config.run_dir)
    specs = plan(config.account, config.workers.position_shards, demo=args.demo)
    if args.detach:
        return _detach(args, run_dir, len(specs))
    run_dir.prepare()
    configure_logging(
        config.log.level, config.log.format, file=run_dir.root / "logs" / "launcher.log"
    )
    policy = LauncherPolicy(
        max_restarts=config.launcher.max_restarts,
        period_s=config.launcher.period_s,
        stop_timeout_s=config.launcher.stop_timeout_s,
        ready_timeout_s=args.ready_timeout,
    )
    launcher = Launcher(
        specs, run_dir, config_path=Path(args.config) if args.config else None, policy=policy
    )

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        launcher.request_stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        launcher.start()
    except LaunchError as exc:
        raise CommandError(str(exc)) from exc
    names = ", ".join(spec.name for spec in specs)
    print(f"posbus: stack up in {run_dir.root} ({names}); Ctrl-C stops it", flush=True)
    code = launcher.watch()
    print("posbus: stack stopped", flush=True)
    return code


def _detach(args: argparse.Namespace, run_dir: object, workers: int) -> int:
    from posbus.adapters.launcher_layout import RunDir, pid_alive

    assert isinstance(run_dir, RunDir)
    run_dir.prepare()
    argv = [sys.executable, "-m", "posbus.adapters.cli.main", "up"]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    argv += ["--run-dir", str(run_dir.root), "--ready-timeout", str(args.ready_timeout)]
    if args.demo:
        argv.append("--demo")
    log = run_dir.root / "logs" / "launcher.out"
    with open(log, "ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
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
            raise CommandError(f"the launcher exited with code {process.returncode}; see {log}")
        time.sleep(0.05)
    if pid_alive(process.pid):
        os.kill(process.pid, signal.SIGTERM)
    raise CommandError(f"stack not up within {args.ready_timeout} s; see {log}")
