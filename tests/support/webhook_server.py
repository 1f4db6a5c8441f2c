"""A local webhook endpoint for the alerts tests: an `http.server` on 127.0.0.1 in a thread.

`WebhookServer(statuses=[503, 503])` answers each POST with the next status
of the script, then 200 for good; every request is recorded (path, JSON
body, status answered). `hold()` makes it take requests but not answer them
until `release()` (a webhook that hangs). `wait_for_requests(n)` blocks until
n requests arrived: tests synchronise on it, never on sleeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    """One request the server took."""

    path: str
    body: Any
    status: int


class WebhookServer:
    """A scripted webhook on a free loopback port; `url` is its base URL."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self._script = list(statuses)
        self._changed = threading.Condition()
        self._held = threading.Event()
        self._held.set()
        self.requests: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                status = server._take(self.path, body)
                server._held.wait()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests read `requests`, not stderr

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _take(self, path: str, body: Any) -> int:
        with self._changed:
            status = self._script.pop(0) if self._script else 200
            self.requests.append(Received(path, body, status))
            self._changed.notify_all()
            return status

    def hold(self) -> None:
        """Take requests but answer none until `release`."""
        self._held.clear()

    def release(self) -> None:
        """Answer the held requests and every later one."""
        self._held.set()

    def wait_for_requests(self, count: int) -> list[Received]:
        """Block until `count` requests arrived; all of them so far."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.requests) >= count)
            return list(self.requests)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx so far."""
        with self._changed:
            return [r for r in self.requests if 200 <= r.status < 300]

    def close(self) -> None:
        """Release held requests and stop serving."""
        self.release()
        self._http.shutdown()
        self._http.server_close()
