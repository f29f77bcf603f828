"""The key namespace (SPEC §5): one hash tag per ledger, and KEYS in the order the Lua reads them."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from kombu.transport import redis as kombu_redis
from redis.crc import key_slot

from swarm.celery_app import broker_transport_options, create_app, queue_name
from swarm.ids import new_agent_id, new_work_id
from swarm.keys import DEFAULT_PREFIX, KOMBU_PRIORITY_SEP, KOMBU_PRIORITY_STEPS, Keys
from swarm.models import TERMINAL_STATUSES, Priority, Role, Status
from swarm.settings import Settings

PREFIXES = [DEFAULT_PREFIX, "t0123abcd", "tenant-a", "a.b:c_d", "x"]

# The Lua names of the whole keys and prefixes, and the Keys attribute each one must be.
LUA_NAME_TO_ATTRIBUTE = {
    "ITEM_PREFIX": "item_prefix",
    "CLAIM_PREFIX": "claim_prefix",
    "AGENT_PREFIX": "agent_prefix",
    "FENCE": "fence",
    "LEASES": "leases",
    "EVENTS": "events",
    "VELOCITY": "velocity",
    "AGENTS": "agents",
    "OUTBOX": "outbox",
    "METRICS": "metrics",
}


def _lua(name: str) -> str:
    return (resources.files("swarm") / "lua" / name).read_text(encoding="utf-8")


def _lua_table(source: str, table: str) -> dict[str, str]:
    """``local NAME = { k = v, ... }`` from Lua text, as ``{k: v}`` (values as written)."""
    match = re.search(rf"local\s+{table}\s*=\s*\{{(.*?)\}}", source, re.DOTALL)
    assert match, f"{table} not found in _lib.lua"
    return dict(re.findall(r"(\w+)\s*=\s*([^,\s}]+)", match.group(1)))


def _lua_key_indices(table: dict[str, str]) -> dict[str, int]:
    out = {}
    for name, value in table.items():
        m = re.fullmatch(r"KEYS\[(\d+)\]", value)
        assert m, f"{name} = {value} is not a KEYS[...] lookup"
        out[name] = int(m.group(1))
    return out


def _lua_local_keys(source: str) -> dict[str, int]:
    """``local A, B = KEYS[1], KEYS[2]`` lines, as ``{"A": 1, "B": 2}``."""
    found: dict[str, int] = {}
    for names, values in re.findall(
        r"^local\s+([\w\s,]+?)\s*=\s*(KEYS\[\d+\](?:\s*,\s*KEYS\[\d+\])*)\s*$", source, re.MULTILINE
    ):
        left = [n.strip() for n in names.split(",")]
        right = [int(i) for i in re.findall(r"KEYS\[(\d+)\]", values)]
        assert len(left) == len(right)
        found.update(zip(left, right, strict=True))
    return found


def _every_key(keys: Keys) -> list[str]:
    wid, aid = new_work_id(), new_agent_id()
    return [
        *keys.script_keys(),
        keys.item(wid),
        keys.claim(wid),
        keys.agent(aid),
        keys.agent("dev-1@host/worker:3"),
        keys.leases,
        keys.fence,
        keys.events,
        keys.velocity,
        keys.agents,
        keys.metrics,
        keys.health_dead_ack,
        *(keys.status(s) for s in Status),
        *(keys.ready(r) for r in Role),
        *(keys.sent(r) for r in Role),
        *keys.broker_lists(f"{keys.prefix}.developer.medium"),
        keys.broker_unacked,
        keys.broker_unacked_index,
    ]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_key_carries_the_namespace_hash_tag(prefix: str) -> None:
    for key in _every_key(Keys(prefix)):
        assert key.startswith("{" + prefix + "}:"), key


@pytest.mark.parametrize("prefix", PREFIXES)
def test_all_keys_of_a_namespace_hash_to_one_cluster_slot(prefix: str) -> None:
    slots = {key_slot(key.encode()) for key in _every_key(Keys(prefix))}
    assert slots == {key_slot(prefix.encode())}


def test_cluster_slot_is_computed_from_the_hash_tag_only() -> None:
    # Redis Cluster's own example: {user1000}.following and {user1000}.followers share a slot.
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers") == key_slot(b"user1000")
    assert key_slot(b"123456789") == 0x31C3 % 16384  # the CRC16/XMODEM check value


def test_no_key_of_one_namespace_falls_inside_another_namespace_that_extends_its_name() -> None:
    short, long = Keys("t1"), Keys("t12")
    for key in _every_key(long):
        assert not key.startswith(short.tag), key


def test_namespaces_do_not_share_keys() -> None:
    assert not set(_every_key(Keys("a"))) & set(_every_key(Keys("b")))


def test_default_namespace_is_swarm() -> None:
    assert Keys().tag == "{swarm}"
    assert Keys().item("work_1") == "{swarm}:item:work_1"


def test_script_keys_are_distinct_and_cover_every_status_and_role() -> None:
    keys = Keys("t")
    sk = keys.script_keys()
    assert len(set(sk)) == len(sk) == 10 + len(Status) + 2 * len(Role)
    assert set(sk) >= {keys.status(s) for s in Status} | {keys.ready(r) for r in Role}
    assert set(sk) >= {keys.sent(r) for r in Role}


def test_script_keys_order_matches_the_status_and_ready_tables_of_lib_lua() -> None:
    source, sk = _lua("_lib.lua"), Keys("t").script_keys()
    status_idx = _lua_key_indices(_lua_table(source, "STATUS_KEY"))
    ready_idx = _lua_key_indices(_lua_table(source, "READY_KEY"))
    sent_idx = _lua_key_indices(_lua_table(source, "SENT_KEY"))
    assert set(status_idx) == {s.value for s in Status}
    assert set(ready_idx) == set(sent_idx) == {r.value for r in Role}
    for role, index in sent_idx.items():
        assert sk[index - 1] == Keys("t").sent(role), role
    assert [sent_idx[r.value] for r in Role] == sorted(sent_idx.values())
    for status, index in status_idx.items():
        assert sk[index - 1] == Keys("t").status(status), status
    for role, index in ready_idx.items():
        assert sk[index - 1] == Keys("t").ready(role), role
    # Enum order is the order script_keys() lays them out in, and the Lua agrees with it.
    assert [status_idx[s.value] for s in Status] == sorted(status_idx.values())
    assert [ready_idx[r.value] for r in Role] == sorted(ready_idx.values())


def test_script_keys_order_matches_the_named_keys_of_lib_lua() -> None:
    keys = Keys("t")
    sk = keys.script_keys()
    named = _lua_local_keys(_lua("_lib.lua"))
    assert set(named) == set(LUA_NAME_TO_ATTRIBUTE)
    for lua_name, index in named.items():
        assert sk[index - 1] == getattr(keys, LUA_NAME_TO_ATTRIBUTE[lua_name]), lua_name


def test_lib_lua_reads_each_script_key_exactly_once_and_no_more() -> None:
    source = _lua("_lib.lua")
    indices = sorted(int(i) for i in re.findall(r"KEYS\[(\d+)\]", source))
    assert indices == list(range(1, len(Keys().script_keys()) + 1))


def test_only_the_prelude_indexes_keys() -> None:
    folder = resources.files("swarm") / "lua"
    for entry in folder.iterdir():
        if entry.name.endswith(".lua") and entry.name != "_lib.lua":
            assert "KEYS[" not in entry.read_text(encoding="utf-8"), entry.name


def test_lua_priority_ranks_match_the_model() -> None:
    ranks = {k: int(v) for k, v in _lua_table(_lua("_lib.lua"), "RANK").items()}
    assert ranks == {p.value: p.rank for p in Priority}


def test_lua_terminal_and_held_statuses_match_the_model() -> None:
    source = _lua("_lib.lua")
    assert set(_lua_table(source, "TERMINAL")) == {s.value for s in TERMINAL_STATUSES}
    assert set(_lua_table(source, "HELD")) == {s.value for s in Status if s.held}


def test_the_broker_keys_follow_kombus_own_names_under_the_namespace_prefix() -> None:
    assert kombu_redis.Channel.sep == KOMBU_PRIORITY_SEP
    assert tuple(kombu_redis.PRIORITY_STEPS) == KOMBU_PRIORITY_STEPS
    assert (kombu_redis.Channel.unacked_key, kombu_redis.Channel.unacked_index_key) == (
        "unacked",
        "unacked_index",
    )
    keys = Keys("t")
    assert keys.broker_lists("t.qa.low") == [
        "{t}:kombu:t.qa.low",
        "{t}:kombu:t.qa.low\x06\x163",
        "{t}:kombu:t.qa.low\x06\x166",
        "{t}:kombu:t.qa.low\x06\x169",
    ]
    assert keys.broker_unacked == "{t}:kombu:unacked"
    assert keys.broker_fanout("t.control.pidbox", 4) == "{t}:kombu:/4.t.control.pidbox"


@pytest.mark.parametrize("prefix", PREFIXES)
def test_each_namespaces_celery_app_keeps_its_broker_keys_and_events_apart(prefix: str) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    options = broker_transport_options(settings)
    assert options["global_keyprefix"] == Keys(prefix).broker_prefix
    app = create_app(settings, "redis://127.0.0.1:1/0")
    assert app.conf.broker_transport_options["global_keyprefix"] == Keys(prefix).broker_prefix
    assert app.conf.event_exchange == f"{prefix}.events"
    assert app.conf.control_exchange == f"{prefix}.control"
    assert (
        Keys(prefix)
        .broker_lists(queue_name(settings, "qa", "low"))[0]
        .startswith(options["global_keyprefix"])
    )
