"""`posbus journal`: verify, inspect and export journals (`verify`, `stats`, `export`).

Without `--path`, every journal of the stack in the run directory: each
worker's own store (RUN_DIR/journal/NAME.sqlite, or the MongoDB database
DATABASE_NAME, as `posbus worker` opens them), one section per worker; when
the run directory has none, the journal `[storage]` names (the one `posbus
demo` writes, RUN_DIR/journal.sqlite by default). `--path FILE` reads one
SQLite file instead (a copy, a previous demo's). Every subcommand only reads;
main thread only.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    UsageError,
    add_command,
)
from posbus.adapters.cli.stack_options import RUN_DIR_HELP, run_dir_of

if TYPE_CHECKING:
    from posbus.actors.journal import JournalStore
    from posbus.adapters.config import Config, StorageConfig

_DESCRIPTION = """\
Check and read the write-ahead journals: `verify` checks every checksum and
sequence number (exit code 1 when it finds a problem), `stats` counts records
and snapshots per stream, `export` writes every record decoded as one JSON
document, for audits. Nothing is written.

Which journals: with --path FILE, that SQLite file. Otherwise every worker
journal of the stack in the run directory (--run-dir, else $POSBUS_RUN_DIR,
else run_dir of the config): RUN_DIR/journal/NAME.sqlite of each worker, or
with [storage] backend = "mongodb" each worker's database DATABASE_NAME (dots
as underscores); one section per worker. A run directory without worker
journals falls back to the [storage] journal (what `posbus demo` writes,
RUN_DIR/journal.sqlite by default).
"""

_EXAMPLES = """\
  posbus journal verify
  posbus journal stats --json
  posbus journal export --stream position/default/BTC/USDT --json > btc.json
"""

_VERIFY = """\
Check every record and snapshot: checksums (over stream, seq and bytes),
sequence numbers (1, 2, 3, ... without gaps or duplicates), that every payload
decodes, that no record is missing at a stream's tail, that no snapshot covers
records the journal does not have, and the storage's own integrity check
(SQLite) or unique index (MongoDB). Prints one line per problem, naming the
stream, the sequence number and what is wrong. Exit code 0 when all is
sound, 1 when a problem was found (or the journal cannot be opened).
"""

_VERIFY_EXAMPLES = """\
  posbus journal verify
  posbus journal verify --run-dir /srv/posbus/var
  posbus journal verify --stream risk --json
  posbus journal verify --config deploy/prod.toml
  posbus journal verify --path var/journal.sqlite.previous
"""

_STATS = """\
Per stream: records, last sequence number, payload bytes and the sequence
numbers of the kept snapshots; then totals and the storage's size (SQLite).
"""

_STATS_EXAMPLES = """\
  posbus journal stats
  posbus journal stats --json | jq '.streams | keys'
