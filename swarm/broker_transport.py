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
channel whose transport is closed reports a *connection* error when asked for a new pool (e.g.
to ack a task that finishes after the reconnect), which every kombu and Celery caller already
handles, instead of an ``AttributeError`` that none does. Nothing of a closed channel stays open
either: its close goes past the auto-delete fanout binding it cannot delete on a lost connection
(kombu's stops there, keeping its sockets; Celery's Gossip step then logs an ``AttributeError``),
and the pool its close built to restore its messages, which acks tasks that finish after the
reconnect, is disconnected after each (kombu's keeps one socket per restart in CLOSE-WAIT).

A queue can also hold an item that is no kombu message at all (a raw ``LPUSH``: not JSON, not an
object, no ``properties``, no ``delivery_tag``): kombu parses it inside ``_brpop_read`` and the
exception stops the worker; a broadcast (remote control) message of that kind does the same.
This channel checks the envelope of each popped item and each broadcast (``envelope``) and hands
one that is no message, already off the queue, to the process's undeliverable handler
(``on_undeliverable``; a worker's records a dead letter) instead of delivering it.

A worker's app selects it (``transport_for``, ``workers/guard.py: install``) for ``redis://`` and
``rediss://`` URLs, by the alias ``swarm-redis`` this module adds to kombu's transport names (so
that Celery's log lines show ``swarm-redis://host:port/db``, not an import path). Only consumers
hold unacked messages; producers and Flower (whose broker page knows ``redis://`` URLs only)
keep kombu's own.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "swarm-redis"  # the ``broker_transport`` setting's value, and the scheme logs show
log = logging.getLogger(__name__)


Undeliverable = Callable[[str, bytes, str], None]  # (queue, the item as popped, what is wrong)


def _log_undeliverable(queue: str, item: bytes, why: str) -> None:
    log.error("dropped an item of %s that is no kombu message (%s): %r", queue, why, item[:1024])


_undeliverable: list[Undeliverable] = [_log_undeliverable]


def on_undeliverable(handler: Undeliverable) -> None:
    """Makes ``handler`` this process's taker of popped queue items that are no kombu message."""
    _undeliverable[:] = [handler]


def _is_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def envelope(item: bytes | str) -> dict[str, Any] | str:
    """The kombu message a queue item holds, or what is wrong with it: everything kombu's
    ``Message`` and the Redis ``QoS`` read from it, with the types they need."""
    try:
        payload = loads(bytes_to_str(item))  # kombu's own decoding (its typed objects included)
    except Exception as exc:  # its object hook raises what a type's decoder raises
        return f"not JSON kombu decodes: {type(exc).__name__}: {str(exc)[:200]}"
    return checked_envelope(payload)


def checked_envelope(payload: object) -> dict[str, Any] | str:
    """``payload`` (a decoded queue item or fanout message) if it is a kombu message, else what is
    wrong with it."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no properties object"
    tag, info = properties.get("delivery_tag"), properties.get("delivery_info")
    if not (isinstance(tag, str) and tag):
        return "no delivery_tag string"
    if not (
        isinstance(info, dict)
        and isinstance(info.get("exchange"), str)
        and isinstance(info.get("routing_key"), str)
    ):
        return "no delivery_info with an exchange and a routing_key"
    if not all(_is_text(payload.get(k)) for k in ("body", "content-type", "content-encoding")):
        return "a body, content-type or content-encoding that is not a string"
    if not isinstance(payload.get("headers") or {}, dict):
        return "headers that are not an object"
    encoding = properties.get("body_encoding")
    if encoding == "base64" and payload.get("body"):
        try:
            base64.b64decode(payload["body"], validate=True)
        except (binascii.Error, ValueError):
            return "a body that is not base64"
    elif encoding not in (None, "utf-8", "base64"):
        return f"an unknown body_encoding {str(encoding)[:40]!r}"
    return payload


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

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        self._drop_connections_if_closed()

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        self._drop_connections_if_closed()

    def _drop_connections_if_closed(self) -> None:
        """A closed channel still acks what it delivered before a reconnect (tasks that finish
        later), on the pool its close built to restore them; it keeps no socket open after."""
        pool = self._pool
        if self.closed and pool is not None:
            pool.disconnect()

    def queue_delete(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        """While closing (an auto-delete fanout queue's binding), a lost connection does not stop
        the close halfway, leaving its pools and sockets open."""
        if not self._closing:
            return super().queue_delete(queue, *args, **kwargs)
        try:
            return super().queue_delete(queue, *args, **kwargs)
        except self.connection_errors as exc:
            log.debug("left the binding of %s behind on a lost connection: %r", queue, exc)
            return None

    def _brpop_read(self, **options: Any) -> bool:
        """kombu's ``Channel._brpop_read`` (5.7), delivering only items that are kombu messages."""
        try:
            try:
                dest_item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # if there's a ConnectionError, disconnect so the next iteration reconnects
                self.client.connection.disconnect()
                raise
            if not dest_item:
                raise Empty()
            dest, item = dest_item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = envelope(item)
            if isinstance(payload, str):
                self._undeliverable(dest, item if isinstance(item, bytes) else str(item).encode(), payload)
            else:
                self.connection._deliver(payload, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _receive_one(self, c: Any) -> bool | None:
        """kombu's ``Channel._receive_one`` (5.7), delivering only broadcasts that are kombu
        messages (kombu's own catches only some of what its JSON object hook raises)."""
        try:
            response = c.parse_response()
        except self.connection_errors:
            self._in_listen = None
            raise
        if not isinstance(response, list | tuple):
            return None
        payload = self._handle_message(c, response)
        if not bytes_to_str(payload["type"]).endswith("message") or not payload["data"]:
            return None
        channel = bytes_to_str(payload["channel"])
        if channel[0] == "/":
            _, _, channel = channel.partition(".")
        exchange = channel.split("/", 1)[0]
        message = envelope(payload["data"])
        if isinstance(message, str):
            data = payload["data"]
            self._undeliverable(exchange, data if isinstance(data, bytes) else str(data).encode(), message)
            return True
        delivered: bool = self._deliver_fanout_message(message, exchange)
        return delivered

    @staticmethod
    def _undeliverable(queue: str, item: bytes, why: str) -> None:
        for handler in _undeliverable:
            try:
                handler(queue, item, why)
            except Exception:  # a handler's failure must not stop the consumer either
                log.exception("the undeliverable-item handler failed")
                _log_undeliverable(queue, item, why)

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
