"""kombu's Redis transport, with a channel that a Redis restart cannot turn into a worker crash.

The cause (kombu 5.7, ``kombu/transport/redis.py``): when the broker connection drops while a
worker holds delivered, unacknowledged (acks-late) messages *and* has a ``BRPOP`` in flight
(a free slot), Celery's ``on_connection_error_after_connected`` closes the connection twice:

1. ``Connection.collect()`` closes the channel. ``Channel.close`` first drains the pending
   ``BRPOP`` (``_brpop_read``), whose dead socket raises ``ConnectionError``: the close stops
   there, before the virtual close that marks the channel closed and restores its unacked
   messages. kombu swallows the error and drops the transport's ``client`` (``None``).
2. ``Connection.close()`` closes the same channel again. Now nothing is in flight, so the close
   gets as far as ``QoS.restore_unacked_once``, which builds a new pool from
   ``self.connection.client``, which is ``None``: ``AttributeError`` on ``hostname``. Celery
   treats it as unrecoverable and the worker exits.

This channel removes both halves: a ``BRPOP`` whose connection died has nothing to drain, so
``close`` goes on to finish (the channel is closed once, its unacked messages stay in Redis's
unacked hash, where the visibility-timeout sweep restores them if nobody acks them); and a
channel whose transport is closed reports a *connection* error when asked for a new pool
(e.g. to ack a task that finishes after the reconnect), which every kombu and Celery caller
already handles, instead of an ``AttributeError`` that none does.

A worker's app selects it (``transport_for``, ``workers/guard.py: install``) for ``redis://`` and
``rediss://`` URLs, by the alias ``swarm-redis`` this module adds to kombu's transport names (so
that Celery's log lines show ``swarm-redis://host:port/db``, not an import path). Only consumers
hold unacked messages; producers and Flower (whose broker page knows ``redis://`` URLs only)
keep kombu's own.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "swarm-redis"  # the ``broker_transport`` setting's value, and the scheme logs show
log = logging.getLogger(__name__)


class ChannelConnectionClosed(RedisConnectionError):
    """A closed channel was asked for a Redis connection (a connection error, as kombu expects)."""


# kombu-stubs type little of the Redis channel (no ``_brpop_read``, ``_connparams``, ...).
_KombuRedisChannel: Any = kombu_redis.Channel


class Channel(_KombuRedisChannel):  # type: ignore[misc]
    """kombu's Redis channel; closing it on a dead connection completes, and never crashes."""

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors as exc:  # the BRPOP's socket is gone: nothing to drain
                log.debug("broker channel closed with its BRPOP lost: %r", exc)
        super().close()

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise ChannelConnectionClosed("the broker channel's connection is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport on the guarded channel."""

    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """The ``broker_transport`` setting for a worker on ``broker_url``: this transport for Redis
    URLs, kombu's choice (None) for any other."""
    return TRANSPORT if broker_url.partition("://")[0] in ("redis", "rediss") else None


TRANSPORT_ALIASES.setdefault(TRANSPORT, f"{__name__}:Transport")