"""

_EXPORT = """\
Write every record decoded (kind, type, sender, journaling time and the
message's fields, decimals as exact text) and every snapshot, per stream, as
one JSON document on stdout. A record whose checksum fails is exported with
`checksum_ok: false` and its raw bytes in hex, and the exit code is 1.
"""

_EXPORT_EXAMPLES = """\
  posbus journal export --json > journal.json
  posbus journal export --stream position/default/BTC/USDT --json | jq '.streams[].records[-1]'
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus journal` and its subcommands."""
    parser = add_command(
        subparsers,
        "journal",
        summary="verify, inspect or export the write-ahead journal",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=_no_subcommand,
    )
    group = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    verify = add_command(
        group,
        "verify",
        summary="check checksums and sequence numbers (exit 1 on a problem)",
        description=_VERIFY,
        examples=_VERIFY_EXAMPLES,
        handler=run_verify,
    )
    _common(verify, stream=True)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    stats = add_command(
        group,
        "stats",
        summary="records, last seq, sizes and snapshots per stream",
        description=_STATS,
        examples=_STATS_EXAMPLES,
        handler=run_stats,
    )
    _common(stats, stream=False)
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    export = add_command(
        group,
        "export",
        summary="every record decoded, as one JSON document (audits)",
        description=_EXPORT,
        examples=_EXPORT_EXAMPLES,
        handler=run_export,
    )
    _common(export, stream=True)
    export.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format)"
    )


def _common(parser: argparse.ArgumentParser, *, stream: bool) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")
    parser.add_argument("--run-dir", metavar="DIR", help=RUN_DIR_HELP)
    parser.add_argument(
        "--path", metavar="FILE", help="one SQLite journal file (instead of the stack's journals)"
    )
    if stream:
        parser.add_argument("--stream", metavar="S", help="only this stream (e.g. risk)")


def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("a subcommand is needed: verify, stats or export")


@dataclass(frozen=True, slots=True)
class _Target:
    """One journal to read: whose (`worker`; None for --path or the [storage] journal) and where."""

    worker: str | None
    storage: StorageConfig
    run_dir: Path
    where: str


def _targets(args: argparse.Namespace) -> list[_Target]:
    """The journals to read: --path, else each worker's, else the [storage] journal."""
    from msgspec.structs import replace

    from posbus.adapters.config import ConfigError, load_config
    from posbus.adapters.journal.backend import describe

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    run_dir = run_dir_of(getattr(args, "run_dir", None), config)
    storage = config.storage
    if args.path is not None:
        storage = replace(storage, backend="sqlite", path=Path(args.path))
    else:
        workers = _worker_journals(config, run_dir)
        if workers:
            return workers
    if storage.backend == "memory":
        raise UsageError("[storage] backend is 'memory': there is no journal to read")
    if storage.backend == "sqlite" and not storage.sqlite_path(run_dir).is_file():
        if args.path is None:
            raise CommandError(
                f"no journal in {run_dir.resolve()}: no worker journal in "
                f"{(run_dir / 'journal').resolve()} and no {storage.sqlite_path(run_dir)}",
                EXIT_USAGE,
            )
        raise CommandError(f"no journal at {storage.sqlite_path(run_dir)}", EXIT_USAGE)
    return [_Target(None, storage, run_dir, describe(storage, run_dir))]


def _worker_journals(config: Config, run_dir: Path) -> list[_Target]:
    """Each worker's journal, named as `posbus worker` opens it (adapters/cli/worker.py)."""
    from msgspec.structs import replace

    from posbus.adapters.journal.backend import describe
    from posbus.adapters.launcher_layout import RunDir, plan

    storage = config.storage
    if storage.backend == "mongodb":
        specs = plan(list(config.accounts()), config.workers.position_shards, demo=False)
        targets = []
        for spec in specs:
            if spec.role == "broker":
                continue
            database = f"{storage.database}_{spec.name}".replace(".", "_")
            worker_storage = replace(storage, database=database)
            targets.append(
                _Target(spec.name, worker_storage, run_dir, describe(worker_storage, run_dir))
            )
        return targets
    layout = RunDir(run_dir)
    directory = layout.journal_file("x").parent
    names = sorted(p.name[: -len(".sqlite")] for p in directory.glob("*.sqlite") if p.is_file())
    targets = []
    for name in names:
        worker_storage = replace(storage, backend="sqlite", path=layout.journal_file(name))
        targets.append(_Target(name, worker_storage, run_dir, describe(worker_storage, run_dir)))
    return targets


def _open(target: _Target) -> JournalStore:
    """Open one journal read-only (no writer lock: a running stack's journals can be read)."""
    from posbus.adapters.journal.backend import open_backend

    return open_backend(target.storage, target.run_dir, writer=False)


def _streams(journal: JournalStore, args: argparse.Namespace) -> list[str]:
    from posbus.adapters.journal.audit import streams_of

    return streams_of(journal, getattr(args, "stream", None))


def _no_stream(args: argparse.Namespace, found: int) -> None:
    only = getattr(args, "stream", None)
    if only is not None and found == 0:
        raise CommandError(f"no stream {only!r} in the journal", EXIT_USAGE)


def _merge(per_worker: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One `streams` document over every worker's: each entry names its `worker`.

    Keyed by stream name; a name found in several workers' journals (the
    gateway journals per-position streams too) is keyed WORKER:STREAM for
    each of them, so no worker's stream hides another's.
    """
    counts: dict[str, int] = {}
    for _, streams in per_worker:
        for name in streams:
            counts[name] = counts.get(name, 0) + 1
    merged: dict[str, Any] = {}
    for worker, streams in per_worker:
        for name, document in streams.items():
            key = name if counts[name] == 1 else f"{worker}:{name}"
            merged[key] = {"worker": worker, **document}
    return merged


def _single(targets: list[_Target]) -> bool:
    return len(targets) == 1 and targets[0].worker is None


def run_verify(args: argparse.Namespace) -> int:
    """Handler of `posbus journal verify`."""
    targets = _targets(args)
    results = [_verify_one(target, args) for target in targets]
    _no_stream(args, sum(len(reports) for _, reports, _ in results))
    if _single(targets):
        _, reports, problems = results[0]
        return _print_verify(targets[0].where, reports, problems, args)
    return _print_verify_workers(targets, results, args)


def _verify_one(
    target: _Target, args: argparse.Namespace
) -> tuple[_Target, dict[str, Any], list[Any]]:
    from posbus.actors.journal import JournalCorrupt
    from posbus.adapters.journal.audit import Problem, storage_problems, verify_stream

    try:
        journal = _open(target)
    except JournalCorrupt as exc:
        # Damage found before any stream could be read is a finding, not a crash.
        return target, {}, [Problem(exc.stream, exc.seq, exc.problem)]
    try:
        reports = {name: verify_stream(journal, name) for name in _streams(journal, args)}
        problems = storage_problems(journal) if args.stream is None else []
    finally:
        journal.close()
    problems += [p for r in reports.values() for p in r.problems]
    return target, reports, problems


def _print_verify(
    where: str, reports: dict[str, Any], problems: list[Any], args: argparse.Namespace
) -> int:
    if args.json:
        document = {
            "journal": where,
            "ok": not problems,
            "streams": {name: report.to_dict() for name, report in reports.items()},
            "problems": [p.to_dict() for p in problems],
        }
        print(json.dumps(document, indent=2))
    else:
        _print_verify_text(where, reports, problems, "")
    return EXIT_OK if not problems else EXIT_FAILURE


def _print_verify_text(where: str, reports: dict[str, Any], problems: list[Any], who: str) -> None:
    for name, report in reports.items():
        status = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
        print(
            f"{name}: {report.records} records, last seq {report.last_seq}, "
            f"snapshots {report.snapshots or '-'}: {status}"
        )
    for problem in problems:
        print(f"PROBLEM {who}{problem}")
    verdict = "sound" if not problems else f"{len(problems)} problem(s)"
    print(f"{where}: {len(reports)} streams, {verdict}")


def _print_verify_workers(
    targets: list[_Target], results: list[Any], args: argparse.Namespace
) -> int:
    bad = [target.worker for target, _, problems in results if problems]
    if args.json:
        per_worker: list[tuple[str, dict[str, Any]]] = []
        workers: dict[str, Any] = {}
        all_problems: list[dict[str, Any]] = []
        for target, reports, problems in results:
            if args.stream is not None and not reports:
                continue
            per_worker.append(
                (str(target.worker), {name: r.to_dict() for name, r in reports.items()})
            )
            all_problems += [{"worker": target.worker, **p.to_dict()} for p in problems]
            workers[target.worker] = {
                "journal": target.where,
                "ok": not problems,
                "streams": list(reports),
                "problems": len(problems),
            }
        document = {
            "run_dir": str(targets[0].run_dir.resolve()),
            "ok": not bad,
            "workers": workers,
            "streams": _merge(per_worker),
            "problems": all_problems,
        }
        print(json.dumps(document, indent=2))
    else:
        for target, reports, problems in results:
            if args.stream is not None and not reports:
                continue
            print(f"== {target.worker}: {target.where}")
            _print_verify_text(target.where, reports, problems, f"{target.worker}: ")
        verdict = "sound" if not bad else f"problems in {', '.join(str(w) for w in bad)}"
        print(f"{len(results)} worker journals in {targets[0].run_dir.resolve()}: {verdict}")
    return EXIT_OK if not bad else EXIT_FAILURE


def run_stats(args: argparse.Namespace) -> int:
    """Handler of `posbus journal stats`."""
    targets = _targets(args)
    results = [_stats_one(target, args) for target in targets]
    if _single(targets):
        _, streams, totals = results[0]
        if args.json:
            document = {"journal": targets[0].where, "totals": totals, "streams": streams}
            print(json.dumps(document, indent=2))
        else:
            _print_stats_text(targets[0].where, streams, totals)
        return EXIT_OK
    merged = _merge([(str(target.worker), streams) for target, streams, _ in results])
    sizes = [totals["storage_bytes"] for _, _, totals in results]
    overall = _totals(merged, None if None in sizes else sum(sizes))
    if args.json:
        workers = {
            target.worker: {"journal": target.where, "totals": totals}
            for target, _, totals in results
        }
        document = {
            "run_dir": str(targets[0].run_dir.resolve()),
            "totals": overall,
            "workers": workers,
            "streams": merged,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    for target, streams, totals in results:
        print(f"== {target.worker}: {target.where}")
        _print_stats_text(target.where, streams, totals)
    print(
        f"{len(results)} worker journals in {targets[0].run_dir.resolve()}: "
        f"{overall['streams']} streams, {overall['records']} records, "
        f"{overall['snapshots']} snapshots"
    )
    return EXIT_OK


def _stats_one(
    target: _Target, args: argparse.Namespace
) -> tuple[_Target, dict[str, Any], dict[str, Any]]:
    from posbus.adapters.journal.audit import stream_stats

    journal = _open(target)
    try:
        streams = {name: stream_stats(journal, name) for name in _streams(journal, args)}
        size = getattr(journal, "size_bytes", None)
        size_bytes = size() if size is not None else None
    finally:
        journal.close()
    return target, streams, _totals(streams, size_bytes)


def _totals(streams: dict[str, Any], size_bytes: int | None) -> dict[str, Any]:
    return {
        "streams": len(streams),
        "records": sum(s["records"] for s in streams.values()),
        "payload_bytes": sum(s["payload_bytes"] for s in streams.values()),
        "snapshots": sum(len(s["snapshots"]) for s in streams.values()),
        "storage_bytes": size_bytes,
    }


def _print_stats_text(where: str, streams: dict[str, Any], totals: dict[str, Any]) -> None:
    print(f"{'stream':<40} {'records':>9} {'last seq':>9} {'bytes':>11}  snapshots")
    for name, s in streams.items():
        snaps = ",".join(str(seq) for seq in s["snapshots"]) or "-"
        print(f"{name:<40} {s['records']:>9} {s['last_seq']:>9} {s['payload_bytes']:>11}  {snaps}")
    size_bytes = totals["storage_bytes"]
    storage = "" if size_bytes is None else f", {size_bytes} bytes on disk"
    print(
        f"{where}: {totals['streams']} streams, {totals['records']} records, "
        f"{totals['snapshots']} snapshots{storage}"
    )


def run_export(args: argparse.Namespace) -> int:
    """Handler of `posbus journal export`."""
    from posbus.adapters.journal.audit import export_stream

    targets = _targets(args)
    exported: list[tuple[_Target, dict[str, Any], int]] = []
    for target in targets:
        journal = _open(target)
        try:
            streams = {name: export_stream(journal, name) for name in _streams(journal, args)}
        finally:
            journal.close()
        bad = sum(
            1
            for s in streams.values()
            for item in (*s["records"], *s["snapshots"])
            if not item["checksum_ok"] or item.get("error")
        )
        exported.append((target, streams, bad))
    _no_stream(args, sum(len(streams) for _, streams, _ in exported))
    problems = sum(bad for _, _, bad in exported)
    if _single(targets):
        _, streams, _ = exported[0]
        document: dict[str, Any] = {
            "journal": targets[0].where,
            "problems": problems,
            "streams": streams,
        }
    else:
        kept = [e for e in exported if args.stream is None or e[1]]
        merged = _merge([(str(target.worker), streams) for target, streams, _ in kept])
        workers: dict[str, Any] = {}
        for target, streams, bad in kept:
            workers[target.worker] = {
                "journal": target.where,
                "problems": bad,
                "streams": list(streams),
            }
        document = {
            "run_dir": str(targets[0].run_dir.resolve()),
            "problems": problems,
            "workers": workers,
            "streams": merged,
        }
    print(json.dumps(document, indent=2))
    return EXIT_OK if problems == 0 else EXIT_FAILURE
