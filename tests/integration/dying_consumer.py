"""A handler module for a test worker that dies between taking a message and claiming its item.

``swarm worker --handlers workers.demo,tests.integration.dying_consumer`` with
``SWARM_TEST_DIE_AT`` set wraps kombu's Redis ``QoS.append`` (which writes the ``unacked`` copy
of a message the consumer has just popped) so that, for the first ``swarm.execute`` message this
namespace's workers take, the process kills itself with SIGKILL:

- ``pop``: before the ``unacked`` copy is written: the message is gone from Redis altogether;
- ``unacked``: just after it: the message is parked in ``unacked`` until the visibility timeout.

Either way the item was never claimed. "First" is decided by ``SET NX`` on a marker key (which
records the message's work id), so exactly one process dies, once. This is the real kombu code
path with a real SIGKILL at a chosen point, which a timing-based kill can hit only by luck.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from swarm.celery_app import EXECUTE_TASK

DIE_AT = os.environ.get("SWARM_TEST_DIE_AT", "")
MARKER = "{" + os.environ.get("SWARM_KEY_PREFIX", "swarm") + "}:test:died"

_append = kombu_redis.QoS.append


def _should_die(message: Any) -> bool:
    """True for the first execute message of the namespace; the marker records its work id."""
    if message.headers.get("task") != EXECUTE_TASK:
        return False
    work_id = str(message.decode()[0][0])
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        return bool(client.set(MARKER, work_id, nx=True))


def _dying_append(self: Any, message: Any, delivery_tag: Any) -> Any:
    if DIE_AT == "unacked":
        result = _append(self, message, delivery_tag)
        if _should_die(message):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    if DIE_AT == "pop" and _should_die(message):
        os.kill(os.getpid(), signal.SIGKILL)
    return _append(self, message, delivery_tag)


if DIE_AT:
    kombu_redis.QoS.append = _dying_append
