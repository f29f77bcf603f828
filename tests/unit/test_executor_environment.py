"""One rule for every executor's child (issue 12, item 11): the worker's environment without the
ledger's credentials and the swarm's other secrets, whatever the executor (shell, claude, the
improvement advisor's runner, the git commands of a per-item worktree and their hooks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm import HandlerContext, WorkItem
from swarm.ledger import Ledger
from workers.executors import claude, process, shell
from workers.executors.environment import SECRET_VARIABLES, child_environment
from workers.executors.worktree import item_worktree

PY = sys.executable
FAKES = Path(__file__).resolve().parents[1] / "fakes"
URL = "redis://:ledger-password@ledger:6379/0"
SECRETS = {
    "REDIS_URL": URL,
    "SWARM_REDIS_URL": URL,
    "redis_url": URL,  # the settings read names in any case
    "Swarm_Redis_Url": URL,
    "REDISCLI_AUTH": "ledger-password",
    "CELERY_BROKER_URL": URL,
    "CELERY_RESULT_BACKEND": URL,
    "SWARM_FLOWER_BASIC_AUTH": "ops:flower-password",
    "FLOWER_BASIC_AUTH": "ops:flower-password",
    "SWARM_CONFIG": "/etc/swarm/swarm.toml",
}
DUMP_ENV_NAMES = "import json, os; print(json.dumps(sorted(os.environ)))"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret set in the worker's environment, beside an ordinary variable."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KEPT_VARIABLE", "yes")


def claimed(ledger: Ledger) -> tuple[WorkItem, HandlerContext]:
    item = ledger.claim(ledger.submit("build", "do it").id, "agent-env")
    return item, HandlerContext(ledger, item, "agent-env")


def assert_no_secret(names: list[str]) -> None:
    assert "KEPT_VARIABLE" in names
    leaked = sorted(set(names) & set(SECRETS))
    assert leaked == [], f"the child inherited {leaked}"


def test_the_rule_drops_every_secret_in_any_case_and_keeps_the_rest(secrets: None) -> None:
    env = child_environment()
    assert_no_secret(list(env))
    assert env["KEPT_VARIABLE"] == "yes"
    assert env["PATH"] == os.environ["PATH"]
    assert {name.upper() for name in SECRETS} == SECRET_VARIABLES


def test_a_handler_may_pass_a_secret_on_explicitly(secrets: None) -> None:
    env = child_environment({"REDIS_URL": "redis://other:6379/0", "EXTRA": "1"})
    assert env["REDIS_URL"] == "redis://other:6379/0"
    assert env["EXTRA"] == "1"
    assert "SWARM_REDIS_URL" not in env


def test_the_runner_every_executor_uses_applies_the_rule(fake_ledger: Ledger, secrets: None) -> None:
    _, ctx = claimed(fake_ledger)
    done = process.run(
        [PY, "-c", DUMP_ENV_NAMES], ctx, what="env", stdin=b"", timeout=30, cwd=None, env={"EXTRA": "1"},
        stdout_limit=65536, stderr_limit=65536,
    )  # fmt: skip
    names = json.loads(done.stdout.text())
    assert_no_secret(names)
    assert "EXTRA" in names


def test_the_shell_executors_command_inherits_no_secret(fake_ledger: Ledger, secrets: None) -> None:
    item, ctx = claimed(fake_ledger)
    names = shell([PY, "-c", DUMP_ENV_NAMES])(item, ctx)
    assert_no_secret(names)


def test_the_claude_executors_cli_inherits_no_secret(
    fake_ledger: Ledger, secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "echo-args")
    item, ctx = claimed(fake_ledger)
    seen: dict[str, Any] = json.loads(claude("{description}")(item, ctx))
    assert_no_secret(seen["env_names"])


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_a_worktrees_git_hooks_inherit_no_secret(
    tmp_path: Path, secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Swarm Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "swarm@example.invalid")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    dump = tmp_path / "hook-env.json"
    hook = repo / ".git" / "hooks" / "post-checkout"  # git worktree add runs it
    hook.write_text(
        f"#!{PY}\nimport json, os\nopen({str(dump)!r}, 'w').write(json.dumps(sorted(os.environ)))\n"
    )
    hook.chmod(0o755)
    with item_worktree(repo, "work_1_a"):
        pass
    assert_no_secret(json.loads(dump.read_text()))
