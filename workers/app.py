"""The swarm's Celery app (``celery -A swarm …``, or ``-A workers.app``), built from the environment.

``swarm worker --role R`` sets REDIS_URL (or an embedded Redis), SWARM_WORKER_ROLE and
SWARM_HANDLER_MODULES, then runs a real ``celery worker`` on this app. ``celery -A swarm`` finds
it as ``swarm.app`` (imported on first use): worker, beat (the scheduler named here sets up the
swarm's schedule), inspect and control all work on it.

Observability (``swarm.tracing``, ``swarm.logs``): Celery's logging goes through swarm's
structlog formatter (JSON lines, or a console; in JSON the banner is left out and Celery's
shutdown messages are JSON lines too, ``swarm.celery_output``, so every line parses). With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, tracing starts at ``worker_init`` (the main
process sends the outbox sweep's messages; the threads pool runs tasks there) and again after
fork in each prefork child (``worker_process_init``: the SDK's batch processor restarts its
export thread in a forked child, Celery's instrumentation is checked). Spans are flushed when a
child exits (``worker_process_shutdown``: ``max_tasks_per_child`` loses none) and when the
worker stops. While an execute task runs, its log lines carry ``work_id``, ``role`` and
``agent_id``, Celery's own outcome line included.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any

from celery import Celery
from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    task_revoked,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from structlog.contextvars import bind_contextvars, reset_contextvars

from swarm import tracing
from swarm.calendar import Calendar
from swarm.celery_app import EXECUTE_TASK, create_app
from swarm.celery_output import route_worker_messages
from swarm.dispatch import enqueue, send
from swarm.embedded import LOCAL_REDIS_URL
from swarm.errors import RedisUnavailable, SwarmError
from swarm.ids import new_agent_id
from swarm.ledger import Ledger
from swarm.logs import celery_setup_logging, configure_logging, resolve_format
from swarm.models import AgentStatus, Role
from swarm.settings import get_settings
from swarm.workflows import load_workflows
from workers import serving
from workers.execute import execute, no_handler
from workers.guard import install as install_poison_guard
from workers.handlers import import_handler_modules, registry
from workers.reaper import UpkeepThread
from workers.revokes import RunningRevokes, on_task_revoked
from workers.shutdown import GraceTimer
from workers.task_states import ItemFailed, task_result

REDIS_OUTAGE_PATIENCE_S = 120.0  # how long a delivered task waits for Redis to come back
REDIS_RETRY_PAUSE_S = 1.0  # between its tries meanwhile
SERVICE_NAME = "swarm-worker"  # OTEL_SERVICE_NAME's default
# The leader's tasks (ceremonies, improvement cycles, the reaper) live in the layer above, which
# registers them on this app: Celery imports these modules when a worker (or beat) starts.
LEADER_TASK_MODULES = ("ceremonies.worker_tasks",)
# Beat's scheduler, from the same layer: it sets up RedBeat and the swarm's schedule on this app.
BEAT_SCHEDULER = "ceremonies.scheduler:SwarmScheduler"

configure_logging()
settings = get_settings()
broker_url = settings.redis_url or LOCAL_REDIS_URL
app: Celery = create_app(settings, broker_url)
app.conf.imports = LEADER_TASK_MODULES
app.conf.beat_scheduler = BEAT_SCHEDULER
route_worker_messages()
install_poison_guard(app, lambda: Ledger.from_url(broker_url, settings))  # workers/guard.py
import_handler_modules(settings.handler_module_names)
workflows = load_workflows(settings.workflows_file)
setup_logging.connect(celery_setup_logging, weak=False)


@celeryd_init.connect
def _quiet_banner(instance: Any = None, **_: Any) -> None:
    """JSON logs: no banner (Celery prints it to stdout, outside logging)."""
    if instance is not None and resolve_format(settings.log_format, sys.__stderr__) == "json":
        instance.quiet = True


@celeryd_after_setup.connect
def _redirect_stdouts(**_: Any) -> None:
    """print() in a task becomes a log line, as Celery does when it sets up logging itself."""
    if app.conf.worker_redirect_stdouts:
        app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)


@celeryd_after_setup.connect
def _record_served_roles(instance: Any = None, **_: Any) -> None:
    """The roles of the queues this worker consumes (after ``-Q``): the only ones it claims for."""
    if instance is not None:
        serving.record(settings, instance.app.amqp.queues.consume_from)


@worker_init.connect
def _tracing_in_worker(**_: Any) -> None:
    tracing.setup_tracing(SERVICE_NAME)


@worker_process_init.connect
def _tracing_in_child(**_: Any) -> None:
    tracing.setup_tracing(SERVICE_NAME)


@worker_process_shutdown.connect
def _flush_child_spans(**_: Any) -> None:
    """A prefork child about to exit (``os._exit``): its buffered spans go first."""
    tracing.shutdown()


@cache
def _process_ledger(pid: int) -> Ledger:
    """One ledger (one connection pool) per process: prefork children must not share sockets."""
    return Ledger.from_url(broker_url, settings)


def process_ledger() -> Ledger:
    """The calling process's ledger (a prefork child's own, after the fork)."""
    return _process_ledger(os.getpid())


_agents: dict[tuple[int, Role], str] = {}  # this process's registered agent per role
_agents_lock = threading.Lock()  # pool threads may start their first task at the same time


def _process_agent(pid: int, role: Role, node: str) -> str:
    """This process's agent id for ``role``, registered on first use."""
    with _agents_lock:
        if (pid, role) not in _agents:
            agent_id = new_agent_id()
            _process_ledger(pid).register_agent(
                agent_id, role=role, host=socket.gethostname(), pid=pid, node=node,
                handles=registry.types(role),
            )  # fmt: skip
            _agents[(pid, role)] = agent_id
        return _agents[(pid, role)]


