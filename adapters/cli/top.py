"""`posbus top`: a Grafana-free quick look at the running stack (rich table or JSON lines).

Each frame reads the same admin answers the Prometheus endpoint turns into
samples (adapters/metrics_http.py: `status`, `metrics`, `actors`, the risk and
gateway actors' `inspect`), so `top`, `posbus admin` and a scrape agree: per
worker its liveness, uptime, restarts, message rates, p99 latency, deepest
mailbox and journal lag; the risk state; each gateway's breaker state; the
positions and the risk metrics.

Runs on the CLI's main thread. It only reads: no request it sends changes
state, so a request that times out is simply dropped from that frame. A
worker that does not answer within `--admin-timeout` is shown as not serving
and is asked nothing more in that frame: a dead or hung worker never stalls
the view for long. It must never retry a command or wait on a worker without
a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import EXIT_OK, SubParsers, UsageError, add_command
from posbus.adapters.cli.quit_key import QuitKey
from posbus.adapters.cli.stack_options import add_stack_options

if TYPE_CHECKING:
    from rich.console import JustifyMethod

_DESCRIPTION = """\
A quick look at the stack running in the run directory, refreshed every
--interval seconds, with the figures each worker's Prometheus endpoint
exports:

- each worker: role, pid, up (answers its admin socket) / alive (the
  process exists but does not answer) / DOWN (no process), uptime, restarts
  (by the launcher / of its actors), bus messages in and out per second
  (since the worker's previous `metrics` request: the previous frame), p99
  latency, the deepest actor mailbox and, for a positions worker, its journal
  lag (execution signals the gateway published that it has not applied yet);
- the risk state (Normal, Warning, CoolDown, Halted) and its metrics; with
  several accounts, the firm's (when it has limits) and each account's;
- each gateway's circuit breaker state ("-": no network exchange);
- the positions and their P&L.

q (on a terminal), Ctrl-C or SIGTERM quits. --frames N stops after N
frames, --once after one. --json prints each frame as one JSON line instead
of the tables (decimal values as strings). A worker that does not answer
within --admin-timeout is shown as not serving and asked nothing more in that
frame: a dead or hung worker delays a frame by at most about twice
--admin-timeout. Exit code 2 when no stack is running, as `posbus status`.
"""

_EXAMPLES = """\
  posbus top
  posbus top --once
  posbus top --frames 10 --interval 0.5
  posbus top --json --once | jq '.workers[] | {name, state, journal_lag}'
"""

ADMIN_TIMEOUT_S = 0.3
"""Default wait for one admin answer; a worker's admin thread answers in about a millisecond."""

COMMAND_TIMEOUT_S = 0.5
"""Wait for one positions shard's `positions.list` through the broker."""

_RISK_STYLE = {
    "Normal": "bold green",
    "Warning": "bold yellow",
    "CoolDown": "bold magenta",
    "Halted": "bold white on red",
}
_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}
_STATE_STYLE = {"up": "green", "alive": "yellow", "DOWN": "bold red"}

# Roles whose admin socket answers `actors` (the broker and the feed only have status/metrics).
_ACTOR_ROLES = ("risk", "gateway", "positions")


def register(subparsers: SubParsers) -> None:
    """Add `posbus top`."""
    parser = add_command(
        subparsers,
        "top",
        summary="quick look: workers, rates, latency, lag, risk, breaker, positions",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds from the start of one frame to the next (1 s)",
    )
    parser.add_argument(
        "--once", action="store_true", help="print one frame and exit (same as --frames 1)"
    )
    parser.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="stop after N frames (default: until q or Ctrl-C)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each frame as one JSON line instead of the tables",
    )
    parser.add_argument(
        "--admin-timeout",
        type=float,
        default=ADMIN_TIMEOUT_S,
        metavar="S",
        help=f"wait at most S for each admin answer of a worker ({ADMIN_TIMEOUT_S} s)",
    )
    add_stack_options(parser)


# -- gathering (main thread) ----------------------------------------------------------------------


