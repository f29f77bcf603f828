"""The work ledger (SPEC §5): atomic, fenced claims over Redis, one Lua script per write."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Any

import redis

from swarm import codec, validation
from swarm.connection import CONNECTION_ERRORS, client_from_url, client_url, unavailable
from swarm.deliveries import DISPATCH_BATCH, LedgerDeliveries
from swarm.errors import SwarmError
from swarm.ids import new_work_id
from swarm.keys import Keys
from swarm.models import Agent, AgentStatus, Priority, Role, Status, WorkItem
from swarm.routing import Dispatch, Handoff
from swarm.scripts import Scripts
from swarm.settings import Settings, get_settings

REAP_BATCH = 500  # expired leases handled per reaper pass; the rest wait for the next pass


class Ledger(LedgerDeliveries):
    """Every read and write of work items, agents and events.

    Writes by a holder (``heartbeat``, ``progress``, ``complete``, ``fail``, ``release``) take
    the holder's agent id and, optionally, the fencing token its claim returned; a caller that no
    longer holds a live lease gets ``NotOwner`` or ``LeaseLost`` and nothing changes.
    """

    def __init__(self, client: redis.Redis, settings: Settings | None = None) -> None:
        self.client = client
        self.url: str | None = None  # the URL it was opened with, when known (Ledger.from_url)
        self.settings = settings or get_settings()
        self.keys = Keys(self.settings.key_prefix)
        self._scripts = Scripts(client)
        self._script_keys = list(self.keys.script_keys())
        # ARGV[1] and ARGV[2] of every script: the stream's cap, and the dispatch grace in ms.
        grace_ms = round(self.settings.dispatch_grace_seconds * 1000)
        self._common_argv: list[str | int] = [str(self.settings.events_max_len), grace_ms]
        self._lease_ms = validation.lease_ms(self.settings.lease_seconds)

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> Ledger:
        settings = settings or get_settings()
        ledger = cls(client_from_url(url, socket_timeout=settings.socket_timeout), settings)
        ledger.url = url
        return ledger

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def common_argv(self) -> list[str | int]:
        """ARGV[1] and ARGV[2] of every ledger script (a script's own arguments follow)."""
        return list(self._common_argv)

    def _call(self, script: str, *args: str | int, agent: str | None = None) -> list[Any]:
        """Runs one script in one round trip; refusals become typed errors."""
        try:
            reply: list[Any] = self._scripts[script](self._script_keys, [*self._common_argv, *args])
        except CONNECTION_ERRORS as exc:
            raise unavailable(client_url(self.client), exc) from None
        if reply[0] == "err":
            raise codec.refusal(reply, agent)
        return reply

    def _item(self, script: str, *args: str | int, agent: str | None = None) -> WorkItem:
        return codec.item_from_hash(codec.pairs(self._call(script, *args, agent=agent)[1]))

    def _lease(self, seconds: float | None) -> int:
        return self._lease_ms if seconds is None else validation.lease_ms(seconds)

    @staticmethod
    def _renewal(seconds: float | None) -> str:
        """A heartbeat renews for the claim's own length unless told otherwise."""
        return "" if seconds is None else str(validation.lease_ms(seconds))

    @staticmethod
    def _fence(fence: int | None) -> str:
        checked = validation.fence(fence)
        return "" if checked is None else str(checked)

    # -- writes -----------------------------------------------------------------------------

    def submit(
        self,
        type: str,
        description: str = "",
        *,
        payload: dict[str, Any] | None = None,
        role: Role | str | None = None,
        team: str | None = None,
        priority: Priority | str | None = None,
        points: int | None = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
        workflow: str | None = None,
        stage: str | None = None,
        artifacts: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        claim_for: str | None = None,
        lease_seconds: float | None = None,
        dispatch: bool = True,
        work_id: str | None = None,
    ) -> WorkItem:
        """Adds a pending item; with ``claim_for`` it is claimed for that agent in the same step.

        ``work_id`` (default: a new one) makes a submission idempotent: an id that exists is
        refused with ``AlreadyExists`` and nothing is written.

        ``dispatch`` puts it in the outbox: its sender confirms the queue message with
        ``dispatched``, and a worker's sweep sends one if that does not happen within
        ``dispatch_grace_seconds``. Without it, the item waits for a manual claim.

        With tracing on, it is written in a ``swarm.submit`` span (the caller's, if it opened
        one): the item's ``trace_id`` is that span's trace and its ``traceparent`` names the span.
        """
        # Only submit opens a span: the commands that read, claim or complete never load tracing.
        from swarm import tracing  # noqa: PLC0415

        with tracing.submit_span() as span:
            if trace_id is None:
                trace_id = tracing.trace_id_of(span) or secrets.token_hex(16)
            traceparent = tracing.traceparent_of(span)
            if traceparent is not None and traceparent[3:35] != trace_id:
                traceparent = None  # a caller-chosen trace: the item is not in this span's trace
            item = self._submit(
                type, description, payload=payload, role=role, team=team, priority=priority,
                points=points, trace_id=trace_id, traceparent=traceparent, parent_id=parent_id,
                workflow=workflow, stage=stage, artifacts=artifacts, max_attempts=max_attempts,
                claim_for=claim_for, lease_seconds=lease_seconds, dispatch=dispatch, work_id=work_id,
            )  # fmt: skip
            tracing.annotate(span, item)
            return item

    def _submit(
        self,
        type: str,
        description: str,
        *,
        payload: dict[str, Any] | None,
        role: Role | str | None,
        team: str | None,
        priority: Priority | str | None,
        points: int | None,
        trace_id: str,
        traceparent: str | None,
        parent_id: str | None,
        workflow: str | None,
        stage: str | None,
        artifacts: dict[str, Any] | None,
        max_attempts: int | None,
        claim_for: str | None,
        lease_seconds: float | None,
        dispatch: bool,
        work_id: str | None,
    ) -> WorkItem:
        s = self.settings
        cap = s.description_max_bytes
        fields: list[str | int] = [
            "type", validation.work_type(type),
            "description", validation.description(description, cap),
            "payload", validation.json_object({} if payload is None else payload, "payload", cap),
            "role", validation.enum_value(Role, s.default_role if role is None else role, "role").value,
            "team", validation.team(s.default_team if team is None else team),
            "priority", validation.enum_value(
                Priority, s.default_priority if priority is None else priority, "priority"
            ).value,
            "points", validation.points(s.default_points if points is None else points),
            "max_attempts", validation.positive_int(
                s.max_attempts if max_attempts is None else max_attempts, "max_attempts"
            ),
            "trace_id", validation.trace_id(trace_id),
            "artifacts", validation.json_object({} if artifacts is None else artifacts, "artifacts", cap),
        ]  # fmt: skip
        if traceparent is not None:
            fields += ["traceparent", traceparent]
        for name, value in (("parent_id", parent_id), ("workflow", workflow), ("stage", stage)):
            if value is not None:
                fields += [
                    name,
                    validation.work_id(value) if name == "parent_id" else validation.work_type(value),
                ]
        agent = validation.agent_id(claim_for) if claim_for is not None else ""
        lease = self._lease(lease_seconds)
        flag = "1" if dispatch else "0"
        wid = new_work_id() if work_id is None else validation.work_id(work_id)
        return self._item("submit", wid, agent, lease, flag, *fields, agent=agent or None)

    def claim(self, work_id: str, agent_id: str, *, lease_seconds: float | None = None) -> WorkItem:
        """Claims one pending item; another holder makes it a ``ClaimConflict`` naming them."""
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        return self._item("claim", wid, agent, self._lease(lease_seconds), agent=agent)

    def claim_next(
        self, role: Role | str, agent_id: str, *, lease_seconds: float | None = None
    ) -> WorkItem | None:
        """Claims the role's most urgent pending item (priority, then age), or returns None."""
        checked_role = validation.enum_value(Role, role, "role")
        agent = validation.agent_id(agent_id)
        reply = self._call("claim_next", checked_role.value, agent, self._lease(lease_seconds), agent=agent)
        if reply[0] == "none":
            return None
        return codec.item_from_hash(codec.pairs(reply[1]))

    def heartbeat(
        self, work_id: str, agent_id: str, *, fence: int | None = None, lease_seconds: float | None = None
    ) -> WorkItem:
        """Renews the lease (for the claim's length by default); the item says if a cancel was requested."""
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        return self._item(
            "heartbeat", wid, agent, self._fence(fence), self._renewal(lease_seconds), agent=agent
        )

    def progress(
        self, work_id: str, agent_id: str, percent: int | str, note: str = "", *, fence: int | None = None
    ) -> WorkItem:
        """Records progress (0-100) and a note; it also renews the lease."""
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        pct, text = validation.percent(percent), validation.note(note)
        return self._item("progress", wid, agent, self._fence(fence), pct, text, agent=agent)

    def complete(
        self,
        work_id: str,
        agent_id: str,
        *,
        fence: int | None = None,
        result: Any = None,
        points: int | None = None,
        artifacts: dict[str, Any] | None = None,
        handoff: Handoff | None = None,
    ) -> WorkItem:
        """Completes the item once; its points join the team's velocity once.

        ``artifacts``, when given, replaces the item's artifacts (the holder merges its own).
        ``handoff`` creates the workflow's next-stage item in the same atomic step (its id is
        the completed item's ``next_id``); velocity then waits for the last stage.
        """
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        cap = self.settings.description_max_bytes
        result_text = "" if result is None else validation.json_text(result, "result", cap)
        points_text = "" if points is None else str(validation.points(points))
        artifacts_text = "" if artifacts is None else validation.json_object(artifacts, "artifacts", cap)
        child: list[str | int] = ["", "", "", 0]
        if handoff is not None:
            role = validation.enum_value(Role, handoff.role, "role").value
            child = [new_work_id(), role, validation.work_type(handoff.stage), handoff.loops]
        return self._item(
            "finish", wid, agent, self._fence(fence), "completed", result_text, "", points_text, "0",
            artifacts_text, *child, agent=agent,
        )  # fmt: skip

    def fail(
        self,
        work_id: str,
        agent_id: str,
        error: str,
        *,
        fence: int | None = None,
        retry: bool = False,
        backoff_seconds: float = 0.0,
    ) -> WorkItem:
        """Fails the item; ``retry`` returns it to pending (attempts + 1), or dead past max_attempts.

        A retried item is sent to its queue again by a dispatch sweep ``backoff_seconds`` from now.
        """
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        text = validation.note(error)
        backoff_ms = validation.backoff_ms(backoff_seconds)
        return self._item(
            "finish", wid, agent, self._fence(fence), "failed", "", text, "", "1" if retry else "0",
            "", "", "", "", 0, backoff_ms, agent=agent,
        )  # fmt: skip

    def release(self, work_id: str, agent_id: str, *, fence: int | None = None) -> WorkItem:
        """Gives the item back to pending (or cancelled, if a cancel was requested meanwhile)."""
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        return self._item("release", wid, agent, self._fence(fence), agent=agent)

    def cancel(self, work_id: str, agent_id: str | None = None, *, reason: str = "") -> WorkItem:
        """Cancels a pending item now, or asks the holder of a running one to stop; ``reason``
        (e.g. a Celery revoke) is the event's detail."""
        wid = validation.work_id(work_id)
        actor = validation.agent_id(agent_id) if agent_id else ""
        return self._item("cancel", wid, actor, validation.note(reason), agent=actor or None)

    def retry(self, work_id: str, agent_id: str | None = None) -> WorkItem:
        """Re-runs a failed or dead item: pending again with a new attempt budget (a ``retried``
        event), sent to its queue by the next dispatch sweep unless it is filed for manual claims.
        Any other status is an ``InvalidTransition``."""
        wid = validation.work_id(work_id)
        actor = validation.agent_id(agent_id) if agent_id else ""
        return self._item("retry", wid, actor, agent=actor or None)

    def set_options(
        self,
        work_id: str,
        agent_id: str,
        *,
        fence: int | None = None,
        lease_seconds: float | None = None,
        max_attempts: int | None = None,
    ) -> WorkItem:
        """The holder gives its claim a handler's options: ``lease_seconds`` renews the lease now
        and is the length every later renewal uses; ``max_attempts`` is the budget its failures
        and expired leases count against (a workflow's next stage starts from the item's own)."""
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        lease = "" if lease_seconds is None else str(validation.lease_ms(lease_seconds))
        budget = "" if max_attempts is None else str(validation.positive_int(max_attempts, "max_attempts"))
        return self._item("set_options", wid, agent, self._fence(fence), lease, budget, agent=agent)

    def reprioritise(self, work_id: str, priority: Priority | str) -> WorkItem:
        """Changes a pending item's priority; it is sent again to the new priority's queue (after
        its retry backoff, if it is in one).

        The message already in the old queue is not withdrawn: whichever message arrives first
        claims the item, and the other is skipped.
        """
        wid = validation.work_id(work_id)
        return self._item("reprioritise", wid, validation.enum_value(Priority, priority, "priority").value)

    def reap(self, limit: int = REAP_BATCH) -> list[tuple[str, Status]]:
        """Returns items whose leases expired to pending (or dead past max_attempts).

        Safe to run from many processes at once: each item is re-checked atomically, so an item
        is reaped once and a lease renewed meanwhile is left alone.
        """
        seconds, micros = self._read(self.client.time)
        now_ms = seconds * 1000 + micros // 1000
        expired: list[str] = self._read(self.client.zrangebyscore, self.keys.leases, "-inf", now_ms, 0, limit)
        if not expired:
            return []
        pipe = self.client.pipeline(transaction=False)
        script = self._scripts["reap"]
        for wid in expired:
            script(self._script_keys, [*self._common_argv, wid], client=pipe)
        replies: list[list[Any]] = self._read(pipe.execute)
        return [(wid, Status(r[1])) for wid, r in zip(expired, replies, strict=True) if r[0] == "reaped"]

    def register_agent(
        self,
        agent_id: str,
        *,
        role: Role | str | None = None,
        team: str | None = None,
        capacity: int = 1,
        specialization: str = "",
        host: str = "",
        pid: int | None = None,
        node: str = "",
        handles: Collection[str] | None = None,
    ) -> Agent:
        """Registers an agent (or updates its record); its metrics are kept. ``handles``: the work
        types its worker has handlers for (``"*"``: any), which ``swarm health`` compares with
        the work waiting."""
        agent = validation.agent_id(agent_id)
        fields: list[str | int] = [
            "team", validation.team(self.settings.default_team if team is None else team),
            "capacity", validation.positive_int(capacity, "capacity"),
            "specialization", validation.note(specialization),
            "host", validation.note(host),
            "node", validation.note(node),
        ]  # fmt: skip
        if role is not None:
            fields += ["role", validation.enum_value(Role, role, "role").value]
        if pid is not None:
            fields += ["pid", validation.positive_int(pid, "pid")]
        if handles is not None:
            types = sorted({t if t == "*" else validation.work_type(t) for t in handles})
            fields += ["handles", ",".join(["*"] if "*" in types else types)]
        reply = self._call("register_agent", agent, *fields)
        return codec.agent_from_hash(codec.pairs(reply[1]))

    def agents_seen(self, agent_ids: list[str]) -> int:
        """Renews the last heartbeat of live agents that hold nothing (an idle worker's), so that
        status and health see them alive; returns how many were renewed."""
        if not agent_ids:
            return 0
        checked = [validation.agent_id(a) for a in agent_ids]
        return int(self._call("agent_seen", *checked)[1])

    def mark_agent(self, agent_id: str, status: AgentStatus) -> None:
        """Sets an agent's liveness status (e.g. ``offline`` when its worker shuts down)."""
        key = self.keys.agent(validation.agent_id(agent_id))
        self._read(self.client.hset, key, "status", AgentStatus(status).value)


__all__ = ["DISPATCH_BATCH", "Dispatch", "Handoff", "Ledger", "SwarmError"]
