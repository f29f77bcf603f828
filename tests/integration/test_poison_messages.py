"""Poison messages are dead-lettered, not fatal (issue 10, item 4).

A corpus of messages that are no well-formed swarm task call is published raw onto the queues of
a real prefork worker and a real threads worker (``kombu.Producer.publish``, outside Celery's
``send_task``), items that are no kombu message at all are pushed with a raw ``LPUSH``, and
broadcasts of that kind are published on the workers' remote-control channel. Each message must
be acknowledged (its queue and the namespace's kombu ``unacked`` hash end empty),
recorded exactly once (one ``dead_lettered`` event, one copy in the capped list, one count in the
metrics hash), the worker process must stay alive, and a valid item sent after the corpus must
complete. The test runs its own ``redis-server``.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection

from swarm import Settings, Status, Swarm, deadletters
from swarm.celery_app import EXECUTE_TASK, broker_transport_options, queue_name
from swarm.health import check_health
from swarm.keys import Keys
from swarm.ledger import Ledger
from swarm.metrics import exposition
from swarm.models import EventKind, Priority

from .polling import wait_until
from .workers_harness import EVENTS_READ, private_redis, running_worker

pytestmark = pytest.mark.integration

WORKERS = {"developer": "prefork", "qa": "threads"}  # role -> pool
DEADLINE_S = 90.0  # the whole corpus through two workers on a loaded 2-core machine
VALID_DEADLINE_S = 30.0  # a valid item after it: seconds when nothing stalls (two [1,2,3] bodies
# used to stall a -c 2 threads pool for over 60 s)
JSON = "application/json"
UNKNOWN_WORK_ID = "work_0000000000000000001_000000000000"


def _headers(task: Any = EXECUTE_TASK, **override: Any) -> dict[str, Any]:
    """Protocol-2 headers as Celery's ``send_task`` writes them."""
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {
        "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
        "root_id": task_id, "parent_id": None, "argsrepr": "()", "kwargsrepr": "{}",
        "origin": "poison-test", "ignore_result": True,
    }  # fmt: skip
    headers.update(override)
    return {k: v for k, v in headers.items() if v is not _MISSING}


_MISSING = object()
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def _call(args: Any, kwargs: Any = None, embed: Any = None) -> bytes:
    return json.dumps([args, {} if kwargs is None else kwargs, _EMBED if embed is None else embed]).encode()


