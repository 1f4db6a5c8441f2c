"""Fixtures shared by the journal tests: every backend, the same storage reopened.

`journal_backend` is parametrized over memory, SQLite and MongoDB, so a test
that takes it runs against each backend and the backends cannot drift apart;
`durable_backend` covers SQLite and MongoDB only (tests of what only real
storage has: reopening a file, a second process writing). The MongoDB server
comes from POSBUS_TEST_MONGODB_URI or is started for the session
(tests/support/journal_backends.py); without one the MongoDB tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from journal_backends import (
    BACKENDS,
    DURABLE_BACKENDS,
    Backend,
    MongoServer,
    drop_mongodb,
    memory_backend,
    mongodb_backend,
    sqlite_backend,
)


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[MongoServer]:
    """The MongoDB server of this test session (started here if none was given)."""
    server = MongoServer()
    try:
        yield server
    finally:
        server.stop()


def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if name == "memory":
        backend = memory_backend()
    elif name == "sqlite":
        backend = sqlite_backend(tmp_path / "journal.sqlite")
    else:
        server: MongoServer = request.getfixturevalue("mongodb_server")
        backend = mongodb_backend(server.uri)
    try:
        yield backend
    finally:
        backend.close_all()
        if name == "mongodb":
            drop_mongodb(backend)


@pytest.fixture(params=BACKENDS)
def journal_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each journal backend in turn; every journal it opened is closed afterwards."""
    yield from _backend(request.param, request, tmp_path)


@pytest.fixture(params=DURABLE_BACKENDS)
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite and MongoDB in turn."""
    yield from _backend(request.param, request, tmp_path)


@pytest.fixture
def mongo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The MongoDB backend alone, on a database of its own, dropped afterwards."""
    yield from _backend("mongodb", request, tmp_path)
