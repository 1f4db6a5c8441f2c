"""`posbus chaos`: a real stack under seeded load, `kill -9` and exchange faults, then an audit.

See posbus.adapters.simulation.chaos for what the run does and checks. Exit
code 0 when the audit finds no discrepancy, 1 otherwise.
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
gateway, two positions shards; SQLite journals) over --symbols symbols, send
seeded orders through the broker for --duration seconds while injecting
faults, then clear the faults, let every order settle and audit: positions in
posbus == the same positions rebuilt from the journals == what the gateway's
published fills imply (quantity, fees, cash); no fill lost or doubled; no
order acknowledged twice or overfilled; no order filled beyond the stack's
risk limit on order notional (400; orders risk refused are counted); every
worker alive.

In both modes a fault may also be a journal stall: a worker's SQLite journal
(a positions shard's, risk's or the gateway's) locked by this process for
1-4 s, as a stalled disk would hold it; the worker's writes wait.

--exchange emulator (default): this process runs the Binance spot emulator
on 127.0.0.1 (one market per symbol, prices moved by a seeded random walk at
--market-steps-per-s) and the gateway trades with it through ccxt over HTTP,
relaying its quotes on the bus. Faults: kill -9 of a positions shard, risk,
the broker or the gateway (which reconciles with the exchange when it
restarts), and exchange timeouts, 5xx, lost responses, duplicate trades in
the trade history, 429 rate limits and maintenance. The audit also checks
the emulator's own ledger: every exchange trade applied exactly once, the
positions' quantity, fees and cash equal what the exchange's trades imply,
no client order id sent twice.

--exchange simulated: the simulated exchange (rejects, partial fills) inside
the gateway process and the demo feed's market; faults: kill -9 of a
positions shard, risk or the broker (killing that gateway would wipe its
exchange).

Prints the counts (faults injected, orders, fills, restarts, recoveries,
discrepancies); exit code 1 on any discrepancy. The same seed gives the same
workload and fault schedule (timing on a loaded machine still varies).
"""

_EXAMPLES = """\
  posbus chaos --duration 60 --seed 1
  posbus chaos --duration 30 --seed 11 --one-fault-at-a-time
  posbus chaos --exchange simulated --duration 60
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
    parser.add_argument(
        "--exchange",
        choices=("emulator", "simulated"),
        default="emulator",
        help="trade against the Binance emulator through ccxt, or the simulated exchange "
        "(emulator)",
    )
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
        "--fault-interval", type=float, default=4.0, help="mean seconds between faults (4)"
    )
    parser.add_argument(
        "--one-fault-at-a-time",
        action="store_true",
        help="inject a fault only once the previous one has passed and its worker recovered",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="run in DIR and keep it (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus chaos`: runs, prints the report, exit 1 on any discrepancy."""
    from posbus.adapters.simulation.chaos import ChaosSettings, run_chaos

    settings = ChaosSettings(
        seed=args.seed,
        exchange=args.exchange,
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
            "exchange",
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
            "venue_orders",
            "venue_trades",
            "risk_refusals",
            "largest_order_notional",
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
