"""`posbus worker`: run one worker process (what `posbus up` and the systemd units start).

Builds the worker of `--role` from the configuration, starts it, writes its
pid file and ready file under the run directory and waits. SIGTERM or SIGINT
stop it gracefully (snapshot, flush, stop the actors, close the sockets;
nothing is cancelled); its root supervisor giving up makes it exit 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from posbus.adapters.cli.command import (
    EXIT_ESCALATED,
    EXIT_JOURNAL_LOCKED,
    EXIT_OK,
    SubParsers,
    UsageError,
    add_command,
)
from posbus.adapters.cli.stack_options import RUN_DIR_HELP

# CPython hands the GIL to a waiting thread only every switch interval (5 ms by
# default): a worker's I/O thread and actor threads pass every message between
# them, so the default turns each hop into milliseconds under load.
SWITCH_INTERVAL_S = 0.0005

_DESCRIPTION = """\
Run one worker of a stack in the foreground: `broker` (the event proxy and
command router), `risk` (the risk supervisor), `gateway` (one account's
exchange gateway), `positions` (the position actors of shard I of N, by a
stable hash of account + symbol), `feed` (the demo's market and signal
source) or `alerts` (risk events sent to the webhooks of `[alerts]`).
`posbus up` starts these for you; run them by hand (or from the systemd
units in deploy/) to spread a stack over several machines.

Each worker answers admin commands on RUN_DIR/admin/NAME.sock (see `posbus
admin`) and logs JSON lines on stderr. RUN_DIR is --run-dir, else
$POSBUS_RUN_DIR, else run_dir of the config; what the worker writes there is
its owner's only (umask 077). SIGTERM stops it gracefully (exit 0). Exit 3:
its root supervisor gave up. Exit 4: another writer holds its journal (a
second copy of the same worker, or a tool writing to it); it is not worth
restarting until that writer lets go.
"""

_EXAMPLES = """\
  posbus worker --role broker --config deploy/local.toml
  posbus worker --role positions --shard 0/2 --config deploy/local.toml
  posbus worker --role gateway --account default
  posbus worker --instance gateway-hedge --config /etc/posbus/posbus.toml  # systemd
  posbus worker --instance positions-1 --config /etc/posbus/posbus.toml   # systemd
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus worker`."""
    parser = add_command(
        subparsers,
        "worker",
        summary="run one worker process (broker, risk, gateway, positions, feed, alerts)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument(
        "--role", choices=["broker", "risk", "gateway", "positions", "feed", "alerts"]
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="positions only: shard I of N (e.g. 0/2; I alone: N is [workers] position_shards)",
    )
    parser.add_argument(
        "--instance",
        metavar="NAME",
        help="role from a service instance name: broker, risk, gateway[-ACCOUNT], feed, alerts, "
        "positions-I",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")
    parser.add_argument("--run-dir", metavar="DIR", help=RUN_DIR_HELP)
    parser.add_argument("--name", help="worker name (default: from role, shard and account)")
    parser.add_argument(
        "--account", help="gateway only: its account, a name of [accounts] (default: the first)"
    )


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus worker`: runs until SIGTERM/SIGINT or escalation."""
    from posbus.actors.sharding import Shard
    from posbus.adapters.config import load_config
    from posbus.adapters.launcher_layout import worker_name, write_json_atomic
    from posbus.adapters.log_format import configure_logging

    config = load_config(args.config)
    if args.instance:
        _from_instance(args)
    if args.role is None:
        raise UsageError("--role (or --instance) is required")
    if args.shard and "/" not in args.shard:
        args.shard = f"{args.shard}/{config.workers.position_shards}"
    shard = None
    if args.role == "positions":
        try:
            shard = Shard.parse(args.shard or f"0/{config.workers.position_shards}")
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    elif args.shard:
        raise UsageError("--shard is for --role positions only")
    account = _account(args, config)
    name = args.name or worker_name(args.role, shard, account)
    run_dir = _run_dir(args.run_dir, config)
    configure_logging(config.log.level, config.log.format)
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    started = _build_and_start(args.role, name, config, run_dir, shard, account)
    if started is None:
        return EXIT_JOURNAL_LOCKED
    worker, metrics_endpoint = started
    run_dir.pid_file(name).write_text(f"{os.getpid()}\n", encoding="ascii")
    write_json_atomic(
        run_dir.ready_file(name),
        {"name": name, "role": args.role, "pid": os.getpid(), "ready_ns": time.time_ns()},
    )
    escalated: threading.Event | None = getattr(worker, "escalated", None)
    try:
        while not stop.wait(0.1):
            if escalated is not None and escalated.is_set():
                break
            if not _io_alive(worker):
                break
    finally:
        _stop(worker, metrics_endpoint)
    if escalated is not None and escalated.is_set():
        return EXIT_ESCALATED
    if not _io_alive(worker) and not stop.is_set():
        return 1
    return EXIT_OK


def _from_instance(args: argparse.Namespace) -> None:
    """Set role, shard and account from `--instance` (ROLE, gateway-ACCOUNT, positions-I)."""
    role, _, index = args.instance.partition("-")
    if role == "gateway" and index:
        args.account, index = index, ""
    if role not in ("broker", "risk", "gateway", "positions", "feed", "alerts") or (
        bool(index) != (role == "positions")
    ):
        raise UsageError(f"--instance {args.instance!r}: ROLE, gateway-ACCOUNT or positions-I")
    args.role, args.shard = role, index or args.shard


def _account(args: argparse.Namespace, config: Any) -> str:
    """The worker's account: `--account` (gateway only), else the first; UsageError if unknown."""
    if args.account is not None and args.role != "gateway":
        raise UsageError("--account is for --role gateway only")
    accounts = config.accounts()
    account: str = args.account or config.account
    if account not in accounts:
        raise UsageError(f"unknown account {account!r}; the accounts: {', '.join(accounts)}")
    return account


