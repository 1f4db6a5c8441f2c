"""Frames of the command path (a Majordomo-like protocol, after the ZeroMQ guide).

Client DEALER -> broker ROUTER: ``[CLIENT_PROTOCOL, service, command envelope]``
and back ``[CLIENT_PROTOCOL, service, reply envelope]``. Worker DEALER <->
broker ROUTER: ``[WORKER_PROTOCOL, type, ...]`` with the types below.
docs/bus.md has the full table. Constants and small pure helpers only.
"""

from __future__ import annotations

import uuid

CLIENT_PROTOCOL = b"PBC1"
WORKER_PROTOCOL = b"PBW1"

READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

#: The service the broker answers itself.
BROKER_SERVICE = "broker"
#: request_id of an error reply to a command whose own id could not be read.
UNKNOWN_REQUEST_ID = "unknown"


def new_request_id() -> str:
    """A fresh, unique request id (uuid4 hex)."""
    return uuid.uuid4().hex
