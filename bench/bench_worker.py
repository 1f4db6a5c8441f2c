"""Worker benchmarks: throughput, end-to-end latency and 10,000 actors, each against a baseline.

Run: `python bench/bench_worker.py [--quick]`. Every figure is printed next to
a baseline measured in the same run, and their ratio:

1. Throughput: market_update frames per second through one positions worker
   (a separate process: SUB -> decode -> conflate -> tell each position
   actor -> each publishes its exposure) holding 100 and 1,000 position
   actors, against a plain pyzmq SUB + msgpack decode of the same stream
   through the same broker. Target: ratio >= 0.5.
2. Latency at 10,000 msg/s: from the market update's timestamp to the risk
   worker telling its risk supervisor the new P&L (publisher -> broker ->
   positions worker -> broker -> risk worker, real processes), p50/p99/p99.9,
   against a bare pyzmq one-way PUB -> SUB hop between two processes at the
   same rate. Target: p99 within 5x.
3. 10,000 position actors in one worker: start-up time (one `position`
   call each, and pipelined through `positions` as a worker restart does),
   RSS per actor (target < 32 KiB), and one broadcast (an Inspect to every
   actor, all answers back).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import zmq

from posbus.actors.control import Inspect
from posbus.actors.positions_worker import PositionsWorker
from posbus.actors.sharding import Shard
from posbus.actors.worker import WorkerSettings
from posbus.adapters.clock import WallClock
from posbus.adapters.config import Config
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.admin import AdminClient, admin_endpoint
from posbus.bus.broker import Broker
from posbus.bus.client import CommandClient
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.messages import MarketUpdate
from posbus.bus.publisher import Publisher
from posbus.bus.topics import market_topic

ACCOUNT = "bench"


def _config(root: Path, extra: str = "") -> Path:
    path = root / "bench.toml"
    path.write_text(
        f'account = "{ACCOUNT}"\nrun_dir = "{root / "var"}"\n'
        '[log]\nlevel = "WARNING"\n'
        '[workers]\njournal = "memory"\n'
        "[exchange]\nreject_rate = 0.0\npartial_fill_rate = 0.0\n"
        "[risk]\nmax_orders_per_second = 100000\nmax_order_notional = 10000000\n"
        "max_total_exposure = 1000000000\nmax_group_exposure = 1000000000\n"
        "max_leverage = 1000\n" + extra,
        encoding="utf-8",
    )
    return path


def _worker(config: Path, run_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "posbus.adapters.cli.main",
            "worker",
            *args,
            "--config",
            str(config),
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _await_ready(run_dir: Path, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (run_dir / "ready" / f"{name}.json").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready")
        time.sleep(0.05)


def _admin(run_dir: Path, name: str, command: str) -> dict[str, Any]:
    client = AdminClient(zmq.Context.instance(), f"ipc://{run_dir / 'admin' / (name + '.sock')}")
    try:
        reply = client.request(command, timeout=10)
    finally:
        client.close()
    assert reply.ok, reply.error
    return reply.result


def _updates(symbols: list[str], n: int) -> list[tuple[bytes, MarketUpdate]]:
    out = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        bid = Decimal(100 + (i % 50)) / 10
        update = MarketUpdate(symbol, bid, bid + Decimal("0.1"), None, None, None, 1)
        out.append((market_topic(symbol), update))
    return out


# -- 1. throughput ---------------------------------------------------------------------------


def _baseline_receive(endpoint: str, total: int, ready: Any, result: Any) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"md|")
    ready.set()
    count, first = 0, 0.0
    while count < total:
        if not sub.poll(5000):
            break
        frame = sub.recv()
        if count == 0:
            first = time.perf_counter()
        end = frame.index(b"|", frame.index(b"|", 3)) + 1 if frame[:3] == b"md|" else 0
        msgpack.unpackb(frame[end:], raw=False)
        count += 1
    result.put((count, time.perf_counter() - first))


def _publish_all(endpoint: str, items: list[tuple[bytes, MarketUpdate]]) -> float:
    """Publish `items`; returns the perf_counter time of the first publish."""
    publisher = Publisher(zmq.Context.instance(), endpoint, sender="bench-market")
    time.sleep(0.3)  # slow joiner: the broker's XSUB connection
    start = time.perf_counter()
    for i, (topic, update) in enumerate(items):
        publisher.publish(update, topic=topic, ts_ns=time.time_ns())
        if i % 20_000 == 19_999:
            time.sleep(0.01)  # let queues drain: never hit the 100k HWM
    publisher.close()
    return start


def bench_throughput(actors: int, total: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pbb-", dir="/tmp") as name:
        root = Path(name)
        run_dir = root / "var"
        symbols = [f"S{i}/USDT" for i in range(actors)]
        # A positions worker takes orders only for the symbols the stack trades.
        config = _config(
            root, "".join(f'[symbols."{s}"]\nprice = "100"\norder_qty = "1"\n' for s in symbols)
        )
        items = _updates(symbols, total)
        procs = [_worker(config, run_dir, "--role", "broker")]
        try:
            _await_ready(run_dir, "broker")
            endpoints = BusEndpoints.local(run_dir)
            # Baseline: plain SUB + msgpack in its own process, the same stream.
            ready, result = mp.Event(), mp.Queue()
            child = mp.Process(
                target=_baseline_receive, args=(endpoints.events_out, total, ready, result)
            )
            child.start()
            ready.wait(10)
            time.sleep(0.3)
            _publish_all(endpoints.events_in, items)
            count, elapsed = result.get(timeout=120)
            child.join()
            baseline = count / elapsed
            # posbus: one positions worker process holding `actors` position actors.
            procs.append(_worker(config, run_dir, "--role", "positions", "--shard", "0/1"))
            _await_ready(run_dir, "positions.0")
            client = CommandClient(zmq.Context.instance(), endpoints.commands)
            time.sleep(0.3)
            # Each position starts with an intent it cannot trade (no gateway): the
            # actor exists and holds its state; the intent waits for the risk check.
            for symbol in symbols:
                _start_position(client, symbol)
            client.close()
            received0 = _consumed(_admin(run_dir, "positions.0", "metrics"))
            # From the first frame published, as the baseline counts from its first
            # frame received: the publisher's slow-joiner pause is not the worker's time.
            start = _publish_all(endpoints.events_in, items)
            received = received0
            last_change = time.perf_counter()
            while time.perf_counter() - last_change < 1.0:
                metrics = _admin(run_dir, "positions.0", "metrics")
                now = _consumed(metrics)
                if now != received:
                    received, last_change = now, time.perf_counter()
                if received - received0 >= total:
                    break
                time.sleep(0.02)
            actors_idle = _await_idle(run_dir)
            elapsed = actors_idle - start
            got = received - received0
            posbus = got / elapsed
            return {
                "actors": actors,
                "frames": total,
                "received": got,
                "posbus_msg_s": posbus,
                "baseline_msg_s": baseline,
                "ratio": posbus / baseline,
                "conflated": metrics["counters"].get("conflated", 0),
                "dispatched": int(metrics["in"].get("market_update", {}).get("count", 0)),
            }
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


def _consumed(metrics: dict[str, Any]) -> int:
    """market_update frames the worker took off its socket: dispatched plus conflated."""
    dispatched = int(metrics["in"].get("market_update", {}).get("count", 0))
    return dispatched + int(metrics["counters"].get("conflated", 0))


def _open_positions(client: CommandClient) -> int:
    """How many of positions.0's positions are open (positions.list, page by page)."""
    count = 0
    args: dict[str, Any] = {}
    while True:
        result = client.call("positions.0", "positions.list", args)
        count += sum(1 for p in result["positions"] if Decimal(p["qty"]) != 0)
        if result["next"] is None:
            return count
        args = {"after": result["next"]}


