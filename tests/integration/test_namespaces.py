"""Two key prefixes on one Redis database are two swarms on the broker too (issue 12, item 11).

Namespace A runs a worker with the default visibility timeout; namespace B, on the same
database, a worker whose visibility timeout is a few seconds. Each has an item running, its
message delivered and unacknowledged. B's restore sweep puts B's own message back on B's queue
(kombu marks it ``redelivered``), and never touches A's: A's queue stays empty and A's message
stays in A's own ``unacked`` hash. Each namespace's event receiver hears only its own worker's
heartbeats, and its remote control reaches only its own worker.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery

from swarm import Settings, Status, Swarm
from swarm.celery_app import create_app, role_queues
from swarm.keys import Keys

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0  # a cold worker, a delivery and a restore sweep (every 5 s) on a loaded machine
ITEM_S = 300.0  # both items run until the test stops their workers
SHORT_LEASE_S = 2.0
SHORT_VISIBILITY_S = 3.0  # B redelivers its own unacked messages after this
OWN_HEARTBEATS = 3  # worker heartbeats (every 2 s) each receiver hears from its own worker
RUNNING = (Status.CLAIMED, Status.IN_PROGRESS)
FAST_STOP = {"SWARM_SHUTDOWN_GRACE_SECONDS": "1"}


def _lists(keys: Keys, settings: Settings) -> list[str]:
    return [key for queue in role_queues(settings, "qa") for key in keys.broker_lists(queue)]


@contextmanager
def heard_events(app: Celery) -> Iterator[list[str]]:
    """The hostnames of the events an event receiver on ``app`` hears, in order, while open."""
    heard: list[str] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": lambda event: heard.append(event["hostname"])})
        thread = threading.Thread(target=lambda: receiver.capture(limit=None, wakeup=False), daemon=True)
        thread.start()
        try:
            yield heard
        finally:
            receiver.should_stop = True
            thread.join(10)


def test_two_prefixes_on_one_database_never_restore_or_see_each_others_messages_and_workers(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    prefix_a, prefix_b = f"{prefix}a", f"{prefix}b"
    settings_a = Settings(key_prefix=prefix_a, redis_url=None)
    settings_b = Settings(
        key_prefix=prefix_b,
        redis_url=None,
        lease_seconds=SHORT_LEASE_S,
        visibility_timeout_seconds=SHORT_VISIBILITY_S,
    )
    keys_a, keys_b = Keys(prefix_a), Keys(prefix_b)
    client_a = Swarm(redis_url, agent_id="pm-a", settings=settings_a)
    client_b = Swarm(redis_url, agent_id="pm-b", settings=settings_b)
    raw = client_a.ledger.client
    host = socket.gethostname()
    node_a, node_b = f"a-{prefix_a}@{host}", f"b-{prefix_b}@{host}"
    app_a, app_b = create_app(settings_a, redis_url), create_app(settings_b, redis_url)
    env_b = {
        **FAST_STOP,
        "SWARM_LEASE_SECONDS": str(SHORT_LEASE_S),
        "SWARM_VISIBILITY_TIMEOUT_SECONDS": str(SHORT_VISIBILITY_S),
    }
    with (
        heard_events(app_a) as heard_a,
        heard_events(app_b) as heard_b,
        running_worker(redis_url, prefix_a, "qa", tmp_path / "a.log", "-c", "1", env=FAST_STOP),
    ):
        item_a = client_a.submit("review", "A's long item", role="qa", payload={"duration_s": ITEM_S})
        wait_until(
            lambda: client_a.get(item_a.id).status in RUNNING and raw.hlen(keys_a.broker_unacked) == 1,
            "A's item to run, its message unacknowledged in A's own hash",
            DEADLINE_S,
        )
        with running_worker(redis_url, prefix_b, "qa", tmp_path / "b.log", "-c", "1", env=env_b):
            item_b = client_b.submit("review", "B's long item", role="qa", payload={"duration_s": ITEM_S})
            wait_until(
                lambda: client_b.get(item_b.id).status in RUNNING,
                "B's item to run",
                DEADLINE_S,
            )

            def restored_by_b() -> bool:
                queued = [raw.lrange(key, 0, -1) for key in _lists(keys_b, settings_b)]
                return any(
                    json.loads(m)["headers"].get("redelivered") for messages in queued for m in messages
                )

            # B's sweep restores B's own message once it is older than B's visibility timeout;
            # A's message, delivered earlier, is older still: the same sweep would take it.
            wait_until(restored_by_b, "B's sweep to put B's own unacknowledged message back", DEADLINE_S)
            assert sum(raw.llen(key) for key in _lists(keys_a, settings_a)) == 0, "A's message was restored"
            assert raw.hlen(keys_a.broker_unacked) == 1, "A's message is still A's, delivered once"
            assert client_a.get(item_a.id).attempts == 0

            # Remote control: each namespace's ping reaches its own worker only.
            def pinged(app: Celery, own: str) -> set[str]:
                replies = app.control.ping(timeout=1.0)
                names = {name for reply in replies for name in reply}
                assert names <= {own}, f"a foreign worker answered: {names}"
                return names

            wait_until(lambda: node_a in pinged(app_a, node_a), "A's worker to answer A's ping", DEADLINE_S)
            wait_until(lambda: node_b in pinged(app_b, node_b), "B's worker to answer B's ping", DEADLINE_S)

            # Events: with both workers sending heartbeats, each receiver hears its own only.
            start_a, start_b = len(heard_a), len(heard_b)
            wait_until(
                lambda: (
                    heard_a[start_a:].count(node_a) >= OWN_HEARTBEATS
                    and heard_b[start_b:].count(node_b) >= OWN_HEARTBEATS
                ),
                f"each receiver to hear {OWN_HEARTBEATS} heartbeats of its own worker",
                DEADLINE_S,
                explain=lambda: f"A heard {heard_a}, B heard {heard_b}",
            )
            assert set(heard_a) == {node_a}, heard_a
            assert set(heard_b) == {node_b}, heard_b
    for client in (client_a, client_b):
        namespace = list(raw.scan_iter(match=client.ledger.keys.tag + "*", count=1000))
        if namespace:
            raw.delete(*namespace)
        client.close()
