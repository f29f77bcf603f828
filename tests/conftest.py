"""Shared fixtures: a real Redis for integration tests, fakeredis for unit tests.

The real Redis is ``REDIS_URL`` when set, else 127.0.0.1:6379 when it answers, else the
project's embedded default, in a database of the tests' own (``tests/redis_db.py``). Every test
gets its own key prefix too, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from swarm.ledger import Ledger
from swarm.settings import Settings

from .redis_db import RefusedDatabase, claim_database, database_for, test_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The real Redis every integration test uses, in a database of the tests' own."""
    with test_server() as server:
        try:
            # pytest-xdist names its workers gw0, gw1, ...: each has a database of its own.
            url = claim_database(server, database_for(os.environ.get("PYTEST_XDIST_WORKER", "")))
        except RefusedDatabase as exc:
            pytest.exit(f"integration tests refused: {exc}", returncode=4)
        yield url


def _drop_namespace(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def settings(prefix: str) -> Settings:
    return Settings(key_prefix=prefix, redis_url=None)


@pytest.fixture
def real_redis(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    with contextlib.suppress(redis.exceptions.RedisError):
        _drop_namespace(client, prefix)
    client.close()


@pytest.fixture
def ledger(real_redis: redis.Redis, settings: Settings) -> Ledger:
    """A ledger on the real Redis, in this test's own namespace."""
    return Ledger(real_redis, settings)


@pytest.fixture
def fake_ledger(settings: Settings) -> Ledger:
    """A ledger on fakeredis (with Lua), for fast unit tests."""
    server = fakeredis.FakeServer()
    return Ledger(fakeredis.FakeRedis(server=server, decode_responses=True), settings)
