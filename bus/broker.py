"""Broker: the event proxy, the command router and the heartbeat monitor of the bus.

Three ZeroMQ guide patterns in one I/O thread (one zmq.Poller, every socket
owned by the thread that calls `run`):
- an XSUB/XPUB proxy for events (a Python loop rather than zmq.proxy so it
  can count per kind, drop frames without a known topic code, and publish
  its own risk events);
- a Majordomo-like router: clients' commands go to a worker offering the
  named service, replies go back; unknown or dead services get a typed
  error Reply, never silence;
- Paranoid Pirate heartbeats with every worker: a worker silent for
  liveness * interval is removed and reported as RiskEvent "worker_down"
  (and "worker_up" when it registers again); requests it held are answered
  with an UnknownOutcome error.
It never executes a command itself except the `broker` service's read-only
ones (declared in bus/broker_schema.py), and it never crashes on what peers
send. Its own replies carry consecutive sequence numbers of its own; a
worker's reply is forwarded as the worker encoded it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import zmq

from posbus.bus.broker_schema import BROKER, PING, SERVICES, WORKERS
from posbus.bus.codec import Codec, decode
from posbus.bus.command_protocol import (
    BROKER_SERVICE,
    CLIENT_PROTOCOL,
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    UNKNOWN_REQUEST_ID,
    WORKER_PROTOCOL,
)
from posbus.bus.command_schema import Dispatcher
from posbus.bus.curve import (
    AllowList,
    CurveServer,
    acquire_allow_list,
    load_keypair,
    release_allow_list,
)
from posbus.bus.endpoints import BusEndpoints, ipc_path, is_tcp
from posbus.bus.errors import BusError, ServiceUnavailable, UnknownOutcome, UnknownService
from posbus.bus.heartbeat import HeartbeatConfig, Liveness
from posbus.bus.messages import Command, Reply, RiskEvent
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.topics import risk_topic
from posbus.bus.wire_error import WireError

_log = logging.getLogger(__name__)

#: Frames forwarded per socket per poll round, so one busy side cannot starve the others.
PROXY_BATCH = 1_000

_KIND_OF_CODE = {
    b"md|": "market_update",
    b"ex|": "execution_signal",
    b"rk|": "risk_event",
    b"xp|": "exposure",
}


@dataclass(slots=True)
class _Worker:
    identity: bytes
    services: tuple[str, ...]
    liveness: Liveness
    since: float
    # (client identity, request_id, service) of requests sent and not yet answered.
    inflight: list[tuple[bytes, str, str]] = field(default_factory=list)


class Broker:
    """Binds the four endpoints and runs the proxy, router and heartbeats until stopped.

    Construct anywhere; call `run(stop)` on the thread that will own every
    socket. `ready` is set once all endpoints are bound; `status()` may be
    called from any thread.
    """

    def __init__(
        self,
        endpoints: BusEndpoints,
        *,
        curve: CurveServer | None = None,
        options: SocketOptions | None = None,
        heartbeat: HeartbeatConfig | None = None,
        metrics: BusMetrics | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        name: str = "broker",
    ) -> None:
        self.endpoints = endpoints
        self.name = name
        # Each run is a new incarnation with its own sequence from 1: a new
        # sender name, or subscribers would drop a restarted broker's events
        # as stale (seq at or below what they saw from the previous run).
        self.event_sender = f"{name}.{time.time_ns()}"
        self._curve = curve
        self._opts = options or SocketOptions()
        self._hb = heartbeat or HeartbeatConfig()
        self.metrics = metrics or BusMetrics()
        self._context = context or zmq.Context.instance()
        self._codec = Codec(max_size=self._opts.max_msg_size)
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[bytes, _Worker] = {}
        self._services: dict[str, list[bytes]] = {}
        self._known_services: set[str] = set()
        self._down: set[bytes] = set()
        self._event_seq = 0
        self._reply_seq = 0
        self._allow: AllowList | None = None
        self._own_commands = Dispatcher(
            BROKER,
            [
                PING.route(lambda args: {}),
                SERVICES.route(lambda args: {"services": self._service_table()}),
                WORKERS.route(lambda args: {"workers": self._worker_table()}),
            ],
        )

    # -- lifecycle -------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Bind, serve until `stop` is set, then close; the calling thread owns every socket."""
        ctx, opts, curve = self._context, self._opts, self._curve
        if curve is not None and any(is_tcp(e) for e in self.endpoints.all()):
            self._allow = acquire_allow_list(ctx, curve.allowed_clients)
        socks: list[zmq.Socket[bytes]] = []
        try:
            self._xsub = make_socket(
                ctx, zmq.XSUB, options=opts, curve_server=curve, bind=self.endpoints.events_in
            )
            socks.append(self._xsub)
            self._xpub = make_socket(
                ctx, zmq.XPUB, options=opts, curve_server=curve, bind=self.endpoints.events_out
            )
            socks.append(self._xpub)
            self._frontend = make_socket(
                ctx, zmq.ROUTER, options=opts, curve_server=curve, bind=self.endpoints.commands
            )
            socks.append(self._frontend)
            self._backend = make_socket(
                ctx, zmq.ROUTER, options=opts, curve_server=curve, bind=self.endpoints.workers
            )
            socks.append(self._backend)
            # A restarted worker reconnects under the same identity: take it over.
            self._backend.setsockopt(zmq.ROUTER_HANDOVER, 1)
            self._loop(stop)
        finally:
            for sock in socks:
                sock.close(linger=0)
            for endpoint in self.endpoints.all():
                path = ipc_path(endpoint)
                if path is not None:
                    path.unlink(missing_ok=True)
            if self._allow is not None:
                release_allow_list(ctx)
                self._allow = None
            self.ready.clear()

    def _loop(self, stop: threading.Event) -> None:
        poller = zmq.Poller()
        for sock in (self._xsub, self._xpub, self._frontend, self._backend):
            poller.register(sock, zmq.POLLIN)
        self.ready.set()
        _log.info("broker ready", extra={"endpoints": self.endpoints.all()})
        tick_ms = max(1, int(self._hb.interval_s * 1000 / 2))
        handlers = (
            (self._xsub, self._forward_events),
            (self._xpub, self._forward_subscriptions),
            (self._frontend, self._serve_clients),
            (self._backend, self._serve_workers),
        )
        while not stop.is_set():
            ready = dict(poller.poll(tick_ms))
            for sock, handle in handlers:
                if sock in ready:
                    self._guarded(handle)
            self._guarded(self._heartbeat)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - process boundary: a bug in one step must not stop the bus
            self.metrics.count("internal_errors")
            _log.exception("broker step failed", extra={"step": step.__name__})

    # -- events ----------------------------------------------------------------

    def _forward_events(self) -> None:
        # Hot path: no per-frame getsockopt or metrics call. Each frame is
        # checked on its own (a part of a multipart message included), and
        # subscribers validate the envelope anyway.
        recv, send, noblock = self._xsub.recv, self._xpub.send, zmq.NOBLOCK
        counts = dict.fromkeys(_KIND_OF_CODE, 0)
        malformed = 0
        try:
            for _ in range(PROXY_BATCH):
                frame = recv(noblock)
                code = frame[:3]
                if code in counts:
                    counts[code] += 1
                    send(frame, noblock)
                else:
                    malformed += 1
        except zmq.Again:
            pass
        finally:
            for code, n in counts.items():
                if n:
                    self.metrics.count_in(_KIND_OF_CODE[code], n)
            if malformed:
                self.metrics.count("malformed", malformed)

    def _forward_subscriptions(self) -> None:
        for _ in range(PROXY_BATCH):
            try:
                frame = self._xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._xsub.send(frame, zmq.NOBLOCK)

    def _publish_risk(self, event: str, state: str, previous: str | None, reason: str) -> None:
        self._event_seq += 1
        message = RiskEvent(
            event=event,
            state=state,
            previous_state=previous,
            reason=reason,
            account=None,
            symbol=None,
            values={},
            ts_ns=time.time_ns(),
        )
        frame = risk_topic(event) + self._codec.encode(
            message, seq=self._event_seq, sender=self.event_sender
        )
        self._xpub.send(frame, zmq.NOBLOCK)
        self.metrics.count_out("risk_event")
        _log.warning("worker event", extra={"event": event, "reason": reason})

    # -- commands from clients -------------------------------------------------

    def _serve_clients(self) -> None:
        for _ in range(PROXY_BATCH):
            try:
                frames = self._frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.metrics.count_in("command")
            self._route(frames)

    def _route(self, frames: list[bytes]) -> None:
        client = frames[0]
        if len(frames) != 4 or frames[1] != CLIENT_PROTOCOL:
            self._malformed_client(client, b"", WireError("not a posbus command message"))
            return
        service_raw, body = frames[2], frames[3]
        try:
            service = service_raw.decode()
            envelope = decode(body, max_size=self._opts.max_msg_size)
        except (UnicodeDecodeError, WireError) as exc:
            wire_error = exc if isinstance(exc, WireError) else WireError(f"service name: {exc}")
            self._malformed_client(client, service_raw, wire_error)
            return
        command = envelope.message
        if not isinstance(command, Command):
            self._malformed_client(
                client, service_raw, WireError(f"expected a command, got a {envelope.kind}")
            )
            return
        if service == BROKER_SERVICE:
            self._reply_client(client, service_raw, self._broker_command(command))
            return
        identities = self._services.get(service)
        if not identities:
            error: Exception = (
                ServiceUnavailable(service)
                if service in self._known_services
                else UnknownService(service)
            )
            self.metrics.count("unroutable_requests")
            self._reply_client(client, service_raw, Reply.failure(command.request_id, error))
            return
        # Round robin over the service's workers.
        identity = identities.pop(0)
        identities.append(identity)
        worker = self._workers[identity]
        worker.inflight.append((client, command.request_id, service))
        self._send_worker(identity, [REQUEST, client, service_raw, body])

    def _malformed_client(self, client: bytes, service: bytes, error: WireError) -> None:
        self.metrics.count("malformed")
        _log.info("malformed command", extra={"error": str(error)})
        self._reply_client(client, service, Reply.failure(UNKNOWN_REQUEST_ID, error))

    def _reply_client(self, client: bytes, service: bytes, reply: Reply | bytes) -> None:
        if isinstance(reply, bytes):
            body = reply  # a worker's reply, with the worker's own seq
        else:
            self._reply_seq += 1
            body = self._codec.encode(
                reply, seq=self._reply_seq, sender=self.name, ts_ns=time.time_ns()
            )
        try:
            self._frontend.send_multipart([client, CLIENT_PROTOCOL, service, body], zmq.NOBLOCK)
            self.metrics.count_out("reply")
        except zmq.ZMQError:
            # EHOSTUNREACH (client gone) or EAGAIN (client not reading).
            self.metrics.count("unroutable")

    def _broker_command(self, command: Command) -> Reply:
        try:
            return Reply.success(command.request_id, self._own_commands(command))
        except BusError as exc:  # UnknownCommand, InvalidArgument: nothing was run
            return Reply.failure(command.request_id, exc)

    # -- workers ---------------------------------------------------------------

    def _serve_workers(self) -> None:
        now = time.monotonic()
        for _ in range(PROXY_BATCH):
            try:
                frames = self._backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            if len(frames) < 3 or frames[1] != WORKER_PROTOCOL:
                self.metrics.count("malformed")
                continue
            kind = frames[2]
            worker = self._workers.get(identity)
            if kind == READY:
                self._register(identity, frames[3:], now)
            elif worker is None:
                # Unknown to us (we restarted, or it expired): ask it to register again.
                self._send_worker(identity, [DISCONNECT])
            elif kind == HEARTBEAT:
                worker.liveness.heard(now)
            elif kind == REPLY and len(frames) == 5:
                worker.liveness.heard(now)
                self._worker_reply(worker, frames[3], frames[4])
            elif kind == DISCONNECT:
                self._remove(worker, "disconnected")
            else:
                worker.liveness.heard(now)
                self.metrics.count("malformed")

    def _register(self, identity: bytes, raw_services: Sequence[bytes], now: float) -> None:
        try:
            services = tuple(s.decode() for s in raw_services)
        except UnicodeDecodeError:
            services = ()
        if not services or not all(services):
            self.metrics.count("malformed")
            self._send_worker(identity, [DISCONNECT])
            return
        old = self._workers.get(identity)
        inflight: list[tuple[bytes, str, str]] = []
        if old is not None:
            # The same worker reconnected (it thought we were silent): requests
            # it holds may still be answered through its new connection, so
            # they stay in flight; their clients' own timeouts bound the wait.
            inflight, old.inflight = old.inflight, []
            self._remove(old, "re-registered", publish=False)
        worker = _Worker(identity, services, Liveness(self._hb, now), now, inflight)
        with self._lock:
            self._workers[identity] = worker
            for service in services:
                self._services.setdefault(service, []).append(identity)
                self._known_services.add(service)
        previous = "down" if identity in self._down else None
        self._down.discard(identity)
        if old is None:
            self._publish_risk(
                "worker_up",
                "up",
                previous,
                f"worker {identity.decode(errors='replace')} up: services {', '.join(services)}",
            )

    def _worker_reply(self, worker: _Worker, client: bytes, body: bytes) -> None:
        try:
            envelope = decode(body, max_size=self._opts.max_msg_size)
        except WireError:
            self.metrics.count("malformed")
            return
        reply = envelope.message
        if not isinstance(reply, Reply):
            self.metrics.count("malformed")
            return
        service = b""
        for i, (c, request_id, svc) in enumerate(worker.inflight):
            if c == client and request_id == reply.request_id:
                service = svc.encode()
                del worker.inflight[i]
                break
        self._reply_client(client, service, body)

    def _remove(self, worker: _Worker, reason: str, *, publish: bool = True) -> None:
        with self._lock:
            self._workers.pop(worker.identity, None)
            for service in worker.services:
                identities = self._services.get(service, [])
                if worker.identity in identities:
                    identities.remove(worker.identity)
        for client, request_id, service in worker.inflight:
            error = UnknownOutcome(
                f"worker of {service!r} lost ({reason}) before replying",
                service=service,
                request_id=request_id,
            )
            self._reply_client(client, service.encode(), Reply.failure(request_id, error))
        worker.inflight.clear()
        if publish:
            self._down.add(worker.identity)
            self._publish_risk(
                "worker_down",
                "down",
                "up",
                f"worker {worker.identity.decode(errors='replace')} "
                f"(services {', '.join(worker.services)}) {reason}",
            )

    def _send_worker(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            self._backend.send_multipart([identity, WORKER_PROTOCOL, *frames], zmq.NOBLOCK)
        except zmq.ZMQError:
            self.metrics.count("unroutable")
            return
        worker = self._workers.get(identity)
        if worker is not None:
            worker.liveness.sent(time.monotonic())

    def _heartbeat(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if worker.liveness.expired(now):
                silent = now - worker.liveness.last_heard
                self._remove(worker, f"silent for {silent:.1f} s")
            elif worker.liveness.heartbeat_due(now):
                self._send_worker(worker.identity, [HEARTBEAT])

    # -- status ----------------------------------------------------------------

    def _service_table(self) -> dict[str, Any]:
        with self._lock:
            return {
                service: [i.decode(errors="replace") for i in identities]
                for service, identities in self._services.items()
            }

    def _worker_table(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            workers = list(self._workers.values())
        return {
            w.identity.decode(errors="replace"): {
                "services": list(w.services),
                "silent_ms": int((now - w.liveness.last_heard) * 1000),
                "up_s": int(now - w.since),
                "inflight": len(w.inflight),
            }
            for w in workers
        }

    def status(self) -> dict[str, Any]:
        """Workers, services and counters as a Reply-compatible dict (any thread)."""
        allow = self._allow
        return {
            "endpoints": list(self.endpoints.all()),
            "workers": self._worker_table(),
            "services": self._service_table(),
            "metrics": self.metrics.snapshot(),
            "curve_denied": 0 if allow is None else allow.denied,
        }


# -- process entry: python -m posbus.bus.broker ----------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m posbus.bus.broker", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", type=Path, help="ipc endpoints under RUN_DIR/bus/")
    where.add_argument("--tcp", metavar="HOST:BASE_PORT", help="tcp endpoints (needs CURVE)")
    parser.add_argument("--curve-secret", type=Path, help="the broker's NAME.key_secret")
    parser.add_argument("--allowed-clients", type=Path, help="directory of client NAME.key")
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--liveness", type=int, default=3)
    parser.add_argument("--max-msg-size", type=int, default=SocketOptions().max_msg_size)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a broker until SIGTERM/SIGINT; print one JSON line once bound."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.run_dir is not None:
        endpoints = BusEndpoints.local(args.run_dir)
    else:
        host, _, port = args.tcp.rpartition(":")
        endpoints = BusEndpoints.tcp(host, int(port))
    curve = None
    if args.curve_secret is not None:
        if args.allowed_clients is None:
            print("--curve-secret needs --allowed-clients", file=sys.stderr)
            return 2
        curve = CurveServer(load_keypair(args.curve_secret), args.allowed_clients)
    broker = Broker(
        endpoints,
        curve=curve,
        options=SocketOptions(max_msg_size=args.max_msg_size),
        heartbeat=HeartbeatConfig(interval_s=args.heartbeat_interval, liveness=args.liveness),
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=broker.run, args=(stop,), name="broker-io")
    thread.start()
    while not broker.ready.wait(0.1):
        if not thread.is_alive():
            return 1
    print(json.dumps({"event": "broker_ready", "endpoints": list(endpoints.all())}), flush=True)
    while thread.is_alive():
        thread.join(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
