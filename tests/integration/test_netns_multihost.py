"""Multi-host over real TCP with CURVE: broker, workers, operator in separate network namespaces.

Three namespaces stand for three hosts (broker 10.77.0.1, workers 10.77.0.2,
operator 10.77.0.3), joined by veth pairs to a bridge in a fourth (hub)
namespace; the /24 exists only inside namespaces this test creates and
deletes. The broker and the workers run as `posbus worker` processes (what
the systemd units start) with the deploy/multi-host layout of keys; orders
are placed from the operator namespace with the CLI. Needs root (CI runs as
root); skipped with the reason where namespaces cannot be created.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from stack_harness import posbus, wait_for, where

PREFIX = f"pb{os.getpid() % 10000}"
HOSTS = {"a": "10.77.0.1", "b": "10.77.0.2", "c": "10.77.0.3"}
PORT = 5570


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _namespaces_available() -> str | None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "network namespaces need root and iproute2 (CI runs as root)"
    probe = f"{PREFIX}probe"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace here: {exc}"
    _ip("netns", "del", probe)
    return None


SKIP = _namespaces_available()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def ns(host: str) -> str:
    return f"{PREFIX}{host}"


@pytest.fixture
def network() -> Iterator[None]:
    hub = ns("hub")
    made: list[str] = []
    try:
        _ip("netns", "add", hub)
        made.append(hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for host, address in HOSTS.items():
            name = ns(host)
            _ip("netns", "add", name)
            made.append(name)
            _ip(
                "link",
                "add",
                "eth0",
                "netns",
                name,
                "type",
                "veth",
                "peer",
                f"h{host}",
                "netns",
                hub,
            )
            _ip("-n", hub, "link", "set", f"h{host}", "master", "br0", "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
        yield
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def config(root: Path, who: str, key: str, extra: str) -> Path:
    path = root / f"{who}.toml"
    path.write_text(
        f'run_dir = "{root / ("run-" + who)}"\n'
        "[bus]\n"
        'transport = "tcp"\n'
        f'host = "{HOSTS["a"]}"\n'
        f"base_port = {PORT}\n"
        "heartbeat_interval_s = 0.2\n"
        f'curve_client_secret = "{root / "keys" / (key + ".key_secret")}"\n'
        f'curve_server_public = "{root / "keys" / "broker.key"}"\n'
        f"{extra}"
        "[exchange]\n"
        "reject_rate = 0.0\n"
        "[demo]\n"
        "steps_per_s = 50\n"
        "open_probability = 0.0\n"
        "close_probability = 0.0\n"
        "[workers]\n"
        "position_shards = 2\n"
        'journal = "memory"\n',
        encoding="utf-8",
    )
    return path


def in_ns(host: str, *argv: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        ["ip", "netns", "exec", ns(host), sys.executable, "-m", "posbus.adapters.cli.main", *argv],
        stdout=out,
        stderr=out,
    )


def cli_in_ns(host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns(host), sys.executable, "-m", "posbus.adapters.cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_orders_from_a_third_host_reach_workers_on_another_through_the_broker(
    network: None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        keys, allowed = root / "keys", root / "allowed"
        for key in ("broker", "workers", "operator"):
            posbus("keys", "generate", key, "--dir", str(keys))
        allowed.mkdir(mode=0o700)
        for key in ("workers", "operator"):
            shutil.copy(keys / f"{key}.key", allowed / f"{key}.key")
        broker_cfg = config(
            root,
            "broker",
            "broker",
            f'bind = "{HOSTS["a"]}"\n'
            f'curve_server_secret = "{keys / "broker.key_secret"}"\n'
            f'allowed_clients = "{allowed}"\n',
        )
        workers_cfg = config(root, "workers", "workers", "")
        operator_cfg = config(root, "operator", "operator", "")
        processes = []
        try:
            processes.append(
                in_ns(
                    "a",
                    "worker",
                    "--role",
                    "broker",
                    "--config",
                    str(broker_cfg),
                    log=root / "a.log",
                )
            )
            wait_for(
                "broker ready",
                (root / "run-broker" / "ready" / "broker.json").exists,
            )
            # feed: the market data source (the seeded random walk), on the workers' host.
            for role in ("risk", "gateway", "positions-0", "positions-1", "feed"):
                processes.append(
                    in_ns(
                        "b",
                        "worker",
                        "--instance",
                        role,
                        "--config",
                        str(workers_cfg),
                        log=root / f"b-{role}.log",
                    )
                )
            ready = root / "run-workers" / "ready"
            wait_for(
                "workers ready",
                lambda: len(list(ready.glob("*.json"))) == 5 if ready.exists() else None,
            )
            # The operator host has neither a launcher nor sockets of its own: only tcp.
            for symbol, qty in (("BTC/USDT", "0.1"), ("ETH/USDT", "1"), ("SOL/USDT", "5")):
                result = wait_for(
                    f"order {symbol} accepted",
                    lambda s=symbol, q=qty: where(
                        cli_in_ns(
                            "c", "order", "buy", s, q, "--json", "--config", str(operator_cfg)
                        ),
                        lambda r: r.returncode == 0,
                    ),
                )
                assert json.loads(result.stdout)["order_id"] == f"default:{symbol}:1"

            def all_filled() -> dict[str, str] | None:
                out = cli_in_ns("c", "positions", "--json", "--config", str(operator_cfg))
                if out.returncode != 0:
                    return None
                qty = {p["symbol"]: p["qty"] for p in json.loads(out.stdout)["positions"]}
                want = {"BTC/USDT": "0.1", "ETH/USDT": "1", "SOL/USDT": "5"}
                if set(qty) == set(want) and all(
                    Decimal(qty[s]) == Decimal(v) for s, v in want.items()
                ):
                    return qty
                return None

            assert wait_for("every order filled", all_filled, 45)
            # Both shards hold positions (3 symbols over 2 shards by crc32).
            shard_counts = []
            for shard in ("positions.0", "positions.1"):
                status = cli_in_ns("b", "admin", shard, "status", "--config", str(workers_cfg))
                assert status.returncode == 0, status.stderr
                shard_counts.append(json.loads(status.stdout)["positions"])
            assert sum(shard_counts) == 3
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
