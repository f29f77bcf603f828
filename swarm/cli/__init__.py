"""The ``swarm`` command line (SPEC §6); exit codes are those of ``swarm.errors``.

An agent's shell starts ``swarm`` for every claim, progress and completion, so start-up is kept
short: a command's module is imported only when that command runs (``swarm --help`` imports
them all, to list them), and each module imports what its command needs when it runs.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup
from typer.main import get_command

if TYPE_CHECKING:
    from typer._click import Command  # Typer's own click

# Every command: its name -> (its module in swarm.cli, its function or Typer app of subcommands,
# its click context settings), in the order `swarm --help` lists them.
ALLOW_EXTRA = {"allow_extra_args": True}  # the options after `--` go to Celery
COMMANDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "submit": ("work", "submit", {}),
    "claim": ("work", "claim", {}),
    # "-1" must reach the validator (a clear refusal), not be taken for an option.
    "progress": ("work", "progress", {"ignore_unknown_options": True}),
    "complete": ("work", "complete", {}),
    "fail": ("work", "fail", {}),
    "release": ("work", "release", {}),
    "heartbeat": ("work", "heartbeat", {}),
    "cancel": ("work", "cancel", {}),
    "show": ("work", "show", {}),
    "list": ("work", "list_items", {}),
    "events": ("work", "events", {}),
    "reap": ("work", "reap", {}),
    "wait": ("results", "wait", {}),
    "retry": ("results", "retry", {}),
    "register": ("agents", "register", {}),
    "agents": ("agents", "agents", {}),
    "generate-id": ("agents", "generate_id", {}),
    "demo": ("demo", "demo", {}),
    "tour": ("tour", "tour", {}),
    "worker": ("worker", "worker", ALLOW_EXTRA),
    "up": ("up", "up", {}),
    "beat": ("beat", "beat", ALLOW_EXTRA),
    "ceremony": ("ceremony", "ceremony", {}),
    "flower": ("flower", "flower", ALLOW_EXTRA),
    "status": ("status", "status", {}),
    "health": ("health", "health", {}),
    "metrics": ("metrics", "metrics", {}),
    "improve": ("improve", "improve", {}),
    "calendar": ("calendar", "app", {}),  # `swarm calendar [show|set]`
}

# The commands an agent's shell runs at every step, each in a fraction of a second. They use only
# the ledger, which logs through the standard library alone (never structlog:
# tests/integration/test_cli_imports.py checks that they do not import it), so Python's defaults
# already keep their warnings on stderr: they skip importing and configuring structlog. And they
# run with the cyclic garbage collector off (a process that ends at once needs it for nothing;
# `events --follow` turns it back on), which spares them its passes over the modules they import,
# at start-up and at exit (main).
LEDGER_COMMANDS = frozenset(
    {
        "claim", "progress", "complete", "fail", "release", "heartbeat", "cancel", "show", "list",
        "events", "reap", "register", "agents", "generate-id",
    }
)  # fmt: skip


def build_command(name: str) -> Command:
    """The click command (or group) of ``COMMANDS[name]``, built by Typer."""
    module, attribute, context_settings = COMMANDS[name]
    found = getattr(importlib.import_module(f"swarm.cli.{module}"), attribute)
    if isinstance(found, typer.Typer):  # a group of subcommands
        command = get_command(found)
        command.name = name
        return command
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command(name, context_settings=context_settings)(found)
    return get_command(single)


class _Commands(MutableMapping[str, "Command"]):
    """The group's commands by name, each built when it is first looked up."""

    def __init__(self) -> None:
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = build_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._built))


class SwarmGroup(TyperGroup):
    """Typer's group, whose commands are built (and their modules imported) on first use."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands()

    def list_commands(self, ctx: Any) -> list[str]:  # ctx: Typer's own click Context
        return list(self.commands)


app = typer.Typer(
    name="swarm",
    help="A distributed task-queue worker swarm: a fenced Redis work ledger and its CLI.",
    cls=SwarmGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _logging(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="A settings file (TOML) to read, as SWARM_CONFIG names one; none is read unless named.",
    ),
) -> None:
    """Before any other command: the settings file named, if any (for this command and the
    processes it starts); then the garbage collector back on, and structlog through stdlib
    logging, so log lines never reach stdout (which ``--json`` keeps for its one object) and
    warnings go to stderr."""
    if config is not None:
        from swarm.settings import CONFIG_ENV, get_settings

        os.environ[CONFIG_ENV] = str(config.resolve())
        get_settings.cache_clear()
    if ctx.invoked_subcommand in LEDGER_COMMANDS:
        return
    gc.enable()
    from swarm.logs import configure_logging

    configure_logging()


def main() -> None:
    """The ``swarm`` command; the collector stays off while it starts (see LEDGER_COMMANDS)."""
    gc.disable()
    try:
        app()
    finally:
        if not gc.isenabled():  # a ledger command (or --help): the process ends now
            # Frozen objects are left out of the full collection the interpreter makes as it
            # exits, a walk over everything the command imported that would free nothing the
            # exit does not.
            gc.freeze()