def _start_position(client: CommandClient, symbol: str) -> None:
    # A limit order far from the market: it needs the risk supervisor, which is
    # absent here, so it stays pending; the actor is started by the intent.
    args = {
        "account": ACCOUNT,
        "symbol": symbol,
        "side": "buy",
        "qty": "1",
        "limit_price": "1",
    }
    client.call("positions.0", "positions.order", args, timeout=30)


def _await_idle(run_dir: Path) -> float:
    while True:
        actors = _admin(run_dir, "positions.0", "actors")["actors"]
        if all(a["mailbox"] == 0 for a in actors):
            return time.perf_counter()
        time.sleep(0.01)


# -- 2. latency ------------------------------------------------------------------------------


def _paced(publish: Any, rate: int, seconds: float) -> None:
    period = 1.0 / rate
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        target = start + i * period
        while True:
            now = time.perf_counter()
            if now >= target:
                break
            if target - now > 0.0005:
                time.sleep(target - now - 0.0003)
        publish(i)


def _bare_sub(endpoint: str, expected: int, ready: Any, result: Any) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.bind(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    ready.set()
    lat = []
    while len(lat) < expected:
        if not sub.poll(3000):
            break
        frame = sub.recv()
        sent = int.from_bytes(frame[:8], "little")
        lat.append(time.time_ns() - sent)
    result.put(lat)


def _percentiles(values: list[int]) -> dict[str, float]:
    values = sorted(values)
    last = len(values) - 1
    return {
        "p50": values[last * 50 // 100] / 1000,
        "p99": values[last * 99 // 100] / 1000,
        "p999": values[last * 999 // 1000] / 1000,
    }


def bench_latency(rate: int, seconds: float, symbols_n: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pbb-", dir="/tmp") as name:
        root = Path(name)
        # Baseline: bare pyzmq one-way PUB -> SUB between two processes (ipc).
        endpoint = f"ipc://{root / 'bare.sock'}"
        ready, result = mp.Event(), mp.Queue()
        n = int(rate * seconds)
        child = mp.Process(target=_bare_sub, args=(endpoint, n, ready, result))
        child.start()
        ready.wait(10)
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.connect(endpoint)
        time.sleep(0.3)
        payload = b"x" * 100
        _paced(lambda i: pub.send(time.time_ns().to_bytes(8, "little") + payload), rate, seconds)
        bare = _percentiles(result.get(timeout=60))
        child.join()
        pub.close()

        run_dir = root / "var"
        symbols = {f"L{i}/USDT": "100" for i in range(symbols_n)}
        extra = "".join(
            f'[symbols."{s}"]\nprice = "{p}"\norder_qty = "1"\n' for s, p in symbols.items()
        )
        config = _config(root, extra)
        procs = [_worker(config, run_dir, "--role", "broker")]
        try:
            _await_ready(run_dir, "broker")
            for role in (("--role", "risk"), ("--role", "gateway"), ("--role", "positions")):
                procs.append(_worker(config, run_dir, *role))
            for w in ("risk", f"gateway.{ACCOUNT}", "positions.0"):
                _await_ready(run_dir, w)
            endpoints = BusEndpoints.local(run_dir)
            publisher = Publisher(zmq.Context.instance(), endpoints.events_in, sender="bench-md")
            time.sleep(0.5)
            names = list(symbols)
            # Quotes first (the simulated exchange fills at the touch), then a position in each.
            for s in names:
                now = time.time_ns()
                update = MarketUpdate(s, Decimal(100), Decimal("100.1"), None, None, None, now)
                publisher.publish(update, topic=market_topic(s), ts_ns=time.time_ns())
            time.sleep(0.5)
            client = CommandClient(zmq.Context.instance(), endpoints.commands)
            for s in names:
                client.call(
                    "positions.0",
                    "positions.order",
                    {"account": ACCOUNT, "symbol": s, "side": "buy", "qty": "1"},
                    timeout=10,
                )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if _open_positions(client) == len(names):
                    break
                time.sleep(0.1)
            client.close()
            # Reset the risk worker's sample: only the paced run counts.
            _admin(run_dir, "risk", "metrics")
            updates = _updates(names, 64)

            def publish(i: int) -> None:
                topic, u = updates[i % len(updates)]
                now = time.time_ns()
                m = MarketUpdate(u.symbol, u.bid, u.ask, None, None, None, now)
                publisher.publish(m, topic=topic, ts_ns=now)

            start_count = int(
                _admin(run_dir, "risk", "metrics")["market_to_risk_us"].get("count", 0)
            )
            _paced(publish, rate, seconds)
            time.sleep(1.0)
            metrics = _admin(run_dir, "risk", "metrics")
            publisher.close()
            lat = metrics["market_to_risk_us"]
            posbus = {k: float(lat[k]) for k in ("p50", "p99", "p999")}
            return {
                "rate": rate,
                "published": int(rate * seconds),
                "risk_updates": int(lat["count"]) - start_count,
                "posbus_us": posbus,
                "bare_us": bare,
                "p99_ratio": posbus["p99"] / bare["p99"],
                "positions_to_risk_hop_us": metrics["latency_us"],
            }
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


# -- 3. 10,000 actors ------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_many_actors(count: int, *, bulk: bool = False) -> dict[str, float]:
    # No gateway in this one: its start-up recovery reports that, loudly; not news here.
    logging.getLogger("posbus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="pbb-", dir="/tmp") as name:
        root = Path(name)
        endpoints = BusEndpoints.local(root)
        stop = threading.Event()
        broker = Broker(endpoints)
        thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
        thread.start()
        broker.ready.wait(10)
        config = Config()
        node = config.node_config()
        worker = PositionsWorker(
            WorkerSettings(
                name="positions.0",
                role="positions",
                run_dir=root,
                endpoints=endpoints,
                admin_endpoint=admin_endpoint(root, "positions.0"),
                account=ACCOUNT,
                policy=node.policy,
                shard=Shard(0, 1),
            ),
            journal=MemoryJournal(),
            clock=WallClock(),
        )
        worker.start()
        try:
            rss0 = _rss_kib()
            start = time.perf_counter()
            if bulk:
                # The restart path: PositionsWorker.start() pipelines its journaled positions.
                worker.positions((ACCOUNT, f"M{i}/USDT") for i in range(count))
            else:
                for i in range(count):
                    worker.position(ACCOUNT, f"M{i}/USDT")
            startup = time.perf_counter() - start
            rss1 = _rss_kib()
            handles = list(worker.position_handles().values())
            start = time.perf_counter()
            futures = [h.ref.ask(Inspect(), block=False) for h in handles if h.ref is not None]
            for future in futures:
                future.get(timeout=60)
            broadcast = time.perf_counter() - start
            return {
                "actors": count,
                "startup_s": startup,
                "rss_per_actor_kib": (rss1 - rss0) / count,
                "broadcast_s": broadcast,
                "answers": len(futures),
            }
        finally:
            worker.stop()
            stop.set()
            thread.join(10)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, smaller sizes")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--only",
        choices=("throughput", "latency", "actors"),
        action="append",
        help="run only these sections (repeatable; default: all)",
    )
    args = parser.parse_args()
    sections = set(args.only or ("throughput", "latency", "actors"))
    runs = 1 if args.quick else args.runs
    total = 50_000 if args.quick else 100_000
    report: dict[str, Any] = {"runs": runs}

    if "throughput" in sections:
        _report_throughput(report, runs, total)
    if "latency" in sections:
        _report_latency(report, runs, args.quick)
    if "actors" in sections:
        _report_many_actors(report, args.quick)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


def _report_throughput(report: dict[str, Any], runs: int, total: int) -> None:
    print(f"== 1. market_update throughput through one positions worker ({runs} runs, median)")
    for actors in (100, 1000):
        results = [bench_throughput(actors, total) for _ in range(runs)]
        row = {k: _median(results, k) for k in ("posbus_msg_s", "baseline_msg_s", "ratio")}
        report[f"throughput_{actors}"] = row
        print(
            f"  {actors:>5} actors: posbus {row['posbus_msg_s']:>9,.0f} msg/s   "
            f"baseline (SUB+msgpack) {row['baseline_msg_s']:>9,.0f} msg/s   "
            f"ratio {row['ratio']:.2f} (target >= 0.5)"
        )


def _report_latency(report: dict[str, Any], runs: int, quick: bool) -> None:
    print(f"== 2. latency publish -> risk supervisor at 10,000 msg/s ({runs} runs, median)")
    lat_runs = [bench_latency(10_000, 3.0 if quick else 5.0) for _ in range(runs)]
    lat = {
        side: {p: statistics.median(r[side][p] for r in lat_runs) for p in ("p50", "p99", "p999")}
        for side in ("posbus_us", "bare_us")
    }
    ratio = statistics.median(r["p99_ratio"] for r in lat_runs)
    report["latency"] = {**lat, "p99_ratio": ratio}
    for side, label in (("posbus_us", "posbus market->risk"), ("bare_us", "bare pyzmq one-way")):
        v = lat[side]
        print(
            f"  {label:<22} p50 {v['p50']:>9.1f} us  p99 {v['p99']:>9.1f} us  "
            f"p99.9 {v['p999']:>9.1f} us"
        )
    print(f"  p99 ratio {ratio:.1f}x (target <= 5x)")


def _report_many_actors(report: dict[str, Any], quick: bool) -> None:
    print("== 3. 10,000 position actors in one worker")
    count, runs = (1_000, 1) if quick else (10_000, 2)
    many = [bench_many_actors(count) for _ in range(runs)]
    row = {k: _median(many, k) for k in ("startup_s", "rss_per_actor_kib", "broadcast_s")}
    bulk = [bench_many_actors(count, bulk=True) for _ in range(runs)]
    row["bulk_startup_s"] = _median(bulk, "startup_s")
    report["many_actors"] = row
    print(
        f"  start-up {row['startup_s']:.2f} s   RSS per actor {row['rss_per_actor_kib']:.1f} KiB "
        f"(target < 32)   broadcast to all + answers {row['broadcast_s']:.2f} s"
    )
    print(
        f"  start-up pipelined (worker.positions, the restart path) {row['bulk_startup_s']:.2f} s"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
