"""`posbus chaos`: a real stack under seeded load and `kill -9` faults, then an audit.

See posbus.adapters.chaos for what the run does and checks. Exit code 0 when
the audit finds no discrepancy, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from posbus.adapters.cli.command import EXIT_FAILURE, EXIT_OK, SubParsers, add_command

_DESCRIPTION = """\
Bring a whole stack up in a temporary directory (launcher, broker, risk,
gateway on the simulated exchange with rejects and partial fills, two
positions shards, the demo market feed over --symbols symbols; SQLite
journals), send seeded orders through the broker for --duration seconds while
killing random workers (kill -9 of a positions shard, risk or the broker),
then stop the faults, let every order settle and audit: positions in posbus
== the same positions rebuilt from the journals == what the gateway's
published fills imply (quantity, fees, cash); no fill lost or doubled; no
order acknowledged twice or overfilled; every worker alive.

Prints the counts (faults injected, orders, fills, restarts, recoveries,
discrepancies); exit code 1 on any discrepancy. The same seed gives the same
workload and fault schedule (timing on a loaded machine still varies).
"""

_EXAMPLES = """\
  posbus chaos --duration 60 --seed 1
  posbus chaos --duration 600 --seed 7 --fault-interval 3 --json
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus chaos`."""
    parser = add_command(
        subparsers,
        "chaos",
        summary="run a stack under seeded load and kill -9 faults, then audit it",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of workload and faults (1)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos (60)")
    parser.add_argument("--symbols", type=int, default=50, help="symbols traded (50)")
    parser.add_argument(
        "--orders-per-s", type=float, default=8.0, help="mean order rate (8 per second)"
    )
    parser.add_argument(
        "--market-steps-per-s",
        type=int,
        default=10,
        help="market steps per second, each one update per symbol (10)",
    )
    parser.add_argument(
        "--fault-interval", type=float, default=4.0, help="mean seconds between kills (4)"
    )
    parser.add_argument(
        "--one-fault-at-a-time",
        action="store_true",
        help="inject a fault only once the previous one's worker has recovered",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="run in DIR and keep it (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus chaos`: runs, prints the report, exit 1 on any discrepancy."""
    from posbus.adapters.chaos import ChaosSettings, run_chaos

    settings = ChaosSettings(
        seed=args.seed,
        duration_s=args.duration,
        symbols=args.symbols,
        market_steps_per_s=args.market_steps_per_s,
        orders_per_s=args.orders_per_s,
        mean_fault_interval_s=args.fault_interval,
        overlap_faults=not args.one_fault_at_a_time,
    )

    def log(line: str) -> None:
        print(f"chaos: {line}", file=sys.stderr, flush=True)

    if args.keep:
        root = Path(args.keep)
        root.mkdir(parents=True, exist_ok=True)
        report = run_chaos(settings, root, log)
    else:
        # Short path: ipc socket paths are limited to about 100 bytes.
        with tempfile.TemporaryDirectory(prefix="pbc-", dir="/tmp") as name:
            report = run_chaos(settings, Path(name), log)
    doc = report.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for key in (
            "seed",
            "duration_s",
            "symbols",
            "faults_injected",
            "faults",
            "orders_sent",
            "orders_refused",
            "orders",
            "fills",
            "fills_applied",
            "exchange_rejects",
            "positions",
            "market_updates",
            "restarts",
            "recoveries",
            "recoveries_incomplete",
            "workers_alive",
            "discrepancies",
        ):
            print(f"{key}: {doc[key]}")
        for line in doc["discrepancy_details"][:50]:
            print(f"  discrepancy: {line}")
    return EXIT_OK if report.discrepancies == 0 else EXIT_FAILURE