def corpus(role: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, publish kwargs) of every poison message; each is dead-lettered exactly once."""
    good_args = [UNKNOWN_WORK_ID, "feature", role]
    yield "a JSON string body", {"body": b'"hello"', "headers": _headers()}
    yield "a null body", {"body": b"null", "headers": _headers()}
    yield "a one-key object body", {"body": b'{"args": 1}', "headers": _headers()}
    yield "a two-element body", {"body": json.dumps([good_args, {}]).encode(), "headers": _headers()}
    yield "[1,2,3] body (first)", {"body": b"[1,2,3]", "headers": _headers()}
    yield "[1,2,3] body (second)", {"body": b"[1,2,3]", "headers": _headers()}
    yield "a task header that is a list", {"body": _call(good_args), "headers": _headers(task=[EXECUTE_TASK])}
    yield "an id header that is a list", {"body": _call(good_args), "headers": _headers(id=["x", "y"])}
    yield "a garbage timelimit", {"body": _call(good_args), "headers": _headers(timelimit="garbage")}
    yield "a three-element timelimit", {"body": _call(good_args), "headers": _headers(timelimit=[1, 2, 3])}
    yield "a garbage eta", {"body": _call(good_args), "headers": _headers(eta="tomorrow")}
    yield "a string retries", {"body": _call(good_args), "headers": _headers(retries="many")}
    yield "no headers at all", {"body": _call(good_args), "headers": {}}
    yield "no id header", {"body": _call(good_args), "headers": _headers(id=_MISSING)}
    yield "non-JSON bytes", {"body": b"\xff\xfe\x00 not json {", "headers": _headers()}
    yield (
        "pickle",
        {
            "body": pickle.dumps(([UNKNOWN_WORK_ID, "feature", role], {}, _EMBED)),
            "headers": _headers(),
            "content_type": "application/x-python-serialize",
            "content_encoding": "binary",
        },
    )
    yield "a huge body", {"body": _call([*good_args[:2], role + " " * 2_000_000]), "headers": _headers()}
    yield "two args", {"body": _call(good_args[:2]), "headers": _headers()}
    yield "four args", {"body": _call([*good_args, "extra"]), "headers": _headers()}
    yield "args of wrong types", {"body": _call([1, 2, 3]), "headers": _headers()}
    yield "args not a list", {"body": _call("work"), "headers": _headers()}
    yield "a malformed work id", {"body": _call(["work_x", "feature", role]), "headers": _headers()}
    yield "an unknown role", {"body": _call([UNKNOWN_WORK_ID, "feature", "wizard"]), "headers": _headers()}
    yield "kwargs", {"body": _call(good_args, {"extra": 1}), "headers": _headers()}
    yield (
        "a callback",
        {"body": _call(good_args, embed={"callbacks": [{"task": "x"}]}), "headers": _headers()},
    )
    yield "an unknown task", {"body": _call([]), "headers": _headers(task="os.system")}
    yield "a reap with arguments", {"body": _call(["now"]), "headers": _headers(task="swarm.reap")}
    yield (
        "a compression kombu cannot undo",
        {"body": _call(good_args), "headers": _headers(compression="zlib")},
    )
    yield "a NaN timelimit", {"body": _call(good_args), "headers": _headers(timelimit=[float("nan"), None])}
    yield "huge headers", {"body": _call(good_args), "headers": _headers(argsrepr="x" * 100_000)}


def raw_items() -> list[bytes]:
    """Queue items that are no kombu message at all, pushed with a raw LPUSH."""
    tag = {"delivery_tag": "t1", "delivery_info": {"exchange": "x", "routing_key": "x"}}
    return [
        b"not json",
        b'"a string"',
        b"null",
        b"[1, 2]",
        b"{}",
        json.dumps({"body": "", "properties": {}}).encode(),
        json.dumps({"body": "", "properties": {"delivery_tag": ["t"], "delivery_info": {}}}).encode(),
        json.dumps({"body": 5, "headers": [], "properties": tag}).encode(),
        json.dumps({"body": "%%%", "properties": {**tag, "body_encoding": "base64"}}).encode(),
    ]


BROADCASTS = (
    b"{}",
    b'"x"',
    b"[]",
    b"not json",
    json.dumps({"properties": {"delivery_tag": 1}}).encode(),
    json.dumps({"__type__": "decimal", "__value__": "x"}).encode(),  # kombu's hook raises no ValueError
)


def broadcast_exchange(prefix: str) -> str:
    """The remote-control (pidbox) exchange every worker of the namespace listens on."""
    return f"{prefix}.control.pidbox"


def _publish(url: str, settings: Settings, queue: str, messages: list[dict[str, Any]]) -> None:
    """Publishes raw messages with kombu on the namespace's broker keys (the app's transport options)."""
    with Connection(url, transport_options=broker_transport_options(settings)) as conn:
        producer = conn.Producer()
        for message in messages:
            producer.publish(
                message["body"],
                exchange=queue,
                routing_key=queue,
                headers=message["headers"],
                content_type=message.get("content_type", JSON),
                content_encoding=message.get("content_encoding", "utf-8"),
            )


def _send_valid_calls(client: Swarm, url: str, queues: dict[str, str]) -> list[str]:
    """An item per role sent as usual, then for each a copy of its call that looks restored by
    kombu (``redelivered``) and a call for an item the ledger does not have (it stands in for its
    role): none of them is poison, so the dead-letter counts stay exact. Returns the items' ids."""
    valid = [client.submit("feature", f"after the corpus {role}", role=role).id for role in WORKERS]
    for role, work_id in zip(WORKERS, valid, strict=True):
        restored = {"body": _call([work_id, "feature", role]), "headers": _headers(redelivered=True)}
        unknown = {"body": _call([UNKNOWN_WORK_ID, "feature", role]), "headers": _headers()}
        _publish(url, client.ledger.settings, queues[role], [restored, unknown])
    return valid


def _assert_recorded_once_each(ledger: Ledger, expected: int, per_queue: dict[str, int]) -> Counter[str]:
    """One event, one count and one kept copy (in its queue's tally) per poison message; returns
    the kept copies' reasons."""
    events = [e for e in ledger.events(EVENTS_READ) if e.event is EventKind.DEAD_LETTERED]
    assert len(events) == expected, "one dead_lettered event per poison message"
    assert deadletters.total(ledger) == expected, "one count per poison message"
    assert _kept_per_queue(ledger) == per_queue
    return Counter(str(letter["reason"]) for letter in deadletters.recent(ledger, deadletters.KEPT))


