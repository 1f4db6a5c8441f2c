"""CURVE security of tcp endpoints: key pairs, the client allow-list, socket configuration.

ZeroMQ's CurveZMQ with a ZAP handler (pyzmq's ThreadAuthenticator) that
accepts only client public keys found in an allow-list directory of
``NAME.key`` files. An unlisted client completes no handshake, so it gets
nothing; it is logged at WARNING and counted. ipc and inproc endpoints carry
no CURVE: their protection is the owner-only directory (bus/endpoints.py).
Secret keys are never logged.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from posbus.bus.endpoints import is_tcp, prepare_ipc_dir
from posbus.bus.errors import BusSecurityError

_log = logging.getLogger(__name__)

#: The ZAP domain posbus sockets authenticate in.
ZAP_DOMAIN = "posbus"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair in z85 text (40 bytes each); `secret` is None for a public-only key."""

    public: bytes
    secret: bytes | None

    def __repr__(self) -> str:
        # Never print a secret key, not even in a traceback.
        return f"KeyPair(public={self.public!r}, secret={'<hidden>' if self.secret else None})"


@dataclass(frozen=True, slots=True)
class CurveServer:
    """What a binding socket needs: its key pair and the directory of allowed client keys."""

    keys: KeyPair
    allowed_clients: Path


@dataclass(frozen=True, slots=True)
class CurveClient:
    """What a connecting socket needs: its own key pair and the server's public key."""

    keys: KeyPair
    server_public: bytes


def generate_keypair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret (0600) into `directory` (made 0700).

    The files are in zmq.auth's certificate format. Refuses to overwrite an
    existing pair (BusSecurityError): replacing a key locks clients out.
    """
    if not name or "/" in name or name.startswith("."):
        raise BusSecurityError(f"bad key name {name!r}")
    directory = prepare_ipc_dir(Path(directory))
    public_file = directory / f"{name}.key"
    secret_file = directory / f"{name}.key_secret"
    if public_file.exists() or secret_file.exists():
        raise BusSecurityError(f"key pair {name!r} already exists in {directory}")
    # The secret is written under a 0077 umask so it is never world-readable,
    # not even for the instant before the chmod.
    old_umask = os.umask(0o077)
    try:
        public_path, secret_path = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old_umask)
    Path(secret_path).chmod(0o600)
    Path(public_path).chmod(0o644)
    return Path(public_path), Path(secret_path)


def load_keypair(secret_file: Path) -> KeyPair:
    """The key pair in a NAME.key_secret file; BusSecurityError if unreadable or unsafe."""
    mode = Path(secret_file).stat().st_mode & 0o077
    if mode:
        raise BusSecurityError(f"{secret_file}: secret key readable by others (mode {mode:o})")
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise BusSecurityError(f"{secret_file}: cannot load key pair: {exc}") from exc
    if secret is None:
        raise BusSecurityError(f"{secret_file}: no secret key in file")
    return KeyPair(public=public, secret=secret)


def load_public_key(public_file: Path) -> bytes:
    """The public key in a NAME.key (or NAME.key_secret) file."""
    try:
        public, _ = zmq.auth.load_certificate(str(public_file))
    except (OSError, ValueError) as exc:
        raise BusSecurityError(f"{public_file}: cannot load public key: {exc}") from exc
    return public


class AllowList:
    """The ZAP handler of one process: accepts CURVE clients whose public key is listed.

    Runs pyzmq's ThreadAuthenticator (its own thread, inproc ZAP socket) with
    a credentials callback; `start`/`stop` from the owner thread. `denied`
    and `allowed` count handshakes; each denial is logged at WARNING with the
    client's public key.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        allowed_clients: Path,
        *,
        log: logging.Logger | None = None,
    ) -> None:
        self._context = context
        self._dir = Path(allowed_clients)
        self.directory = self._dir
        self._log = log or _log
        self._lock = threading.Lock()
        self._keys: frozenset[bytes] = frozenset()
        self._auth: ThreadAuthenticator | None = None
        self.denied = 0
        self.allowed = 0

    def reload(self) -> None:
        """Re-read the allow-list directory (keys added or removed take effect at once)."""
        if not self._dir.is_dir():
            raise BusSecurityError(f"allow-list directory {self._dir} does not exist")
        keys = frozenset(zmq.auth.load_certificates(str(self._dir)))
        with self._lock:
            self._keys = keys

    def start(self) -> None:
        """Load the directory and start the authenticator thread."""
        self.reload()
        auth = ThreadAuthenticator(self._context, log=self._log)
        auth.start()
        auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self)
        self._auth = auth

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP credentials check (the authenticator thread): is `key` (z85) listed?"""
        with self._lock:
            ok = key in self._keys
        if ok:
            self.allowed += 1
        else:
            self.denied += 1
            self._log.warning(
                "curve client denied",
                extra={"client_key": key.decode("ascii", "replace"), "domain": domain},
            )
        return ok

    def stop(self) -> None:
        """Stop the authenticator thread (idempotent)."""
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


_shared_lock = threading.Lock()
# One ZAP handler per context (ZeroMQ binds inproc://zeromq.zap.01 per context).
_shared: dict[int, tuple[AllowList, int]] = {}


def acquire_allow_list(context: zmq.Context[zmq.Socket[bytes]], allowed_clients: Path) -> AllowList:
    """The context's started AllowList, shared by every CURVE server in it; release when done.

    Raises BusSecurityError if the context already has one for another directory.
    """
    with _shared_lock:
        entry = _shared.get(id(context))
        if entry is not None:
            allow, count = entry
            if allow.directory != Path(allowed_clients):
                raise BusSecurityError(
                    f"this context already authenticates against {allow.directory}, "
                    f"not {allowed_clients}"
                )
            _shared[id(context)] = (allow, count + 1)
            return allow
        allow = AllowList(context, allowed_clients)
        allow.start()
        _shared[id(context)] = (allow, 1)
        return allow


def release_allow_list(context: zmq.Context[zmq.Socket[bytes]]) -> None:
    """Drop one use of the context's AllowList; the last release stops it."""
    with _shared_lock:
        entry = _shared.get(id(context))
        if entry is None:
            return
        allow, count = entry
        if count > 1:
            _shared[id(context)] = (allow, count - 1)
            return
        del _shared[id(context)]
    allow.stop()


def secure_server(socket: zmq.Socket[bytes], endpoint: str, curve: CurveServer | None) -> None:
    """Make `socket` a CURVE server when `endpoint` is tcp; refuse plaintext tcp."""
    if not is_tcp(endpoint):
        return
    if curve is None or curve.keys.secret is None:
        raise BusSecurityError(f"{endpoint}: tcp endpoints need CURVE server keys")
    socket.curve_secretkey = curve.keys.secret
    socket.curve_publickey = curve.keys.public
    socket.curve_server = True
    socket.zap_domain = ZAP_DOMAIN.encode()


def secure_client(socket: zmq.Socket[bytes], endpoint: str, curve: CurveClient | None) -> None:
    """Make `socket` a CURVE client of the server key when `endpoint` is tcp; refuse plaintext."""
    if not is_tcp(endpoint):
        return
    if curve is None or curve.keys.secret is None:
        raise BusSecurityError(f"{endpoint}: tcp endpoints need CURVE client keys")
    socket.curve_secretkey = curve.keys.secret
    socket.curve_publickey = curve.keys.public
    socket.curve_serverkey = curve.server_public
