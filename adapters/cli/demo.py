"""`posbus demo`: run the in-process engine on a simulated market, with crashes injected."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import EXIT_FAILURE, EXIT_OK, SubParsers, UsageError, add_command

if TYPE_CHECKING:
    from posbus.adapters.simulation.demo import DemoProgress

_DESCRIPTION = """\
Run the whole engine in one process for a short while: a seeded random-walk
market for a few symbols, a simple signal source that opens and closes
positions, the risk supervisor, the simulated exchange gateway and one
position actor per symbol, all under OTP-style supervisors. Actors are
crashed at random (--crash-rate) to show that supervisors restart them and
that no fill is lost or applied twice.

While it runs, a live table shows positions, P&L, the risk state and actor
restarts (only on a terminal; --quiet turns it off). It ends with a summary;
--json prints the summary as JSON on stdout. Logs (JSON lines) go to
RUN_DIR/demo.log, RUN_DIR being `run_dir` of the config (default ./var).
Exit code 1 if any fill was lost or doubled.
"""

_EXAMPLES = """\
  posbus demo
  posbus demo --duration 5 --json
  posbus demo --seed 42 --crash-rate 2 --config deploy/local.toml
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus demo`."""
    parser = add_command(
        subparsers,
        "demo",
        summary="run the in-process engine on a simulated market (with crash injection)",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="run time (default 20)")
    parser.add_argument("--seed", type=int, help="seed of market, signals and faults (default 7)")
    parser.add_argument(
        "--crash-rate", type=float, metavar="PER_SECOND", help="actor crashes per second (0.3)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no live view")


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus demo`."""
    from dataclasses import replace

    import msgspec

    from posbus.adapters.config import ConfigError, load_config
    from posbus.adapters.log_format import configure_logging
    from posbus.adapters.simulation.demo import Demo

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    demo_cfg = config.demo
    if args.duration is not None:
        if args.duration <= 0:
            raise UsageError("--duration must be positive")
        demo_cfg = msgspec.structs.replace(demo_cfg, duration_s=args.duration)
    if args.seed is not None:
        demo_cfg = msgspec.structs.replace(demo_cfg, seed=args.seed)
        config = replace(config, exchange=replace(config.exchange, seed=args.seed))
    if args.crash_rate is not None:
        if args.crash_rate < 0:
            raise UsageError("--crash-rate must be >= 0")
        demo_cfg = msgspec.structs.replace(demo_cfg, crash_rate=args.crash_rate)
    config = replace(config, demo=demo_cfg)
    configure_logging(config.log.level, config.log.format, file=Path(config.run_dir) / "demo.log")

    demo = Demo(config)
    live = not args.quiet and sys.stdout.isatty() and not args.json
    try:
        summary = _run_live(demo) if live else demo.run()
    except KeyboardInterrupt:
        demo.stop()
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return (
        EXIT_OK if summary["fills_lost"] == 0 and summary["fills_duplicated"] == 0 else EXIT_FAILURE
    )


def _run_live(demo: Any) -> dict[str, Any]:
    from rich.live import Live

    with Live(refresh_per_second=4, transient=False) as live:
        return dict(demo.run(on_progress=lambda p: live.update(_render(p))))


def _render(progress: DemoProgress) -> Any:
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    table = Table(title="positions", expand=False)
    for column in ("symbol", "status", "qty", "avg entry", "mark", "realized", "unrealized"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for p in sorted(progress.positions, key=lambda p: p["symbol"]):
        table.add_row(
            p["symbol"],
            p["status"],
            p["qty"],
            _short(p["avg_entry_price"]),
            _short(p["mark"]),
            _short(p["realized_pnl"]),
            _short(p["unrealized_pnl"]),
        )
    actors = Table(title="actors", expand=False)
    for column in ("actor", "alive", "restarts"):
        actors.add_column(column)
    for row in progress.actors:
        actors.add_row(row["name"], "yes" if row["alive"] else "no", str(row["restarts"]))
    bar = ProgressBar(total=progress.duration_s, completed=progress.elapsed_s, width=40)
    head = (
        f"t={progress.elapsed_s:5.1f}/{progress.duration_s:.0f}s  steps={progress.steps}  "
        f"intents={progress.intents}  crashes={progress.crashes}  "
        f"risk={progress.risk_state}  risk events={progress.risk_events}"
    )
    return Group(bar, head, table, actors)


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    text = value
    if "." in text:
        whole, frac = text.split(".", 1)
        text = f"{whole}.{frac[:4]}"
    return text


def _print_summary(summary: dict[str, Any]) -> None:
    print(
        f"demo ran {summary['duration_s']} s: {summary['steps']} steps, "
        f"{summary['market_updates']} market updates, {summary['intents']} intents, "
        f"{summary['fills']} fills"
    )
    print(f"orders: {summary['orders']}")
    print(f"crashes injected: {summary['crashes_injected']}  restarts: {summary['restarts']}")
    print(
        f"risk: {summary['risk']['state']}, {summary['risk']['events']} risk events, "
        f"decisions since its last start {summary['risk']['decisions_since_start']}"
    )
    print(f"{'symbol':<10} {'status':<12} {'qty':>10} {'realized':>14} {'unrealized':>14}")
    for symbol, p in summary["positions"].items():
        print(
            f"{symbol:<10} {p['status']:<12} {p['qty']:>10} {_short(p['realized_pnl']):>14} "
            f"{_short(p['unrealized_pnl']):>14}"
        )
    print(
        f"equity {_short(summary['equity'])}  realized {_short(summary['realized_pnl'])}  "
        f"unrealized {_short(summary['unrealized_pnl'])}"
    )
    print(
        f"fills lost: {summary['fills_lost']}  fills doubled: {summary['fills_duplicated']}  "
        f"journal records: {summary['journal_records']}"
    )
