"""Ceremony reports in Redis, written once per ceremony and period.

``run_once`` is what makes two beats, a retried task and a manual ``--now`` safe together:

1. A stored report is returned as it is.
2. Otherwise one process takes the period's lock (``SET NX PX`` with a token). Others get None
   and can wait for the report.
3. The lock holder computes the report, including the ids of the items it will file, and stores
   it as the period's *plan* before filing anything. A holder that died after that point left
   its plan, and the next holder files the same ids: ``submit(work_id=...)`` refuses an id that
   exists, so every item is filed once.
4. The report is stored (``SET NX``) and indexed, and the plan is deleted, in one transaction.

Filed items are submitted without dispatch: they wait in the backlog for the next PI Planning
(and people), rather than going to an executor that has no handler for them.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import structlog
from redis.exceptions import LockError

from ceremonies.registry import Ceremony
from ceremonies.report import CeremonyReport, Filing
from swarm.calendar import Calendar, Period
from swarm.errors import AlreadyExists
from swarm.ledger import Ledger

LOCK_SECONDS = 300.0  # a report writer that has not finished in this long is presumed dead

log = structlog.get_logger("swarm.ceremonies")


def load(ceremony: Ceremony, ledger: Ledger, period_key: str) -> CeremonyReport | None:
    raw: str | None = ledger.read(ledger.client.get, ledger.keys.report(ceremony.name, period_key))
    return None if raw is None else ceremony.report_type.model_validate_json(raw)


def periods(ceremony: Ceremony, ledger: Ledger) -> list[str]:
    """The periods with a stored report, oldest first."""
    keys: list[str] = ledger.read(ledger.client.zrange, ledger.keys.reports(ceremony.name), 0, -1)
    return keys


def latest(ceremony: Ceremony, ledger: Ledger) -> CeremonyReport | None:
    newest: list[str] = ledger.read(ledger.client.zrange, ledger.keys.reports(ceremony.name), -1, -1)
    return load(ceremony, ledger, newest[0]) if newest else None


def exists(ceremony: Ceremony, ledger: Ledger, period_key: str) -> bool:
    return bool(ledger.read(ledger.client.exists, ledger.keys.report(ceremony.name, period_key)))


def run_once(
    ceremony: Ceremony, ledger: Ledger, calendar: Calendar, period: Period, now: datetime
) -> tuple[CeremonyReport | None, bool]:
    """The period's report and whether this call wrote it; (None, False) while another writes it."""
    stored = load(ceremony, ledger, period.key)
    if stored is not None:
        return stored, False
    keys = ledger.keys
    lock = ledger.client.lock(
        keys.report_lock(ceremony.name, period.key), timeout=LOCK_SECONDS, blocking=False
    )
    if not ledger.read(lock.acquire):
        return None, False
    try:
        stored = load(ceremony, ledger, period.key)  # written between our check and the lock
        if stored is not None:
            return stored, False
        plan_key = keys.report_plan(ceremony.name, period.key)
        plan: str | None = ledger.read(ledger.client.get, plan_key)
        if plan is not None:
            report = ceremony.report_type.model_validate_json(plan)
            log.warning("ceremony_resumed", ceremony=ceremony.name, period=period.key)
        else:
            report = ceremony.compute(ledger, calendar, period, now)
            ledger.read(ledger.client.set, plan_key, report.model_dump_json())
        for filing in report.filed:
            file_item(ledger, filing)
        pipe = ledger.client.pipeline(transaction=True)
        pipe.set(keys.report(ceremony.name, period.key), report.model_dump_json(), nx=True)
        pipe.zadd(keys.reports(ceremony.name), {period.key: period.start.timestamp() * 1000})
        pipe.delete(plan_key)
        stored_now = ledger.read(pipe.execute)[0]
        if not stored_now:  # only if our lock expired mid-write and another writer finished first
            return load(ceremony, ledger, period.key), False
        log.info("ceremony_reported", ceremony=ceremony.name, period=period.key, filed=len(report.filed))
        return report, True
    finally:
        with contextlib.suppress(LockError):  # held past LOCK_SECONDS: it has expired already
            ledger.read(lock.release)


def file_item(ledger: Ledger, filing: Filing) -> bool:
    """Submits a filed item under its planned id; False when an earlier run filed it already."""
    try:
        ledger.submit(
            filing.type,
            filing.description,
            payload=filing.payload,
            role=filing.role,
            team=filing.team,
            priority=filing.priority,
            points=filing.points,
            work_id=filing.work_id,
            dispatch=False,  # a backlog item for planning and people, not for an executor
        )
    except AlreadyExists:
        return False
    return True
