"""The Binance emulator's user-data stream: websockets that push an account's events.

Two ways in, as Binance's spot API offers them:

- the listenKey stream: `POST /api/v3/userDataStream` (REST, served by the
  emulator) hands out a listenKey, and a websocket at `/ws/<listenKey>`
  pushes the raw events;
- the WebSocket API at `/ws-api/v3`: a `userDataStream.subscribe.signature`
  request (API key, timestamp and HMAC signature) subscribes the connection,
  and events arrive wrapped as `{"subscriptionId": N, "event": {...}}`. This
  is what ccxt.pro's binance uses for spot.

Events are `executionReport` and `outboundAccountPosition` JSON built by the
emulator (binance_emulator.py); `publish` fans each out, in order, to every
subscribed connection. Faults: `drop` closes every connection without a
close frame, `stall` keeps them open but sends nothing and answers no ping,
`duplicate` sends the next events twice, `reorder` swaps the next events
pairwise (one held back until the next comes, or REORDER_HOLD_S passes),
and the emulator refuses new subscriptions on demand.

Threads: an aiohttp server on its own asyncio loop and daemon thread;
`publish`, `drop`, `stall` and `connections` may be called from any thread.
A test tool: it must never be imported by the trading path.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

T = TypeVar("T")

REORDER_HOLD_S = 0.2
"""How long `reorder` holds an event back at most, waiting for one to overtake it."""

# Answers a WebSocket API request: (status, result or error) from (method, params).
WsApiHandler = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]
# Whether a listenKey is open (the emulator's REST side hands them out).
ListenKeyCheck = Callable[[str], bool]


@dataclass(eq=False, slots=True)
class _Connection:
    """One websocket: what it is subscribed as, and whether it went silent."""

    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    listen_key: str | None
    subscription_id: int | None = None
    stalled: bool = False
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class UserStreamServer:
    """The websocket side of the emulator's user-data stream (see the module docstring).

    Args:
        ws_api: answers WebSocket API requests other than the stream's own
            bookkeeping (the emulator checks signatures and refusals there);
            a status 200 answer to `userDataStream.subscribe.signature`
            subscribes the connection.
        listen_key_open: whether a `/ws/<listenKey>` connection may open.
    """

    def __init__(self, *, ws_api: WsApiHandler, listen_key_open: ListenKeyCheck) -> None:
        self._ws_api = ws_api
        self._listen_key_open = listen_key_open
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._port = 0
        self._connections: set[_Connection] = set()
        self._subscriptions = 0
        # Loop thread only: events still to send twice, pairs still to swap, the held one.
        self._duplicates = 0
        self._reorders = 0
        self._held: dict[str, Any] | None = None

    # -- any thread ------------------------------------------------------------------

    def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1; returns once it serves."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="emulator-user-stream", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the emulator's user-data stream did not start")

    def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._thread is None or self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    @property
    def url(self) -> str:
        """The base URL, ws://127.0.0.1:PORT."""
        return f"ws://127.0.0.1:{self._port}"

    def publish(self, event: dict[str, Any]) -> None:
        """Push `event` to every subscribed connection (in the order of the calls).

        Nothing happens while the server does not run.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, event)
        except RuntimeError:
            return  # the server stopped meanwhile: nobody to tell

    def duplicate(self, times: int) -> None:
        """Send each of the next `times` events twice, back to back."""
        self._call(self._set_faults(duplicates=times))

    def reorder(self, times: int) -> None:
        """Swap the next `times` pairs of events (the first of each pair arrives second)."""
        self._call(self._set_faults(reorders=times))

    def calm(self) -> None:
        """No more repeated or swapped events; one held back is sent now."""
        if self._loop is not None and self._thread is not None:
            self._call(self._calm())

    def drop(self) -> int:
        """Close every connection without a close frame; returns how many there were."""
        return self._call(self._drop())

    def stall(self) -> int:
        """Make every open connection silent (no events, no pongs); returns how many."""
        return self._call(self._stall())

    def close_listen_key(self, listen_key: str) -> None:
        """Close the connections of a listenKey (it was deleted); returns at once."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_key(listen_key), self._loop)

    def connections(self) -> int:
        """How many connections are subscribed now (stalled ones included)."""
        return self._call(self._count())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the server's loop and wait for its result (bounded)."""
        assert self._loop is not None, "start() the server first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- the server's loop -----------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_get("/ws-api/v3", self._serve_ws_api)
        app.router.add_get("/ws/{listen_key}", self._serve_listen_key)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        self._port = int(runner.addresses[0][1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _shutdown(self) -> None:
        for conn in list(self._connections):
            await conn.ws.close()

    async def _count(self) -> int:
        subscribed = [c for c in self._connections if c.listen_key or c.subscription_id is not None]
        return len(subscribed)

    async def _drop(self) -> int:
        dropped = list(self._connections)
        for conn in dropped:
            self._abort(conn)
        return len(dropped)

    async def _set_faults(self, *, duplicates: int = 0, reorders: int = 0) -> None:
        self._duplicates += duplicates
        self._reorders += reorders

    async def _calm(self) -> None:
        self._duplicates = self._reorders = 0
        held, self._held = self._held, None
        if held is not None:
            self._deliver(held)

    async def _stall(self) -> int:
        for conn in self._connections:
            conn.stalled = True
        return len(self._connections)

    async def _close_key(self, listen_key: str) -> None:
        for conn in list(self._connections):
            if conn.listen_key == listen_key:
                await conn.ws.close()

    def _abort(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        conn.stalled = True
        # Aborting the transport sends no close frame: the client sees a dead connection.
        if isinstance(conn.transport, asyncio.Transport):
            conn.transport.abort()

    def _fan_out(self, event: dict[str, Any]) -> None:
        """Send `event` (loop thread), as the duplicate and reorder faults bend it."""
        held, self._held = self._held, None
        if held is not None:  # the second of a swapped pair goes first
            self._deliver(event)
            self._deliver(held)
            return
        if self._reorders:
            self._reorders -= 1
            self._held = event
            loop = asyncio.get_running_loop()
            loop.call_later(REORDER_HOLD_S, self._release, event)
            return
        self._deliver(event)
        if self._duplicates:
            self._duplicates -= 1
            self._deliver(event)

    def _release(self, event: dict[str, Any]) -> None:
        """A held event no later one came to overtake: sent late, not lost."""
        if self._held is event:
            self._held = None
            self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        for conn in self._connections:
            if conn.stalled:
                continue
            if conn.listen_key is not None:
                conn.queue.put_nowait(json.dumps(event))
            elif conn.subscription_id is not None:
                wrapped = {"subscriptionId": conn.subscription_id, "event": event}
                conn.queue.put_nowait(json.dumps(wrapped))

    async def _serve_listen_key(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["listen_key"]
        if not self._listen_key_open(key):
            error = {"code": -1125, "msg": "This listenKey does not exist."}
            raise web.HTTPBadRequest(text=json.dumps(error), content_type="application/json")
        return await self._serve(request, listen_key=key)

    async def _serve_ws_api(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, listen_key=None)

    async def _serve(self, request: web.Request, *, listen_key: str | None) -> web.StreamResponse:
        # autoping off: a stalled connection must not answer pings either.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = _Connection(ws, request.transport, listen_key)
        self._connections.add(conn)
        sender = asyncio.get_running_loop().create_task(self._send(conn))
        try:
            async for msg in ws:
                if conn.stalled:
                    continue
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT and listen_key is None:
                    await ws.send_str(self._answer(conn, msg.data))
        finally:
            sender.cancel()
            self._connections.discard(conn)
        return ws

    async def _send(self, conn: _Connection) -> None:
        while True:
            text = await conn.queue.get()
            if not conn.stalled and not conn.ws.closed:
                await conn.ws.send_str(text)

    def _answer(self, conn: _Connection, text: str) -> str:
        """One WebSocket API request answered as Binance frames it."""
        try:
            request = json.loads(text)
            request_id = request.get("id")
            method = str(request["method"])
            params = dict(request.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            error = {"code": -1102, "msg": "Malformed request."}
            return json.dumps({"id": None, "status": 400, "error": error})
        status, body = self._ws_api(method, params)
        if status != 200:
            return json.dumps({"id": request_id, "status": status, "error": body})
        if method == "userDataStream.subscribe.signature":
            conn.subscription_id = self._subscriptions
            self._subscriptions += 1
            body = {"subscriptionId": conn.subscription_id}
        return json.dumps({"id": request_id, "status": 200, "result": body})
