"""The CLI contract (SPEC §6): JSON output, exit codes, and bad input that writes nothing.

Most cases run the real Typer app in-process (CliRunner); the byte-level ones (stdin, NUL,
1 MB, an unreachable Redis) run the installed ``swarm`` as a separate process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from swarm.cli import app
from swarm.ledger import Ledger
from swarm.models import Status

pytestmark = pytest.mark.integration

Invoke = Callable[..., Any]


@pytest.fixture
def env(redis_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "SWARM_AGENT_ID": ""}


@pytest.fixture
def cli(env: dict[str, str]) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, extra_env: dict[str, str] | None = None) -> Any:
        result = runner.invoke(app, list(args), env={**env, **(extra_env or {})}, input=input)
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result

    return invoke


def run_swarm(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    return done


def snapshot(real_redis: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key of the namespace with its full value: proof that a refusal wrote nothing."""
    state: dict[str, Any] = {}
    for key in sorted(real_redis.scan_iter(match="{" + prefix + "}*", count=1000)):
        kind = real_redis.type(key)
        if kind == "hash":
            state[key] = real_redis.hgetall(key)
        elif kind == "zset":
            state[key] = real_redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            state[key] = real_redis.xrange(key)
        else:
            state[key] = (real_redis.get(key), real_redis.pttl(key) > 0)
    return state


def submit(cli: Invoke, *extra: str) -> dict[str, Any]:
    result = cli("submit", "feature", "the description", "--json", *extra)
    assert result.exit_code == 0, result.output
    item: dict[str, Any] = json.loads(result.stdout)
    return item


def test_submit_claim_and_show_print_the_item_as_one_json_object(cli: Invoke) -> None:
    item = submit(cli, "--priority", "high", "--team", "web", "--points", "5", "--payload", '{"k": [1, "ü"]}')
    assert item["status"] == "pending"
    assert item["priority"] == "high"
    assert item["payload"] == {"k": [1, "ü"]}
    claimed = json.loads(cli("claim", item["id"], "--agent", "dev-1", "--json").stdout)
    assert claimed["status"] == "claimed"
    assert claimed["agent_id"] == "dev-1"
    assert claimed["fence"] >= 1
    shown = json.loads(cli("show", item["id"], "--json").stdout)
    assert shown == claimed
    assert set(shown) >= {
        "id",
        "type",
        "description",
        "payload",
        "role",
        "team",
        "priority",
        "points",
        "status",
    }


def test_full_lifecycle_through_the_cli(cli: Invoke, ledger: Ledger) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1", "--points", "3", "--team", "web")
    assert item["status"] == "claimed"
    assert cli("progress", item["id"], "40", "half way", "--agent", "dev-1").exit_code == 0
    assert cli("heartbeat", item["id"], "--agent", "dev-1").exit_code == 0
    done = json.loads(cli("complete", item["id"], "--agent", "dev-1", "--json").stdout)
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert ledger.velocity() == {"web": 3}
    kinds = [e["event"] for e in map(json.loads, cli("events", "--json").stdout.splitlines())]
    assert kinds == ["submitted", "claimed", "progressed", "completed"]


@pytest.mark.parametrize(
    "text", ["say \"hi\" and 'bye'", "line one\nline two\n", "emoji 🐝 ünïcødé", "$(rm -rf /) `x` ;|&"]
)
def test_descriptions_round_trip_byte_exact_from_argv(cli: Invoke, text: str) -> None:
    item = json.loads(cli("submit", "feature", text, "--json").stdout)
    assert json.loads(cli("show", item["id"], "--json").stdout)["description"] == text


TERMINAL_TRICKS = "clear\x1b[2J title\x1b]0;pwned\x07 bell\x07 cr\rover bidi\u202eevil\nsecond line"


