"""A CommandClient numbers its requests consecutively; a re-send keeps its request's seq."""

from __future__ import annotations

import threading

import zmq

from posbus.bus.client import CommandClient
from posbus.bus.codec import decode, encode
from posbus.bus.messages import Command, Reply


def _broker_stand_in(router: zmq.Socket[bytes], seen: list[tuple[str, int]]) -> None:
    """Answer every request but the first sending of `first`; stop after `third`."""
    while True:
        client_id, _, _, frame = router.recv_multipart()
        envelope = decode(frame)
        command = envelope.message
        assert isinstance(command, Command)
        seen.append((command.request_id, envelope.seq))
        if seen == [("first", envelope.seq)]:
            continue  # lost: the client re-sends it
        reply = encode(Reply.success(command.request_id, {}), seq=len(seen), sender="b", ts_ns=1)
        router.send_multipart([client_id, b"PBC1", b"svc", reply])
        if command.request_id == "third":
            return


def test_requests_carry_consecutive_seqs_and_a_resend_repeats_its_seq() -> None:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://seq-test")
    seen: list[tuple[str, int]] = []
    stand_in = threading.Thread(target=_broker_stand_in, args=(router, seen))
    stand_in.start()
    client = CommandClient(ctx, "inproc://seq-test", sender="seq-test")
    client.request("svc", Command("a", {}, "first"), timeout=0.2, idempotent=True, retries=50)
    client.request("svc", Command("b", {}, "second"), timeout=60)
    client.request("svc", Command("c", {}, "third"), timeout=60)
    stand_in.join()
    client.close()
    router.close()
    ctx.term()
    assert seen.count(("first", 1)) >= 2
    assert dict(seen) == {"first": 1, "second": 2, "third": 3}
