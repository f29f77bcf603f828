"""``swarm worker``: a real ``celery worker`` on one role's queues."""

from __future__ import annotations

import os

import typer

from swarm import validation
from swarm.celery_app import role_queues
from swarm.cli.runtime import load_settings, run
from swarm.embedded import resolve_redis
from swarm.models import Role
from swarm.settings import get_settings


def worker(
    role: str = typer.Option(..., "--role", help="pm|architect|developer|qa|devops."),
    concurrency: int = typer.Option(1, "-c", "--concurrency", min=1, help="Slots (threads or processes)."),
    pool: str = typer.Option("threads", "--pool", "-P", help="threads|prefork (any Celery pool works)."),
    handlers: str | None = typer.Option(
        None, "--handlers", help="Comma-separated handler modules to import."
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Node name (default ROLE@%h)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    celery_args: list[str] | None = typer.Argument(None, help="More `celery worker` options, after --."),
) -> None:
    """Run a Celery worker for ROLE, consuming its queues most urgent first."""

    def body() -> None:
        checked = validation.enum_value(Role, role, "role")
        settings = load_settings()
        with resolve_redis(settings.redis_url) as target:
            os.environ["REDIS_URL"] = target.url
            os.environ["SWARM_WORKER_ROLE"] = checked.value
            modules = [*settings.handler_module_names, *(handlers.split(",") if handlers else [])]
            os.environ["SWARM_HANDLER_MODULES"] = ",".join(modules)
            get_settings.cache_clear()
            from workers.app import app  # noqa: PLC0415 - built from the environment set above

            argv = [
                "worker",
                "--queues", ",".join(role_queues(settings, checked)),
                "--hostname", name or f"{checked.value}@%h",
                "--pool", pool,
                "--concurrency", str(concurrency),
                "--loglevel", loglevel,
                *(celery_args or []),
            ]  # fmt: skip
            app.worker_main(argv)

    run(False, body)
