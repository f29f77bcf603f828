"""``swarm up``: every role's worker and beat (and Flower with ``--flower``) until Ctrl-C or SIGTERM,
restarting any of them that exits (``workers.supervision``)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

import typer

from swarm import validation
from swarm.cli.runtime import load_settings, out, run
from swarm.errors import BadInput, RedisUnavailable, SwarmError

if TYPE_CHECKING:
    from swarm.cli.fleet_output import FleetOutput
    from swarm.embedded import RedisTarget
    from swarm.ledger import Ledger
    from swarm.models import Role
    from swarm.settings import Settings
    from workers.fleet import Fleet


def parse_roles(roles: str) -> list[Role]:
    from swarm.models import Role

    if roles.strip() == "all":
        return list(Role)
    parsed = [validation.enum_value(Role, r.strip(), "role") for r in roles.split(",") if r.strip()]
    if not parsed:
        raise BadInput("--roles needs at least one role, or 'all'")
    return list(dict.fromkeys(parsed))


@contextlib.contextmanager
def swarm_redis(settings: Settings) -> Iterator[RedisTarget]:
    """REDIS_URL, or an embedded Redis held open for as long as the swarm runs."""
    from swarm.embedded import EmbeddedUnavailable, resolve_redis

    try:
        with resolve_redis(settings.redis_url) as target:
            yield target
    except EmbeddedUnavailable as exc:
        raise RedisUnavailable(f"no REDIS_URL is set and {exc}") from None


def fleet_env(target: RedisTarget, handlers: str | None, settings: Settings) -> dict[str, str]:
    from swarm.cli.fleet_output import CHILD_LOG_ENV

    modules = [*settings.handler_module_names, *(handlers.split(",") if handlers else [])]
    return {
        **os.environ,
        "REDIS_URL": target.url,
        "SWARM_KEY_PREFIX": settings.key_prefix,
        "SWARM_HANDLER_MODULES": ",".join(dict.fromkeys(m.strip() for m in modules if m.strip())),
        "SWARM_QUIET_EMBEDDED": "1",
        **CHILD_LOG_ENV,  # swarm up renders their lines in its own format (swarm.cli.fleet_output)
    }


def check_files(settings: Settings, beat: bool) -> None:
    """Reads the workflows (and beat's schedule) before any child starts: a missing or bad file is
    one clear error (exit 2), not children that exit and are started again."""
    from swarm.workflows import load_workflows  # only the commands that start a fleet

    load_workflows(settings.workflows_file)
    if beat:
        from ceremonies.schedule import beat_schedule

        beat_schedule(settings)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops ``up`` the way Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def up(
    roles: str = typer.Option("all", "--roles", help="Comma-separated roles, or 'all'."),
    concurrency: int = typer.Option(2, "-c", "--concurrency", min=1, help="Slots per role worker."),
    pool: str = typer.Option("threads", "--pool", "-P", help="threads|prefork."),
    handlers: str | None = typer.Option(None, "--handlers", help="Comma-separated handler modules."),
    no_handlers: bool = typer.Option(
        False, "--no-handlers", help="Start workers without handler modules (they leave every item)."
    ),
    flower: bool = typer.Option(
        False, "--flower", help="Also run Flower (loopback only unless SWARM_FLOWER_BASIC_AUTH is set)."
    ),
    flower_port: int | None = typer.Option(
        None, "--flower-port", min=1, max=65535, help="Default SWARM_FLOWER_PORT (5555)."
    ),
    beat: bool = typer.Option(True, "--beat/--no-beat", help="Also run beat (reaper, ceremonies)."),
) -> None:
    """Run a worker for every role and beat (plus Flower) until Ctrl-C or SIGTERM, then stop them
    all cleanly. One that exits meanwhile is started again, after a backoff if it keeps exiting."""

    def body() -> None:
        from swarm.cli.fleet_output import FleetOutput
        from swarm.connection import redact
        from swarm.ledger import Ledger
        from workers.fleet import Fleet

        chosen = parse_roles(roles)
        settings = load_settings()
        check_files(settings, beat)
        if flower:  # Flower's options (e.g. FLOWER_ADDRESS) are refused now, not by a child restarted forever
            from swarm.cli.flower import flower_argv

            flower_argv(settings, flower_port, None, [])
        modules = [*settings.handler_module_names, *(handlers.split(",") if handlers else [])]
        if not any(m.strip() for m in modules) and not no_handlers:
            raise BadInput(
                "no handler modules: name them with --handlers my.module (or SWARM_HANDLER_MODULES), "
                "e.g. --handlers workers.demo; --no-handlers starts workers that leave every item"
            )
        output = FleetOutput.for_console(out(), settings.log_format)
        with swarm_redis(settings) as target, sigterm_as_interrupt():
            env = fleet_env(target, handlers, settings)
            fleet = Fleet(
                env, sink=output.child_line, grace_seconds=settings.shutdown_grace_seconds,
                tolerate_exits=True,
            )  # fmt: skip
            for role in chosen:
                fleet.add_worker(
                    role, concurrency=concurrency, pool=pool, args=["--no-handlers"] if no_handlers else []
                )
            if beat:
                fleet.add_beat()
            port = flower_port or settings.flower_port
            if flower:
                fleet.add_flower(port)
            where = f"embedded {target.kind}" if target.embedded else "REDIS_URL"
            starting = f"starting {len(fleet.children)} processes"
            output.say(f"swarm up on {redact(target.url)} ({where}): {starting}")
            if target.embedded:  # other commands reach this swarm only through its URL: said first
                output.say(f"other shells: export REDIS_URL={target.url}  (then swarm status, health, ...)")
            ledger = Ledger.from_url(target.url, settings)
            try:
                with fleet:
                    names = ", ".join(c.name for c in fleet.children if c.ready.is_set())
                    output.say(f"swarm up: {names} ready. Ctrl-C stops them.", style="bold green")
                    if flower:
                        output.say(f"Flower: http://127.0.0.1:{port}/")
                    supervise(fleet, ledger, output)
            except KeyboardInterrupt:
                output.say("swarm up: stopped", style="bold")
                return
            finally:
                ledger.client.close()

    run(False, body)


def supervise(fleet: Fleet, ledger: Ledger, output: FleetOutput) -> None:
    """Restarts the children that exit, printing and counting each (``swarm status``), until
    Ctrl-C or SIGTERM (a KeyboardInterrupt)."""
    from redis.exceptions import RedisError

    from swarm import fleet_record
    from workers.supervision import Report, Supervisor

    names = [c.name for c in fleet.children]
    with contextlib.suppress(SwarmError, RedisError):  # Redis away: the counts start afresh at the next write
        fleet_record.reset(ledger, names)

    def report(event: Report) -> None:
        if event.restarted:
            output.say(f"swarm up: {event.child} started again (restart {event.restarts})", style="yellow")
        else:
            output.say(
                f"swarm up: {event.child} exited with code {event.exit_code}; "
                f"starting it again in {event.delay_s:g}s",
                level="error",
                style="bold red",
            )
        try:
            fleet_record.record(ledger, event.child, event.restarts, event.exit_code)
        except (SwarmError, RedisError) as exc:
            output.say(
                f"swarm up: restart of {event.child} not recorded ({exc})", level="warning", style="yellow"
            )

    Supervisor(fleet, report).run()
