"""`posbus web` as a user runs it: a subprocess whose printed URL the tests open.

`WebProcess` starts the command against a `Stack`, waits (bounded) for the URL
line on stdout, and stops it with SIGTERM (SIGKILL if it does not go).
`get` and `Events` talk HTTP with the standard library only: a request with
or without the token, and a server-sent event stream read line by line under
a deadline. Nothing here sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stack_harness import Stack


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebProcess:
    """`posbus web --port 0 --interval S` on a stack; `url`, `token`, `host`, `port` once up."""

    def __init__(self, stack: Stack, *args: str, interval: float = 0.2) -> None:
        self.stack = stack
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "posbus.adapters.cli.main",
                "web",
                "--port",
                "0",
                "--interval",
                str(interval),
                "--config",
                str(stack.config),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = ""
        self.stderr = ""

    def wait_url(self, timeout: float = 30.0) -> str:
        """The URL the command prints once it serves; AssertionError if none in `timeout` s."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if selector.select(deadline - time.monotonic()):
                    line = self.process.stdout.readline()
                    if line:
                        self.url = line.strip()
                        return self.url
                    break  # stdout closed: the command ended
        self.stop()
        raise AssertionError(
            f"posbus web printed no URL (exit {self.process.returncode}): {self.stderr}"
        )

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]

    @property
    def host(self) -> str:
        return str(urlsplit(self.url).hostname)

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def get(self, path: str, *, token: str | None = None, cookie: str | None = None) -> Answer:
        """GET `path`, with `Authorization: Bearer token` and/or a Cookie header when given."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = cookie
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            connection.close()

    def snapshot(self) -> dict[str, Any]:
        """The newest dashboard document (GET /api/snapshot with the token)."""
        answer = self.get("/api/snapshot", token=self.token)
        assert answer.status == 200, answer
        document: dict[str, Any] = answer.json()
        return document

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; the exit code. Keeps stderr in `stderr`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        return self.process.returncode


class Events:
    """The dashboard's event stream (GET /api/events), read one `dashboard` event at a time."""

    def __init__(self, web: WebProcess, timeout: float = 30.0) -> None:
        self.connection = http.client.HTTPConnection(web.host, web.port, timeout=timeout)
        self.connection.request(
            "GET", "/api/events", headers={"Authorization": f"Bearer {web.token}"}
        )
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def next(self) -> dict[str, Any]:
        """The next `dashboard` event's document (socket timeout bounds the wait)."""
        name = ""
        data: list[str] = []
        while True:
            line = self.response.fp.readline().decode()
            if not line:
                raise AssertionError("the event stream ended")
            line = line.rstrip("\n")
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif line == "" and data:
                if name == "dashboard":
                    document: dict[str, Any] = json.loads("\n".join(data))
                    return document
                name, data = "", []

    def until(self, what: str, condition: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first document for which `condition(document)` holds, within `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            document = self.next()
            if condition(document):
                return document
        raise AssertionError(f"no dashboard event with {what} within {timeout} s")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()
