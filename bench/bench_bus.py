"""Benchmark of the bus: throughput and latency through a broker, against bare pyzmq baselines.

Throughput: market_update frames from a publisher process -> broker process
(posbus.bus.broker) -> a Subscriber in this process that drains in batches
and decodes every frame with the validating codec. Baseline in the same run:
the same frames from a publisher process straight to a plain pyzmq SUB in
this process that only receives and msgpack-unpacks them.

Latency: the publisher paces market_update frames at a fixed rate (10,000
msg/s by default), stamping each envelope's ts_ns at send; the receiver
measures time.time_ns() - ts_ns. The bus path (publisher -> broker ->
Subscriber.drain + decode) next to a bare pyzmq one-way hop (PUB -> SUB +
msgpack.unpackb), in the same run. Everything over ipc on one host; each
figure is the median of RUNS runs.

    python bench/bench_bus.py [--runs 3] [--messages 200000] [--rate 10000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgpack
import zmq

from posbus.bus.codec import Codec
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.messages import MarketUpdate, RiskEvent
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.subscriber import Subscriber
from posbus.bus.topics import PREFIX_MARKET, PREFIX_RISK, market_topic, risk_topic

SYMBOLS = [f"SYM{i}/USDT" for i in range(100)]
END = risk_topic("bench_end")
BIG_HWM = SocketOptions(event_hwm=1_000_000)


def _frames(n: int, codec: Codec, *, first_seq: int = 1) -> list[bytes]:
    out = []
    for i in range(n):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        update = MarketUpdate(
            symbol=symbol,
            bid=Decimal("50000.1") + i % 7,
            ask=Decimal("50000.2") + i % 7,
            last=Decimal("50000.15"),
            bid_size=Decimal("1.5"),
            ask_size=Decimal("2.25"),
            ts_ns=1_700_000_000_000_000_000 + i,
        )
        out.append(market_topic(symbol) + codec.encode(update, seq=first_seq + i, sender="bench"))
    return out


def _end_frame(codec: Codec, seq: int) -> bytes:
    event = RiskEvent(
        event="bench_end",
        state="Normal",
        previous_state=None,
        reason="",
        account=None,
        symbol=None,
        values={},
        ts_ns=1,
    )
    return END + codec.encode(event, seq=seq, sender="bench-end")


# -- the publisher process -------------------------------------------------------


def publisher(endpoint: str, mode: str, n: int, rate: int, seconds: float) -> None:
    """Child process: wait for "go" on stdin, then publish; prints "done"."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    if endpoint.startswith("bind:"):
        sock = make_socket(ctx, zmq.PUB, bind=endpoint[5:], options=BIG_HWM)
    else:
        sock = make_socket(ctx, zmq.PUB, connect=endpoint, options=BIG_HWM)
    codec = Codec()
    print("ready", flush=True)
    while True:
        # Probes until the parent says go (its subscription has propagated).
        sock.send(_end_frame(codec, 1).replace(b"bench_end", b"bench_prb"))
        if select.select([sys.stdin], [], [], 0.01)[0]:
            sys.stdin.readline()
            break
    if mode == "throughput":
        frames = _frames(n, codec)
        send = sock.send
        for frame in frames:
            send(frame)
    else:
        interval = 1_000_000_000 // rate
        total = int(rate * seconds)
        template = MarketUpdate(
            symbol="BTC/USDT",
            bid=Decimal("50000.1"),
            ask=Decimal("50000.2"),
            last=None,
            bid_size=None,
            ask_size=None,
            ts_ns=1,
        )
        topic = market_topic("BTC/USDT")
        # Pace without spinning a core: every ~0.5 ms send the frames now due
        # (5 at 10,000 msg/s), each stamped at its own send.
        start = time.perf_counter_ns()
        sent = 0
        while sent < total:
            due = min(total, (time.perf_counter_ns() - start) // interval + 1)
            while sent < due:
                sent += 1
                frame = codec.encode(template, seq=sent, sender="bench", ts_ns=time.time_ns())
                sock.send(topic + frame)
            time.sleep(0.0005)
    for i in range(50):
        sock.send(_end_frame(codec, i + 1))
        time.sleep(0.002)
    print("done", flush=True)
    sys.stdin.readline()
    sock.close(linger=0)
    ctx.term()


def _spawn_publisher(
    endpoint: str, mode: str, n: int, rate: int, seconds: float
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", "publisher", "--endpoint", endpoint, "--mode", mode,
         "--messages", str(n), "--rate", str(rate), "--seconds", str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _finish(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdout.readline()
    proc.stdin.write("bye\n")
    proc.stdin.flush()
    proc.wait(30)


# -- receivers -------------------------------------------------------------------


def _wait_probe_bare(sock: zmq.Socket[bytes]) -> None:
    while True:
        if sock.poll(5000) == 0:
            raise SystemExit("no probe from the publisher")
        if sock.recv().startswith(b"rk|bench_prb|"):
            break


def bare_receiver(
    ctx: zmq.Context[zmq.Socket[bytes]],
    endpoint: str,
    mode: str,
    args: argparse.Namespace,
    *,
    via: BusEndpoints | None = None,
) -> dict[str, float]:
    """Plain SUB + msgpack.unpackb; straight from the publisher, or `via` the broker."""
    if via is None:
        sock = make_socket(ctx, zmq.SUB, bind=endpoint, options=BIG_HWM)
    else:
        sock = make_socket(ctx, zmq.SUB, connect=via.events_out, options=BIG_HWM)
        endpoint = via.events_in
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    proc = _spawn_publisher(endpoint, mode, args.messages, args.rate, args.seconds)
    _wait_probe_bare(sock)
    _go(proc)
    unpackb = msgpack.unpackb
    count = 0
    latencies: list[int] = []
    start = None
    while sock.poll(5000):
        frame = sock.recv()
        if frame.startswith(b"rk|"):
            if frame.startswith(END):
                break
            continue
        envelope = unpackb(frame[frame.index(b"|", 3) + 1 :])
        if start is None:
            start = time.perf_counter()
        count += 1
        if mode == "latency":
            latencies.append(time.time_ns() - envelope[3])
    elapsed = time.perf_counter() - (start or time.perf_counter())
    _finish(proc)
    sock.close(linger=0)
    return _result(count, elapsed, latencies)


def bus_receiver(
    ctx: zmq.Context[zmq.Socket[bytes]],
    endpoints: BusEndpoints,
    mode: str,
    args: argparse.Namespace,
) -> dict[str, float]:
    sub = Subscriber(
        ctx,
        endpoints.events_out,
        prefixes=[PREFIX_MARKET, PREFIX_RISK],
        conflate=False,
        options=BIG_HWM,
        max_batch=1000,
    )
    proc = _spawn_publisher(endpoints.events_in, mode, args.messages, args.rate, args.seconds)
    while True:
        if not sub.poll(5000):
            raise SystemExit("no probe through the broker")
        if any(r.topic.startswith(b"rk|bench_prb|") for r in sub.drain()):
            break
    _go(proc)
    count = 0
    latencies: list[int] = []
    start = None
    done = False
    while not done and sub.poll(5000):
        batch = sub.drain()
        now = time.time_ns()
        for r in batch:
            if r.envelope.kind != "market_update":
                if r.topic == END:
                    done = True
                continue
            if start is None:
                start = time.perf_counter()
            count += 1
            if mode == "latency":
                latencies.append(now - r.envelope.ts_ns)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    _finish(proc)
    sub.close()
    return _result(count, elapsed, latencies)


def _result(count: int, elapsed: float, latencies: list[int]) -> dict[str, float]:
    result = {"count": float(count), "rate": count / elapsed if elapsed > 0 else 0.0}
    if latencies:
        latencies.sort()
        last = len(latencies) - 1
        for name, q in (("p50", 0.50), ("p99", 0.99), ("p999", 0.999)):
            result[name] = latencies[int(last * q)] / 1000
    return result


# -- main ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="main")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--mode", default="throughput")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.role == "publisher":
        publisher(args.endpoint, args.mode, args.messages, args.rate, args.seconds)
        return
    run_dir = Path(tempfile.mkdtemp(prefix="pbb", dir="/tmp"))
    broker = subprocess.Popen(
        [sys.executable, "-m", "posbus.bus.broker", "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert broker.stdout is not None
    json.loads(broker.stdout.readline())
    endpoints = BusEndpoints.local(run_dir)
    bare_endpoint = f"ipc://{run_dir}/bare.sock"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    results: dict[str, list[dict[str, float]]] = {
        k: [] for k in ("tp_bus", "tp_hop", "tp_bare", "lat_bus", "lat_bare")
    }
    try:
        for run in range(args.runs):
            results["tp_bare"].append(bare_receiver(ctx, bare_endpoint, "throughput", args))
            results["tp_bus"].append(bus_receiver(ctx, endpoints, "throughput", args))
            results["tp_hop"].append(
                bare_receiver(ctx, bare_endpoint, "throughput", args, via=endpoints)
            )
            results["lat_bare"].append(bare_receiver(ctx, bare_endpoint, "latency", args))
            results["lat_bus"].append(bus_receiver(ctx, endpoints, "latency", args))
            summary = ", ".join(
                f"{k} {v[-1]['rate']:,.0f}/s ({v[-1]['count']:,.0f})" for k, v in results.items()
            )
            print(f"run {run + 1}/{args.runs}: {summary}", flush=True)
    finally:
        broker.terminate()
        broker.wait(10)
        ctx.destroy(linger=0)
        shutil.rmtree(run_dir, ignore_errors=True)

    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    print(f"\nmedians of {args.runs} runs ({args.messages:,} market_updates per throughput run, "
          f"latency at {args.rate:,} msg/s for {args.seconds} s):")  # fmt: skip
    bus_tp, bare_tp = med("tp_bus", "rate"), med("tp_bare", "rate")
    print(f"throughput bus (pub -> broker -> drain + validating decode): {bus_tp:>9,.0f} msg/s")
    print(f"throughput baseline (pub -> SUB, recv + msgpack.unpackb):    {bare_tp:>9,.0f} msg/s")
    hop_tp = med("tp_hop", "rate")
    print(
        f"throughput broker hop only (pub -> broker -> SUB, msgpack.unpackb): {hop_tp:>9,.0f} msg/s"
    )
    ratios = [
        bus["rate"] / bare["rate"]
        for bus, bare in zip(results["tp_bus"], results["tp_bare"], strict=True)
    ]
    print(f"throughput median of per-run ratios bus/baseline: {statistics.median(ratios):.2f}")
    print(
        f"throughput ratio bus/baseline: {bus_tp / bare_tp:.2f}"
        f"   hop/baseline: {hop_tp / bare_tp:.2f}"
    )
    delivered_bus, delivered_bare = med("tp_bus", "count"), med("tp_bare", "count")
    print(
        f"delivered  bus {delivered_bus:,.0f} / baseline {delivered_bare:,.0f} of {args.messages:,}"
    )
    for p in ("p50", "p99", "p999"):
        bus_l, bare_l = med("lat_bus", p), med("lat_bare", p)
        print(
            f"latency {p:>4}  bus {bus_l:>9.1f} us   bare hop {bare_l:>9.1f} us"
            f"   ratio {bus_l / bare_l:5.1f}x"
        )


if __name__ == "__main__":
    main()