def _kept_per_queue(ledger: Ledger) -> Counter[str | None]:
    return Counter(letter["queue"] for letter in deadletters.recent(ledger, deadletters.KEPT))


def test_every_poison_message_is_acked_recorded_once_and_no_worker_stops(prefix: str, tmp_path: Path) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    logs = {role: tmp_path / f"{role}.log" for role in WORKERS}
    queues = {role: queue_name(settings, role, Priority.MEDIUM) for role in WORKERS}
    keys = Keys(prefix)
    lists = [keys.broker_lists(q)[0] for q in queues.values()]
    sent = {role: list(corpus(role)) for role in WORKERS}
    pushed = raw_items()
    expected = sum(len(messages) + len(pushed) for messages in sent.values())
    with private_redis(tmp_path) as server:

        def worker(role: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
            return running_worker(server.url, prefix, role, logs[role], "-P", WORKERS[role], "-c", "2")

        with worker("developer") as dev, worker("qa") as qa:
            workers = {"developer": dev, "qa": qa}
            client = Swarm(server.url, agent_id="pm-1", settings=settings)
            raw = redis.Redis.from_url(server.url)
            for role, messages in sent.items():
                _publish(server.url, settings, queues[role], [kwargs for _, kwargs in messages])
                raw.lpush(keys.broker_lists(queues[role])[0], *pushed)
            # Broadcasts (remote control) that are no kombu message: every worker receives each one.
            broadcasts = sum(
                int(raw.publish(keys.broker_fanout(broadcast_exchange(prefix), 0), item))
                for item in BROADCASTS
            )
            assert broadcasts == len(WORKERS) * len(BROADCASTS), "each worker listens for broadcasts"
            expected += broadcasts

            def settled() -> bool:
                drained = all(raw.llen(q) == 0 for q in lists) and raw.hlen(keys.broker_unacked) == 0
                return drained and deadletters.total(client.ledger) >= expected

            def explain() -> str:
                names = {r: [n for n, _ in m] for r, m in sent.items()}
                return f"kept per queue {_kept_per_queue(client.ledger)}; sent {names}\n" + "\n".join(
                    f"--- {role}\n{log.read_text()[-6000:]}" for role, log in logs.items()
                )

            wait_until(
                lambda: settled() or any(p.poll() is not None for p in workers.values()),
                "every poison message to be dead-lettered",
                DEADLINE_S,
                explain=explain,
            )
            for role, proc in workers.items():
                assert proc.poll() is None, f"the {WORKERS[role]} worker stopped:\n{logs[role].read_text()}"

            valid = _send_valid_calls(client, server.url, queues)
            wait_until(
                lambda: all(client.ledger.get(wid).status is Status.COMPLETED for wid in valid),
                "a valid item sent after the corpus to complete",
                VALID_DEADLINE_S,
                explain=explain,
            )
            wait_until(settled, "the valid calls to be consumed", VALID_DEADLINE_S, explain=explain)
            for role, proc in workers.items():
                assert proc.poll() is None, f"the {WORKERS[role]} worker stopped:\n{logs[role].read_text()}"

            assert raw.hlen(keys.broker_unacked) == 0
            assert all(raw.llen(q) == 0 for q in lists)
            per_queue = {queues[role]: len(sent[role]) + len(pushed) for role in WORKERS}
            per_queue[broadcast_exchange(prefix)] = broadcasts
            reasons = _assert_recorded_once_each(client.ledger, expected, per_queue)
            assert reasons["content_type"] == len(WORKERS)  # pickle, refused unread
            assert reasons["too_large"] == 2 * len(WORKERS)  # a huge body, huge headers
            assert reasons["envelope"] == len(WORKERS) * len(pushed) + broadcasts

            health = check_health(client.ledger)
            assert not health.check("dead_letters").ok
            assert f"{expected} broker message(s) dead-lettered" in health.check("dead_letters").reason
            metrics = exposition(client.ledger)
            assert f'swarm_dead_letters_total{{reason="too_large"}} {float(2 * len(WORKERS))}' in metrics
            deadletters.acknowledge(client.ledger)
            assert check_health(client.ledger).check("dead_letters").ok
            raw.close()
            client.close()
