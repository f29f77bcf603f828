"""The ledger's reads: items, registries, agents and events. They never scan the keyspace."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from swarm import codec, validation
from swarm.connection import CONNECTION_ERRORS, client_url, unavailable
from swarm.errors import NotFound
from swarm.keys import Keys
from swarm.models import Agent, Event, Role, Status, WorkItem
from swarm.settings import Settings


class LedgerQueries:
    """Reads over one ledger namespace; ``Ledger`` adds the writes."""

    client: redis.Redis
    settings: Settings
    keys: Keys

    def _read(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except CONNECTION_ERRORS as exc:
            raise unavailable(client_url(self.client), exc) from None

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Runs one client call; a connection error becomes ``RedisUnavailable``."""
        try:
            return fn(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise unavailable(client_url(self.client), exc) from None

    def server_time(self) -> datetime:
        """The Redis server's clock, which every host of the swarm agrees on."""
        seconds, micros = self._read(self.client.time)
        return datetime.fromtimestamp(seconds + micros / 1e6, UTC)

    def get(self, work_id: str) -> WorkItem:
        fields: dict[str, str] = self._read(self.client.hgetall, self.keys.item(validation.work_id(work_id)))
        if not fields:
            raise NotFound(f"no work item {work_id}")
        return codec.item_from_hash(fields)

    def list(
        self,
        status: Status | str | None = None,
        *,
        role: Role | str | None = None,
        team: str | None = None,
        limit: int = 100,
    ) -> builtins.list[WorkItem]:
        """Items from the status registries, newest update first (pending by role: next first).

        Reads registries, never the keyspace; role and team filter the registry pages.
        """
        wanted_status = validation.enum_value(Status, status, "status") if status else None
        wanted_role = validation.enum_value(Role, role, "role") if role else None
        wanted_team = validation.team(team) if team else None
        validation.positive_int(limit, "limit")
        found: builtins.list[WorkItem] = []
        for ids in self._id_pages(wanted_status, wanted_role, max(limit, 100)):
            for item in self._fetch(ids):
                if (wanted_role is None or item.role == wanted_role) and (
                    wanted_team is None or item.team == wanted_team
                ):
                    found.append(item)
                    if len(found) == limit:
                        return found
        return found

    def _id_pages(self, status: Status | None, role: Role | None, page: int) -> Iterator[builtins.list[str]]:
        if status is Status.PENDING and role is not None:
            key, reverse = self.keys.ready(role), False
        elif status is not None:
            key, reverse = self.keys.status(status), True
        else:
            yield from self._all_statuses_pages(page)
            return
        start = 0
        while True:
            ids: builtins.list[str] = self._read(self.client.zrange, key, start, start + page - 1, reverse)
            if not ids:
                return
            yield ids
            start += page

    def _all_statuses_pages(self, page: int) -> Iterator[builtins.list[str]]:
        """Merges every registry by update time, newest first."""
        start = 0
        while True:
            pipe = self.client.pipeline(transaction=False)
            for s in Status:
                pipe.zrange(self.keys.status(s), 0, start + page - 1, desc=True, withscores=True)
            rows: builtins.list[builtins.list[tuple[str, float]]] = self._read(pipe.execute)
            merged = sorted((pair for row in rows for pair in row), key=lambda p: p[1], reverse=True)
            ids = [wid for wid, _ in merged[start : start + page]]
            if not ids:
                return
            yield ids
            start += page

    def fetch(self, ids: Sequence[str]) -> builtins.list[WorkItem]:
        """The items with these ids, in order, in one round trip (unknown ids are left out)."""
        return self._fetch(ids)

    def _fetch(self, ids: Sequence[str]) -> builtins.list[WorkItem]:
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.hgetall(self.keys.item(wid))
        rows: builtins.list[dict[str, str]] = self._read(pipe.execute)
        return [codec.item_from_hash(row) for row in rows if row]

    def counts(self) -> dict[Status, int]:
        """How many items are in each status (one ZCARD per registry)."""
        pipe = self.client.pipeline(transaction=False)
        for s in Status:
            pipe.zcard(self.keys.status(s))
        return dict(zip(Status, self._read(pipe.execute), strict=True))

    def velocity(self) -> dict[str, int]:
        """Completed points per team."""
        raw: dict[str, str] = self._read(self.client.hgetall, self.keys.velocity)
        return {team: int(points) for team, points in raw.items()}

    def agent(self, agent_id: str) -> Agent:
        fields: dict[str, str] = self._read(
            self.client.hgetall, self.keys.agent(validation.agent_id(agent_id))
        )
        if not fields:
            raise NotFound(f"no agent {agent_id}")
        return codec.agent_from_hash(fields)

    def agents(self) -> builtins.list[Agent]:
        """Every agent, most recently seen first."""
        ids: builtins.list[str] = self._read(self.client.zrange, self.keys.agents, 0, -1, True)
        pipe = self.client.pipeline(transaction=False)
        for aid in ids:
            pipe.hgetall(self.keys.agent(aid))
        return [codec.agent_from_hash(row) for row in self._read(pipe.execute) if row]

    def events(self, count: int = 100, *, after: str | None = None) -> builtins.list[Event]:
        """The last ``count`` events, oldest first; or up to ``count`` after the entry ``after``."""
        validation.positive_int(count, "count")
        if after is None:
            entries = list(reversed(self._read(self.client.xrevrange, self.keys.events, "+", "-", count)))
        else:
            entries = self._read(self.client.xrange, self.keys.events, f"({after}", "+", count)
        return [codec.event_from_entry(eid, fields) for eid, fields in entries]

    def follow(self, *, after: str = "$", block_ms: int = 1000) -> Iterator[Event]:
        """Yields events as they are appended, forever (Ctrl-C to stop)."""
        last = after
        while True:
            reply = self._read(self.client.xread, {self.keys.events: last}, 100, block_ms)
            for _stream, entries in reply or []:
                for eid, fields in entries:
                    last = eid
                    yield codec.event_from_entry(eid, fields)
