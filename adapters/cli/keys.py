"""`posbus keys generate`: CURVE key pairs for tcp deployments."""

from __future__ import annotations

import argparse
from pathlib import Path

from posbus.adapters.cli.command import EXIT_OK, CommandError, SubParsers, add_command

_DESCRIPTION = """\
Commands for the CURVE keys every tcp endpoint needs. A stack on several
machines needs one key pair for the broker (its secret stays on the broker's
host) and one per client (each worker host, each operator); the broker accepts
only the public keys in its allowed_clients directory.
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus keys` and `posbus keys generate`."""
    group = add_command(
        subparsers,
        "keys",
        summary="manage CURVE key pairs (tcp deployments)",
        description=_DESCRIPTION,
        examples="  posbus keys generate broker --dir keys\n",
        handler=_no_subcommand,
    )
    sub = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    generate = add_command(
        sub,
        "generate",
        summary="write NAME.key (public) and NAME.key_secret (0600) into --dir",
        description=(
            "Generate a CURVE key pair: DIR/NAME.key (public, copy it to the broker's\n"
            "allowed_clients directory or to the clients) and DIR/NAME.key_secret (mode 0600,\n"
            "never leaves its host). DIR is created 0700. Existing files are never overwritten.\n"
        ),
        examples=(
            "  posbus keys generate broker --dir keys\n"
            "  posbus keys generate worker-host-b --dir keys\n"
        ),
        handler=run_generate,
    )
    generate.add_argument("name", metavar="NAME")
    generate.add_argument("--dir", default="keys", metavar="DIR", help="(default: ./keys)")


def _no_subcommand(args: argparse.Namespace) -> int:
    raise CommandError("say what to do: 'posbus keys generate NAME'", 2)


def run_generate(args: argparse.Namespace) -> int:
    """Handler of `posbus keys generate`."""
    from posbus.bus.curve import generate_keypair

    public, secret = generate_keypair(Path(args.dir), args.name)
    print(f"public key: {public}\nsecret key: {secret} (0600; keep it on this host)")
    return EXIT_OK
