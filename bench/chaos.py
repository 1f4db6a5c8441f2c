"""The long chaos run: `posbus chaos` with the figures docs/reliability.md quotes.

Run: `python bench/chaos.py [--exchange emulator] [--duration 600] [--seed 7] [--fault-interval 3]`.
Brings a whole stack up, drives seeded orders over 50 symbols while prices
move (the exchange emulator's, or the demo feed's with `--exchange
simulated`), injects faults for the duration (kill -9 of positions shards,
risk, the broker and, against the emulator, the gateway; exchange timeouts,
5xx, lost responses, duplicate trades, 429s, maintenance), settles and
audits (posbus.adapters.simulation.chaos). Faults overlap unless
`--one-fault-at-a-time`. Prints the report as JSON; exit code 1 on any
discrepancy. The CI runs the short version (tests/integration/test_chaos.py:
three seeds of 25 s, one fault at a time).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from posbus.adapters.simulation.chaos import ChaosSettings, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", choices=("emulator", "simulated"), default="emulator")
    parser.add_argument("--one-fault-at-a-time", action="store_true")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fault-interval", type=float, default=3.0)
    parser.add_argument("--orders-per-s", type=float, default=8.0)
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args()
    settings = ChaosSettings(
        seed=args.seed,
        exchange=args.exchange,
        overlap_faults=not args.one_fault_at_a_time,
        duration_s=args.duration,
        symbols=args.symbols,
        orders_per_s=args.orders_per_s,
        mean_fault_interval_s=args.fault_interval,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pbc-", dir="/tmp") as name:
        report = run_chaos(settings, Path(name), lambda line: print(line, file=sys.stderr))
    doc = report.to_json()
    doc["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(doc, indent=2))
    return 0 if report.discrepancies == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