def _run_dir(option: str | None, config: Any) -> Any:
    """The run directory (--run-dir, $POSBUS_RUN_DIR, run_dir), prepared; umask 077 from now."""
    from posbus.adapters.cli.stack_options import run_dir_of
    from posbus.adapters.launcher_layout import OWNER_ONLY_UMASK, RunDir

    os.umask(OWNER_ONLY_UMASK)
    run_dir = RunDir(run_dir_of(option, config))
    run_dir.prepare()
    return run_dir


def _build_and_start(  # noqa: PLR0917 - private, called once
    role: str, name: str, config: Any, run_dir: Any, shard: Any, account: str
) -> tuple[Any, Any] | None:
    """`_build` and `_start`; None (logged, and on stderr) when another writer holds the journal."""
    import logging

    from posbus.actors.journal import JournalLocked

    worker: Any = None
    try:
        worker = _build(role, name, config, run_dir, shard, account)
        return worker, _start(worker, config, name)
    except JournalLocked as exc:
        logging.getLogger(__name__).critical(
            "journal held by another writer; not starting", extra={"worker": name}
        )
        print(f"posbus: error: worker {name}: {exc}", file=sys.stderr, flush=True)
        if worker is not None:
            with contextlib.suppress(Exception):
                worker.stop()
        return None


def _start(worker: Any, config: Any, name: str) -> Any:
    """Start the worker, then its Prometheus endpoint if `[metrics]` asks for one."""
    from posbus.adapters.metrics_http import start_for_worker

    worker.start()
    return start_for_worker(config, name, worker)


def _stop(worker: Any, metrics_endpoint: Any) -> None:
    worker.stop()
    if metrics_endpoint is not None:
        metrics_endpoint.close()


def _io_alive(worker: Any) -> bool:
    io = getattr(worker, "io", None)
    return io is None or io.alive


def _build(  # noqa: PLR0917 - private, called once
    role: str, name: str, config: Any, run_dir: Any, shard: Any, account: str
) -> Any:
    from posbus.actors.gateway_worker import GatewayWorker
    from posbus.actors.positions_worker import PositionsWorker
    from posbus.actors.risk_worker import RiskWorker
    from posbus.actors.worker import WorkerSettings
    from posbus.adapters import launcher_bus
    from posbus.adapters.clock import WallClock

    endpoints = launcher_bus.endpoints(config.bus, run_dir.root)
    admin = run_dir.admin_endpoint(name)
    if role == "broker":
        return _BrokerWorker(config, run_dir, name)
    if role == "alerts":
        from posbus.adapters.alerts.worker import AlertsWorker

        return AlertsWorker(
            config.alerts,
            endpoints=endpoints,
            admin_endpoint=admin,
            curve=launcher_bus.curve_client(config.bus),
            options=launcher_bus.socket_options(config.bus),
            name=name,
        )
    if role == "feed":
        from posbus.adapters.simulation.demo_feed import Feed

        return Feed(
            config,
            endpoints=endpoints,
            admin_endpoint=admin,
            curve=launcher_bus.curve_client(config.bus),
            name=name,
        )
    node = config.node_config()
    settings = WorkerSettings(
        name=name,
        role=role,
        run_dir=run_dir.root,
        endpoints=endpoints,
        admin_endpoint=admin,
        account=account,
        accounts=tuple(config.accounts()),
        policy=node.policy,
        symbols=node.symbols,
        steps=_venue_steps(config),
        shard=shard,
        position_shards=config.workers.position_shards,
        curve=launcher_bus.curve_client(config.bus),
        heartbeat=launcher_bus.heartbeat(config.bus),
        options=launcher_bus.socket_options(config.bus),
        tick_s=config.workers.tick_s,
        exposure_interval_ns=node.exposure_interval_ns,
        exposure_pnl_step=node.exposure_pnl_step,
        risk_reads_market=node.risk_reads_market,
        snapshot_interval_s=node.snapshot_interval_s,
        cancel_risk_adding_orders=node.cancel_risk_adding_orders,
    )
    journal = _journal(config, run_dir, name)
    clock = WallClock()
    if role == "risk":
        from posbus.actors.risk_scope import risk_scopes

        accounts = config.accounts()
        scopes = risk_scopes(
            {name: (a.risk, a.starting_equity) for name, a in accounts.items()},
            config.firm.limits,
            # Without [accounts] and firm-wide limits: the one supervisor of old, stream `risk`.
            per_account=config.account_configs is not None or config.firm.limits is not None,
        )
        return RiskWorker(
            settings,
            journal=journal,
            clock=clock,
            scopes=scopes,
            reporting_currency=config.firm.reporting_currency,
        )
    if role == "gateway":
        from posbus.adapters.exchange.factory import exchange_client

        # The account's exchange `kind`: the simulated exchange, or ccxt to a real venue.
        # A simulated venue lives and dies with this process: its ids name the process.
        incarnation = f"{os.getpid()}.{time.time_ns() % 10**9}"
        exchange = exchange_client(config, clock=clock, account=account, incarnation=incarnation)
        return GatewayWorker(
            settings, journal=journal, clock=clock, exchange=exchange, symbols=tuple(config.symbols)
        )
    return PositionsWorker(settings, journal=journal, clock=clock)


