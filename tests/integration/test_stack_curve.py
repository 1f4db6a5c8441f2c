"""A stack over tcp with CURVE: listed clients work, an unlisted one is refused and logged."""

from __future__ import annotations

import json
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from stack_harness import Stack, posbus, wait_for


def free_base_port() -> int:
    """A base port with 4 free consecutive ports on 127.0.0.1 (checked by binding them)."""
    for _ in range(50):
        base = random.randrange(20_000, 60_000, 4)
        sockets = []
        try:
            for port in range(base, base + 4):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no 4 free consecutive ports")


def make_keys(keys: Path, allowed: Path, names: list[str], listed: list[str]) -> None:
    """`posbus keys generate` each name; copy the public keys of `listed` to `allowed`."""
    for name in names:
        posbus("keys", "generate", name, "--dir", str(keys))
    allowed.mkdir(mode=0o700)
    for name in listed:
        shutil.copy(keys / f"{name}.key", allowed / f"{name}.key")


def client_config(root: Path, stack: Stack, name: str, port: int) -> Path:
    """A CLI config using key pair `name` against `stack`'s broker."""
    path = root / f"{name}.toml"
    path.write_text(
        f'run_dir = "{stack.run_dir}"\n'
        "[bus]\n"
        'transport = "tcp"\n'
        'host = "127.0.0.1"\n'
        f"base_port = {port}\n"
        f'curve_client_secret = "{root / "keys" / f"{name}.key_secret"}"\n'
        f'curve_server_public = "{root / "keys" / "broker.key"}"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tcp_stack() -> Iterator[tuple[Stack, Path, int]]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        keys, allowed = root / "keys", root / "allowed"
        make_keys(
            keys, allowed, ["broker", "workers", "operator", "intruder"], ["workers", "operator"]
        )
        port = free_base_port()
        bus = (
            'transport = "tcp"\n'
            'host = "127.0.0.1"\n'
            'bind = "127.0.0.1"\n'
            f"base_port = {port}\n"
            f'curve_server_secret = "{keys / "broker.key_secret"}"\n'
            f'curve_server_public = "{keys / "broker.key"}"\n'
            f'curve_client_secret = "{keys / "workers.key_secret"}"\n'
            f'allowed_clients = "{allowed}"\n'
        )
        stack = Stack(root, bus_extra=bus)
        stack.up()
        try:
            yield stack, root, port
        finally:
            stack.close()


def test_listed_client_trades_over_tcp_with_curve(tcp_stack: tuple[Stack, Path, int]) -> None:
    stack, root, port = tcp_stack
    operator = client_config(root, stack, "operator", port)
    posbus("order", "buy", "BTC/USDT", "0.1", "--config", str(operator))

    def filled() -> bool:
        out = posbus("positions", "--json", "--config", str(operator)).stdout
        return any(
            p["symbol"] == "BTC/USDT" and Decimal(p["qty"]) == Decimal("0.1")
            for p in json.loads(out)["positions"]
        )

    assert wait_for("BTC/USDT filled over tcp", filled)


def test_unlisted_client_gets_nothing_and_is_logged(tcp_stack: tuple[Stack, Path, int]) -> None:
    stack, root, port = tcp_stack
    intruder = client_config(root, stack, "intruder", port)
    result = posbus("positions", "--json", "--config", str(intruder), check=False, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "posbus: error:" in result.stderr
    log = stack.run_dir / "logs" / "broker.log"
    public = (root / "keys" / "intruder.key").read_text(encoding="utf-8")
    z85 = public.split('public-key = "')[1].split('"')[0]
    entry = wait_for(
        "the denial in the broker's log",
        lambda: next(
            (line for line in log.read_text(encoding="utf-8").splitlines() if "denied" in line),
            None,
        ),
    )
    assert z85 in entry
    # The stack is unharmed.
    assert all(w["serving"] for w in stack.status()["workers"])