def test_show_list_and_events_never_print_a_descriptions_control_characters_raw(cli: Invoke) -> None:
    item = json.loads(cli("submit", "feature", TERMINAL_TRICKS, "--json").stdout)
    assert item["description"] == TERMINAL_TRICKS, "stored byte-exact"
    claimed = cli("claim", item["id"], "--agent", "dev-1")
    assert claimed.exit_code == 0
    assert cli("fail", item["id"], "boom\x1b[31m\x07", "--agent", "dev-1").exit_code == 0
    for args in (["show", item["id"]], ["list"], ["events"]):
        output = cli(*args).stdout
        for raw in ("\x1b", "\x07", "\r", "\u202e"):
            assert raw not in output, f"swarm {args[0]} printed {raw!r} raw"
    shown = cli("show", item["id"]).stdout
    assert "clear\\e[2J title\\e]0;pwned\\x07" in shown
    assert "second line" in shown
    assert "boom\\e[31m\\x07" in shown  # the error too
    assert json.loads(cli("show", item["id"], "--json").stdout)["description"] == TERMINAL_TRICKS


@pytest.mark.parametrize(
    "payload",
    [b"nul \x00 inside", "🐝 quotes \" ' and\r\nnewlines".encode(), ("x" * 1_000_000).encode()],
    ids=["nul", "unicode", "one-megabyte"],
)
def test_descriptions_round_trip_byte_exact_from_stdin(env: dict[str, str], payload: bytes) -> None:
    done = run_swarm(env, "submit", "feature", "-", "--json", stdin=payload)
    assert done.returncode == 0, done.stderr
    work_id = json.loads(done.stdout)["id"]
    shown = run_swarm(env, "show", work_id, "--json")
    assert json.loads(shown.stdout)["description"].encode() == payload


def test_description_over_the_cap_is_refused_and_nothing_is_written(
    cli: Invoke, real_redis: redis.Redis, prefix: str
) -> None:
    before = snapshot(real_redis, prefix)
    result = cli("submit", "feature", "x" * 101, extra_env={"SWARM_DESCRIPTION_MAX_BYTES": "100"})
    assert result.exit_code == 2
    assert "cap is 100" in result.stderr
    assert snapshot(real_redis, prefix) == before


def test_invalid_utf8_on_stdin_is_refused(env: dict[str, str]) -> None:
    done = run_swarm(env, "submit", "feature", "-", stdin=b"\xff\xfe bad")
    assert done.returncode == 2
    assert b"not valid UTF-8" in done.stderr


@pytest.mark.parametrize("percent", ["abc", "-1", "101", "NaN", "50.5", "", "1e2"])
def test_bad_progress_exits_2_and_changes_nothing(
    cli: Invoke, real_redis: redis.Redis, prefix: str, percent: str
) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1")
    before = snapshot(real_redis, prefix)
    result = cli("progress", item["id"], percent, "--agent", "dev-1")
    assert result.exit_code == 2, result.output
    assert "progress must be" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(real_redis, prefix) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "", "d"], "type must not be empty"),
        (["submit", "feature", "d", "--priority", "urgent"], "unknown priority 'urgent'"),
        (["submit", "feature", "d", "--role", "boss"], "unknown role 'boss'"),
        (["submit", "feature", "d", "--payload", "{not json"], "--payload is not valid JSON"),
        (["submit", "feature", "d", "--payload", "[1, 2]"], "must be a JSON object"),
        (["submit", "feature", "d", "--payload", '{"x": NaN}'], "--payload is not valid JSON"),
        (["submit", "feature", "d", "--claim"], "an agent id is required"),
        (["submit", "feature", "d", "--claim", "--agent", "bad agent\n"], "agent id"),
        (["claim", "--next"], "an agent id is required"),
        (["submit", "feature", "d", "--workflow", "nope"], "unknown workflow 'nope'"),
        (["submit", "feature", "d", "--workflow", "feature", "--role", "boss"], "unknown role 'boss'"),
        (["complete", "work_1", "--agent", "a", "--result", "maybe"], "unknown result 'maybe'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    cli: Invoke, real_redis: redis.Redis, prefix: str, args: list[str], message: str
) -> None:
    before = snapshot(real_redis, prefix)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(real_redis, prefix) == before


