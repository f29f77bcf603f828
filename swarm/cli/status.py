"""``swarm status``: a dashboard of the swarm (agents, items, queues, the calendar, recent events).

It reads in an 80x24 terminal (``swarm/cli/status_view.py`` lays it out), and ``--watch`` on a
terminal shows as many of the recent events as fit its height.
"""

from __future__ import annotations

import time

import typer

from swarm.cli.runtime import JSON_OPTION, ledger_session, out, print_model, run

DEFAULT_INTERVAL_S = 2.0


def status(
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh the dashboard until Ctrl-C."),
    interval: float = typer.Option(
        DEFAULT_INTERVAL_S, "--interval", "-n", min=0.05, help="Seconds between refreshes with --watch."
    ),
    events: int = typer.Option(15, "--events", min=1, help="Recent events shown."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show agents by role (live/stale), items by status and role, queue depths, the current PI
    and iteration with its velocity so far, the leading and standby beats, the children `swarm up`
    restarted, and recent events."""

    def body() -> None:
        from rich.live import Live

        from swarm.cli.status_view import dashboard
        from swarm.status import StatusReader

        with ledger_session() as ledger:
            reader = StatusReader(ledger, events=events)
            if as_json:
                print_model(reader.report())
                return
            if not watch:
                out().print(dashboard(reader.report()))
                return
            refreshes = 1
            console = out()
            if console.is_terminal:
                fit = console.height - 1  # Live keeps the cursor's line
                with Live(
                    dashboard(reader.report(), refreshes, fit, console), console=console, auto_refresh=False
                ) as live:
                    while True:
                        time.sleep(interval)
                        refreshes += 1
                        live.update(
                            dashboard(reader.report(), refreshes, console.height - 1, console), refresh=True
                        )
            # Not a terminal (a pipe, a log): each refresh is printed after the last.
            while True:
                out().print(dashboard(reader.report(), refreshes))
                time.sleep(interval)
                refreshes += 1

    run(as_json, body)
