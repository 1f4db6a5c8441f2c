"""A TCP proxy on 127.0.0.1 that tests use to break and restore a connection to a server.

`TcpProxy(target_port)` listens on a free loopback port and forwards every
connection to 127.0.0.1:`target_port`. Faults, each armed by the test:

- `drop_reply_after(marker)`: on the first connection whose client sends
  bytes containing `marker` (e.g. b"insert"), the server's reply is not
  forwarded and both sides are closed: the server did the work, the client
  never hears of it (a connection lost mid-write);
- `refuse(count)`: close every live connection, then accept-and-close the
  next `count` connection attempts (an outage); `refused` is set once they
  have all been refused, and connections pass again after that.

Only loopback traffic; every thread is a daemon and `close` stops them.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`, with injectable faults."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._refuse_left = 0
        self.refused = threading.Event()
        self._drop_marker: bytes | None = None
        self.dropped = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        """A MongoDB URI through the proxy (direct connection: no topology discovery)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def drop_reply_after(self, marker: bytes) -> None:
        """Arm the lost-reply fault for the next connection that sends `marker`."""
        with self._lock:
            self._drop_marker = marker
            self.dropped.clear()

    def refuse(self, count: int) -> None:
        """Cut every live connection and refuse the next `count` attempts."""
        with self._lock:
            self._refuse_left = count
            self.refused.clear()
            live, self._live = self._live, []
        for sock in live:
            _close(sock)

    def close(self) -> None:
        """Stop accepting and cut everything."""
        with self._lock:
            self._closed = True
            live, self._live = self._live, []
        _close(self._listener)
        for sock in live:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    _close(client)
                    return
                if self._refuse_left > 0:
                    self._refuse_left -= 1
                    if self._refuse_left == 0:
                        self.refused.set()
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._live += [client, upstream]
            state = {"armed": False}
            threading.Thread(
                target=self._pump, args=(client, upstream, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, state, False), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool], upstream: bool
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if upstream:
                    with self._lock:
                        marker = self._drop_marker
                        if marker is not None and marker in data:
                            self._drop_marker = None
                            state["armed"] = True
                elif state["armed"]:
                    # The server answered the marked request: lose the answer.
                    self.dropped.set()
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
