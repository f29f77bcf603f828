"""What ``swarm status`` shows, as one model that the dashboard and ``--json`` both render."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from pydantic import BaseModel

from swarm import fleet_record
from swarm.fleet_record import ChildRestarts
from swarm.ledger import Ledger
from swarm.metrics import LedgerReader, is_live
from swarm.models import AgentStatus, Event, Role, Status

ROLE_COUNT_LIMIT = 10_000  # ids per status whose role is read; past it the split covers the newest
RECENT_EVENTS = 15
UNKNOWN = "unknown"


class AgentRow(BaseModel):
    id: str
    role: str
    team: str
    node: str
    status: AgentStatus
    state: str  # live | stale | offline
    last_seen: datetime | None
    completed: int
    failed: int


class RoleAgents(BaseModel):
    live: int = 0
    stale: int = 0
    offline: int = 0


class StatusItems(BaseModel):
    total: int
    by_role: dict[str, int]
    by_role_complete: bool  # False when only the newest ROLE_COUNT_LIMIT were split by role


class CalendarView(BaseModel):
    pi: int
    iteration: int
    key: str
    start: datetime
    end: datetime
    velocity: dict[str, int]  # team -> points of workflows completed in this iteration so far
    velocity_total: int


class BeatView(BaseModel):
    """Which beat leads (its last tick) and which stand by (waited within the beat check's window)."""

    leader: str | None  # host:pid of the beat that ticked last
    last_tick: datetime | None
    standbys: list[str]  # host:pid


class StatusReport(BaseModel):
    at: datetime  # the Redis server's clock
    agents_by_role: dict[str, RoleAgents]
    agents: list[AgentRow]
    items: dict[str, StatusItems]  # status -> counts
    queue_depths: dict[str, int]
    calendar: CalendarView
    events: list[Event]
    beat: BeatView
    restarts: list[ChildRestarts]  # children `swarm up` saw exit and started again, per host


def _state(agent_status: AgentStatus, live: bool) -> str:
    if agent_status is AgentStatus.OFFLINE:
        return "offline"
    return "live" if live else "stale"


class StatusReader:
    """Builds ``StatusReport``s of one ledger, each on the calendar agreed at that moment."""

    def __init__(self, ledger: Ledger, *, events: int = RECENT_EVENTS) -> None:
        self.ledger = ledger
        self.reader = LedgerReader(ledger)
        self.events = events

    def report(self) -> StatusReport:
        ledger = self.ledger
        snap = self.reader.snapshot()
        now_ms = snap.now.timestamp() * 1000
        lease_s = ledger.settings.lease_seconds

        agents = ledger.agents()
        rows: list[AgentRow] = []
        by_role: dict[str, RoleAgents] = {r.value: RoleAgents() for r in Role}
        for agent in agents:
            seen_ms = agent.last_heartbeat.timestamp() * 1000 if agent.last_heartbeat else 0.0
            state = _state(agent.status, is_live(seen_ms, agent.status.value, now_ms, lease_s))
            role = agent.role.value if agent.role else UNKNOWN
            counts = by_role.setdefault(role, RoleAgents())
            setattr(counts, state, getattr(counts, state) + 1)
            rows.append(
                AgentRow(
                    id=agent.id, role=role, team=agent.team, node=agent.node, status=agent.status,
                    state=state, last_seen=agent.last_heartbeat, completed=agent.completed,
                    failed=agent.failed,
                )
            )  # fmt: skip

        items: dict[str, StatusItems] = {}
        split = [s for s in Status if s is not Status.PENDING and snap.status_counts[s]]
        pipe = ledger.client.pipeline(transaction=False)
        for status in split:
            pipe.zrange(ledger.keys.status(status), 0, ROLE_COUNT_LIMIT - 1, desc=True)
        id_lists: list[list[str]] = ledger.read(pipe.execute) if split else []
        pipe = ledger.client.pipeline(transaction=False)
        for ids in id_lists:
            for wid in ids:
                pipe.hget(ledger.keys.item(wid), "role")
        roles: list[str | None] = ledger.read(pipe.execute) if any(id_lists) else []
        at = 0
        splits: dict[Status, Counter[str]] = {}
        for done, ids in zip(split, id_lists, strict=True):
            splits[done] = Counter(r or UNKNOWN for r in roles[at : at + len(ids)])
            at += len(ids)
        for each in Status:
            total = snap.status_counts[each]
            if each is Status.PENDING:
                split_counts = {r.value: n for r, n in snap.queue_depths.items() if n}
            else:
                split_counts = dict(sorted(splits.get(each, Counter()).items()))
            items[each.value] = StatusItems(
                total=total, by_role=split_counts, by_role_complete=sum(split_counts.values()) == total
            )

        period = snap.iteration
        assert period.iteration is not None
        calendar = CalendarView(
            pi=period.pi,
            iteration=period.iteration,
            key=period.key,
            start=period.start,
            end=period.end,
            velocity={team: snap.velocity.get(team, 0) for team in snap.teams},
            velocity_total=sum(snap.velocity.values()),
        )
        return StatusReport(
            at=snap.now,
            agents_by_role=by_role,
            agents=rows,
            items=items,
            queue_depths={r.value: n for r, n in snap.queue_depths.items()},
            calendar=calendar,
            events=ledger.events(self.events),
            beat=self._beat(now_ms),
            restarts=fleet_record.read(ledger),
        )

    def _beat(self, now_ms: float) -> BeatView:
        ledger = self.ledger
        pipe = ledger.client.pipeline(transaction=False)
        pipe.hgetall(ledger.keys.beat_tick)
        pipe.hgetall(ledger.keys.beat_standbys)
        tick, standbys = ledger.read(pipe.execute)
        within_ms = ledger.settings.health_beat_within_seconds * 1000
        leader = f"{tick['host']}:{tick['pid']}" if tick.get("host") else None
        at = datetime.fromtimestamp(int(tick["at"]) / 1000, UTC) if tick.get("at") else None
        waiting = sorted(
            name for name, seen in standbys.items() if name != leader and now_ms - int(seen) <= within_ms
        )
        return BeatView(leader=leader, last_tick=at, standbys=waiting)
