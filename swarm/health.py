"""``swarm health``: is the swarm working, not merely up? Each check passes or fails with a reason.

- ``redis``: Redis answers PING.
- ``consuming:<role>``, one per role: a role whose queue holds work has agents that are
  *consuming* it. It passes when the queue is empty, when the oldest waiting item has waited no
  longer than ``health_consuming_within`` (agents get that long to take new work), or when an
  agent of the role claimed an item within it. Otherwise the role's workers are gone, or alive
  but not consuming: the known Celery failure mode where a worker survives a Redis reconnect,
  answers pings and heartbeats, and takes nothing. Items filed for manual claims (``manual``)
  are not queued, so they are not work a worker could take; they are left out. An item's wait
  is read from the pending registry (its score is when the item last became pending). When the
  broker lost a message (a consumer died between taking it and claiming its item), the
  redelivery pass re-sends it: a role whose last re-send is more recent than the wait allowed
  is reported as recovering, not as failing, until its re-sent work has had that long to be
  taken.
- ``beat``: the leading beat ticked within ``health_beat_within_seconds``.
- ``leases``: no lease has been expired for longer than the reaper interval plus one beat
  sleep (``beat_max_interval``, the most a reaper pass can be late).
- ``dead``: every dead item has been acknowledged (``swarm health --ack-dead``).
- ``dead_letters``: no broker message was dead-lettered (``swarm/deadletters.py``) since the last
  acknowledgement (``deadletters.acknowledge``).
- ``handlers``: every type of waiting work has a live worker with a handler for it; a worker
  without one leaves the item (``swarm/health_handlers.py``). A type waiting longer than
  ``health_consuming_within`` with none is named.

Exit codes: ``EXIT_HEALTHY`` (0), ``EXIT_UNHEALTHY`` (1) when a check fails, and
``EXIT_UNREACHABLE`` (7, as ``RedisUnavailable``) when Redis does not answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from swarm import deadletters
from swarm.connection import client_url, redact
from swarm.errors import RedisUnavailable, SwarmError
from swarm.health_handlers import unhandled_work
from swarm.ledger import Ledger
from swarm.metrics import LedgerCounters, is_live
from swarm.models import Priority, Role, Status
from swarm.settings import Settings

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_UNREACHABLE = RedisUnavailable.exit_code  # 7
HEAD_SAMPLE = 25  # ids read from the head of each priority of a role's queue to find its oldest work
SHOWN_IDS = 5  # dead ids named in a reason


class Check(BaseModel):
    name: str
    ok: bool
    reason: str


class HealthReport(BaseModel):
    healthy: bool
    exit_code: int
    redis: str  # the URL, without its password
    at: datetime | None  # the Redis server's clock; None when it did not answer
    checks: list[Check]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


class DeadAck(BaseModel):
    """What ``--ack-dead`` recorded: dead items up to ``until`` (registry score, ms) are seen."""

    count: int
    until_ms: int
    ids_at_until: list[str]
    at: datetime


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f}s"


def _server_ms(ledger: Ledger) -> int:
    seconds, micros = ledger.read(ledger.client.time)
    return int(seconds) * 1000 + int(micros) // 1000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# -- dead items and their acknowledgement ---------------------------------------------------------


def acknowledge_dead(ledger: Ledger) -> DeadAck:
    """Records every item dead now as seen; a later dead item fails the check again."""
    keys = ledger.keys
    dead = keys.status(Status.DEAD)
    pipe = ledger.client.pipeline(transaction=False)
    pipe.time()
    pipe.zrange(dead, -1, -1, withscores=True)
    pipe.zcard(dead)
    (seconds, micros), newest, count = ledger.read(pipe.execute)
    until = int(newest[0][1]) if newest else 0
    ids: list[str] = ledger.read(ledger.client.zrangebyscore, dead, until, until) if newest else []
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    ledger.read(
        ledger.client.hset,
        keys.health_dead_ack,
        mapping={"until": until, "ids_at_until": ",".join(ids), "count": count, "at": now_ms},
    )
    return DeadAck(count=count, until_ms=until, ids_at_until=ids, at=_at(now_ms))


def unacknowledged_dead(ledger: Ledger) -> list[str]:
    """Dead items recorded after the last acknowledgement, oldest first."""
    keys = ledger.keys
    dead = keys.status(Status.DEAD)
    ack: dict[str, str] = ledger.read(ledger.client.hgetall, keys.health_dead_ack)
    if not ack:
        return list(ledger.read(ledger.client.zrange, dead, 0, -1))
    until = int(ack["until"])
    seen = set(filter(None, ack.get("ids_at_until", "").split(",")))
    ids: list[str] = ledger.read(ledger.client.zrangebyscore, dead, until, "+inf")
    return [wid for wid in ids if wid not in seen]


# -- the checks -----------------------------------------------------------------------------------


def _check_beat(ledger: Ledger, now_ms: int) -> Check:
    within = ledger.settings.health_beat_within_seconds
    at = ledger.read(ledger.client.hget, ledger.keys.beat_tick, "at")
    if at is None:
        return Check(name="beat", ok=False, reason="beat has never ticked (is `swarm beat` running?)")
    age = now_ms - int(at)
    host = ledger.read(ledger.client.hget, ledger.keys.beat_tick, "host") or "?"
    if age <= within * 1000:
        return Check(name="beat", ok=True, reason=f"beat on {host} ticked {_seconds(age)} ago")
    return Check(
        name="beat", ok=False, reason=f"beat last ticked {_seconds(age)} ago (on {host}); limit {within:g}s"
    )


def _check_leases(ledger: Ledger, now_ms: int) -> Check:
    s = ledger.settings
    allowed_s = s.reaper_interval_seconds + s.beat_max_interval
    cutoff = now_ms - allowed_s * 1000
    pipe = ledger.client.pipeline(transaction=False)
    pipe.zcount(ledger.keys.leases, "-inf", cutoff)
    pipe.zrange(ledger.keys.leases, 0, 0, withscores=True)
    pipe.zcount(ledger.keys.leases, "-inf", now_ms)
    stale, oldest, expired = ledger.read(pipe.execute)
    if stale:
        wid, expiry = oldest[0]
        return Check(
            name="leases",
            ok=False,
            reason=(
                f"{stale} lease(s) expired more than {allowed_s:g}s ago (the reaper interval plus one "
                f"beat sleep); the oldest, {wid}, {_seconds(now_ms - expiry)} ago: is the reaper running?"
            ),
        )
    detail = f"{expired} expired within the reaper's interval" if expired else "none expired"
    return Check(name="leases", ok=True, reason=f"no stale leases ({detail})")


def _check_dead(ledger: Ledger) -> Check:
    ids = unacknowledged_dead(ledger)
    if not ids:
        return Check(name="dead", ok=True, reason="no unacknowledged dead items")
    shown = ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")
    return Check(
        name="dead",
        ok=False,
        reason=f"{len(ids)} dead item(s) not acknowledged ({shown}); then `swarm health --ack-dead`",
    )


def _check_dead_letters(ledger: Ledger) -> Check:
    count = deadletters.unacknowledged(ledger)
    if not count:
        return Check(name="dead_letters", ok=True, reason="no unacknowledged dead-lettered messages")
    newest = deadletters.recent(ledger, 1)
    why = f"; newest: {newest[0]['reason']}: {newest[0]['detail']}" if newest else ""
    return Check(
        name="dead_letters",
        ok=False,
        reason=f"{count} broker message(s) dead-lettered since the last acknowledgement{why} "
        f"(kept in {ledger.keys.dead_letters})",
    )


def _check_consuming(ledger: Ledger, now_ms: int) -> list[Check]:
    keys, s = ledger.keys, ledger.settings
    pipe = ledger.client.pipeline(transaction=False)
    pipe.hgetall(keys.metrics)
    pipe.zrange(keys.agents, 0, -1, withscores=True)
    for role in Role:
        pipe.zcard(keys.ready(role))
        for priority in Priority:
            pipe.zrangebyscore(keys.ready(role), priority.rank, priority.rank, 0, HEAD_SAMPLE)
    reply = iter(ledger.read(pipe.execute))
    counters = LedgerCounters.parse(next(reply))
    agents: list[tuple[str, float]] = next(reply)
    depth: dict[Role, int] = {}
    heads: dict[Role, list[str]] = {}
    for role in Role:
        depth[role] = int(next(reply))
        heads[role] = [wid for _ in Priority for wid in next(reply)]

    recent = [aid for aid, seen in agents if now_ms - seen <= s.lease_seconds * 1000]
    sampled = [wid for role in Role for wid in heads[role]]
    pipe = ledger.client.pipeline(transaction=False)
    for aid in recent:
        pipe.hmget(keys.agent(aid), "role", "status")
    for wid in sampled:
        pipe.hget(keys.item(wid), "manual")
    if sampled:
        pipe.zmscore(keys.status(Status.PENDING), sampled)
    reply = iter(ledger.read(pipe.execute) if recent or sampled else [])
    seen_at = dict(agents)
    live: dict[str, int] = {}
    for aid in recent:
        role_name, status = next(reply)
        if is_live(seen_at[aid], status, now_ms, s.lease_seconds):
            live[role_name or ""] = live.get(role_name or "", 0) + 1
    manual = {wid: next(reply) == "1" for wid in sampled}
    since = dict(zip(sampled, next(reply), strict=True)) if sampled else {}

    checks = []
    for role in Role:
        name = f"consuming:{role.value}"
        waiting = [since[w] for w in heads[role] if not manual[w] and since[w] is not None]
        if depth[role] == 0 or not waiting:
            reason = "queue empty" if depth[role] == 0 else f"{depth[role]} item(s), all for manual claims"
            checks.append(Check(name=name, ok=True, reason=reason))
            continue
        agents_note = f"{live.get(role.value, 0)} live {role.value} agent(s)"
        ok, why = _consuming_verdict(role, depth[role], now_ms - min(waiting), counters, now_ms=now_ms, s=s)
        if ok:
            checks.append(Check(name=name, ok=True, reason=f"{why}; {agents_note}"))
            continue
        verdict = (
            f"{agents_note} alive but not consuming"
            if live.get(role.value)
            else f"no live {role.value} agents"
        )
        checks.append(Check(name=name, ok=False, reason=f"{why}; {verdict}"))
    return checks


def _check_handlers(ledger: Ledger, now_ms: int) -> Check:
    within_ms = ledger.settings.health_consuming_within * 1000
    late = [u for u in unhandled_work(ledger, now_ms) if u.oldest_ms > within_ms]
    if not late:
        return Check(name="handlers", ok=True, reason="every waiting work type has a live worker to run it")
    named = "; ".join(
        f"{u.type!r} on {u.role.value} ({u.waiting} waiting, the oldest {_seconds(u.oldest_ms)})"
        for u in late
    )
    return Check(
        name="handlers",
        ok=False,
        reason=f"no live worker has a handler for {named}: start one (swarm worker --handlers MODULES)",
    )


def _consuming_verdict(
    role: Role, depth: int, oldest: int, counters: LedgerCounters, *, now_ms: int, s: Settings
) -> tuple[bool, str]:
    """Whether a role with ``depth`` waiting items, the oldest for ``oldest`` ms, is being
    consumed, and why."""
    within_ms = s.health_consuming_within * 1000
    last = counters.last_claim_ms.get(role.value)
    if last is not None and now_ms - last <= within_ms:
        return True, f"{depth} waiting; a {role.value} agent claimed {_seconds(now_ms - last)} ago"
    if oldest <= within_ms:
        return True, (
            f"{depth} waiting, the oldest for {_seconds(oldest)} (agents get {s.health_consuming_within:g}s)"
        )
    resent_at = counters.last_redeliver_ms.get(role.value)
    if resent_at is not None and now_ms - resent_at <= within_ms:
        return True, (
            f"{depth} waiting, the oldest for {_seconds(oldest)}; recovering: the broker lost messages, "
            f"re-sent {_seconds(now_ms - resent_at)} ago ({counters.redelivered.get(role.value, 0)} in all)"
        )
    last_note = f"last claim {_seconds(now_ms - last)} ago" if last is not None else "never claimed"
    return False, (
        f"{role.value}: {depth} item(s) waiting, the oldest for {_seconds(oldest)}, and no {role.value} "
        f"agent claimed within {s.health_consuming_within:g}s ({last_note})"
    )


def check_health(ledger: Ledger) -> HealthReport:
    """Runs every check against ``ledger``'s Redis."""
    url = redact(ledger.url or client_url(ledger.client))
    try:
        ledger.read(ledger.client.ping)
        now_ms = _server_ms(ledger)
    except SwarmError as exc:  # RedisUnavailable: ``read`` turns connection errors into it
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = f"no answer: {detail}"
        return HealthReport(
            healthy=False,
            exit_code=EXIT_UNREACHABLE,
            redis=url,
            at=None,
            checks=[Check(name="redis", ok=False, reason=reason)],
        )
    checks = [Check(name="redis", ok=True, reason=f"Redis at {url} answered")]
    try:
        checks += _check_consuming(ledger, now_ms)
        checks.append(_check_handlers(ledger, now_ms))
        checks.append(_check_beat(ledger, now_ms))
        checks.append(_check_leases(ledger, now_ms))
        checks.append(_check_dead(ledger))
        checks.append(_check_dead_letters(ledger))
    except RedisUnavailable as exc:
        checks[0] = Check(name="redis", ok=False, reason=f"Redis at {url} stopped answering: {exc}")
        return HealthReport(
            healthy=False, exit_code=EXIT_UNREACHABLE, redis=url, at=_at(now_ms), checks=checks
        )
    healthy = all(c.ok for c in checks)
    return HealthReport(
        healthy=healthy,
        exit_code=EXIT_HEALTHY if healthy else EXIT_UNHEALTHY,
        redis=url,
        at=_at(now_ms),
        checks=checks,
    )
