"""``swarm beat``: a real ``celery beat`` with the swarm's schedule, safe to run more than once."""

from __future__ import annotations

import os

import typer

from swarm.cli.runtime import load_settings, run


def beat(
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    celery_args: list[str] | None = typer.Argument(None, help="More `celery beat` options, after --."),
) -> None:
    """Run celery beat: the lease reaper, the ceremonies on the calendar and the improvement cycle.

    The schedule lives in Redis (celery-redbeat). A second beat waits on the leader's lock and
    takes over within the lock timeout if the leader dies.
    """

    def body() -> None:
        from swarm.cli.celery_command import run_celery
        from swarm.embedded import resolve_redis
        from swarm.settings import get_settings

        settings = load_settings()
        with resolve_redis(settings.redis_url) as target:
            os.environ["REDIS_URL"] = target.url
            get_settings.cache_clear()
            from ceremonies.beat import app  # built from the environment set above

            run_celery(app, ["beat", "--loglevel", loglevel, *(celery_args or [])])

    run(False, body)
