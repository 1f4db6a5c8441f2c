"""`posbus journal`: verify, inspect and export the journal (`verify`, `stats`, `export`).

The journal is the one the configuration names (`[storage]`: SQLite at
RUN_DIR/journal.sqlite by default, or MongoDB); `--path FILE` points at
another SQLite file (a copy, a previous demo's). Every subcommand only reads.
"""

from __future__ import annotations

import argparse
import json
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

if TYPE_CHECKING:
    from posbus.actors.journal import JournalStore

_DESCRIPTION = """\
Check and read the write-ahead journal: `verify` checks every checksum and
sequence number (exit code 1 when it finds a problem), `stats` counts records
and snapshots per stream, `export` writes every record decoded as one JSON
document, for audits. The journal is the configured one ([storage] in the
config; default: SQLite at RUN_DIR/journal.sqlite). Nothing is written.
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
    parser.add_argument(
        "--path", metavar="FILE", help="an SQLite journal file (instead of the configured one)"
    )
    if stream:
        parser.add_argument("--stream", metavar="S", help="only this stream (e.g. risk)")


def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("a subcommand is needed: verify, stats or export")


def _open(args: argparse.Namespace) -> tuple[JournalStore, str]:
    """The journal named by --path or the configuration, and how to name it in messages."""
    from dataclasses import replace

    from posbus.adapters.config import ConfigError, load_config
    from posbus.adapters.journal.backend import describe, open_backend

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    storage = config.storage
    if args.path is not None:
        storage = replace(storage, backend="sqlite", path=Path(args.path))
    if storage.backend == "memory":
        raise UsageError("[storage] backend is 'memory': there is no journal to read")
    where = describe(storage, config.run_dir)
    if storage.backend == "sqlite" and not storage.sqlite_path(config.run_dir).is_file():
        raise CommandError(f"no journal at {storage.sqlite_path(config.run_dir)}", EXIT_USAGE)
    return open_backend(storage, config.run_dir, writer=False), where


def _streams(journal: JournalStore, args: argparse.Namespace) -> list[str]:
    from posbus.adapters.journal.audit import streams_of

    only = getattr(args, "stream", None)
    names = streams_of(journal, only)
    if only is not None and not names:
        raise CommandError(f"no stream {only!r} in the journal", EXIT_USAGE)
    return names


def run_verify(args: argparse.Namespace) -> int:
    """Handler of `posbus journal verify`."""
    from posbus.actors.journal import JournalCorrupt
    from posbus.adapters.journal.audit import Problem, storage_problems, verify_stream

    try:
        journal, where = _open(args)
    except JournalCorrupt as exc:
        # Damage found before any stream could be read is a finding, not a crash.
        return _print_verify(
            str(args.path or "journal"), {}, [Problem(exc.stream, exc.seq, exc.problem)], args
        )
    try:
        reports = {name: verify_stream(journal, name) for name in _streams(journal, args)}
        problems = storage_problems(journal) if args.stream is None else []
    finally:
        journal.close()
    problems += [p for r in reports.values() for p in r.problems]
    return _print_verify(where, reports, problems, args)


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
        for name, report in reports.items():
            status = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
            print(
                f"{name}: {report.records} records, last seq {report.last_seq}, "
                f"snapshots {report.snapshots or '-'}: {status}"
            )
        for problem in problems:
            print(f"PROBLEM {problem}")
        verdict = "sound" if not problems else f"{len(problems)} problem(s)"
        print(f"{where}: {len(reports)} streams, {verdict}")
    return EXIT_OK if not problems else EXIT_FAILURE


def run_stats(args: argparse.Namespace) -> int:
    """Handler of `posbus journal stats`."""
    from posbus.adapters.journal.audit import stream_stats

    journal, where = _open(args)
    try:
        streams = {name: stream_stats(journal, name) for name in _streams(journal, args)}
        size = getattr(journal, "size_bytes", None)
        size_bytes = size() if size is not None else None
    finally:
        journal.close()
    totals = {
        "streams": len(streams),
        "records": sum(s["records"] for s in streams.values()),
        "payload_bytes": sum(s["payload_bytes"] for s in streams.values()),
        "snapshots": sum(len(s["snapshots"]) for s in streams.values()),
        "storage_bytes": size_bytes,
    }
    if args.json:
        print(json.dumps({"journal": where, "totals": totals, "streams": streams}, indent=2))
        return EXIT_OK
    print(f"{'stream':<40} {'records':>9} {'last seq':>9} {'bytes':>11}  snapshots")
    for name, s in streams.items():
        snaps = ",".join(str(seq) for seq in s["snapshots"]) or "-"
        print(f"{name:<40} {s['records']:>9} {s['last_seq']:>9} {s['payload_bytes']:>11}  {snaps}")
    storage = "" if size_bytes is None else f", {size_bytes} bytes on disk"
    print(
        f"{where}: {totals['streams']} streams, {totals['records']} records, "
        f"{totals['snapshots']} snapshots{storage}"
    )
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """Handler of `posbus journal export`."""
    from posbus.adapters.journal.audit import export_stream

    journal, where = _open(args)
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
    print(json.dumps({"journal": where, "problems": bad, "streams": streams}, indent=2))
    return EXIT_OK if bad == 0 else EXIT_FAILURE
