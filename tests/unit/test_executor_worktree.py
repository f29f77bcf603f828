"""The claude executor's git worktree per item, on a real git repository in tmp_path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarm import HandlerContext, TransientError, WorkItem
from swarm.ledger import Ledger
from workers.executors import claude
from workers.executors.worktree import branch_for, item_worktree, repository_root

AGENT = "agent-tree"
FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture(autouse=True)
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "commit")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Swarm Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "swarm@example.invalid")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "README").write_text("hello\n")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "initial")
    return root


def claimed(ledger: Ledger, **submit: Any) -> tuple[WorkItem, HandlerContext]:
    item = ledger.submit("build", "add FAKE.txt", **submit)
    item = ledger.claim(item.id, AGENT)
    return item, HandlerContext(ledger, item, AGENT)


def worktrees(repo: Path) -> list[str]:
    return [
        line
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_each_item_runs_on_its_own_branch_in_a_worktree_that_is_removed_afterwards(
    fake_ledger: Ledger, repo: Path
) -> None:
    item, ctx = claimed(fake_ledger)
    result = claude("{description}", worktree=True, cwd=repo)(item, ctx)
    branch = f"swarm/{item.id}"
    assert ctx.artifacts["claude"]["branch"] == branch
    ran_in = Path(result)
    assert ran_in != repo, "it ran elsewhere"
    assert not ran_in.exists(), "and that place is gone"
    assert worktrees(repo) == [f"worktree {repo}"]
    assert git(repo, "show", f"{branch}:FAKE.txt") == "add FAKE.txt", "the committed work stays on the branch"
    assert not (repo / "FAKE.txt").exists(), "the main checkout was not touched"
    # A retry reuses the branch and builds on it.
    claude("{description} again", worktree=True, cwd=repo)(item, ctx)
    assert git(repo, "rev-list", "--count", branch) == "3"
    assert worktrees(repo) == [f"worktree {repo}"]


def test_a_subdirectory_maps_to_the_same_place_in_the_worktree(fake_ledger: Ledger, repo: Path) -> None:
    (repo / "src" / "main.py").write_text("print('hi')\n")
    git(repo, "add", "src")
    git(repo, "commit", "-q", "-m", "src")
    item, ctx = claimed(fake_ledger)
    result = claude("x", worktree=True, cwd=repo / "src")(item, ctx)
    assert Path(result).name == "src"
    assert git(repo, "show", f"swarm/{item.id}:src/FAKE.txt") == "x"


def test_the_setting_turns_worktrees_on(fake_ledger: Ledger, repo: Path) -> None:
    ledger = Ledger(fake_ledger.client, fake_ledger.settings.model_copy(update={"claude_worktree": True}))
    item, ctx = claimed(ledger)
    claude("x", cwd=repo / "src")(item, ctx)  # an untracked empty directory is made in the worktree
    assert ctx.artifacts["claude"]["branch"] == f"swarm/{item.id}"
    assert git(repo, "show", f"swarm/{item.id}:src/FAKE.txt") == "x"


def test_outside_a_repository_it_runs_in_place(
    fake_ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "echo-args")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path
    plain = tmp_path / "plain"
    plain.mkdir()
    item, ctx = claimed(fake_ledger)
    claude("x", worktree=True, cwd=plain)(item, ctx)
    assert "branch" not in ctx.artifacts["claude"]
    assert repository_root(plain) is None


def test_a_stale_worktree_of_a_killed_run_does_not_block_the_retry(repo: Path) -> None:
    # A killed run never reaches its cleanup: its worktree still holds the branch when the retry starts.
    with item_worktree(repo, "work_1_a") as first, item_worktree(repo, "work_1_a") as second:
        assert second.path != first.path
        assert second.branch == first.branch == "swarm/work_1_a"
    assert worktrees(repo) == [f"worktree {repo}"]


def test_a_worktree_that_cannot_be_made_is_transient(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")  # no commit: there is no HEAD to branch from
    with pytest.raises(TransientError, match="git worktree add failed"), item_worktree(empty, "work_2_b"):
        pass


def test_branch_names_are_valid_refs() -> None:
    assert branch_for("work_0001_ab") == "swarm/work_0001_ab"
    assert branch_for("a:b.c/d..e") == "swarm/a-b-c-d--e"
