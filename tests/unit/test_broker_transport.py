"""The guarded Redis transport's envelope check (``swarm/broker_transport.py``): every message
kombu writes is delivered; a queue item that is no kombu message is not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from swarm.broker_transport import TRANSPORT, envelope, transport_for


def _kombu_item(body: Any, **publish: Any) -> bytes:
    """A queue item exactly as kombu's virtual transports write it."""
    with Connection("memory://") as conn:
        queue = Queue("q", Exchange("q", type="direct"), routing_key="q")
        conn.Producer().publish(body, exchange=queue.exchange, routing_key="q", declare=[queue], **publish)
        channel: Any = conn.default_channel  # kombu's virtual channel: its stored item, as is
        return json.dumps(channel._get("q")).encode()


@pytest.mark.parametrize(
    "publish",
    [
        {"body": [["work_1_a", "feature", "qa"], {}, {}], "serializer": "json", "headers": {"task": "x"}},
        {"body": b"\xff\x00 raw bytes", "content_type": "application/data", "content_encoding": "binary"},
        {"body": "", "serializer": "json"},
    ],
)
def test_every_item_kombu_writes_is_a_message(publish: dict[str, Any]) -> None:
    item = _kombu_item(**publish)
    assert envelope(item) == json.loads(item)


TAG = {"delivery_tag": "t", "delivery_info": {"exchange": "q", "routing_key": "q"}}


@pytest.mark.parametrize(
    "item",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps({"properties": {"__type__": "datetime", "__value__": "garbage"}}).encode(),
        json.dumps({"properties": {"__type__": "no such type", "__value__": 1}}).encode(),
        b'"a string"',
        b"null",
        b"[1, 2]",
        b"{}",
        json.dumps({"body": "", "properties": {}}).encode(),
        json.dumps({"properties": {**TAG, "delivery_tag": ["t"]}}).encode(),
        json.dumps({"properties": {**TAG, "delivery_info": {"exchange": "q"}}}).encode(),
        json.dumps({"body": 5, "properties": TAG}).encode(),
        json.dumps({"headers": ["x"], "properties": TAG}).encode(),
        json.dumps({"content-type": 3, "properties": TAG}).encode(),
        json.dumps({"body": "%%%", "properties": {**TAG, "body_encoding": "base64"}}).encode(),
        json.dumps({"body": "x", "properties": {**TAG, "body_encoding": "rot13"}}).encode(),
    ],
)
def test_an_item_that_is_no_kombu_message_is_named_as_such(item: bytes) -> None:
    assert isinstance(envelope(item), str)


def test_workers_use_the_guarded_transport_on_redis_urls_only() -> None:
    assert transport_for("redis://127.0.0.1:6379/0") == TRANSPORT
    assert transport_for("rediss://u:p@redis.internal:6380/0?ssl_cert_reqs=required") == TRANSPORT
    assert transport_for("memory://") is None
