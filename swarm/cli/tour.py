"""``swarm tour``: a scripted walk-through of the ledger through the real CLI.

Each step runs ``swarm …`` as a separate process against the same Redis (REDIS_URL, or an
embedded one held open for the whole walk-through), and shows what a user would see.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from swarm.cli.runtime import load_settings, out, run
from swarm.ids import new_agent_id

STEP_TIMEOUT_S = 60  # one CLI call; generous for a cold interpreter on a slow machine


def _step(env: dict[str, str], title: str, *args: str, expect: int = 0) -> str:
    from rich.rule import Rule

    out().print(Rule(title, style="blue"))
    out().print("$ swarm " + " ".join(shlex.quote(a) for a in args), style="bold", markup=False)
    done = subprocess.run(  # noqa: S603 - our own CLI, argv list, no shell
        [sys.executable, "-m", "swarm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    out().print(f"(exit {done.returncode})", style="green" if done.returncode == expect else "bold red")
    if done.returncode != expect:
        raise SystemExit(f"tour step failed: expected exit {expect}, got {done.returncode}")
    return done.stdout


def tour() -> None:
    """Walk through submit / claim / progress / complete / show with the CLI, step by step."""

    def body() -> None:
        from rich.rule import Rule

        from swarm.connection import redact
        from swarm.embedded import resolve_redis

        settings = load_settings()
        with resolve_redis(settings.redis_url) as target:
            where = f"embedded {target.kind}" if target.embedded else "REDIS_URL"
            out().print(f"swarm tour on {redact(target.url)} ({where})", markup=False)
            env = {**os.environ, "REDIS_URL": target.url, "SWARM_QUIET_EMBEDDED": "1"}
            dev, other = new_agent_id(), new_agent_id()
            _step(env, "Register a developer agent", "register", dev, "--role", "developer", "--team", "web")
            raw = _step(
                env,
                "Submit a feature (quotes and newlines are stored byte-exact)",
                "submit", "feature_development", 'Add "Sign in with SSO"\nacross the web app',
                "--priority", "high", "--team", "web", "--points", "5", "--json",
            )  # fmt: skip
            work_id = json.loads(raw)["id"]
            _step(env, "The developer claims it (fenced)", "claim", work_id, "--agent", dev)
            _step(
                env,
                "A second agent is refused, naming the holder",
                "claim",
                work_id,
                "--agent",
                other,
                expect=3,
            )
            _step(env, "Progress", "progress", work_id, "40", "login form done", "--agent", dev)
            _step(
                env,
                "Bad input is refused and nothing is written",
                "progress",
                work_id,
                "abc",
                "--agent",
                dev,
                expect=2,
            )
            _step(env, "Only the holder may write", "progress", work_id, "90", "--agent", other, expect=5)
            _step(env, "Complete: velocity is counted once", "complete", work_id, "--agent", dev)
            _step(
                env,
                "Completing twice is an invalid transition",
                "complete",
                work_id,
                "--agent",
                dev,
                expect=6,
            )
            _step(env, "The item", "show", work_id)
            _step(env, "The agent's live metrics", "agents")
            _step(env, "Every transition is in the event stream", "events", "--count", "10")
        out().print(Rule("done", style="green"))

    run(False, body)
