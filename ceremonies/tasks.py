"""The leader's Celery tasks: ceremonies, improvement cycles and the lease reaper.

Beat sends them to the ``<prefix>.ceremonies`` queue, which every role worker consumes. Each is
safe to run twice: a ceremony's report is written once per period (``ceremonies.store``), a cycle
refuses to overlap another, and the reaper moves each expired item atomically.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from celery import Celery

from ceremonies import store
from ceremonies.registry import ceremony
from swarm import tracing
from swarm.calendar import Calendar
from swarm.celery_app import CEREMONY_TASK, IMPROVE_TASK, REAP_TASK
from swarm.ledger import Ledger
from workers.reaper import reap

log = structlog.get_logger("swarm.ceremonies")


def run_ceremony(ledger: Ledger, name: str, period_key: str | None = None) -> str:
    """Writes the period's report (the due one by default) unless it exists; says what happened.

    It runs in a ``swarm.ceremony`` span (when tracing is on).
    """
    with tracing.span("swarm.ceremony") as span:
        outcome = _run_ceremony(ledger, name, period_key)
        if span.is_recording():
            span.set_attribute("swarm.ceremony", name)
            span.set_attribute("swarm.outcome", outcome)
        return outcome


def _run_ceremony(ledger: Ledger, name: str, period_key: str | None) -> str:
    chosen = ceremony(name)
    calendar = Calendar.load(ledger)
    now = ledger.server_time()
    period = calendar.parse(period_key) if period_key else chosen.due(calendar, now)
    if period is None:
        return "not due"
    report, wrote = store.run_once(chosen, ledger, calendar, period, now)
    if wrote:
        return f"{name} reported {period.key}"
    if report is None:
        return f"{name} {period.key} being written elsewhere"
    return f"{name} {period.key} reported already"


def register(app: Celery, ledger_for: Callable[[], Ledger]) -> None:
    """Defines the tasks on ``app``; ``ledger_for`` gives the calling process's ledger."""

    @app.task(name=CEREMONY_TASK, ignore_result=True)
    def ceremony_task(name: str, period: str | None = None) -> str:
        outcome = run_ceremony(ledger_for(), name, period)
        log.info("ceremony", ceremony=name, outcome=outcome)
        return outcome

    @app.task(name=IMPROVE_TASK, ignore_result=True)
    def improve_task(dry_run: bool = False) -> str:
        from ceremonies.improve.cycle import CycleRunning, run_cycle  # noqa: PLC0415 - only workers that run one

        try:
            cycle = run_cycle(ledger_for(), app, dry_run=dry_run)
        except CycleRunning as exc:  # a manual cycle (or another beat's) is under way: skip this one
            log.info("improve_skipped", reason=str(exc))
            return "skipped: a cycle is running"
        return f"cycle {cycle.id}"

    @app.task(name=REAP_TASK, ignore_result=True)
    def reap_task() -> int:
        return len(reap(ledger_for()))

    del ceremony_task, improve_task, reap_task  # registered on the app by the decorator


__all__ = ["register", "run_ceremony"]
