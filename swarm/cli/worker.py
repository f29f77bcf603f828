"""``swarm worker``: a real ``celery worker`` on one role's queues."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from swarm import validation
from swarm.cli.runtime import err, load_settings, run
from swarm.errors import BadInput

if TYPE_CHECKING:
    from swarm.models import Role
    from swarm.settings import Settings


def worker(
    role: str = typer.Option(
        ..., "--role", help="pm|architect|developer|qa|devops, or several, comma-separated."
    ),
    concurrency: int = typer.Option(1, "-c", "--concurrency", min=1, help="Slots (threads or processes)."),
    pool: str = typer.Option(
        "threads", "--pool", "-P", help="threads|prefork (any Celery pool works; threads is resizable)."
    ),
    handlers: str | None = typer.Option(
        None, "--handlers", help="Comma-separated handler modules to import."
    ),
    no_handlers: bool = typer.Option(
        False,
        "--no-handlers",
        help="Start without handler modules: the worker leaves every item to workers that have one.",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Node name (default ROLE@%h)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    embed_beat: bool = typer.Option(
        False, "--beat", "-B", help="Also run beat in this worker (one-host set-ups; safe with more)."
    ),
    celery_args: list[str] | None = typer.Argument(None, help="More `celery worker` options, after --."),
) -> None:
    """Run a Celery worker for ROLE(s), consuming the queues most urgent first.

    It also takes the leader's work (ceremonies, improvement cycles) from the ceremonies queue.
    """

    def body() -> None:
        from swarm.celery_app import ceremonies_queue
        from swarm.cli.celery_command import run_celery
        from swarm.embedded import resolve_redis
        from swarm.models import Role
        from swarm.settings import get_settings
        from workers.pool import celery_pool_option

        roles = [validation.enum_value(Role, r.strip(), "role") for r in role.split(",")]
        settings = load_settings()
        modules = [*settings.handler_module_names, *(handlers.split(",") if handlers else [])]
        modules = [m.strip() for m in modules if m.strip()]
        if not modules and not no_handlers:
            raise BadInput(
                "no handler modules: name them with --handlers my.module (or SWARM_HANDLER_MODULES); "
                "--no-handlers starts a worker that leaves every item to workers that have handlers"
            )
        with resolve_redis(settings.redis_url) as target:
            os.environ["REDIS_URL"] = target.url
            os.environ["SWARM_WORKER_ROLE"] = roles[0].value
            os.environ["SWARM_HANDLER_MODULES"] = ",".join(modules)
            get_settings.cache_clear()
            from workers.app import app  # built from the environment set above
            from workers.handlers import registry  # filled by the modules just imported

            for missing in (r for r in roles if not registry.types(r) and modules):
                err().print(
                    f"note: no handler for role {missing.value} in {', '.join(modules)}: "
                    "this worker leaves its items to workers that have one",
                    style="yellow",
                )

            argv = [
                "worker",
                "--queues", ",".join([ceremonies_queue(settings), *_queues_by_urgency(settings, roles)]),
                "--hostname", name or f"{'+'.join(r.value for r in roles)}@%h",
                "--pool", celery_pool_option(pool),
                "--concurrency", str(concurrency),
                "--loglevel", loglevel,
                *(["--beat"] if embed_beat else []),
                *(celery_args or []),
            ]  # fmt: skip
            if embed_beat:
                from ceremonies.beat import configure_beat

                configure_beat(app, get_settings(), target.url)
            run_celery(app, argv)  # its exit code, not worker_main's None

    run(False, body)


def _queues_by_urgency(settings: Settings, roles: list[Role]) -> list[str]:
    """Every role's critical queue first, then every role's high queue, and so on."""
    from swarm.celery_app import role_queues
    from swarm.models import Priority

    per_role = [role_queues(settings, r) for r in roles]
    return [queues[level] for level in range(len(Priority)) for queues in per_role]
