"""The Celery app factory: one app per settings, the same transport options for producers and workers.

Each key prefix is a namespace of its own on the broker too: kombu prefixes every Redis key and
channel it uses with ``Keys.broker_prefix`` (``global_keyprefix``), and task events and remote
control use exchanges named after the prefix.

Work is routed to one queue per role and priority (``<prefix>.<role>.<priority>``). A worker
consumes its role's queues with kombu's ``priority`` queue order, so its BRPOP always looks at
``critical`` first: Celery's own Redis priority emulation is unreliable (celery issue 8967).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import Celery
from kombu import Exchange, Queue

from swarm.keys import Keys
from swarm.models import Priority, Role
from swarm.settings import Settings
from swarm.task_routes import ExecuteRouter

if TYPE_CHECKING:
    from celery.apps.beat import Beat

EXECUTE_TASK = "swarm.execute"  # the name Flower shows; args are (work_id, type, role)
CEREMONY_TASK = "swarm.ceremony"  # args (name, period key); scheduled by beat
IMPROVE_TASK = "swarm.improve"  # one self-improvement cycle; scheduled by beat
REAP_TASK = "swarm.reap"  # one lease-reaper pass (beat runs it in its own process)
UNACKED_RESTORE_INTERVAL_S = 5  # sweep for a dead worker's unacked messages every 5 s ...
UNACKED_RESTORE_THROTTLE = 1  # ... on every sweep (the defaults make it ~100 s)


def queue_name(settings: Settings, role: Role | str, priority: Priority | str) -> str:
    return f"{settings.key_prefix}.{Role(role).value}.{Priority(priority).value}"


def ceremonies_queue(settings: Settings) -> str:
    """The queue of the leader's work (ceremonies, improvement cycles); every role worker takes it."""
    return f"{settings.key_prefix}.ceremonies"


def role_queues(settings: Settings, role: Role | str) -> list[str]:
    """The role's queues, most urgent first: the order a worker consumes them in."""
    return [queue_name(settings, role, p) for p in Priority]


def _queue(name: str) -> Queue:
    """A queue with its own direct exchange, so that routing to it by name lands there."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def events_exchange(settings: Settings) -> str:
    """The namespace's event exchange (Celery's ``event_exchange``): workers send their heartbeats
    and task events on it, and Flower and ``celery events`` on the swarm's app listen to it."""
    return f"{settings.key_prefix}.events"


def broker_transport_options(settings: Settings) -> dict[str, object]:
    return {
        # Every key and channel kombu names starts with the namespace's own prefix (its queue
        # lists, its ``unacked`` hash, its bindings, its event and remote-control channels), so
        # two namespaces on one Redis database never restore, consume or watch each other's.
        "global_keyprefix": Keys(settings.key_prefix).broker_prefix,
        "visibility_timeout": settings.visibility_timeout_seconds,
        "unacked_restore_interval": UNACKED_RESTORE_INTERVAL_S,
        "unacked_restore_throttle": UNACKED_RESTORE_THROTTLE,
        "queue_order_strategy": "priority",
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }


class SwarmCelery(Celery):
    """Celery, whose beat leaves its banner out of a JSON log (``swarm.celery_output``)."""

    @property
    def Beat(self) -> type[Beat]:
        from swarm.celery_output import LoggedBeat  # noqa: PLC0415 - beat's processes only

        return self.subclass_with_self(LoggedBeat)


def create_app(settings: Settings, broker_url: str) -> Celery:
    """A Celery app on ``broker_url`` with the swarm's delivery guarantees."""
    app = SwarmCelery("swarm", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],  # never pickle
        result_serializer="json",
        event_serializer="json",
        task_ignore_result=True,  # outcomes live in the ledger
        task_acks_late=True,  # a task is acknowledged only when it has run ...
        task_reject_on_worker_lost=True,  # ... and requeued if its worker dies mid-run
        worker_prefetch_multiplier=1,
        task_track_started=True,
        # Task events stay off, as in Celery: they cost about a third of a no-op task's
        # throughput. Flower switches them on at run time (its --enable_events, the default),
        # as does `celery control enable_events`.
        worker_send_task_events=False,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep reconnecting through a Redis restart
        task_queues=[
            *(_queue(queue_name(settings, r, p)) for r in Role for p in Priority),
            _queue(ceremonies_queue(settings)),
        ],
        task_routes=(
            # swarm.execute from any sender (.delay, send_task, Flower): its role's queue.
            ExecuteRouter(EXECUTE_TASK, lambda r, p: queue_name(settings, r, p), settings, broker_url),
            {
                name: {"queue": ceremonies_queue(settings), "routing_key": ceremonies_queue(settings)}
                for name in (CEREMONY_TASK, IMPROVE_TASK, REAP_TASK)
            },
        ),
        task_default_queue=queue_name(settings, Role.DEVELOPER, Priority.MEDIUM),
        # Remote control (inspect, pool_grow, ...) per namespace: two swarms sharing a Redis
        # (and node names like qa@host) never receive each other's commands.
        control_exchange=f"{settings.key_prefix}.control",
        event_exchange=events_exchange(settings),
    )
    return app
