"""The one place that builds Redis keys: the whole key namespace reads on this screen.

Every key of a ledger carries the same hash tag, ``{<prefix>}``, so the multi-key Lua
scripts (an item, its claim, the registries and the stream, written in one atomic step)
never cross a Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.models import Role, Status

DEFAULT_PREFIX = "swarm"  # the namespace tag; tests and tenants use their own
KOMBU_PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep: a queue's priority sub-queues
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)  # kombu.transport.redis.PRIORITY_STEPS: 0 is the queue itself


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one ledger namespace."""

    prefix: str = DEFAULT_PREFIX

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def item_prefix(self) -> str:
        return f"{self.tag}:item:"

    @property
    def claim_prefix(self) -> str:
        return f"{self.tag}:claim:"

    @property
    def agent_prefix(self) -> str:
        return f"{self.tag}:agent:"

    def item(self, work_id: str) -> str:
        """Hash: the work item's fields."""
        return self.item_prefix + work_id

    def claim(self, work_id: str) -> str:
        """String: the holder's agent id, set with NX PX; it exists exactly while a lease is live."""
        return self.claim_prefix + work_id

    def status(self, status: str) -> str:
        """Sorted set: ids in that status, scored by last update (ms)."""
        return f"{self.tag}:status:{status}"

    def ready(self, role: str) -> str:
        """Sorted set: pending ids of a role, scored by priority rank; ties sort by id (age)."""
        return f"{self.tag}:ready:{role}"

    def sent(self, role: str) -> str:
        """Sorted set: pending ids of a role whose queue message was sent and that no agent has
        claimed since, scored by when it was sent (ms): the deliveries the ledger still owes."""
        return f"{self.tag}:sent:{role}"

    @property
    def leases(self) -> str:
        """Sorted set: claimed ids scored by lease expiry (ms, Redis server clock)."""
        return f"{self.tag}:leases"

    @property
    def fence(self) -> str:
        """Counter: the source of fencing tokens (INCR, never a clock)."""
        return f"{self.tag}:fence"

    @property
    def events(self) -> str:
        """Capped stream: every transition."""
        return f"{self.tag}:events"

    @property
    def velocity(self) -> str:
        """Hash: completed points per team."""
        return f"{self.tag}:velocity"

    @property
    def outbox(self) -> str:
        """Sorted set: pending ids whose queue message is not known to be sent, scored by when a
        sweeper should send one (ms)."""
        return f"{self.tag}:outbox"

    @property
    def metrics(self) -> str:
        """Hash: the exact counters and histogram buckets the scripts keep (``swarm/metrics.py``
        documents the fields), e.g. ``claimed:<role>:<team>``, ``duration_bucket:<role>:<outcome>:<le>``."""
        return f"{self.tag}:metrics"

    def agent(self, agent_id: str) -> str:
        """Hash: an agent's record and live metrics."""
        return self.agent_prefix + agent_id

    @property
    def agents(self) -> str:
        """Sorted set: agent ids scored by last heartbeat (ms)."""
        return f"{self.tag}:agents"

    def script_keys(self) -> tuple[str, ...]:
        """The KEYS every ledger script receives, in the order ``lua/_lib.lua`` reads them.

        Scripts append ids to the three prefixes; everything else is a whole key.
        """
        return (
            self.item_prefix,
            self.claim_prefix,
            self.agent_prefix,
            self.fence,
            self.leases,
            self.events,
            self.velocity,
            self.agents,
            *(self.status(s) for s in Status),
            *(self.ready(r) for r in Role),
            self.outbox,
            self.metrics,
            *(self.sent(r) for r in Role),
        )

    # -- the calendar, beat and ceremonies (not script keys) ------------------------------------

    @property
    def calendar(self) -> str:
        """Hash: the calendar every process uses (``swarm/calendar_store.py``): ``epoch`` (ISO 8601,
        UTC), ``iteration_length`` and ``art_sync_every`` (seconds), ``pi_iterations``, and where it
        came from (``epoch_from``, ``stored_at``, ``stored_by``, ``version``). Its first user stores
        it (HSETNX per field, in one MULTI); ``swarm calendar set`` changes it."""
        return f"{self.tag}:calendar"

    @property
    def calendar_epoch(self) -> str:
        """String: the epoch an earlier version stored (ISO 8601, UTC); read once, when the
        calendar is first stored in ``calendar``, so that upgrading keeps the periods in place."""
        return f"{self.tag}:calendar:epoch"

    @property
    def redbeat_prefix(self) -> str:
        """celery-redbeat's key prefix: entry ``<prefix><name>``, ``<prefix>:schedule`` (its sorted
        set) and ``<prefix>:statics``, as redbeat names them."""
        return f"{self.tag}:beat:"

    @property
    def beat_lock(self) -> str:
        """String: the leading beat's lock (celery-redbeat's, with a timeout)."""
        return f"{self.tag}:beat::lock"

    @property
    def beat_tick(self) -> str:
        """Hash: the leading beat's last tick (``at``, ms) and its ``host`` and ``pid``."""
        return f"{self.tag}:beat::tick"

    def report(self, ceremony: str, period: str) -> str:
        """String: one ceremony's stored report for one period (JSON), written once."""
        return f"{self.tag}:report:{ceremony}:{period}"

    def reports(self, ceremony: str) -> str:
        """Sorted set: the periods a ceremony has a report for, scored by the period's start (ms)."""
        return f"{self.tag}:reports:{ceremony}"

    def report_sent(self, ceremony: str, period: str) -> str:
        """String: set (NX, with a timeout) when beat sends that report's task, so it is sent once."""
        return f"{self.tag}:sent:{ceremony}:{period}"

    def report_plan(self, ceremony: str, period: str) -> str:
        """String: a report being written (JSON), so that a retry files the same items."""
        return f"{self.tag}:plan:{ceremony}:{period}"

    def report_lock(self, ceremony: str, period: str) -> str:
        """String: held (SET NX PX) by the one process writing that report."""
        return f"{self.tag}:lock:{ceremony}:{period}"

    @property
    def improve_cycles(self) -> str:
        """Sorted set: improvement cycle ids, scored by when each started (ms)."""
        return f"{self.tag}:improve:cycles"

    def improve_cycle(self, cycle_id: str) -> str:
        """String: one improvement cycle's record (JSON): phases, evidence, actions, outcomes."""
        return f"{self.tag}:improve:cycle:{cycle_id}"

    @property
    def improve_lock(self) -> str:
        """String: held (SET NX PX) while a cycle runs, so that two never overlap."""
        return f"{self.tag}:improve:lock"

    @property
    def tuning(self) -> str:
        """Hash: live tuning the improvement cycle set through the ledger, e.g. ``lease_seconds:qa``."""
        return f"{self.tag}:tuning"

    @property
    def health_dead_ack(self) -> str:
        """Hash: the dead items an operator acknowledged (``swarm health --ack-dead``): ``until``
        (the newest acknowledged dead item's registry score, ms), ``ids_at_until`` (the ids with
        exactly that score, comma-separated), ``count``, ``at`` (ms). Not a script key."""
        return f"{self.tag}:health:dead_ack"

    def claude_usage(self, work_id: str) -> str:
        """Hash: the claude executor's spend on one item across its attempts: ``runs`` (HINCRBY)
        and ``cost_usd`` (HINCRBYFLOAT). Not a script key: only the executor writes it."""
        return f"{self.tag}:claude:{work_id}"

    @property
    def beat_standbys(self) -> str:
        """Hash: the beats standing by for the lock, ``host:pid`` -> when each last waited (ms)."""
        return f"{self.tag}:beat::standbys"

    @property
    def fleet_restarts(self) -> str:
        """Hash: the children ``swarm up`` restarted, ``<host>/<child>`` -> JSON (``restarts``,
        ``last_exit``, ``at`` ms), written by each host's ``swarm up`` (``swarm/fleet_record.py``)."""
        return f"{self.tag}:fleet:restarts"

    # -- dead-lettered broker messages (not script keys) ----------------------------------------

    @property
    def dead_letters(self) -> str:
        """List: the newest dead-lettered broker messages (JSON: reason, detail, queue, the raw
        message), newest first, capped (``swarm/deadletters.py``)."""
        return f"{self.tag}:deadletters"

    @property
    def health_dead_letters_ack(self) -> str:
        """Hash: the dead letters an operator acknowledged: ``count`` (the running total then) and
        ``at`` (ms). ``swarm health`` reports the ones recorded since."""
        return f"{self.tag}:health:deadletters_ack"

    # -- Celery's broker: kombu's Redis transport, under the namespace's global key prefix -------

    @property
    def broker_prefix(self) -> str:
        """kombu's ``global_keyprefix`` (``swarm/celery_app.py``): kombu prepends it to every key
        and channel it names for this namespace's Celery app: the queue lists, ``unacked``,
        ``unacked_index``, ``unacked_mutex``, the exchange bindings (``_kombu.binding.*``) and the
        fanout channels (task events, remote control). Two namespaces on one Redis database so
        share none of them. It carries the ledger's hash tag."""
        return f"{self.tag}:kombu:"

    def broker_lists(self, queue: str) -> list[str]:
        """List: the Redis lists kombu keeps for one queue (a Celery queue name, e.g.
        ``swarm.qa.medium``): the queue itself, then its priority sub-queues."""
        return [
            self.broker_prefix + (queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEP}{step}")
            for step in KOMBU_PRIORITY_STEPS
        ]

    @property
    def broker_unacked(self) -> str:
        """Hash: kombu's delivered, unacknowledged messages (acks-late), by delivery tag."""
        return self.broker_prefix + "unacked"

    @property
    def broker_unacked_index(self) -> str:
        """Sorted set: the unacknowledged delivery tags, scored by delivery time (the
        visibility-timeout sweep restores those older than the timeout)."""
        return self.broker_prefix + "unacked_index"

    def broker_fanout(self, exchange: str, db: int) -> str:
        """Pub/sub channel: what kombu publishes a fanout exchange's messages on (remote control's
        ``<prefix>.control.pidbox``, task events), on database ``db``."""
        return f"{self.broker_prefix}/{db}.{exchange}"
