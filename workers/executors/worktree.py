"""A git worktree per item: ``claude`` works on branch ``swarm/<work_id>`` in a directory of its own.

    with item_worktree(repo_dir, item.id) as tree:
        ...  # run in tree.path; commit there to keep the work

The branch is created from the repository's HEAD on the first run and reused on a retry (a
stale worktree of a killed run is pruned, or overridden with ``--force``). The worktree is
always removed afterwards with ``git worktree remove --force``; the branch, and whatever was
committed on it, stays. Uncommitted changes are discarded with the worktree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from workers.executors.environment import child_environment
from workers.handlers import TransientError

GIT_TIMEOUT_S = 60.0  # one git command (worktree add on a large repository checks files out)
BRANCH_PREFIX = "swarm/"  # branches are swarm/<work_id>
_UNSAFE_REF_CHARS = re.compile(r"[^A-Za-z0-9_-]")  # work ids may hold ':' and '.', refs may not

log = structlog.get_logger("swarm.executors")


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str


def branch_for(work_id: str) -> str:
    return BRANCH_PREFIX + _UNSAFE_REF_CHARS.sub("-", work_id)


def repository_root(cwd: Path) -> Path | None:
    """The top of the git repository ``cwd`` is in, or None outside one (or without git)."""
    try:
        done = _git(cwd, "rev-parse", "--show-toplevel")
    except TransientError:
        return None
    return Path(done.stdout.strip())


@contextmanager
def item_worktree(repo: Path, work_id: str) -> Iterator[Worktree]:
    """A fresh worktree of ``repo`` on the item's branch, removed on exit (the branch is kept)."""
    branch = branch_for(work_id)
    holder = Path(tempfile.mkdtemp(prefix=f"swarm-{branch[len(BRANCH_PREFIX) :]}-"))
    path = holder / "worktree"
    try:
        _git(repo, "worktree", "prune")  # forget worktrees whose directory is gone
        if _has_branch(repo, branch):
            _git(repo, "worktree", "add", "--force", str(path), branch)
        else:
            _git(repo, "worktree", "add", "-b", branch, str(path))
    except TransientError:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    try:
        yield Worktree(path, branch)
    finally:
        try:
            _git(repo, "worktree", "remove", "--force", str(path))
        except TransientError as exc:
            log.warning("worktree_remove_failed", path=str(path), reason=str(exc))
            shutil.rmtree(path, ignore_errors=True)
            _prune_quietly(repo)
        shutil.rmtree(holder, ignore_errors=True)


def _has_branch(repo: Path, branch: str) -> bool:
    try:
        _git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}")
    except TransientError:
        return False
    return True


def _prune_quietly(repo: Path) -> None:
    try:
        _git(repo, "worktree", "prune")
    except TransientError as exc:
        log.warning("worktree_prune_failed", repo=str(repo), reason=str(exc))


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One git command; any failure (git missing, non-zero exit, timeout) is a TransientError."""
    argv = ["git", "-C", str(cwd), *args]
    try:
        done = subprocess.run(  # noqa: S603 - fixed git argv; the only variable parts are paths and a ref
            argv,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env=child_environment(),  # the repository's hooks run with it: no ledger credentials
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TransientError(f"git {args[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise TransientError(f"git {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return done