def test_wrong_option_type_is_a_usage_error(cli: Invoke) -> None:
    assert cli("submit", "feature", "d", "--points", "many").exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["show", "work_0000000000000000000_000000000000"],
        ["claim", "work_missing", "--agent", "a"],
        ["progress", "work_missing", "10", "--agent", "a"],
        ["complete", "work_missing", "--agent", "a"],
        ["cancel", "work_missing"],
        ["claim", "--next", "--role", "qa", "--agent", "a"],
    ],
)
def test_unknown_ids_exit_4(cli: Invoke, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 4, result.output


def test_second_claimer_exits_3_naming_the_holder(cli: Invoke) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1")
    result = cli("claim", item["id"], "--agent", "dev-2")
    assert result.exit_code == 3
    assert "held by dev-1" in result.stderr
    as_json = json.loads(cli("claim", item["id"], "--agent", "dev-2", "--json").stdout)
    assert as_json == {
        "error": "ClaimConflict",
        "message": as_json["message"],
        "exit_code": 3,
        "holder": "dev-1",
    }


@pytest.mark.parametrize("command", ["progress", "complete", "release", "heartbeat"])
def test_the_wrong_agent_exits_5_and_changes_nothing(
    cli: Invoke, real_redis: redis.Redis, prefix: str, command: str
) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1")
    before = snapshot(real_redis, prefix)
    args = [command, item["id"], *(["50"] if command == "progress" else []), "--agent", "intruder"]
    result = cli(*args)
    assert result.exit_code == 5, result.output
    assert "dev-1 does" in result.stderr
    assert snapshot(real_redis, prefix) == before


def test_a_stale_fence_exits_5(cli: Invoke) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1")
    result = cli("progress", item["id"], "10", "--agent", "dev-1", "--fence", str(item["fence"] + 1))
    assert result.exit_code == 5
    assert "lost the lease" in result.stderr


def test_completing_twice_exits_6_and_counts_velocity_once(cli: Invoke, ledger: Ledger) -> None:
    item = submit(cli, "--claim", "--agent", "dev-1", "--points", "8", "--team", "core")
    assert cli("complete", item["id"], "--agent", "dev-1").exit_code == 0
    again = cli("complete", item["id"], "--agent", "dev-1")
    assert again.exit_code == 6
    assert "already completed" in again.stderr
    assert ledger.velocity() == {"core": 8}


def test_cancel_pending_then_claim_is_an_invalid_transition(cli: Invoke, ledger: Ledger) -> None:
    item = submit(cli)
    assert cli("cancel", item["id"]).exit_code == 0
    assert ledger.get(item["id"]).status is Status.CANCELLED
    assert cli("claim", item["id"], "--agent", "a").exit_code == 6


def test_list_filters_by_status_role_and_team(cli: Invoke) -> None:
    qa = submit(cli, "--role", "qa", "--team", "web")
    submit(cli, "--role", "developer", "--team", "web")
    rows = json.loads(cli("list", "--status", "pending", "--role", "qa", "--json").stdout)
    assert [r["id"] for r in rows] == [qa["id"]]
    assert len(json.loads(cli("list", "--team", "web", "--json").stdout)) == 2
    assert cli("list", "--status", "sleeping").exit_code == 2


def test_register_and_agents_show_live_metrics(cli: Invoke) -> None:
    assert cli("register", "qa-1", "--role", "qa", "--team", "web", "--capacity", "2").exit_code == 0
    item = submit(cli, "--role", "qa", "--claim", "--agent", "qa-1")
    cli("complete", item["id"], "--agent", "qa-1")
    agents = json.loads(cli("agents", "--json").stdout)
    (agent,) = agents
    assert agent["id"] == "qa-1"
    assert agent["role"] == "qa"
    assert agent["capacity"] == 2
    assert agent["completed"] == 1
    assert agent["success_rate"] == 1.0


def test_generate_id_prints_a_bare_id(cli: Invoke) -> None:
    assert re.fullmatch(r"agent_\d{19}_[0-9a-f]{12}\n", cli("generate-id").stdout)
    assert re.fullmatch(r"work_\d{19}_[0-9a-f]{12}\n", cli("generate-id", "--work", "--json").stdout)


def test_unreachable_redis_exits_7_naming_the_url_without_its_password(prefix: str) -> None:
    env = {"REDIS_URL": "redis://user:s3cret@127.0.0.1:1/0", "SWARM_KEY_PREFIX": prefix}
    done = run_swarm(env, "show", "work_x")
    assert done.returncode == 7
    stderr = done.stderr.decode()
    assert "127.0.0.1:1" in stderr
    assert "s3cret" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_invalid_settings_exit_2(cli: Invoke) -> None:
    result = cli("show", "work_x", extra_env={"SWARM_LEASE_SECONDS": "soon"})
    assert result.exit_code == 2
    assert "lease_seconds" in result.stderr