class _Worker:
    """One worker's admin socket for one frame: stops asking once it has not answered."""

    def __init__(self, client: Any, name: str, timeout: float, errors: list[str]) -> None:
        self.client = client
        self.name = name
        self.timeout = timeout
        self.errors = errors
        self.answering = True

    def ask(self, command: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The result of admin `command`, or None (a refusal or silence, noted in errors)."""
        from posbus.actors.model.errors import PosbusError

        if not self.answering:
            return None
        try:
            reply = self.client.admin(self.name, command, args, timeout=self.timeout)
        except PosbusError as exc:
            self.answering = False
            self.errors.append(f"{self.name}: {command}: {exc}")
            return None
        if not reply.ok:
            message = (reply.error or {}).get("message", "refused")
            self.errors.append(f"{self.name}: {command}: {message}")
            return None
        result: dict[str, Any] = reply.result
        return result


def gather(client: Any, admin_timeout: float = ADMIN_TIMEOUT_S) -> dict[str, Any]:
    """One frame: what `posbus top --json` prints (NoStack when no stack runs).

    `client` is a StackClient. Every wait is bounded by `admin_timeout` (admin
    requests) or COMMAND_TIMEOUT_S (positions through the broker).
    """
    from posbus.adapters.cli.status import collect
    from posbus.adapters.metrics_http import find_breaker

    doc = collect(client, admin_timeout)
    errors: list[str] = []
    workers: list[dict[str, Any]] = []
    statuses: dict[str, dict[str, Any]] = {}
    risk: dict[str, Any] | None = None
    for entry in doc["workers"]:
        row = _worker_row(entry)
        workers.append(row)
        if not entry["serving"]:
            continue
        admin = _Worker(client, entry["name"], admin_timeout, errors)
        metrics = admin.ask("metrics")
        if metrics is not None:
            _add_metrics(row, metrics)
        actors = admin.ask("actors") if row["role"] in _ACTOR_ROLES else None
        if actors is not None:
            _add_actors(row, actors.get("actors", []))
        if row["role"] in ("gateway", "positions"):
            status = admin.ask("status")
            if status is not None:
                statuses[entry["name"]] = status
        if row["role"] == "gateway":
            view = admin.ask("inspect", {"actor": entry["name"]})
            if view is not None:
                row["breaker"] = find_breaker(view)
        if row["role"] == "risk" and actors is not None:
            risk = _risk(admin, [a.get("name") for a in actors.get("actors", [])])
        if not admin.answering:
            row["serving"] = False
            row["state"] = _state(row)
    _add_journal_lag(workers, statuses)
    return {
        "ts_ns": time.time_ns(),
        "run_dir": doc["run_dir"],
        "launcher": doc["launcher"],
        "risk": risk,
        "workers": workers,
        "positions": _positions(client, workers, errors),
        "errors": errors,
    }


def _risk(admin: _Worker, names: list[Any]) -> dict[str, Any] | None:
    """The stack's risk state and metrics, and each account's when there are several.

    A stack with one account has one supervisor, `risk`; with several, one
    `risk.ACCOUNT` each and `risk` for firm-wide limits, when it has some.
    Without those the stack's state is the worst account's, and no metrics.
    """
    from posbus.actors.risk_worker import worst_state

    accounts: dict[str, dict[str, Any]] = {}
    stack: dict[str, Any] | None = None
    for name in sorted(n for n in names if isinstance(n, str) and n.split(".")[0] == "risk"):
        view = admin.ask("inspect", {"actor": name})
        if view is None:
            continue
        scope = {"state": view.get("state"), "metrics": dict(view.get("metrics", {}))}
        if name == "risk":
            stack = scope
        else:
            accounts[name.removeprefix("risk.")] = scope
    if stack is None:
        if not accounts:
            return None
        stack = {"state": worst_state([str(a["state"]) for a in accounts.values()]), "metrics": {}}
    return {**stack, "accounts": accounts}


def _worker_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A worker's row before its admin answers: what `posbus status` knows."""
    row = {
        key: entry[key]
        for key in ("name", "role", "shard", "pid", "alive", "serving", "uptime_s", "restarts")
    }
    row.update(
        {
            "state": "",
            "actor_restarts": None,
            "actors": None,
            "msgs_in_per_s": None,
            "msgs_out_per_s": None,
            "latency_p99_us": None,
            "mailbox_max": None,
            "journal_lag": None,
            "breaker": None,
        }
    )
    row["state"] = _state(row)
    return row


def _state(row: dict[str, Any]) -> str:
    return "up" if row["serving"] else ("alive" if row["alive"] else "DOWN")


def _add_metrics(row: dict[str, Any], metrics: dict[str, Any]) -> None:
    for direction in ("in", "out"):
        rates = dict(metrics.get(direction, {})).values()
        # BusMetrics' rates are decimal strings, over the time since its previous snapshot.
        row[f"msgs_{direction}_per_s"] = str(sum((Decimal(r["rate"]) for r in rates), Decimal(0)))
    p99 = dict(metrics.get("latency_us", {})).get("p99")
    row["latency_p99_us"] = None if p99 is None else str(p99)
    if "restarts" in metrics:
        row["actor_restarts"] = int(metrics["restarts"])


def _add_actors(row: dict[str, Any], actors: list[dict[str, Any]]) -> None:
    row["actors"] = len(actors)
    row["mailbox_max"] = max((int(a.get("mailbox", 0)) for a in actors), default=0)
    row["actor_restarts"] = sum(int(a.get("restarts", 0)) for a in actors)


def _add_journal_lag(workers: list[dict[str, Any]], statuses: dict[str, dict[str, Any]]) -> None:
    """Per positions worker: signals the gateways published that it has not applied.

    Read as the Prometheus endpoint exports it: each gateway's `published_seq`
    (its current incarnation, named by its `sender`) minus the worker's
    `applied_seq` for that sender, summed over the gateways that answered this
    frame. Unknown (None) while no gateway answers.
    """
    published = {
        str(s["sender"]): int(s["published_seq"])
        for s in statuses.values()
        if s.get("published_seq") is not None and s.get("sender")
    }
    if not published:
        return
    for row in workers:
        status = statuses.get(row["name"])
        if row["role"] != "positions" or status is None:
            continue
        applied = status.get("applied_seq")
        if not isinstance(applied, dict):
            continue
        # A status read before its gateway's may be ahead of it: not a negative lag.
        row["journal_lag"] = sum(
            max(0, seq - int(applied.get(sender, 0))) for sender, seq in published.items()
        )


def _positions(client: Any, workers: list[dict[str, Any]], errors: list[str]) -> list[Any]:
    """Every serving shard's positions through the broker (none while the broker is down)."""
    from posbus.actors.model.errors import PosbusError

    if not any(w["role"] == "broker" and w["serving"] for w in workers):
        return []
    out: list[Any] = []
    for service in client.position_services():
        if not any(w["name"] == service and w["serving"] for w in workers):
            continue
        try:
            items = client.shard_positions(service, timeout=COMMAND_TIMEOUT_S)
        except PosbusError as exc:
            errors.append(f"{service}: positions.list: {exc}")
            continue
        out.extend(items)
    return out


# -- rendering -------------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _rate(text: str | None) -> str:
    if text is None:
        return "-"
    value = Decimal(text)
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _millis(micros: str | None) -> str:
    if micros is None:
        return "-"
    ms = Decimal(micros) / 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _risk_text(state: str | None) -> str:
    if state is None:
        return "[bold red]?[/]"
    return f"[{_RISK_STYLE.get(state, 'bold red')}]{state}[/]"


def _breaker_text(state: str | None) -> str:
    if state is None:
        return "[dim]-[/]"
    return f"[{_BREAKER_STYLE.get(state, 'bold red')}]{state}[/]"


WIDE = 90
"""From this console width on, the workers table adds the role and actor-count columns."""


def render(frame: dict[str, Any], width: int = WIDE) -> Any:
    """The frame as rich renderables: a header, workers, risk metrics, positions.

    Narrower than WIDE columns, the role column (a worker's name starts with
    its role) and the actor count are left out so a row fits in 80 columns.
    """
    from rich.console import Group
    from rich.text import Text

    risk = frame.get("risk") or {}
    launcher = frame["launcher"]
    clock = datetime.fromtimestamp(frame["ts_ns"] / 1e9, tz=UTC).strftime("%H:%M:%S")
    breakers = "".join(
        f"  breaker {w['name']} {_breaker_text(w['breaker'])}"
        for w in frame["workers"]
        if w["role"] == "gateway"
    )
    accounts = dict(risk.get("accounts") or {})
    each = "".join(f"  {name} {_risk_text(a.get('state'))}" for name, a in accounts.items())
    header = Text.from_markup(
        f"[bold]posbus top[/]  {clock} UTC  {frame['run_dir']}  "
        f"launcher {launcher['pid']} up {_duration(launcher['uptime_s'])}\n"
        f"risk {_risk_text(risk.get('state'))}{each}{breakers}"
    )
    parts: list[Any] = [header, _workers_table(frame["workers"], wide=width >= WIDE)]
    if risk.get("metrics") or not accounts:
        parts.append(_risk_table(risk, "firm" if accounts else ""))
    parts += [_risk_table(a, f"account {name}") for name, a in accounts.items()]
    parts.append(_positions_table(frame["positions"]))
    parts.extend(Text(f"! {error}", style="red") for error in frame["errors"])
    return Group(*parts)


def _workers_table(workers: list[dict[str, Any]], *, wide: bool) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        caption="restarts: launcher/actors  lag: gateway signals not applied yet",
        caption_justify="left",
    )
    columns: list[tuple[str, JustifyMethod]] = [("worker", "left")]
    columns += [("role", "left")] if wide else []
    columns += [("pid", "right"), ("state", "left"), ("uptime", "right")]
    columns += [("restarts", "right"), ("in/s", "right"), ("out/s", "right")]
    columns += [("p99 ms", "right"), ("mbox", "right"), ("lag", "right")]
    columns += [("actors", "right")] if wide else []
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)
    for w in workers:
        state = w["state"]
        cells = [w["name"]]
        cells += [str(w["role"])] if wide else []
        cells += [str(w["pid"]), f"[{_STATE_STYLE[state]}]{state}[/]", _duration(w["uptime_s"])]
        cells += [f"{w['restarts']}/{_dash(w['actor_restarts'])}"]
        cells += [_rate(w["msgs_in_per_s"]), _rate(w["msgs_out_per_s"])]
        cells += [_millis(w["latency_p99_us"]), _dash(w["mailbox_max"]), _dash(w["journal_lag"])]
        cells += [_dash(w["actors"])] if wide else []
        table.add_row(*cells)
    return table


