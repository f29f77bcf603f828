"""Warm shutdown: the items in hand get a grace period to finish, then go back to the queue.

On SIGTERM Celery stops taking work and waits for the running tasks. The worker's main process
also starts a timer; if tasks are still running when ``shutdown_grace_seconds`` is up, it
releases every item held by an agent of its node (fenced, so nothing they write later counts)
and the dispatch sweep of any worker sends them again at once. A handler learns of it at its
next heartbeat (``ctx.lease_lost``) and should stop. This works for every pool: prefork
children's agents carry the same node name as the main process.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import structlog

from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.models import Status

SHUTDOWN_LOGGER = "swarm.shutdown"
# Its stdlib logger exists before any signal arrives: the warm-shutdown line is logged from
# Celery's SIGTERM handler, which may interrupt the main thread inside logging's own iteration
# of its logger registry (redis-py sets a logger's level on each new PubSub, and that walks every
# logger); creating a logger there changed the registry mid-walk, and the worker died with
# "dictionary changed size during iteration" instead of shutting down warmly.
logging.getLogger(SHUTDOWN_LOGGER)
log = structlog.get_logger(SHUTDOWN_LOGGER)

HELD_SCAN_LIMIT = 100_000  # held items looked at when a node releases its own


def release_node_items(ledger: Ledger, node: str) -> list[str]:
    """Releases the items that agents of ``node`` hold; returns their ids."""
    agents = {a.id for a in ledger.agents() if a.node == node}
    released: list[str] = []
    for status in (Status.CLAIMED, Status.IN_PROGRESS):
        for item in ledger.list(status, limit=HELD_SCAN_LIMIT):
            if item.agent_id in agents and item.agent_id is not None:
                with contextlib.suppress(SwarmError):  # finished or lost meanwhile: nothing to give back
                    ledger.release(item.id, item.agent_id, fence=item.fence)
                    released.append(item.id)
    return released


class GraceTimer:
    """Releases the node's items if the worker is still busy when the grace period is up."""

    def __init__(self, ledger: Ledger, node: str, grace_seconds: float) -> None:
        self.ledger = ledger
        self.node = node
        self.grace_seconds = grace_seconds
        self._thread = threading.Timer(grace_seconds, self._expire)
        self._thread.daemon = True  # the worker exits as soon as its tasks are done

    def start(self) -> None:
        log.info("warm_shutdown", node=self.node, grace_seconds=self.grace_seconds)
        self._thread.start()

    def cancel(self) -> None:
        self._thread.cancel()

    def _expire(self) -> None:
        try:
            released = release_node_items(self.ledger, self.node)
        except SwarmError as exc:  # Redis down: the lease reaper returns them instead
            log.warning("grace_release_failed", node=self.node, reason=str(exc))
            return
        log.warning("grace_expired", node=self.node, released=released)