def _venue_steps(config: Any) -> Any:
    """Each simulated account's venue tick and step; none for ccxt (its gateway has the markets)."""
    from posbus.actors.model.instrument_steps import InstrumentSteps

    return {
        name: InstrumentSteps(account.exchange.price_tick, account.exchange.qty_step)
        for name, account in config.accounts().items()
        if account.gateway.kind == "simulated"
    }


def _journal(config: Any, run_dir: Any, name: str) -> Any:
    """The worker's own journal: each worker owns its streams, so each has its own store.

    `[workers] journal = "memory"` (tests) keeps it in memory. Otherwise the
    `[storage]` backend decides: SQLite gives one file per worker under
    RUN_DIR/journal/; MongoDB one database per worker, `DATABASE_WORKER`
    (dots become underscores), on the configured server.
    """
    from msgspec.structs import replace

    from posbus.adapters.journal.backend import open_backend

    if config.workers.journal == "memory":
        from posbus.adapters.journal.memory import MemoryJournal

        return MemoryJournal()
    storage = config.storage
    if storage.backend == "mongodb":
        database = f"{storage.database}_{name}".replace(".", "_")
        return open_backend(replace(storage, database=database), run_dir.root, wait_for_lease=True)
    return open_backend(
        replace(storage, backend="sqlite", path=run_dir.journal_file(name)), run_dir.root
    )


class _BrokerWorker:
    """The broker role: the bus Broker on its own thread plus an admin socket."""

    role = "broker"

    def __init__(self, config: Any, run_dir: Any, name: str) -> None:
        from posbus.adapters import launcher_bus
        from posbus.bus.broker import Broker

        self.config = config
        self.run_dir = run_dir
        self.name = name
        self.started_ns = time.time_ns()
        self.broker = Broker(
            launcher_bus.endpoints(config.bus, run_dir.root, binding=True),
            curve=launcher_bus.curve_server(config.bus),
            options=launcher_bus.socket_options(config.bus),
            heartbeat=launcher_bus.heartbeat(config.bus),
            name=name,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.broker.run, args=(self._stop,), daemon=True)
        self._admin_thread = threading.Thread(target=self._admin, daemon=True)
        self._admin_ready = threading.Event()
        self.failed: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self.broker.ready.wait(10):
            raise RuntimeError("broker did not bind its endpoints within 10 s")
        self._admin_thread.start()
        self._admin_ready.wait(10)
        if self.failed is not None:
            raise self.failed

    @property
    def io(self) -> Any:
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _admin(self) -> None:
        import zmq

        from posbus.bus.admin import AdminServer

        try:
            server = AdminServer(
                zmq.Context.instance(),
                self.run_dir.admin_endpoint(self.name),
                {"status": self._status, "metrics": self._metrics, "workers": self._workers},
                name=f"{self.name}.admin",
            )
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the main thread
            self.failed = exc
            self._admin_ready.set()
            return
        self._admin_ready.set()
        try:
            server.run(self._stop)
        finally:
            server.close()

    def _status(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": "broker",
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "endpoints": list(self.broker.endpoints.all()),
        }

    def _metrics(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.broker.metrics.snapshot()

    def _workers(self, args: dict[str, Any]) -> dict[str, Any]:
        status: dict[str, Any] = self.broker.status()
        return status

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._admin_thread.join(5)