def _risk_table(risk: dict[str, Any], scope: str) -> Any:
    """The risk metrics of one scope (the stack's, the firm's or an account's), two to a row."""
    from rich import box
    from rich.table import Table

    metrics = sorted(dict(risk.get("metrics", {})).items())
    table = Table(
        title=f"risk metrics ({scope})" if scope else "risk metrics",
        title_justify="left",
        box=box.SIMPLE,
        padding=(0, 1),
        show_header=False,
    )
    for _ in range(2):
        table.add_column(style="dim", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
    half = (len(metrics) + 1) // 2
    for i in range(half):
        name, value = metrics[i]
        other = metrics[half + i] if half + i < len(metrics) else ("", "")
        table.add_row(name, str(value), other[0], str(other[1]))
    return table


_POSITION_COLUMNS = (
    ("account", "account"),
    ("symbol", "symbol"),
    ("status", "status"),
    ("qty", "qty"),
    ("avg entry", "avg_entry_price"),
    ("realized", "realized_pnl"),
    ("unrealized", "unrealized_pnl"),
    ("mark", "mark"),
)


def _positions_table(positions: list[dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"positions ({len(positions)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
    )
    for col, _ in _POSITION_COLUMNS:
        if col in ("account", "symbol", "status"):
            table.add_column(col)
        else:
            # Never an ellipsis in an amount: a narrow terminal folds its digits instead.
            table.add_column(col, justify="right", overflow="fold")
    for p in positions:
        table.add_row(*(_dash(p.get(key)) for _, key in _POSITION_COLUMNS))
    return table


# -- the loop (main thread) ------------------------------------------------------------------------


def frames(
    client: Any,
    count: int | None,
    interval: float,
    admin_timeout: float,
    pause: Callable[[float], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """`count` frames (None: endless), one every `interval` seconds from frame start to start.

    `pause(seconds)` waits between frames and ends the stream when it returns
    True (the `q` key); None waits with `time.sleep`.
    """
    shown = 0
    while count is None or shown < count:
        started = time.monotonic()
        yield gather(client, admin_timeout)
        shown += 1
        if count is not None and shown >= count:
            return
        wait_s = max(0.0, interval - (time.monotonic() - started))
        if pause is None:
            time.sleep(wait_s)
        elif pause(wait_s):
            return


def _frame_count(args: argparse.Namespace) -> int | None:
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.once and args.frames not in (None, 1):
        raise UsageError("--once prints one frame; it cannot be combined with --frames N")
    if args.interval <= 0:
        raise UsageError(f"--interval must be positive, got {args.interval}")
    if args.admin_timeout <= 0:
        raise UsageError(f"--admin-timeout must be positive, got {args.admin_timeout}")
    count: int | None = 1 if args.once else args.frames
    return count


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus top`."""
    from posbus.adapters.launcher_client import StackClient

    count = _frame_count(args)
    # SIGTERM quits as Ctrl-C does (a script stopping a `posbus top` it started
    # in the background, where the shell has SIGINT ignored).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    client = StackClient(args.config, args.run_dir)
    try:
        with QuitKey() as keys:
            stream = frames(client, count, args.interval, args.admin_timeout, keys.pause)
            if args.json:
                _print_json(stream)
            else:
                _print_tables(stream, live=count != 1)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`posbus top --json | head -1`): quietly done.
        # Point stdout at /dev/null so the interpreter's exit flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        client.close()
    return EXIT_OK


def _print_json(stream: Iterator[dict[str, Any]]) -> None:
    for frame in stream:
        print(json.dumps(frame, sort_keys=True), flush=True)


def _print_tables(stream: Iterator[dict[str, Any]], *, live: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not (live and console.is_terminal):
        # One frame, or not a terminal (a pipe, a file, a test): each frame in turn.
        for index, frame in enumerate(stream):
            if index:
                console.print()
            console.print(render(frame, console.width))
        return
    first = next(stream)
    with Live(render(first, console.width), console=console, auto_refresh=False) as view:
        for frame in stream:
            view.update(render(frame, console.width), refresh=True)
