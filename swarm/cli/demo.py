"""``swarm demo``: ``swarm up`` with the demo handlers, and a backlog flowing through five roles.

Features go PM → Architect → Developer → QA → DevOps (the ``feature`` workflow); two more items
show a transient failure retried with backoff until dead, and a permanent one. A live board
shows every item moving; the report at the end is read from the ledger.

The calendar is compressed (a PI of three 8 s iterations) and starts when the backlog is
submitted: PI Planning runs on it then, before the workers start, and beat runs the other
ceremonies and the improvement cycle as their periods come. The demo ends after the PI's
Inspect & Adapt.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import typer

from swarm.cli.runtime import load_settings, out, run
from swarm.errors import SwarmError

if TYPE_CHECKING:
    from swarm.facade import Swarm
    from swarm.ledger import Ledger
    from swarm.models import WorkItem
    from swarm.settings import Settings

DEMO_HANDLERS = "workers.demo"
SLOTS_PER_ROLE = 2
DEMO_GRACE_S = 5.0  # the demo's workers stop quickly once the backlog is done
REFRESH_S = 0.25  # how often the live board is redrawn
DEFAULT_TIMEOUT_S = 110.0  # the backlog itself; worker start-up comes on top
CEREMONY_WAIT_S = 20.0  # after the PI ends, for its Inspect & Adapt to be written
FEATURES = (  # (title, priority, points, seconds per stage)
    ("Rate-limit the public API", "critical", 8, 0.8),
    ("Sign in with SSO", "high", 5, 1.2),
    ("Faster search", "high", 3, 0.6),
    ("Export reports as CSV", "medium", 3, 0.8),
    ("Audit log for admin actions", "medium", 5, 1.0),
    ("Dark mode", "low", 2, 0.6),
)


def submit_backlog(client: Swarm) -> list[WorkItem]:
    from swarm.models import Role

    roots = [
        client.submit(
            "feature", title, workflow="feature", priority=priority, points=points, team="web",
            payload={"duration_s": seconds},
        )
        for title, priority, points, seconds in FEATURES
    ]  # fmt: skip
    roots.append(
        client.submit(
            "integration", "Flaky vendor sync (transient: retried, then dead)", role=Role.DEVELOPER,
            priority="medium", team="platform", payload={"duration_s": 0.3, "fail": "transient"},
        )
    )  # fmt: skip
    roots.append(
        client.submit(
            "review", "Unfixable request (permanent: failed at once)", role=Role.QA,
            priority="low", team="platform", payload={"duration_s": 0.3, "fail": "permanent"},
        )
    )  # fmt: skip
    return roots


Chains: TypeAlias = "list[list[WorkItem]]"


def watch(client: Swarm, roots: list[WorkItem], timeout: float, logs: Path) -> tuple[Chains, float]:
    """Redraws the board until every item's chain has ended; returns the chains and the time taken."""
    from rich.live import Live

    from swarm.cli.demo_view import board, chain, finished

    started = time.monotonic()
    chains = [chain(client.ledger, r.id) for r in roots]
    with Live(board(chains, 0.0), console=out(), refresh_per_second=1 / REFRESH_S) as live:
        while not all(finished(c) for c in chains):
            if time.monotonic() - started > timeout:
                raise SwarmError(f"the backlog did not finish within {timeout:.0f}s (logs in {logs})")
            time.sleep(REFRESH_S)  # the board's refresh period, not a wait for a result
            chains = [chain(client.ledger, r.id) for r in roots]
            live.update(board(chains, time.monotonic() - started))
    return chains, time.monotonic() - started


def with_calendar(settings: Settings, client: Swarm) -> tuple[Settings, dict[str, str]]:
    """The demo's compressed calendar, starting now, as settings and as the fleet's environment."""
    from swarm.cli import demo_ceremonies
    from swarm.settings import Settings

    env = demo_ceremonies.compressed(settings)
    start = client.ledger.server_time()
    env["SWARM_CALENDAR_START"] = start.isoformat()
    update = {k.removeprefix("SWARM_").lower(): v for k, v in env.items()}
    return Settings.model_validate({**settings.model_dump(), **update}), env


def wait_for_inspect_adapt(ledger: Ledger, timeout: float) -> None:
    """Waits until PI 1's Inspect & Adapt is stored (beat writes it when the PI ends)."""
    from ceremonies import store
    from ceremonies.registry import ceremony

    chosen = ceremony("inspect-adapt")
    deadline = time.monotonic() + timeout
    while not store.exists(chosen, ledger, "PI1"):
        if time.monotonic() > deadline:
            raise SwarmError(f"PI 1's Inspect & Adapt was not written within {timeout:.0f}s")
        time.sleep(REFRESH_S)  # polling the ledger for beat's report


def demo(
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=1, help="Seconds for the backlog."),
) -> None:
    """Start every role's worker, run a sample backlog through the value stream, and report."""

    def body() -> None:
        from ceremonies.tasks import run_ceremony
        from swarm.cli import demo_ceremonies
        from swarm.cli.demo_view import report
        from swarm.cli.up import check_files, fleet_env, swarm_redis
        from swarm.connection import redact
        from swarm.facade import Swarm
        from swarm.models import Role
        from workers.fleet import Fleet

        settings = load_settings()
        check_files(settings, beat=True)
        with swarm_redis(settings) as target:
            where = f"embedded {target.kind}"
            if not target.embedded:  # on a shared Redis, keep the demo's data to itself
                settings = settings.model_copy(update={"key_prefix": f"demo-{secrets.token_hex(4)}"})
                where = f"REDIS_URL, prefix {settings.key_prefix}"
            logs = Path(tempfile.mkdtemp(prefix="swarm-demo-"))
            out().print(f"swarm demo on {redact(target.url)} ({where})")
            out().print(f"starting a worker per role, {SLOTS_PER_ROLE} slots each (logs in {logs})")
            with Swarm(target.url, agent_id="demo-pm", settings=settings) as first:
                settings, calendar_env = with_calendar(settings, first)
            with Swarm(target.url, agent_id="demo-pm", settings=settings) as client:
                roots = submit_backlog(client)
                out().print(
                    run_ceremony(client.ledger, "pi-planning"), f"({len(roots)} items in the backlog)"
                )
                env = {**fleet_env(target, DEMO_HANDLERS, settings), **calendar_env}
                fleet = Fleet(env, log_dir=logs, grace_seconds=DEMO_GRACE_S)
                for role in Role:
                    fleet.add_worker(role, concurrency=SLOTS_PER_ROLE)
                fleet.add_beat()
                with fleet:
                    out().print("workers and beat ready: " + ", ".join(c.name for c in fleet.children))
                    chains, elapsed = watch(client, roots, timeout, logs)
                    out().print("waiting for the PI to end and its Inspect & Adapt ...")
                    pi_left = (demo_ceremonies.ITERATION_S * demo_ceremonies.PI_ITERATIONS) - elapsed
                    wait_for_inspect_adapt(client.ledger, max(0.0, pi_left) + CEREMONY_WAIT_S + timeout)
                out().print()
                out().print(report(client.ledger, chains, elapsed))
                out().print(demo_ceremonies.ceremonies_table(client.ledger))

    run(False, body)
