"""What only the MongoDB journal has: its index, and losing the connection mid-batch.

The connection is broken by a TCP proxy between the journal and the test
server (tests/support/tcp_proxy.py), so the server keeps running and the
tests decide exactly when the connection fails: after the server stored a
batch but before its reply arrived, or for a whole outage.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from journal_backends import Backend, MongoServer, fast_commit
from tcp_proxy import TcpProxy

from posbus.actors.journal import JournalUnavailable
from posbus.adapters.journal.mongodb import RECORDS, MongoJournal


@pytest.fixture
def proxy(mongodb_server: MongoServer) -> Iterator[TcpProxy]:
    tcp = TcpProxy(mongodb_server.port)
    try:
        yield tcp
    finally:
        tcp.close()


def through(proxy: TcpProxy, mongo: Backend, *, retry_writes: bool = True) -> MongoJournal:
    """A journal that reaches the server through the proxy, with quick failure detection."""
    uri = proxy.uri + ("" if retry_writes else "&retryWrites=false")
    journal = mongo.open(
        uri=uri,
        commit=fast_commit(),
        retry_max_time_s=30.0,
        server_selection_timeout_ms=300,
    )
    assert isinstance(journal, MongoJournal)
    return journal


def stored(mongo: Backend, stream: str) -> list[tuple[int, bytes]]:
    """(seq, payload) of every stored document of `stream`, duplicates included, by seq."""
    docs = mongo.raw[mongo.database][RECORDS].find({"stream": stream}).sort("seq", 1)
    return [(int(d["seq"]), bytes(d["payload"])) for d in docs]


def test_the_records_collection_has_a_unique_index_on_stream_and_seq(mongo: Backend) -> None:
    journal = mongo.open()
    assert journal.integrity_problems() == []  # type: ignore[attr-defined]
    index = mongo.raw[mongo.database][RECORDS].index_information()["stream_seq"]
    assert index["unique"] is True
    assert index["key"] == [("stream", 1), ("seq", 1)]


@pytest.mark.parametrize("retry_writes", [True, False], ids=["driver-retries", "journal-retries"])
def test_a_batch_whose_reply_is_lost_is_stored_once(
    mongo: Backend, proxy: TcpProxy, retry_writes: bool
) -> None:
    journal = through(proxy, mongo, retry_writes=retry_writes)
    journal.append("s", b"before")
    # The server stores the next batch, then the connection dies before its reply.
    proxy.drop_reply_after(b"insert")
    payloads = [f"r{n}".encode() for n in range(20)]
    records = journal.append_many("s", payloads)
    assert proxy.dropped.is_set()
    assert [r.seq for r in records] == list(range(2, 22))
    # Nothing lost, nothing doubled: exactly one document per seq.
    assert stored(mongo, "s") == [(1, b"before"), *((n + 2, p) for n, p in enumerate(payloads))]
    assert journal.append("s", b"after").seq == 22


def test_appends_during_an_outage_wait_and_land_once_it_is_over(
    mongo: Backend, proxy: TcpProxy
) -> None:
    journal = through(proxy, mongo, retry_writes=False)
    journal.append("s", b"r0")
    proxy.refuse(3)  # cut every connection; the next 3 attempts to reconnect fail too
    results: list[int] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            results.append(journal.append("s", f"w{n}".encode()).seq)
        except JournalUnavailable as exc:  # collected for the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for worker in workers:
        worker.start()
    assert proxy.refused.wait(timeout=30), "the journal never tried to reconnect"
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    assert sorted(results) == [2, 3, 4, 5, 6]
    docs = stored(mongo, "s")
    assert [seq for seq, _ in docs] == [1, 2, 3, 4, 5, 6]
    assert sorted(p for _, p in docs[1:]) == [b"w0", b"w1", b"w2", b"w3", b"w4"]


def test_a_server_that_never_comes_back_fails_the_append_as_unavailable(
    mongo: Backend, proxy: TcpProxy
) -> None:
    journal = mongo.open(
        uri=proxy.uri, commit=fast_commit(), retry_max_time_s=0.5, server_selection_timeout_ms=100
    )
    journal.append("s", b"r0")
    proxy.refuse(10**6)
    with pytest.raises(JournalUnavailable) as caught:
        journal.append("s", b"lost?")
    assert caught.value.transient
    proxy.refuse(0)
    # The failure renumbers from storage: the next append follows what is stored.
    assert journal.append("s", b"r1").seq == 2
    assert [p for _, p in stored(mongo, "s")] == [b"r0", b"r1"]
