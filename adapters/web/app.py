"""The dashboard's HTTP application (aiohttp): the page, its assets, a JSON snapshot, live events.

Routes, all GET and all behind the token:

- `/`: the page. Opened as `/?token=TOKEN` (the URL `posbus web` prints) it
  sets the session cookie and redirects to `/`, so the token leaves the
  address bar and the browser's history;
- `/static/NAME`: the page's script and style sheet (package data);
- `/api/snapshot`: the newest dashboard document (JSON; 503 before the first);
- `/api/events`: server-sent events, one `dashboard` event per new document,
  the newest at once on connecting; a comment line every `KEEPALIVE_S`.

A request presents the token as the session cookie, as `Authorization:
Bearer TOKEN`, or (the page only) as `?token=`: none is 401, a wrong one 403.
Every answer carries a strict Content-Security-Policy (same origin only),
`no-store` and `no-referrer`. The application only reads: it offers no
route that changes anything. Handlers run on the event loop's thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from importlib.resources import files

from aiohttp import web

from posbus.adapters.web.access_token import same, session_value
from posbus.adapters.web.hub import Hub

KEEPALIVE_S = 15.0
"""Seconds of silence after which an event stream gets a comment line (proxies, dead peers)."""

ASSETS: Mapping[str, str] = {
    "index.html": "text/html",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
"""The page's files in the package's `static/` folder and their media types."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_HUB = web.AppKey("hub", Hub)
_TOKEN = web.AppKey("token", str)
_COOKIE = web.AppKey("cookie", str)
_ASSETS = web.AppKey("assets", dict[str, bytes])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_assets() -> dict[str, bytes]:
    """The page's files, read once from the installed package."""
    folder = files("posbus.adapters.web").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in ASSETS}


def make_app(hub: Hub, token: str, cookie: str, assets: dict[str, bytes]) -> web.Application:
    """The application serving `hub`'s documents to holders of `token`.

    `cookie` names the session cookie (one name per port, so two dashboards
    on one host keep their sessions apart).
    """
    app = web.Application(middlewares=[_require_token])
    app[_HUB] = hub
    app[_TOKEN] = token
    app[_COOKIE] = cookie
    app[_ASSETS] = assets
    app.router.add_get("/", _page)
    app.router.add_get("/static/{name}", _asset)
    app.router.add_get("/api/snapshot", _snapshot)
    app.router.add_get("/api/events", _events)
    app.on_response_prepare.append(_secure_headers)
    app.on_shutdown.append(_close_hub)
    return app


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_SECURITY_HEADERS)


async def _close_hub(app: web.Application) -> None:
    app[_HUB].close()


def _presented(request: web.Request) -> tuple[str | None, bool]:
    """The credential a request carries and whether it is the token itself (not the cookie)."""
    if request.path == "/" and "token" in request.query:
        return request.query["token"], True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), True
    return request.cookies.get(request.app[_COOKIE]), False


@web.middleware
async def _require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[_TOKEN]
    presented, is_token = _presented(request)
    if presented is None:
        raise web.HTTPUnauthorized(
            text="posbus web: open the URL `posbus web` printed (it carries the token)\n",
            headers={"WWW-Authenticate": 'Bearer realm="posbus web"'},
        )
    expected = token if is_token else session_value(token)
    if not same(presented, expected):
        raise web.HTTPForbidden(text="posbus web: wrong token\n")
    if request.path == "/" and "token" in request.query:
        # Trade the token for the session cookie and drop it from the address bar.
        redirect = web.Response(status=303, headers={"Location": "/"})
        redirect.set_cookie(
            request.app[_COOKIE], session_value(token), httponly=True, samesite="Strict"
        )
        return redirect
    return await handler(request)


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_ASSETS]["index.html"], content_type="text/html")


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS or name == "index.html":
        raise web.HTTPNotFound()
    return web.Response(body=request.app[_ASSETS][name], content_type=ASSETS[name])


async def _snapshot(request: web.Request) -> web.Response:
    latest = request.app[_HUB].latest
    if latest is None:
        raise web.HTTPServiceUnavailable(text="posbus web: the first reading is not done yet\n")
    return web.Response(body=latest[1], content_type="application/json")


async def _events(request: web.Request) -> web.StreamResponse:
    hub = request.app[_HUB]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    seq = 0
    # A client that went away shows as a failed write: its stream simply ends.
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"retry: 2000\n\n")
        while True:
            newer = await hub.wait_newer(seq, KEEPALIVE_S)
            if hub.closed:
                break
            if newer is None:
                await response.write(b": keep-alive\n\n")
                continue
            seq, document = newer
            await response.write(b"id: %d\nevent: dashboard\ndata: %s\n\n" % (seq, document))
    return response
