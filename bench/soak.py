"""The soak run: 1,000 open positions under a steady market_update rate for 10 minutes.

Run: `python bench/soak.py [--duration 600] [--warmup 60] [--positions 1000]
[--steps-per-s 1]`. Brings a whole stack up, opens one position per symbol,
lets the market feed publish one update per symbol per step and samples RSS
per worker, mailbox depths and the risk worker's p99 latencies every 2 s
(posbus.adapters.simulation.chaos_soak). After the warm-up it compares the first and
last thirds: RSS growth < 5 %, no mailbox growth, p99 stable. Prints the
figures as JSON; exit code 1 when a criterion fails. The CI runs a 1-minute
version (tests/integration/test_soak.py, marked `soak`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from posbus.adapters.simulation.chaos_soak import SoakSettings, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--steps-per-s", type=int, default=1)
    args = parser.parse_args()
    settings = SoakSettings(
        positions=args.positions,
        market_steps_per_s=args.steps_per_s,
        duration_s=args.duration,
        warmup_s=args.warmup,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pbs-", dir="/tmp") as name:
        result = run_soak(settings, Path(name), lambda line: print(line, file=sys.stderr))
    doc = result.to_json()
    doc["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(doc, indent=2))
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
