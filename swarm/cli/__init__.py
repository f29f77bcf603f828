"""The ``swarm`` command line (SPEC §6); exit codes are those of ``swarm.errors``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from swarm.cli import (
    agents,
    beat,
    calendar,
    ceremony,
    demo,
    flower,
    health,
    improve,
    metrics,
    status,
    tour,
    up,
    work,
    worker,
)
from swarm.logs import configure_logging

app = typer.Typer(
    name="swarm",
    help="A distributed task-queue worker swarm: a fenced Redis work ledger and its CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

app.command()(work.submit)
app.command()(work.claim)
# "-1" must reach the validator (a clear refusal), not be taken for an option.
app.command(context_settings={"ignore_unknown_options": True})(work.progress)
app.command()(work.complete)
app.command()(work.fail)
app.command()(work.release)
app.command()(work.heartbeat)
app.command()(work.cancel)
app.command()(work.show)
app.command("list")(work.list_items)
app.command()(work.events)
app.command()(work.reap)
app.command()(agents.register)
app.command()(agents.agents)
app.command("generate-id")(agents.generate_id)
app.command()(demo.demo)
app.command()(tour.tour)
app.command(context_settings={"allow_extra_args": True})(worker.worker)
app.command()(up.up)
app.command(context_settings={"allow_extra_args": True})(beat.beat)
app.command()(ceremony.ceremony)
app.command()(calendar.calendar)
app.command(context_settings={"allow_extra_args": True})(flower.flower)
app.command()(status.status)
app.command()(health.health)
app.command()(metrics.metrics)
app.command()(improve.improve)


@app.callback()
def _logging(
    config: Path | None = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="A settings file (TOML) to read, as SWARM_CONFIG names one; none is read unless named.",
    ),
) -> None:
    """Before any command: the settings file named, if any (for this command and the processes it
    starts); then structlog through stdlib logging, so log lines never reach stdout (which
    ``--json`` keeps for its one object) and warnings go to stderr."""
    if config is not None:
        from swarm.settings import CONFIG_ENV, get_settings  # noqa: PLC0415 - only when a file is named

        os.environ[CONFIG_ENV] = str(config.resolve())
        get_settings.cache_clear()
    configure_logging()


def main() -> None:
    app()
