"""Serving the dashboard: bind on loopback, start the feed thread, run aiohttp until a signal.

`serve` runs on the command's main thread, which becomes the event loop's
thread; the feed (`feed.StackFeed`) runs on a thread of its own and hands
documents to the loop. SIGINT and SIGTERM stop the server, then the feed.
The token is passed to the application and to `announce` (which prints the
URL to open) and nowhere else: nothing here logs it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from posbus.actors.model.errors import PosbusError
from posbus.adapters.config import Config
from posbus.adapters.display_precision import Precision
from posbus.adapters.launcher_client import StackClient
from posbus.adapters.web.app import load_assets, make_app
from posbus.adapters.web.dashboard import Venue
from posbus.adapters.web.feed import StackFeed
from posbus.adapters.web.hub import Hub

_log = logging.getLogger(__name__)

FIRST_READING_WAIT_S = 10.0
"""How long the URL waits for the first reading, so the page opens with data."""

FEED_STOP_WAIT_S = 10.0
"""How long stopping waits for the feed's current reading (every wait in it is bounded)."""


class ServeError(PosbusError):
    """The dashboard cannot listen where it was asked to (address in use, not allowed)."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Where to listen and how often and how patiently to read the stack."""

    host: str = "127.0.0.1"
    port: int = 8780
    interval: float = 1.0
    admin_timeout: float = 0.5
    command_timeout: float = 1.0


def loopback_address(host: str) -> str:
    """The loopback IP address `host` names ("localhost" is 127.0.0.1); ValueError otherwise."""
    if host == "localhost":
        return "127.0.0.1"
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address")
    return str(address)


def venue_of(config: Config) -> Venue:
    """The venue the stack trades on and the precision its instruments are shown at."""
    precision = Precision.of_config(config)
    if config.gateway.kind == "simulated":
        return Venue("simulated", precision)
    return Venue(f"{config.gateway.kind} {config.gateway.exchange_id}", precision)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: any free port); ServeError when it cannot be."""
    address = loopback_address(host)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {address}:{port}: {exc.strerror}; pick another --port"
        ) from None
    return sock


def url_of(sock: socket.socket, token: str) -> str:
    """The URL to open: the bound address with the token."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={quote(token, safe='')}"


def serve(
    client: StackClient, token: str, settings: WebSettings, announce: Callable[[str], None]
) -> None:
    """Serve the dashboard of `client`'s stack until SIGINT or SIGTERM (main thread).

    `client` is handed to the feed thread. `announce(url)` is called once the
    server listens and the first reading is done (or FIRST_READING_WAIT_S passed).
    Raises ServeError when the address cannot be bound.
    """
    sock = listen(settings.host, settings.port)
    try:
        asyncio.run(_serve(client, token, settings, sock, announce))
    finally:
        sock.close()


async def _serve(
    client: StackClient,
    token: str,
    settings: WebSettings,
    sock: socket.socket,
    announce: Callable[[str], None],
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    hub = Hub()
    port = sock.getsockname()[1]
    app = make_app(hub, token, f"posbus_web_{port}", load_assets())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()

    def publish(document: bytes) -> None:
        # Called on the feed thread: the hub is the loop's.
        loop.call_soon_threadsafe(hub.publish, document)

    feed = StackFeed(
        client,
        venue_of(client.config),
        publish,
        interval=settings.interval,
        admin_timeout=settings.admin_timeout,
        command_timeout=settings.command_timeout,
    )
    try:
        await web.SockSite(runner, sock, shutdown_timeout=2.0).start()
        feed.start()
        _log.info(
            "dashboard serving",
            extra={
                "address": sock.getsockname()[0],
                "port": port,
                "run_dir": str(client.run_dir.root),
            },
        )
        stopped = asyncio.ensure_future(stop.wait())
        first = asyncio.ensure_future(hub.wait_newer(0, FIRST_READING_WAIT_S))
        await asyncio.wait((stopped, first), return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if not stop.is_set():
            announce(url_of(sock, token))
        await stopped
        _log.info("dashboard stopping")
    finally:
        await runner.cleanup()
        feed.stop()
        if feed.ident is not None:
            feed.join(FEED_STOP_WAIT_S)