def _agents_of(pid: int) -> list[str]:
    with _agents_lock:
        return [agent_id for (owner, _role), agent_id in _agents.items() if owner == pid]


@worker_process_shutdown.connect
@worker_shutdown.connect
def _agents_offline(**_: Any) -> None:
    """A worker (or prefork child) that stops marks its agents offline."""
    pid = os.getpid()
    for (owner, _role), agent_id in list(_agents.items()):
        if owner == pid:
            with contextlib.suppress(SwarmError):
                _process_ledger(pid).mark_agent(agent_id, AgentStatus.OFFLINE)


_log_context: dict[str, Mapping[str, Any]] = {}  # task id -> contextvars tokens, until postrun


@task_prerun.connect
def _bind_item(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    """Log lines of an execute task, Celery's outcome line too, name its item, role and agent."""
    if task is None or task.name != EXECUTE_TASK or not args or len(args) < 3:
        return
    work_id, role = str(args[0]), str(args[2])
    known: dict[str, str] = {"work_id": work_id, "role": role}
    with contextlib.suppress(SwarmError, ValueError):
        if serving.serves(Role(role)):  # no agent for a role this worker does not serve
            known["agent_id"] = _process_agent(os.getpid(), Role(role), task.request.hostname or "")
    _log_context[task_id] = bind_contextvars(**known)


@task_postrun.connect
def _unbind_item(task_id: str = "", **_: Any) -> None:
    tokens = _log_context.pop(task_id, None)
    if tokens is not None:
        reset_contextvars(**tokens)


@app.task(name=EXECUTE_TASK, ignore_result=True, throws=(ItemFailed,))
def execute_item(work_id: str, work_type: str, role: str) -> str:
    """Runs one work item: claim, handler, fenced outcome (a retry is sent after its backoff).

    Its Celery state is the outcome's (``workers/task_states.py``). A message of a role this
    worker does not serve goes on to that role's queue, and an item no handler here can run is
    left for a worker that has one: neither is claimed, nor costs the item an attempt.
    """
    if not serving.serves(Role(role)):
        app.send_task(EXECUTE_TASK, args=[work_id, work_type, role])  # the router: its role's queue
        return f"left: this worker does not serve role {role}; re-sent to its queue"
    handles = registry.types(Role(role))
    if not handles:
        no_handler(work_type, role)
        return f"left: no handler for role {role} here; {work_id} is left for a worker that has one"
    pid = os.getpid()
    ledger = _process_ledger(pid)
    agent_id = _process_agent(pid, Role(role), execute_item.request.hostname or "")
    deadline = time.monotonic() + REDIS_OUTAGE_PATIENCE_S
    # This run's claim token: a retry below (or redis-py re-sending the script) gets back the
    # item this run claimed; another run of the same message (a broker restore) never does.
    delivery_id = f"{execute_item.request.id}:{uuid.uuid4().hex}"
    while True:
        try:
            run = execute(
                ledger, work_id, agent_id, handlers=registry, workflows=workflows, role=role,
                delivery_id=delivery_id, handles=handles,
            )  # fmt: skip
            break
        except RedisUnavailable:
            # Redis is restarting: wait for it, rather than ack the message and leave the
            # redelivery pass to replace it. Trying again is safe: a claim whose reply was lost
            # gets its item back (the delivery id), and is not made twice.
            if time.monotonic() > deadline:
                raise
            time.sleep(REDIS_RETRY_PAUSE_S)
    if run.next_dispatch is not None:  # the workflow's next stage, created with this completion
        send(app, ledger, run.next_dispatch)
    if run.redirect is not None:  # a message of another role's item: to that role's queue
        enqueue(app, settings, run.redirect)
    return task_result(run, execute_item.send_event)


task_revoked.connect(on_task_revoked(EXECUTE_TASK, process_ledger), weak=False)  # revoke = cancel


_upkeep: list[UpkeepThread] = []
_grace: list[GraceTimer] = []


@worker_ready.connect
def _start_upkeep(sender: Any = None, **_: Any) -> None:
    pid = os.getpid()
    ledger = _process_ledger(pid)  # thread-safe: one pool per process
    with contextlib.suppress(SwarmError):  # the calendar starts when the swarm first runs
        Calendar.load(ledger)
    for role in sorted(serving.served()):  # registered now, so an idle worker shows up as alive
        _process_agent(pid, role, str(getattr(sender, "hostname", "") or ""))
    upkeep = UpkeepThread(
        ledger,
        lambda dispatch: send(app, ledger, dispatch),
        lambda: _agents_of(pid),
        also=RunningRevokes(ledger, EXECUTE_TASK),
    )
    upkeep.start()
    _upkeep.append(upkeep)


@worker_shutting_down.connect
def _start_grace(sender: Any = None, how: str = "", **_: Any) -> None:
    """On a warm shutdown, items still in hand after the grace period are released."""
    if how == "Warm" and not _grace:
        ledger = _process_ledger(os.getpid())
        timer = GraceTimer(ledger, str(sender), settings.shutdown_grace_seconds)
        timer.start()
        _grace.append(timer)


@worker_shutdown.connect
def _stop_upkeep(**_: Any) -> None:
    while _upkeep:
        _upkeep.pop().stop()
    while _grace:
        _grace.pop().cancel()
    tracing.shutdown()  # after the last sweep's sends: their spans are flushed too
